"""The error model: every tolerance in the project comes from here.

Model
-----
A floating-point evaluation of a formula with unit roundoff ``u`` (2**-24 for
float32, 2**-53 for float64) that performs ``k`` dependent roundings on terms
whose absolute values sum to ``M`` has an absolute error of at most about
``k * u * M`` (the classical first-order bound; for a dot product of length
``K`` this is Higham's ``gamma_K * sum |a||b|``). ``M`` is the formula
evaluated with every term replaced by its absolute value -- the *magnitude*.
Elementary functions (exp, log, tanh) carry ``ELEMENTARY_ULPS`` ulps of their
own error.

Two implementations that both obey such a bound differ by at most twice it,
so a comparison between the reference and a framework passes when, element
by element::

    |ours - theirs| <= IMPLEMENTATIONS * (k * u * M + max(k, 1) * tiny * (1 + F))

where ``tiny`` is the dtype's smallest normal number. One side may flush
subnormal numbers to zero (XLA does on CPU): a subnormal *result* then loses
up to ``tiny``, and a subnormal *intermediate* (an ``exp`` of a very negative
number) loses up to ``tiny`` times the magnitude ``F`` of the factors that
multiply it afterwards (a cotangent ``g``) -- the bound's ``floor_scale``.

The model is worst-case, not statistical: rounding errors rarely add up
coherently, so a correct pair of implementations passes by a wide margin,
while a wrong formula misses by orders of magnitude. Nothing here was fitted
to observed errors.

Per-op models (``forward_bound`` / ``vjp_bound``) state their ``k`` and ``M``
next to the formula they bound. A per-spec override in ``parity_tests/spec.py``
may scale a bound and must say why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

__all__ = [
    "unit_roundoff",
    "ELEMENTARY_ULPS",
    "IMPLEMENTATIONS",
    "Bound",
    "Comparison",
    "forward_bound",
    "vjp_bound",
    "compare",
    "distribution_sum_tolerance",
    "ulp_error",
]

IMPLEMENTATIONS = 2
"""Bounds are per implementation; two are compared, so the budget doubles."""

ELEMENTARY_ULPS = 4
"""Error of one exp/log/tanh evaluation, in units of ``u`` (2 ulp = 4 u).
glibc's double-precision exp/log/tanh are within 1 ulp; SLEEF's vector
functions used by PyTorch on CPU (``u10`` variants) within 1.0 ulp; XLA's
CPU float32 exp/log/tanh approximations are documented within a few ulp."""


def unit_roundoff(dtype: Any) -> float:
    """``u = eps / 2``: 2**-24 for float32, 2**-53 for float64."""
    return float(np.finfo(np.dtype(dtype)).eps) / 2


def _tiny(dtype: Any) -> float:
    return float(np.finfo(np.dtype(dtype)).tiny)


def distribution_sum_tolerance(n: int, dtype: Any) -> float:
    """How far from 1 a correctly normalised row of ``n`` probabilities may
    sum: each entry carries the error of a softmax (``n + 2 E + 8`` roundings
    at most, the exp/sum/divide chain), and the check itself sums in float64.
    The factor ``IMPLEMENTATIONS`` allows the row to have been produced by
    another library."""
    return IMPLEMENTATIONS * (n + 2 * ELEMENTARY_ULPS + 8) * unit_roundoff(dtype)


@dataclass(frozen=True)
class Bound:
    """``k`` roundings on terms of magnitude ``M`` (both broadcast to the
    result's shape)."""

    k: np.ndarray
    magnitude: np.ndarray
    model: str
    """The formula the bound comes from, for failure messages."""
    floor_scale: Any = 0.0
    """``F``: magnitude of the factors that multiply an intermediate which
    may underflow (see the module docstring); 0 where only the result can."""

    def tolerance(self, dtype: Any, factor: float = 1.0) -> np.ndarray:
        u = unit_roundoff(dtype)
        k = np.asarray(self.k, dtype=np.float64)
        m = np.asarray(self.magnitude, dtype=np.float64)
        floor = np.maximum(k, 1.0) * _tiny(dtype) * (1.0 + np.asarray(self.floor_scale, dtype=np.float64))
        return factor * IMPLEMENTATIONS * (k * u * m + floor)


E = ELEMENTARY_ULPS


def _f64(*xs: np.ndarray) -> tuple[np.ndarray, ...]:
    return tuple(np.asarray(x, dtype=np.float64) for x in xs)


def _unbroadcast_abs(g: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, float]:
    """``(sum of |g| over broadcast axes, reduction length)``."""
    from .ops import unbroadcast

    r = g.size // max(int(np.prod(shape, dtype=np.int64)), 1) if g.size else 1
    return unbroadcast(np.abs(g), shape), float(r)


def _rows(x: np.ndarray) -> int:
    return int(np.prod(x.shape[:-1], dtype=np.int64))


def _reduction_scale(x: np.ndarray, reduction: str) -> float:
    return 1.0 / _rows(x) if reduction == "mean" else 1.0


# ---------------------------------------------------------------- softmax pieces


def _softmax_terms(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(softmax magnitude, per-element roundings) for a row-wise softmax.

    ``exp(fl(x_i - m))``: the subtraction's relative error u is multiplied by
    ``|x_i - m|`` through exp; the row sum adds ``n`` roundings and its terms'
    own errors weighted by their share; exp and the division add ``E + 1``.
    """
    m = x.max(axis=-1, keepdims=True)
    d = np.abs(x - m)
    e = np.exp(-d)
    y = e / e.sum(axis=-1, keepdims=True)
    n = x.shape[-1]
    k = d + (y * d).sum(axis=-1, keepdims=True) + 2 * E + n + 2
    return y, k


def _lse_terms(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(|max|, |log sum exp(z - max)|) per row, keepdims."""
    m = z.max(axis=-1, keepdims=True)
    return np.abs(m), np.abs(np.log(np.exp(z - m).sum(axis=-1, keepdims=True)))


# ---------------------------------------------------------------- forward models


def _fwd_add(a: np.ndarray, b: np.ndarray) -> tuple[Any, Any, str]:
    return 1, np.abs(a) + np.abs(b), "one rounding of a + b"


def _fwd_multiply(a: np.ndarray, b: np.ndarray) -> tuple[Any, Any, str]:
    return 1, np.abs(a * b), "one rounding of a * b"


def _fwd_matmul(a: np.ndarray, b: np.ndarray) -> tuple[Any, Any, str]:
    return a.shape[-1], np.abs(np.matmul(np.abs(a), np.abs(b))), "gamma_K |a| @ |b|, K = inner dimension"


def _fwd_dense(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[Any, Any, str]:
    return x.shape[-1] + 1, np.matmul(np.abs(x), np.abs(w)) + np.abs(b), "gamma_(K+1) (|x| @ |W| + |b|)"


def _fwd_relu(x: np.ndarray) -> tuple[Any, Any, str]:
    return 0, np.abs(x), "exact (a selection, no rounding)"


def _fwd_tanh(x: np.ndarray) -> tuple[Any, Any, str]:
    return E, np.abs(np.tanh(x)), "E ulps of tanh, relative"


def _sigmoid64(x: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _fwd_sigmoid(x: np.ndarray) -> tuple[Any, Any, str]:
    y = _sigmoid64(x)
    return E + 2, y, "exp (E), 1 + e and the division (2), relative"


def _fwd_softmax(x: np.ndarray) -> tuple[Any, Any, str]:
    y, k = _softmax_terms(x)
    return k, y, "relative, k_i = |x_i - max| + sum_j s_j |x_j - max| + 2E + n + 2"


def _fwd_cross_entropy(p: np.ndarray, t: np.ndarray, reduction: str = "mean") -> tuple[Any, Any, str]:
    n, r = p.shape[-1], _rows(p)
    m = _reduction_scale(p, reduction) * np.sum(np.abs(t) * (np.abs(np.log(p)) + 1))
    return n + r + E + 3, m, "sum over rows and classes of |y| (|log yhat| + 1)"


def _fwd_softmax_cross_entropy(z: np.ndarray, t: np.ndarray, reduction: str = "mean") -> tuple[Any, Any, str]:
    n, r = z.shape[-1], _rows(z)
    am, alse = _lse_terms(z)
    m = _reduction_scale(z, reduction) * np.sum(np.abs(t) * (np.abs(z) + am + alse + 1))
    return n + r + 2 * E + 4, m, "sum |y| (|z| + |max| + |lse| + 1): the log-softmax terms"


def _fwd_mse(p: np.ndarray, t: np.ndarray, reduction: str = "mean") -> tuple[Any, Any, str]:
    scale = {"mean": 1.0 / p.size, "sum": 1.0, "half_sum": 0.5}[reduction]
    return p.size + 4, scale * np.sum((p - t) ** 2), "gamma_(N+4) sum (yhat - y)^2"


_FORWARD: Mapping[str, Callable[..., tuple[Any, Any, str]]] = {
    "add": _fwd_add,
    "multiply": _fwd_multiply,
    "matmul": _fwd_matmul,
    "dense": _fwd_dense,
    "relu": _fwd_relu,
    "tanh": _fwd_tanh,
    "sigmoid": _fwd_sigmoid,
    "softmax": _fwd_softmax,
    "cross_entropy": _fwd_cross_entropy,
    "softmax_cross_entropy": _fwd_softmax_cross_entropy,
    "mse": _fwd_mse,
}


# ---------------------------------------------------------------- VJP models


def _vjp_add(g: np.ndarray, a: np.ndarray, b: np.ndarray) -> list[tuple[Any, Any, str]]:
    out = []
    for x in (a, b):
        m, r = _unbroadcast_abs(g, x.shape)
        out.append((r - 1, m, "sum of g over the broadcast axes (length r, r - 1 roundings)"))
    return out


def _vjp_multiply(g: np.ndarray, a: np.ndarray, b: np.ndarray) -> list[tuple[Any, Any, str]]:
    out = []
    for x, other in ((a, b), (b, a)):
        m, r = _unbroadcast_abs(g * other, x.shape)
        out.append((r, m, "g * other, summed over the broadcast axes"))
    return out


def _vjp_matmul(g: np.ndarray, a: np.ndarray, b: np.ndarray) -> list[tuple[Any, Any, str]]:
    from .ops import _matmul_vjp

    ga, gb = _matmul_vjp(np.abs(g), None, np.abs(a), np.abs(b))
    batch = int(np.prod(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]), dtype=np.int64))
    n = b.shape[-1] if b.ndim > 1 else 1
    m = a.shape[-2] if a.ndim > 1 else 1
    r_a = batch // int(np.prod(a.shape[:-2], dtype=np.int64))
    r_b = batch // int(np.prod(b.shape[:-2], dtype=np.int64))
    return [
        (n + r_a, ga, "gamma_(N + r) |g| @ |b|^T, r = broadcast batch summed"),
        (m + r_b, gb, "gamma_(M + r) |a|^T @ |g|, r = broadcast batch summed"),
    ]


def _vjp_dense(g: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> list[tuple[Any, Any, str]]:
    ag = np.abs(g).reshape(-1, g.shape[-1])
    ax = np.abs(x).reshape(-1, x.shape[-1])
    rows = ag.shape[0]
    return [
        (w.shape[1], np.matmul(np.abs(g), np.abs(w).T), "gamma_out |g| @ |W|^T"),
        (rows, ax.T @ ag, "gamma_rows |x|^T @ |g|"),
        (rows, ag.sum(axis=0), "sum of |g| over rows"),
    ]


def _vjp_relu(g: np.ndarray, x: np.ndarray) -> list[tuple[Any, Any, str]]:
    return [(0, np.abs(g), "exact: g or 0")]


def _vjp_tanh(g: np.ndarray, x: np.ndarray) -> list[tuple[Any, Any, str]]:
    y = np.tanh(x)
    return [(2 * E + 3, np.abs(g) * (1 + y * y), "|g| (1 + tanh^2): 1 - tanh^2 cancels near saturation",
             np.abs(g))]


def _vjp_sigmoid(g: np.ndarray, x: np.ndarray) -> list[tuple[Any, Any, str]]:
    y = _sigmoid64(x)
    return [(E + 5, np.abs(g) * y * (np.abs(1 - y) + y), "|g| s (|1 - s| + s): 1 - s cancels near saturation",
             np.abs(g))]


def _vjp_softmax(g: np.ndarray, x: np.ndarray) -> list[tuple[Any, Any, str]]:
    y, k = _softmax_terms(x)
    n = x.shape[-1]
    m = y * (np.abs(g) + (np.abs(g) * y).sum(axis=-1, keepdims=True))
    floor = np.abs(g) + (np.abs(g) * y).sum(axis=-1, keepdims=True)
    return [(k.max(axis=-1, keepdims=True) + n + 3, m, "s (|g| + sum |g| s), softmax's k + n + 3", floor)]


def _vjp_cross_entropy(g: np.ndarray, p: np.ndarray, t: np.ndarray, reduction: str = "mean") -> list[tuple[Any, Any, str]]:
    s = abs(float(g)) * _reduction_scale(p, reduction)
    return [
        (3, s * np.abs(t / p), "|y / yhat| times the scale"),
        (E + 2, s * (np.abs(np.log(p)) + 1), "(|log yhat| + 1) times the scale"),
    ]


def _vjp_softmax_cross_entropy(g: np.ndarray, z: np.ndarray, t: np.ndarray, reduction: str = "mean") -> list[tuple[Any, Any, str]]:
    s = abs(float(g)) * _reduction_scale(z, reduction)
    y, k = _softmax_terms(z)
    am, alse = _lse_terms(z)
    n = z.shape[-1]
    return [
        (k + 3, s * (y * np.abs(t).sum(axis=-1, keepdims=True) + np.abs(t)), "softmax(z) sum(y) + |y|, softmax's k + 3",
         s * np.abs(t).sum(axis=-1, keepdims=True)),
        (n + 2 * E + 4, s * (np.abs(z) + am + alse + 1), "|z| + |max| + |lse| + 1: the log-softmax terms"),
    ]


def _vjp_mse(g: np.ndarray, p: np.ndarray, t: np.ndarray, reduction: str = "mean") -> list[tuple[Any, Any, str]]:
    c = {"mean": 2.0 / p.size, "sum": 2.0, "half_sum": 1.0}[reduction]
    m = abs(float(g)) * c * np.abs(p - t)
    return [(3, m, "c |yhat - y| |g|"), (3, m, "c |yhat - y| |g|")]


_VJP: Mapping[str, Callable[..., list[tuple[Any, Any, str]]]] = {
    "add": _vjp_add,
    "multiply": _vjp_multiply,
    "matmul": _vjp_matmul,
    "dense": _vjp_dense,
    "relu": _vjp_relu,
    "tanh": _vjp_tanh,
    "sigmoid": _vjp_sigmoid,
    "softmax": _vjp_softmax,
    "cross_entropy": _vjp_cross_entropy,
    "softmax_cross_entropy": _vjp_softmax_cross_entropy,
    "mse": _vjp_mse,
}


def forward_bound(op: str, inputs: Sequence[np.ndarray], params: Mapping[str, Any] | None = None) -> Bound:
    """Error bound of ``OPS[op].forward(*inputs, **params)`` (per implementation)."""
    k, m, model = _FORWARD[op](*_f64(*inputs), **dict(params or {}))
    return Bound(np.asarray(k, dtype=np.float64), np.asarray(m, dtype=np.float64), model)


def vjp_bound(op: str, cotangent: np.ndarray, inputs: Sequence[np.ndarray],
              params: Mapping[str, Any] | None = None) -> tuple[Bound, ...]:
    """Error bounds of each gradient ``OPS[op].vjp(cotangent, *inputs, **params)``."""
    rows = _VJP[op](*_f64(cotangent, *inputs), **dict(params or {}))
    return tuple(
        Bound(np.asarray(r[0], dtype=np.float64), np.asarray(r[1], dtype=np.float64), r[2], r[3] if len(r) > 3 else 0.0)
        for r in rows
    )


def has_model(op: str) -> bool:
    return op in _FORWARD and op in _VJP


# ---------------------------------------------------------------- comparison


def ulp_error(actual: np.ndarray, expected: np.ndarray, dtype: Any) -> np.ndarray:
    """``|actual - expected|`` in units of the spacing of ``dtype`` at ``expected``."""
    e = np.asarray(expected, dtype=np.dtype(dtype))
    spacing = np.spacing(np.abs(e)).astype(np.float64)
    spacing = np.maximum(spacing, float(np.finfo(np.dtype(dtype)).smallest_subnormal))
    with np.errstate(over="ignore"):  # an error of many ulps near 0 may exceed float64's range: inf is right
        return np.abs(np.asarray(actual, np.float64) - np.asarray(expected, np.float64)) / spacing


@dataclass(frozen=True)
class Comparison:
    """Outcome of comparing one array with another under a bound."""

    ok: bool
    shape: tuple[int, ...]
    worst_index: tuple[int, ...]
    actual: float
    expected: float
    abs_error: float
    rel_error: float
    ulp_error: float
    tolerance: float
    """Tolerance at the worst element (the element with the largest
    error-to-tolerance ratio)."""
    ratio: float
    """Largest ``abs_error / tolerance`` over all elements (<= 1 passes)."""
    max_rel_error: float
    max_ulp_error: float
    model: str
    mismatch: str = ""
    """Non-empty when shapes or dtypes differ or a value is not finite."""

    def describe(self) -> str:
        if self.mismatch:
            return self.mismatch
        return (
            f"worst element {self.worst_index} of shape {self.shape}: actual {self.actual!r}, "
            f"expected {self.expected!r}, abs error {self.abs_error:.3e}, rel error {self.rel_error:.3e}, "
            f"ulp error {self.ulp_error:.1f}; tolerance there {self.tolerance:.3e} "
            f"(error/tolerance = {self.ratio:.3g}; model: {self.model})"
        )


def compare(actual: Any, expected: Any, tolerance: np.ndarray, dtype: Any, model: str = "") -> Comparison:
    """Compare elementwise: pass where ``|actual - expected| <= tolerance``.

    Shapes must match exactly and ``actual`` must have ``dtype``; non-finite
    values on either side fail (the reference never produces them from finite
    input). ``expected`` may be of any float dtype.
    """
    dtype = np.dtype(dtype)
    a = np.asarray(actual)
    e = np.asarray(expected)

    def fail(msg: str) -> Comparison:
        return Comparison(False, tuple(a.shape), (), float("nan"), float("nan"), float("inf"), float("inf"),
                          float("inf"), float("nan"), float("inf"), float("inf"), float("inf"), model, msg)

    if a.shape != e.shape:
        return fail(f"shape mismatch: got {a.shape}, expected {e.shape}")
    if a.dtype != dtype:
        return fail(f"dtype mismatch: got {a.dtype}, expected {dtype} (a silent precision change is a failure)")
    a64 = a.astype(np.float64)
    e64 = e.astype(np.float64)
    if not np.all(np.isfinite(a64)) or not np.all(np.isfinite(e64)):
        bad = np.argwhere(~(np.isfinite(a64) & np.isfinite(e64)))
        idx = tuple(int(i) for i in bad[0])
        return fail(f"non-finite value at {idx}: got {a64[idx]!r}, expected {e64[idx]!r}")
    tol = np.broadcast_to(np.asarray(tolerance, dtype=np.float64), a.shape)
    err = np.abs(a64 - e64)
    rel = err / np.maximum(np.abs(e64), np.finfo(dtype).tiny)
    ulp = ulp_error(a64, e64, dtype)
    if a.size == 0:
        return Comparison(True, a.shape, (), 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, model)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(err == 0, 0.0, err / tol)
    flat = int(np.argmax(ratio))
    idx = tuple(int(i) for i in np.unravel_index(flat, a.shape)) if a.ndim else ()
    worst = float(ratio.flat[flat])
    return Comparison(
        ok=bool(worst <= 1.0),
        shape=tuple(a.shape),
        worst_index=idx,
        actual=float(a64.flat[flat]),
        expected=float(e64.flat[flat]),
        abs_error=float(err.flat[flat]),
        rel_error=float(rel.flat[flat]),
        ulp_error=float(ulp.flat[flat]),
        tolerance=float(tol.flat[flat]),
        ratio=worst,
        max_rel_error=float(rel.max()),
        max_ulp_error=float(ulp.max()),
        model=model,
    )
