"""Named special inputs from the spec table: kinks, saturation, extreme
logits, one element and one class.

Each case is checked against values known exactly by reasoning where the
table gives them, and against PyTorch and JAX (forward and VJP) always.
"""

from __future__ import annotations

import numpy as np
import pytest

from reference_impl import OPS
from reference_impl.frameworks.backends import get_backend
from reference_impl.frameworks.recipes import SPECS
from reference_impl.strategies import Example
from reference_impl.tolerances import forward_bound, vjp_bound

from .harness import check_exact, check_forward, check_vjp

DTYPES = [np.float32, np.float64]
CASES = [
    pytest.param(op, case, dt, id=f"{op}-{case.name}-{np.dtype(dt).name}")
    for op in sorted(SPECS)
    for case in SPECS[op].special
    for dt in DTYPES
]


KNOWN = [c for c in CASES if c.values[1].expected_forward is not None or c.values[1].expected_grads is not None]


def _example(op: str, case, dtype) -> Example:
    inputs = case.inputs(np.dtype(dtype))
    params = dict(case.params)
    out = OPS[op].forward(*inputs, **params)
    g = case.cotangent(out.shape, np.dtype(dtype)) if case.cotangent else np.ones(out.shape, dtype=dtype)
    return Example(op, inputs, params, g, {"special_case": case.name})


def test_every_op_has_a_special_case() -> None:
    assert not [op for op in SPECS if not SPECS[op].special], "each op needs at least one named special case"


@pytest.mark.numpy_only
@pytest.mark.parametrize(("op", "case", "dtype"), CASES)
def test_special_case_is_finite(op: str, case, dtype: type) -> None:
    ex = _example(op, case, dtype)
    out = OPS[op].forward(*ex.inputs, **ex.params)
    assert np.all(np.isfinite(out)), f"{op} {case.name}: non-finite output {out!r}"
    grads = OPS[op].vjp(ex.cotangent, *ex.inputs, **ex.params)
    for name, gr in zip(OPS[op].arg_names, grads):
        assert np.all(np.isfinite(gr)), f"{op} {case.name}: non-finite gradient w.r.t. {name}: {gr!r}"


@pytest.mark.numpy_only
@pytest.mark.parametrize(("op", "case", "dtype"), KNOWN)
def test_special_case_known_values(op: str, case, dtype: type) -> None:
    ex = _example(op, case, dtype)
    out = OPS[op].forward(*ex.inputs, **ex.params)
    grads = OPS[op].vjp(ex.cotangent, *ex.inputs, **ex.params)
    if case.expected_forward is not None:
        check_exact(f"{op} forward, case {case.name}", out, case.expected_forward(np.dtype(dtype)),
                    forward_bound(op, ex.inputs, ex.params), dtype, case.why)
    if case.expected_grads is not None:
        for name, gr, exp, b in zip(OPS[op].arg_names, grads, case.expected_grads(np.dtype(dtype)),
                                    vjp_bound(op, ex.cotangent, ex.inputs, ex.params)):
            check_exact(f"{op} gradient w.r.t. {name}, case {case.name}", gr, exp, b, dtype, case.why)


@pytest.mark.parametrize("backend", [pytest.param("torch", marks=pytest.mark.torch),
                                     pytest.param("jax", marks=pytest.mark.jax)])
@pytest.mark.parametrize(("op", "case", "dtype"), CASES)
def test_special_case_vs_framework(op: str, case, dtype: type, backend: str) -> None:
    ex = _example(op, case, dtype)
    b = get_backend(backend)
    check_forward(ex, backend, b.forward(op, ex.inputs, ex.params))
    check_vjp(ex, backend, b.vjp(op, ex.cotangent, ex.inputs, ex.params)[1])
