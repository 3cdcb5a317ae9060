"""Every op of ``spec.SPECS`` against PyTorch and JAX, forward and VJP, in
float32 and float64, and in float16 and bfloat16 with fewer examples (their
genuine framework inaccuracies pinned in ``FINDINGS``). One test function per
check; the table supplies the ops.

The torch tests draw shapes freely; the JAX tests draw them from the
per-op palette so that JAX's compilation cache stays warm (see backends.py).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference_impl import OPS
from reference_impl.frameworks.backends import get_backend
from reference_impl.frameworks.recipes import SPECS
from reference_impl.strategies import Example, examples

from ..harness import ParityFailure, check_forward, check_vjp

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


# --------------------------------------------------------------------------- float16 and bfloat16
# Every op against torch and jax in the half dtypes, judged by the same rule
# with the dtype's unit roundoff and range; fewer examples, as each is cheap
# to get wrong in an obvious way (a dtype lost, a sum accumulated in half).

HALF_EXAMPLES = 6
FINDINGS = {
    ("torch", "mse", "float16"): "torch's mse_loss squares in float16: inf where a square exceeds 65504 though the "
                                 "mean is representable (test_float16_losses_overflow_before_the_mean)",
    ("jax", "mse", "float16"): "jax's mean((p - t)**2) squares in float16: inf where a square exceeds 65504 though "
                               "the mean is representable (test_float16_losses_overflow_before_the_mean)",
    ("torch", "softmax_cross_entropy", "float16"):
        "torch's F.cross_entropy sums the rows' losses in float16 before dividing by the rows: inf where the sum "
        "exceeds 65504 though the mean is representable (test_float16_losses_overflow_before_the_mean)",
}
"""Genuine framework inaccuracies in half precision, each pinned by a test
below; the assertion still runs (a non-strict xfail of ParityFailure only)."""


def _half(backend: str) -> list:
    def marks(op: str, dt: str) -> list:
        reason = FINDINGS.get((backend, op, dt))
        return [] if reason is None else [pytest.mark.xfail(raises=ParityFailure, strict=False, reason=reason)]
    return [pytest.param(op, dt, id=f"{op}-{dt}", marks=marks(op, dt))
            for op in OP_NAMES for dt in ("float16", "bfloat16")]


@pytest.mark.torch
@pytest.mark.parametrize(("op", "dtype"), _half("torch"))
@settings(max_examples=HALF_EXAMPLES, deadline=None)
@given(data=st.data())
def test_half_vs_torch(op: str, dtype: str, data: st.DataObject) -> None:
    ex = data.draw(examples(op, dtype), label="example")
    out, grads = get_backend("torch").vjp(op, ex.cotangent, ex.inputs, ex.params)
    check_forward(ex, "torch", out)
    check_vjp(ex, "torch", grads)


@pytest.mark.jax
@pytest.mark.parametrize(("op", "dtype"), _half("jax"))
@settings(max_examples=HALF_EXAMPLES, deadline=None)
@given(data=st.data())
def test_half_vs_jax(op: str, dtype: str, data: st.DataObject) -> None:
    ex = data.draw(examples(op, dtype, shapes="palette"), label="example")
    out, grads = get_backend("jax").vjp(op, ex.cotangent, ex.inputs, ex.params)
    check_forward(ex, "jax", out)
    check_vjp(ex, "jax", grads)


@pytest.mark.torch
@pytest.mark.jax
@pytest.mark.parametrize(("backend", "op"), [("torch", "mse"), ("jax", "mse"), ("torch", "softmax_cross_entropy")])
def test_float16_losses_overflow_before_the_mean(backend: str, op: str) -> None:
    """Findings, pinned. mse: the mean of the squares (300**2 + 1) / 2 =
    45000.5 is within float16 (the reference returns 44992, the nearest), and
    torch and jax return inf: each square is rounded to float16 (90000 >
    65504) before the mean. softmax_cross_entropy: four rows of loss 20000
    (logits (0, 20000), target (1, 0)) have the mean 20000, and torch returns
    inf: the rows' sum (80000) is rounded to float16 before the division (jax
    gives 20000). The rule rejects both; when a framework accumulates these in
    float32 this test fails and its entry in FINDINGS can go."""
    if op == "mse":
        inputs, exact = (np.zeros(2, np.float16), np.array([300.0, 1.0], np.float16)), 44992.0
    else:
        inputs, exact = (np.array([[0.0, 20000.0]] * 4, np.float16), np.array([[1.0, 0.0]] * 4, np.float16)), 20000.0
    ex = Example(op, inputs, {"reduction": "mean"}, np.ones((), np.float16))
    assert float(OPS[op].forward(*inputs)) == exact
    with pytest.raises(ParityFailure, match="non-finite"):
        check_forward(ex, backend, get_backend(backend).forward(op, ex.inputs, ex.params))
