"""Every op of ``spec.SPECS`` against PyTorch and JAX, forward and VJP, in
float32 and float64. One test function per check; the table supplies the ops.

The torch tests draw shapes freely; the JAX tests draw them from the
per-op palette so that JAX's compilation cache stays warm (see backends.py).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference_impl.frameworks.backends import get_backend
from reference_impl.frameworks.recipes import SPECS
from reference_impl.strategies import examples

from ..harness import check_forward, check_vjp

DTYPES = [np.float32, np.float64]
OP_NAMES = sorted(SPECS)
CASES = [pytest.param(op, dt, id=f"{op}-{np.dtype(dt).name}") for op in OP_NAMES for dt in DTYPES]
# Under pytest-xdist (--dist loadgroup) an op's JAX forward and VJP tests run
# in one worker, so they share its compiled functions.
JAX_CASES = [
    pytest.param(op, dt, id=f"{op}-{np.dtype(dt).name}", marks=pytest.mark.xdist_group(f"jax-{op}"))
    for op in OP_NAMES
    for dt in DTYPES
]


@pytest.mark.torch
@pytest.mark.parametrize(("op", "dtype"), CASES)
@given(data=st.data())
def test_forward_vs_torch(op: str, dtype: type, data: st.DataObject) -> None:
    ex = data.draw(examples(op, dtype), label="example")
    check_forward(ex, "torch", get_backend("torch").forward(op, ex.inputs, ex.params))


@pytest.mark.jax
@pytest.mark.parametrize(("op", "dtype"), JAX_CASES)
@given(data=st.data())
def test_forward_vs_jax(op: str, dtype: type, data: st.DataObject) -> None:
    ex = data.draw(examples(op, dtype, shapes="palette"), label="example")
    check_forward(ex, "jax", get_backend("jax").forward(op, ex.inputs, ex.params))


@pytest.mark.torch
@pytest.mark.parametrize(("op", "dtype"), CASES)
@given(data=st.data())
def test_vjp_vs_torch(op: str, dtype: type, data: st.DataObject) -> None:
    ex = data.draw(examples(op, dtype), label="example")
    _, grads = get_backend("torch").vjp(op, ex.cotangent, ex.inputs, ex.params)
    check_vjp(ex, "torch", grads)


@pytest.mark.jax
@pytest.mark.parametrize(("op", "dtype"), JAX_CASES)
@given(data=st.data())
def test_vjp_vs_jax(op: str, dtype: type, data: st.DataObject) -> None:
    ex = data.draw(examples(op, dtype, shapes="palette"), label="example")
    _, grads = get_backend("jax").vjp(op, ex.cotangent, ex.inputs, ex.params)
    check_vjp(ex, "jax", grads)
