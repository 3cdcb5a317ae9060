"""The acceptance rule on implementations a user might write.

Correct code built on another stable algorithm than the reference's must
pass (no false alarm); code that is wrong at the extremes must fail with the
default search, whatever its seed (no missed bug). Each case is a plain
``check_op`` call, as a user would make it.
"""

from __future__ import annotations

import numpy as np
import pytest

import reference_impl as ri

LOG2_E = float(np.log2(np.e))


def _rows(x: np.ndarray) -> int:
    return int(np.prod(x.shape[:-1], dtype=np.int64))


def _logsumexp(x: np.ndarray) -> np.ndarray:
    m = x.max(axis=-1, keepdims=True)
    return m + np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


# ----------------------------------------------------------------- correct, other algorithms: must pass


def softmax_through_logsumexp(x: np.ndarray) -> np.ndarray:
    return np.exp(x - _logsumexp(x))


def softmax_cross_entropy_vjp_through_logsumexp(g, z, t, reduction="mean"):
    log_p = z - _logsumexp(z)
    scale = g / _rows(z) if reduction == "mean" else g
    return (np.exp(log_p) * t.sum(axis=-1, keepdims=True) - t) * scale, -log_p * scale


def sigmoid_through_exp2(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # exp2 overflows to inf for very negative x: 1 / (1 + inf) = 0 is right
        return 1 / (1 + np.exp2(-x * LOG2_E))


def sigmoid_vjp_through_exp2(g, x):
    s = sigmoid_through_exp2(x)
    return (g * s * (1 - s),)


@pytest.mark.numpy_only
def test_softmax_through_logsumexp_passes() -> None:
    ri.check_op("softmax", forward=softmax_through_logsumexp, seed=0).raise_if_failed()


@pytest.mark.numpy_only
def test_softmax_cross_entropy_gradient_through_logsumexp_passes() -> None:
    ri.check_op("softmax_cross_entropy", vjp=softmax_cross_entropy_vjp_through_logsumexp, seed=0).raise_if_failed()


@pytest.mark.numpy_only
def test_softmax_cross_entropy_gradient_through_logsumexp_passes_at_logits_near_minus_1000() -> None:
    z = np.float32(-1000.0) + np.array([[0.0, -3.5, 2.25, 7.0], [1.0, -1.0, 0.5, 0.0]], dtype=np.float32)
    t = np.array([[0.0, 1.0, 0.0, 0.0], [0.25, 0.25, 0.5, 0.0]], dtype=np.float32)
    g = np.asarray(1.0, dtype=np.float32)
    mine = softmax_cross_entropy_vjp_through_logsumexp(g, z, t)
    ref = ri.softmax_cross_entropy_vjp(g, z, t)
    from reference_impl.accuracy.ops import vjp_bound

    for m, r, b in zip(mine, ref, vjp_bound("softmax_cross_entropy", g, (z, t), {})):
        assert np.all(np.abs(m.astype(np.float64) - r) <= b.tolerance(np.float32)), (m, r)


@pytest.mark.numpy_only
def test_sigmoid_through_exp2_passes() -> None:
    ri.check_op("sigmoid", forward=sigmoid_through_exp2, vjp=sigmoid_vjp_through_exp2, seed=0).raise_if_failed()


# ----------------------------------------------------------------- wrong at the extremes: must fail


def textbook_sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-x))


def textbook_sigmoid_vjp(g, x):
    with np.errstate(over="ignore", invalid="ignore"):  # exp(-x) = inf for x < -88 (float32): inf / inf = NaN
        e = np.exp(-x)
        return (g * e / ((1 + e) * (1 + e)),)


def clamped_cross_entropy(p, t, reduction="mean"):
    rows = -(t * np.log(np.maximum(p, 1e-10))).sum(axis=-1)
    return np.asarray(rows.mean() if reduction == "mean" else rows.sum(), dtype=p.dtype)


def clamped_cross_entropy_vjp(g, p, t, reduction="mean"):
    scale = g / _rows(p) if reduction == "mean" else g
    return -(t / p) * scale, -np.log(np.maximum(p, 1e-10)).astype(p.dtype) * scale


def diagonal_softmax_vjp(g, x):
    s = softmax_through_logsumexp(x)
    return (g * s * (1 - s),)


@pytest.mark.numpy_only
@pytest.mark.parametrize("seed", [None, 1])
def test_textbook_sigmoid_nan_is_found_in_float32(seed: int | None) -> None:
    result = ri.check_op("sigmoid", forward=textbook_sigmoid, vjp=textbook_sigmoid_vjp, dtypes=("float32",),
                         seed=seed)
    assert not result.ok
    assert "non-finite" in result.report() or "nan" in result.report().lower()


@pytest.mark.numpy_only
@pytest.mark.parametrize("seed", [None, 1])
def test_log_clamped_at_1e_10_is_found(seed: int | None) -> None:
    assert not ri.check_op("cross_entropy", forward=clamped_cross_entropy, seed=seed).ok
    assert not ri.check_op("cross_entropy", vjp=clamped_cross_entropy_vjp, seed=seed).ok


@pytest.mark.numpy_only
def test_diagonal_only_softmax_vjp_is_found() -> None:
    assert not ri.check_op("softmax", vjp=diagonal_softmax_vjp, seed=0).ok


@pytest.mark.parametrize(("op", "g", "inputs", "scale"), [
    ("mse", np.array(1e-300), (np.array([1e308]), np.array([-1e308])), 1e300),
    ("multiply", np.array([1e-300, 2e-290]), (np.array([1e308, -3e307]), np.array([1e300, 7e299])), 1e300),
])
def test_a_rule_that_overflows_float64_is_evaluated_beyond_it(op: str, g: np.ndarray, inputs: tuple[np.ndarray, ...],
                                                               scale: float) -> None:
    """Where float64 overflows inside a rule (``yhat - y = 2e308``) but the
    bound is representable (``|g| = 1e-300``), the bound is the one of the
    same problem scaled into float64's range (the rule is homogeneous: inputs
    times ``1/s``, cotangent times ``s``), on every platform."""
    from reference_impl.accuracy import acceptance

    far = acceptance.vjp_bound(op, g, inputs)
    near = acceptance.vjp_bound(op, g * scale, tuple(x / scale for x in inputs))
    for a, b in zip(far, near, strict=True):
        got, want = np.asarray(a.k * a.magnitude), np.asarray(b.k * b.magnitude)
        assert np.all(np.isfinite(got)) and np.allclose(got, want, rtol=1e-12, atol=0), (got, want)


@pytest.mark.numpy_only
def test_mse_vjp_admits_subnormal_inputs_read_as_zero_and_no_more() -> None:
    # p and t subnormal, of opposite signs: p - t = 2.32e-308 is normal, and XLA on CPU, reading both as 0,
    # returns 0 for c g (p - t) = 3.46e-305 (a thorough certify row against jax, seed 2829)
    from reference_impl.accuracy import acceptance

    p, t = np.array([1.2e-308]), np.array([-1.1191e-308])
    g = np.array(-745.8319475522271)
    exact = float(ri.OPS["mse"].vjp(g, p, t, reduction="sum")[0][0])
    tol_p, _ = (b.tolerance(np.float64) for b in acceptance.vjp_bound("mse", g, [p, t], {"reduction": "sum"}))
    assert abs(0.0 - exact) <= float(tol_p[0]), "a flushed pair of inputs is what the model admits"
    assert abs(10 * exact - exact) > float(tol_p[0]), "the floor is a few tiny times c |g|: ten times the value fails"
