"""Named special inputs from the spec table: kinks, saturation, extreme
logits, one element and one class.

Each case is checked against values known exactly by reasoning where the
table gives them, and against PyTorch and JAX (forward and VJP) always.
"""

from __future__ import annotations

import numpy as np
import pytest

from reference_impl import OPS
from reference_impl.accuracy.ops import forward_bound, vjp_bound
from reference_impl.dtypes import resolve
from reference_impl.frameworks.backends import get_backend
from reference_impl.frameworks.recipes import SPECS
from reference_impl.strategies import Example

from ..harness import check_exact, check_forward, check_vjp

DTYPES = [np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16), resolve("bfloat16")]
CASES = [
    pytest.param(op, case, dt, id=f"{op}-{case.name}-{np.dtype(dt).name}")
    for op in sorted(SPECS)
    for case in SPECS[op].special
    for dt in DTYPES
]


def _as_written(case, dtype) -> bool:
    """Whether the case's inputs are, in ``dtype``, the values written in the
    table (float16 rounds relu's 1e-30 to 0, where the known slope is 0, not 1)."""
    return all(np.array_equal(np.asarray(x, np.float64), np.asarray(w, np.float64))
               for x, w in zip(case.inputs(dtype), case.inputs(np.dtype(np.float64))))


KNOWN = [c for c in CASES if (c.values[1].expected_forward is not None or c.values[1].expected_grads is not None)
         and (c.values[2].itemsize >= 4 or _as_written(c.values[1], c.values[2]))]


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


# ----------------------------------------------------------------- extremes with exactly known results


@pytest.mark.numpy_only
def test_unbroadcast_to_a_shape_that_does_not_broadcast_raises() -> None:
    import reference_impl as ri

    with pytest.raises(ValueError, match=r"^shape: \(3, 2\) does not broadcast"):
        ri.unbroadcast(np.arange(6.0).reshape(2, 3), (3, 2))


@pytest.mark.numpy_only
def test_add_vjp_gradients_alias_neither_the_cotangent_nor_each_other() -> None:
    import reference_impl as ri

    g, a = np.ones((2, 3)), np.zeros((2, 3))
    da, db = ri.add_vjp(g, a, a)
    assert not np.shares_memory(da, g) and not np.shares_memory(db, g) and not np.shares_memory(da, db)


@pytest.mark.numpy_only
def test_mse_vjp_of_a_zero_residual_is_zero_for_a_huge_cotangent() -> None:
    import reference_impl as ri

    one = np.array([1.0], np.float32)
    dp, dt = ri.mse_vjp(np.array(3e38, np.float32), one, one, reduction="sum")
    assert dp.tolist() == [0.0] and dt.tolist() == [0.0]  # (yhat - y) g c = 0 exactly


@pytest.mark.numpy_only
def test_softmax_vjp_is_zero_where_every_term_underflows() -> None:
    import reference_impl as ri

    # s = (e^-1000, 1): dx_0 = s_0 (g_0 - <g, s>) ~ 6e38 e^-1000 rounds to 0; dx_1 = s_1 s_0 (g_1 - g_0) also
    (dx,) = ri.softmax_vjp(np.array([[3e38, -3e38]], np.float32), np.array([[0.0, 1000.0]], np.float32))
    assert dx.tolist() == [[0.0, 0.0]]


@pytest.mark.numpy_only
def test_softmax_cross_entropy_at_logits_near_float64_limit() -> None:
    import reference_impl as ri

    # Logits 1e308 and 0, the target on the first class: every true value is
    # representable. log softmax = (-log1p(e^-1e308), -1e308 - log1p(e^-1e308)),
    # so the loss is log1p(e^-1e308) ~ e^-1e308 -> 0; dlogits = s - t =
    # (-e^-1e308, e^-1e308) (times 1 / (1 + e^-1e308)) -> 0; dtarget = -log softmax
    # = (~0, 1e308 + ~0) -> (0, 1e308).
    z, t = np.array([[1e308, 0.0]]), np.array([[1.0, 0.0]])
    assert ri.softmax_cross_entropy(z, t) == 0.0
    dz, dt = ri.softmax_cross_entropy_vjp(np.array(1.0), z, t)
    assert dz.tolist() == [[0.0, 0.0]]
    assert dt.tolist() == [[0.0, 1e308]]


@pytest.mark.numpy_only
def test_softmax_cross_entropy_target_gradient_beyond_float64_is_the_documented_error() -> None:
    import reference_impl as ri

    # Logits +-1e308: the loss (log1p(e^-2e308) -> 0) and dlogits (+-e^-2e308 -> 0)
    # are representable, but d loss / d target_1 = -log softmax_1 = 2e308 is not: the
    # README's overflow policy makes that a ValueError naming the inputs, and float64
    # being the widest dtype, the message suggests smaller inputs only.
    z, t = np.array([[1e308, -1e308]]), np.array([[1.0, 0.0]])
    assert ri.softmax_cross_entropy(z, t) == 0.0
    with pytest.raises(ValueError, match=r"^cotangent, logits, target: the gradient w\.r\.t\. target ") as info:
        ri.softmax_cross_entropy_vjp(np.array(1.0), z, t)
    assert "not representable in float64" in str(info.value)
    assert "use float64" not in str(info.value)
    # the same overflow in float32 suggests float64, where it is representable
    z32, t32 = np.array([[3e38, -3e38]], np.float32), np.array([[1.0, 0.0]], np.float32)
    with pytest.raises(ValueError, match=r"^cotangent, logits, target: .*use float64") as info:
        ri.softmax_cross_entropy_vjp(np.array(1.0, np.float32), z32, t32)
    dz64, dt64 = ri.softmax_cross_entropy_vjp(np.array(1.0), z32.astype(np.float64), t32.astype(np.float64))
    # -log softmax_1 = 2 z_0 + log1p(e^(-2 z_0)), z_0 = float32(3e38): 2 z_0 exactly, once rounded
    assert dz64.tolist() == [[0.0, 0.0]] and dt64.tolist() == [[0.0, 2 * float(z32[0, 0])]]
