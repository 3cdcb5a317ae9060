"""The error model: every tolerance in the project comes from here.

The acceptance rule (one per op, for every implementation under test)
----------------------------------------------------------------------
The reference is the exact result rounded once (``reference_impl.ops``; within
1 ulp in float32, a few in float64, checked against ball arithmetic in the
truth tier), so its own error is negligible and an implementation is judged
by what a *stable algorithm* may do, independently of how the reference
computes. With unit roundoff ``u`` (2**-24 float32, 2**-53 float64), an
implementation's result ``y`` passes where, element by element::

    |y - reference| <= u * ( INPUT_ULPS * C  +  F  +  REFERENCE_ULPS * |y_exact| )  +  floor

* ``C = |J| . |x|`` -- the componentwise condition term: the change of the
  exact result when every input (for a VJP, the cotangent too) moves by one
  unit of its own roundoff, ``|d y / d x_j| |x_j|`` summed over inputs. A
  backward-stable algorithm is exact for inputs perturbed that much.
* ``F = sum_t k_t |t|`` -- a few roundings of the natural formula's terms
  ``t`` (an exp or log counts ``ELEMENTARY_ULPS``, a sum of ``n`` terms ``n``
  roundings of their absolute sum). This admits, e.g., ``1 - tanh^2`` in the
  tail (normwise accurate) while rejecting a formula that is wrong.
* ``REFERENCE_ULPS |y_exact|``: the reference's own rounding.
* ``floor = tiny (1 + |factors|)``: a subnormal result, or a subnormal
  intermediate times later factors, may be flushed to zero (XLA on CPU).

Each op's ``C`` and ``F`` are written down once below, next to each other.
The model is worst-case, not fitted: a correct implementation passes by a
wide margin, a wrong formula (a clamped log, a diagonal-only Jacobian, a NaN
where the value is finite) misses by orders of magnitude.

The network section further down carries these per-op errors through whole
networks and gradient-descent runs (``network_bound``, ``trajectory_bound``),
where two implementations are compared and the budget is ``IMPLEMENTATIONS``
times one implementation's bound.

Per-op models (``forward_bound`` / ``vjp_bound``) sit next to each other below. A
per-backend override in ``reference_impl/frameworks/recipes.py`` may scale a bound
and must say why.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "unit_roundoff",
    "ELEMENTARY_ULPS",
    "FUNCTION_ULPS",
    "INPUT_ULPS",
    "REFERENCE_ULPS",
    "IMPLEMENTATIONS",
    "Bound",
    "forward_bound",
    "vjp_bound",
    "distribution_sum_tolerance",
]

IMPLEMENTATIONS = 2
"""Network comparisons: both sides carry a per-implementation bound."""

ELEMENTARY_ULPS = 4
"""Error of one exp/log/tanh evaluation, in units of ``u`` (2 ulp = 4 u).
glibc's double-precision exp/log/tanh are within 1 ulp; SLEEF's vector
functions used by PyTorch on CPU (``u10`` variants) within 1.0 ulp; XLA's
CPU float32 exp/log/tanh approximations are documented within a few ulp."""

FUNCTION_ULPS = 8
"""Error of one framework exp/log/tanh in the acceptance rule, in units of
``u`` (4 ulp): vectorised elementary functions (SLEEF, XLA's rational
approximations, which clamp tanh to +-1 a little early in float64) are
documented, and measured against the truth, within a few ulp."""

INPUT_ULPS = 2
"""Relative perturbation of each input, in units of ``u``, that a stable
algorithm's result may correspond to."""

REFERENCE_ULPS = 2
"""The reference's own error, in units of ``u |y|`` (1 ulp <= 2 u |y|)."""


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
    """An allowed error ``k u M + floor`` elementwise: ``M`` the rule's
    magnitude (condition term, formula terms and the reference's rounding,
    already weighted), ``k`` its scale (1 for the acceptance rule)."""

    k: np.ndarray
    magnitude: np.ndarray
    model: str
    """The formula the bound comes from, for failure messages."""
    floor_scale: Any = 0.0
    """Magnitude of the factors that multiply an intermediate which may
    underflow (see the module docstring); 0 where only the result can."""
    absolute: Any = 0.0
    """An absolute allowance where the result is ambiguous (relu' at a
    subnormal x that one side flushes to 0)."""

    def tolerance(self, dtype: Any, factor: float = 1.0) -> np.ndarray:
        u = unit_roundoff(dtype)
        k = np.asarray(self.k, dtype=np.float64)
        m = np.asarray(self.magnitude, dtype=np.float64)
        with np.errstate(over="ignore"):  # a magnitude beyond float64 allows anything: inf is right
            floor = _tiny(dtype) * (1.0 + np.asarray(self.floor_scale, dtype=np.float64))
            return np.asarray(factor * (k * u * m + floor + np.asarray(self.absolute, dtype=np.float64)))


E = FUNCTION_ULPS
P = INPUT_ULPS
R = REFERENCE_ULPS


def _f64(*xs: np.ndarray) -> tuple[np.ndarray, ...]:
    return tuple(np.asarray(x, dtype=np.float64) for x in xs)


def _sum_to(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``x`` over the axes broadcasting added or stretched to reach its shape from ``shape``."""
    extra = x.ndim - len(shape)
    if extra > 0:
        x = x.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and x.shape[i] != 1)
    if stretched:
        x = x.sum(axis=stretched, keepdims=True)
    return x.reshape(shape)


def _length(big: tuple[int, ...], shape: tuple[int, ...]) -> float:
    """How many elements of ``big`` are summed into each of ``shape``."""
    return float(max(int(np.prod(big, dtype=np.int64)), 1) // max(int(np.prod(shape, dtype=np.int64)), 1))


def _rows(x: np.ndarray) -> int:
    return int(np.prod(x.shape[:-1], dtype=np.int64))


def _reduction_scale(x: np.ndarray, reduction: str) -> float:
    return 1.0 / _rows(x) if reduction == "mean" else 1.0


def _sigmoid64(x: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _softmax64(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return np.asarray(e / e.sum(axis=-1, keepdims=True))


def _softmax_terms(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(softmax, roundings of the natural formula relative to it): the shift
    ``x - max`` (its rounding becomes ``|x_i - m| u`` through exp), exp, the
    row sum of ``n`` terms and the division."""
    m = x.max(axis=-1, keepdims=True)
    d = np.abs(x - m)
    y = _softmax64(x)
    k = d + (y * d).sum(axis=-1, keepdims=True) + 2 * E + x.shape[-1] + 2
    return y, k


def _lse_terms(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(|max|, |log sum exp(z - max)|) per row, keepdims."""
    m = z.max(axis=-1, keepdims=True)
    return np.abs(m), np.abs(np.log(np.exp(z - m).sum(axis=-1, keepdims=True)))


def _nll64(z: np.ndarray) -> np.ndarray:
    """``-log softmax(z)`` (magnitudes only)."""
    m = z.max(axis=-1, keepdims=True)
    return np.asarray((m - z) + np.log(np.exp(z - m).sum(axis=-1, keepdims=True)))


Rule = tuple[Any, Any, str] | tuple[Any, Any, str, Any]
"""``(C, F, model)`` or ``(C, F, model, floor factors)``; the exact value's
magnitude for the reference term is ``|y|`` passed separately."""


# ---------------------------------------------------------------- forward rules: C (condition), F (formula)


def _fwd_add(a: np.ndarray, b: np.ndarray) -> Rule:
    y = np.abs(a) + np.abs(b)
    return y, y, "C = |a| + |b|; F = one rounding of a + b", 2.0


def _fwd_multiply(a: np.ndarray, b: np.ndarray) -> Rule:
    y = np.abs(a * b)
    return 2 * y, y, "C = 2 |a b|; F = one rounding", np.abs(a) + np.abs(b) + 1


def _fwd_matmul(a: np.ndarray, b: np.ndarray) -> Rule:
    m = np.abs(np.matmul(np.abs(a), np.abs(b)))
    dy = np.matmul(np.abs(a), np.ones(b.shape)) + np.matmul(np.ones(a.shape), np.abs(b)) + a.shape[-1]
    return 2 * m, a.shape[-1] * m, "C = 2 |a| @ |b|; F = K |a| @ |b| (a sum of K products)", dy


def _fwd_dense(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> Rule:
    m = np.matmul(np.abs(x), np.abs(w))
    dy = np.matmul(np.abs(x), np.ones(w.shape)) + np.matmul(np.ones(x.shape), np.abs(w)) + x.shape[-1] + 2
    return 2 * m + np.abs(b), (x.shape[-1] + 1) * (m + np.abs(b)), \
        "C = 2 |x| @ |W| + |b|; F = (K + 1) (|x| @ |W| + |b|)", dy


def _fwd_relu(x: np.ndarray) -> Rule:
    return np.maximum(x, 0.0), 0.0, "C = |relu(x)|; F = 0 (a selection)", 1.0


def _fwd_tanh(x: np.ndarray) -> Rule:
    t = np.tanh(x)
    return np.abs(x) * (1 - t * t), E * np.abs(t), "C = |x| sech^2 x; F = E |tanh x|", 1.0


def _fwd_sigmoid(x: np.ndarray) -> Rule:
    s = _sigmoid64(x)
    return np.abs(x) * s * (1 - s), (E + 2) * s, "C = |x| s (1 - s); F = (E + 2) s (exp, 1 + e, division)", 1.0


def _fwd_softmax(x: np.ndarray) -> Rule:
    s, k = _softmax_terms(x)
    ax = np.abs(x)
    return s * (ax + (s * ax).sum(axis=-1, keepdims=True)), k * s, \
        "C = s_i (|x_i| + sum s_j |x_j|); F = s_i (|x_i - max| + sum s |x - max| + 2E + n + 2)", x.shape[-1] + 2.0


def _fwd_cross_entropy(p: np.ndarray, t: np.ndarray, reduction: str = "mean") -> Rule:
    c = _reduction_scale(p, reduction)
    terms = np.abs(t) * np.abs(np.log(p))
    n, r = p.shape[-1], _rows(p)
    return c * np.sum(np.abs(t) + terms), c * (E + n + r + 2) * np.sum(terms), \
        "C = sum |y| (1 + |log yhat|); F = (E + n + rows + 2) sum |y log yhat|", \
        c * np.sum(np.abs(np.log(p)) + np.abs(t) / p) + n + r


def _fwd_softmax_cross_entropy(z: np.ndarray, t: np.ndarray, reduction: str = "mean") -> Rule:
    c = _reduction_scale(z, reduction)
    s, mass, az = _softmax64(z), np.abs(t).sum(axis=-1, keepdims=True), np.abs(z)
    nll = _nll64(z)
    cond = np.sum((s * mass + np.abs(t)) * az) + np.sum(np.abs(t) * nll)
    _, alse = _lse_terms(z)
    n, r = z.shape[-1], _rows(z)
    formula = np.sum(np.abs(t) * ((E + 3) * (np.abs(z - z.max(axis=-1, keepdims=True)) + alse + 1)
                                  + (n + r) * nll))
    model = ("C = sum (s T + |y|) |z| + sum |y| |log s|; "
             "F = sum |y| ((E + 3)(|z - max| + |lse| + 1) + (n + rows) |log s|)")
    return c * cond, c * formula, model, c * np.sum(nll + az + 2) + n + r


def _fwd_mse(p: np.ndarray, t: np.ndarray, reduction: str = "mean") -> Rule:
    c = {"mean": 1.0 / p.size, "sum": 1.0, "half_sum": 0.5}[reduction]
    d = p - t
    return c * np.sum(2 * np.abs(d) * (np.abs(p) + np.abs(t))), c * (p.size + 3) * np.sum(d * d), \
        "C = sum 2 |d| (|yhat| + |y|); F = (N + 3) sum d^2", c * np.sum(2 * np.abs(d) + 1) + p.size


_FORWARD: Mapping[str, Callable[..., Rule]] = {
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


# ---------------------------------------------------------------- VJP rules: C (condition), F (formula)


def _vjp_add(g: np.ndarray, a: np.ndarray, b: np.ndarray) -> list[Rule]:
    out: list[Rule] = []
    for x in (a, b):
        m = _sum_to(np.abs(g), x.shape)
        r = _length(g.shape, x.shape)
        out.append((m, (r - 1) * m, "C = sum |g|; F = (r - 1) sum |g| over the r broadcast", r))
    return out


def _vjp_multiply(g: np.ndarray, a: np.ndarray, b: np.ndarray) -> list[Rule]:
    out: list[Rule] = []
    for x, other in ((a, b), (b, a)):
        m = _sum_to(np.abs(g * other), x.shape)
        floor = _sum_to(np.broadcast_to(np.abs(g) + np.abs(other) + 1, g.shape), x.shape)
        out.append((2 * m, _length(g.shape, x.shape) * m, "C = 2 sum |g other|; F = r sum |g other|", floor))
    return out


def _abs_matmul_vjp(g: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(|g| @ |b|^T, |a|^T @ |g|)`` summed over broadcast batch axes, 1-D operands promoted."""
    g, a, b = np.abs(g), np.abs(a), np.abs(b)
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    g2 = g.reshape(1, 1) if a.ndim == 1 and b.ndim == 1 else (
        np.expand_dims(g, -2) if a.ndim == 1 else (np.expand_dims(g, -1) if b.ndim == 1 else g))
    ga = _sum_to(np.matmul(g2, np.swapaxes(b2, -1, -2)), a2.shape).reshape(a.shape)
    gb = _sum_to(np.matmul(np.swapaxes(a2, -1, -2), g2), b2.shape).reshape(b.shape)
    return ga, gb


def _vjp_matmul(g: np.ndarray, a: np.ndarray, b: np.ndarray) -> list[Rule]:
    ga, gb = _abs_matmul_vjp(g, a, b)
    # floor factors: |d da / d g| + |d da / d b| (and for db), summed along the product
    fa = _abs_matmul_vjp(g, a, np.ones(b.shape))[0] + _abs_matmul_vjp(np.ones(g.shape), a, b)[0] + 1
    fb = _abs_matmul_vjp(g, np.ones(a.shape), b)[1] + _abs_matmul_vjp(np.ones(g.shape), a, b)[1] + 1
    batch = int(np.prod(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]), dtype=np.int64))
    n = b.shape[-1] if b.ndim > 1 else 1
    m = a.shape[-2] if a.ndim > 1 else 1
    r_a = batch // int(np.prod(a.shape[:-2], dtype=np.int64))
    r_b = batch // int(np.prod(b.shape[:-2], dtype=np.int64))
    return [
        (2 * ga, (n + r_a) * ga, "C = 2 |g| @ |b|^T; F = (N + r) |g| @ |b|^T, r = broadcast batch summed",
         (n + r_a) * fa),
        (2 * gb, (m + r_b) * gb, "C = 2 |a|^T @ |g|; F = (M + r) |a|^T @ |g|, r = broadcast batch summed",
         (m + r_b) * fb),
    ]


def _vjp_dense(g: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> list[Rule]:
    ag = np.abs(g).reshape(-1, g.shape[-1])
    ax = np.abs(x).reshape(-1, x.shape[-1])
    rows = ag.shape[0]
    dx, dw, db = np.matmul(np.abs(g), np.abs(w).T), ax.T @ ag, ag.sum(axis=0)
    f_dx = w.shape[1] * (ag.sum(axis=-1).max() + np.abs(w).sum(axis=-1).max() + 1)
    f_dw = rows * (ag.sum(axis=0).max() + ax.sum(axis=0).max() + 1)
    return [
        (2 * dx, w.shape[1] * dx, "C = 2 |g| @ |W|^T; F = outputs |g| @ |W|^T", f_dx),
        (2 * dw, rows * dw, "C = 2 |x|^T @ |g|; F = rows |x|^T @ |g|", f_dw),
        (db, rows * db, "C = sum |g|; F = rows sum |g|", float(rows)),
    ]


def _vjp_relu(g: np.ndarray, x: np.ndarray) -> list[Rule]:
    return [(np.where(x > 0, np.abs(g), 0.0), 0.0, "C = |g| [x > 0]; F = 0 (a selection)", 1.0)]


def _vjp_tanh(g: np.ndarray, x: np.ndarray) -> list[Rule]:
    t = np.tanh(x)
    e = np.exp(-2 * np.abs(x))
    sech2 = np.where(np.abs(x) > 0.55, 4 * e / (1 + e) ** 2, 1 - t * t)
    ag = np.abs(g)
    return [(ag * sech2 * (1 + 2 * np.abs(x * t)), ag * (2 * E + 3) * (sech2 + t * t),
             "C = |g| sech^2 (1 + 2 |x tanh x|); F = (2E + 3) |g| (sech^2 + tanh^2): 1 - tanh^2 may cancel",
             ag + 1)]


def _vjp_sigmoid(g: np.ndarray, x: np.ndarray) -> list[Rule]:
    s = _sigmoid64(x)
    e = np.exp(-np.abs(x))
    slope = e / (1 + e) ** 2
    ag = np.abs(g)
    return [(ag * slope * (1 + np.abs(x) * np.abs(1 - 2 * s)), ag * (E + 5) * s * (np.abs(1 - s) + s),
             "C = |g| s' (1 + |x| |1 - 2s|); F = (E + 5) |g| s (|1 - s| + s): 1 - s may cancel", ag + 1)]


def _vjp_softmax(g: np.ndarray, x: np.ndarray) -> list[Rule]:
    s, k = _softmax_terms(x)
    n = x.shape[-1]
    ax, ag = np.abs(x), np.abs(g)
    kappa = ax + (s * ax).sum(axis=-1, keepdims=True)  # s_i moves by s_i kappa_i u under the input perturbation
    gs = (g * s).sum(axis=-1, keepdims=True)
    sag = (ag * s).sum(axis=-1, keepdims=True)
    cond = s * (ag + sag) + s * kappa * np.abs(g - gs) + s * (ag * s * kappa).sum(axis=-1, keepdims=True)
    formula = s * ((2 * n + 2 * E + 3) * (ag + sag) + k * np.abs(g - gs)) + s * (ag * s * k).sum(axis=-1, keepdims=True)
    return [(cond, formula, "C = s (|g| + sum s |g|) + the moves of s under the input; "
             "F = s ((2n + 2E + 3)(|g| + sum s |g|) + k |g - <g, s>|) with k softmax's roundings",
             (n + 2) * (ag + sag + 1))]


def _vjp_cross_entropy(g: np.ndarray, p: np.ndarray, t: np.ndarray, reduction: str = "mean") -> list[Rule]:
    sc = abs(float(g)) * _reduction_scale(p, reduction)
    q = np.abs(t / p)
    lg = np.abs(np.log(p))
    return [
        (3 * sc * q, 3 * sc * q, "C = 3 |g y / yhat|; F = 3 roundings", (1 + sc) * (1 + np.abs(t)) / p),
        (sc * (1 + lg), (E + 2) * sc * lg, "C = |g| (1 + |log yhat|); F = (E + 2) |g log yhat|", (1 + sc) * (1 + lg)),
    ]


def _vjp_softmax_cross_entropy(g: np.ndarray, z: np.ndarray, t: np.ndarray, reduction: str = "mean") -> list[Rule]:
    sc = abs(float(g)) * _reduction_scale(z, reduction)
    s, k = _softmax_terms(z)
    _, alse = _lse_terms(z)
    az, at = np.abs(z), np.abs(t)
    mass = at.sum(axis=-1, keepdims=True)
    nll = _nll64(z)
    sz = (s * az).sum(axis=-1, keepdims=True)
    dz = np.abs(s * t.sum(axis=-1, keepdims=True) - t)
    cond_z = dz + mass * s * (az + sz) + s * mass + at
    # softmax as exp(log_softmax): the subtracted log-sum-exp adds u |log s_i|, relative through exp
    form_z = s * mass * (k + nll + 3) + at
    cond_t = nll + az + sz
    form_t = (E + z.shape[-1] + 3) * (np.abs(z - z.max(axis=-1, keepdims=True)) + alse + 1)
    return [
        (sc * cond_z, sc * form_z, "C = |g|(|s T - y| + T s (|z| + sum s |z|) + s T + |y|); "
         "F = |g| (s T (k + |log s| + 3) + |y|)", (1 + sc) * (z.shape[-1] + 2 + mass + at)),
        (sc * cond_t, sc * form_t, "C = |g| (|log s| + |z| + sum s |z|); F = (E + n + 3)(|z - max| + |lse| + 1) |g|",
         (1 + sc) * (1 + nll + az)),
    ]


def _vjp_mse(g: np.ndarray, p: np.ndarray, t: np.ndarray, reduction: str = "mean") -> list[Rule]:
    c = {"mean": 2.0 / p.size, "sum": 2.0, "half_sum": 1.0}[reduction]
    ag = abs(float(g)) * c
    d = np.abs(p - t)
    cond = ag * (np.abs(p) + np.abs(t) + d)
    floor = (1 + ag) * (1 + d)
    return [(cond, 3 * ag * d, "C = c |g| (|yhat| + |y| + |d|); F = 3 c |g d|", floor),
            (cond, 3 * ag * d, "C = c |g| (|yhat| + |y| + |d|); F = 3 c |g d|", floor)]


_VJP: Mapping[str, Callable[..., list[Rule]]] = {
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


def _bound(rule: Rule, exact: Any) -> Bound:
    cond, formula, model = rule[0], rule[1], rule[2]
    floor = rule[3] if len(rule) > 3 else 0.0
    magnitude = P * np.asarray(cond, np.float64) + np.asarray(formula, np.float64) + R * np.abs(exact)
    return Bound(np.ones(np.shape(magnitude)), magnitude, model, floor)


def forward_bound(op: str, inputs: Sequence[np.ndarray], params: Mapping[str, Any] | None = None) -> Bound:
    """What an implementation of ``op``'s forward may differ from the
    reference by: the acceptance rule above."""
    xs = _f64(*inputs)
    with np.errstate(all="ignore"):  # magnitudes beyond float64 mean "anything goes": inf is right
        rule = _FORWARD[op](*xs, **dict(params or {}))
        exact = _exact_forward(op, xs, dict(params or {}))
        return _bound(rule, exact)


def vjp_bound(op: str, cotangent: np.ndarray, inputs: Sequence[np.ndarray],
              params: Mapping[str, Any] | None = None) -> tuple[Bound, ...]:
    """What each gradient of an implementation of ``op``'s VJP may differ
    from the reference by: the acceptance rule above."""
    g, *xs = _f64(cotangent, *inputs)
    with np.errstate(all="ignore"):
        rules = _VJP[op](g, *xs, **dict(params or {}))
        exact = _exact_vjp(op, g, xs, dict(params or {}))
        bounds = tuple(_bound(r, y) for r, y in zip(rules, exact))
    if op == "relu":
        # A subnormal x may be read as 0 (flush to zero), where relu'(0) = 0: either slope is right there.
        ax = np.abs(xs[0])
        flushable = (ax > 0) & (ax < _tiny(np.asarray(inputs[0]).dtype))
        bounds = (dataclasses.replace(bounds[0], absolute=np.where(flushable, np.abs(g), 0.0),
                                      model=bounds[0].model + "; either slope where x is subnormal"),)
    return bounds


def _exact_forward(op: str, xs: Sequence[np.ndarray], params: Mapping[str, Any]) -> Any:
    """``|y|`` to within a few percent, for the reference's own rounding term."""
    return np.abs(_FORWARD_VALUE[op](*xs, **params))


def _exact_vjp(op: str, g: np.ndarray, xs: Sequence[np.ndarray], params: Mapping[str, Any]) -> list[Any]:
    return [np.abs(v) for v in _VJP_VALUE[op](g, *xs, **params)]


def _sce_value(z: np.ndarray, t: np.ndarray, reduction: str = "mean") -> Any:
    return _reduction_scale(z, reduction) * np.sum(t * _nll64(z))


def _sce_vjp_value(g: np.ndarray, z: np.ndarray, t: np.ndarray, reduction: str = "mean") -> list[Any]:
    sc = float(g) * _reduction_scale(z, reduction)
    return [sc * (_softmax64(z) * t.sum(axis=-1, keepdims=True) - t), sc * _nll64(z)]


def _softmax_vjp_value(g: np.ndarray, x: np.ndarray) -> list[Any]:
    s = _softmax64(x)
    return [s * (g - (g * s).sum(axis=-1, keepdims=True))]


_FORWARD_VALUE: Mapping[str, Callable[..., Any]] = {
    "add": np.add,
    "multiply": np.multiply,
    "matmul": np.matmul,
    "dense": lambda x, w, b: np.matmul(x, w) + b,
    "relu": lambda x: np.maximum(x, 0.0),
    "tanh": np.tanh,
    "sigmoid": _sigmoid64,
    "softmax": _softmax64,
    "cross_entropy": lambda p, t, reduction="mean": _reduction_scale(p, reduction) * -np.sum(t * np.log(p)),
    "softmax_cross_entropy": _sce_value,
    "mse": lambda p, t, reduction="mean": {"mean": 1.0 / p.size, "sum": 1.0, "half_sum": 0.5}[reduction]
    * np.sum((p - t) ** 2),
}

_VJP_VALUE: Mapping[str, Callable[..., list[Any]]] = {
    "add": lambda g, a, b: [_sum_to(g, a.shape), _sum_to(g, b.shape)],
    "multiply": lambda g, a, b: [_sum_to(g * b, a.shape), _sum_to(g * a, b.shape)],
    "matmul": lambda g, a, b: [0.0, 0.0],  # within F: |a b| <= |a| |b|
    "dense": lambda g, x, w, b: [0.0, 0.0, 0.0],
    "relu": lambda g, x: [np.where(x > 0, g, 0.0)],
    "tanh": lambda g, x: [g * (1 - np.tanh(x) ** 2)],
    "sigmoid": lambda g, x: [g * _sigmoid64(x) * (1 - _sigmoid64(x))],
    "softmax": _softmax_vjp_value,
    "cross_entropy": lambda g, p, t, reduction="mean": [0.0, 0.0],  # F already has each term's magnitude
    "softmax_cross_entropy": _sce_vjp_value,
    "mse": lambda g, p, t, reduction="mean": [0.0, 0.0],
}


def has_model(op: str) -> bool:
    return op in _FORWARD and op in _VJP


# ---------------------------------------------------------------- comparison






# ---------------------------------------------------------------- networks
#
# Error model for whole networks, gradient-descent trajectories, the
# sum-over-paths oracle and the chain-rule composite of document 002. The
# per-op models above give each op's own rounding; this section carries those
# errors through a network.


def _own_forward(op: str, args: Sequence[np.ndarray], dtype: np.dtype,
                 params: Mapping[str, Any] | None = None) -> np.ndarray:
    """One implementation's own error for one op's forward: its
    :func:`forward_bound`, ``Bound.tolerance / IMPLEMENTATIONS``."""
    return forward_bound(op, args, params).tolerance(dtype)


def _own_vjp(op: str, cotangent: np.ndarray, args: Sequence[np.ndarray], dtype: np.dtype,
             params: Mapping[str, Any] | None = None) -> list[np.ndarray]:
    """One implementation's own error for each gradient of one op's VJP."""
    return [b.tolerance(dtype) for b in vjp_bound(op, cotangent, args, params)]


def _act_forward_error(kind: str, x: np.ndarray, y: np.ndarray, e_x: np.ndarray, dtype: Any) -> np.ndarray:
    """Error of ``y = act(x)`` given an error ``e_x`` in ``x``: ``|act'| e_x``
    plus the op's own rounding. relu is 1-Lipschitz and exact, so its output
    error is ``e_x`` wherever ``x`` may be positive and 0 where it cannot be."""
    if kind == "identity":
        return e_x
    own = _own_forward(kind, [x], dtype)
    if kind == "relu":
        return np.where(x > -IMPLEMENTATIONS * e_x, e_x, 0.0) + own
    slope = 1 - y * y if kind == "tanh" else y * (1 - y)
    return np.abs(slope) * e_x + own


def _act_backward_error(kind: str, g: np.ndarray, e_g: np.ndarray, x: np.ndarray, y: np.ndarray,
                        e_x: np.ndarray, e_y: np.ndarray, dtype: Any) -> np.ndarray:
    """Error of ``dx = g * act'(x)`` (the rule reads ``act'`` from the output
    ``y``): ``|act'| e_g + |g| |d act'/dy| e_y`` plus the rule's own rounding.
    relu's ``act'`` is a step: where ``|x|`` is within the two implementations'
    combined forward error of 0, either side may take either branch, and the
    gradient there is determined only up to ``|g| + e_g``."""
    if kind == "identity":
        return e_g
    own = _own_vjp(kind, g, [x], dtype)[0]
    if kind == "relu":
        ambiguous = np.abs(x) <= IMPLEMENTATIONS * e_x
        return np.where(x > 0, e_g, 0.0) + np.where(ambiguous, np.abs(g) + e_g, 0.0) + own
    if kind == "tanh":
        slope, curvature = 1 - y * y, 2 * np.abs(y)
    else:
        slope, curvature = y * (1 - y), np.abs(1 - 2 * y)
    return np.abs(slope) * e_g + np.abs(g) * curvature * e_y + own


def _softmax_forward_error(x: np.ndarray, s: np.ndarray, e_x: np.ndarray, dtype: Any) -> np.ndarray:
    """``|J| e_x`` with ``|J_ij| = s_i |delta_ij - s_j|``, bounded by
    ``s (e_x + sum s e_x)``, plus softmax's own (relative) rounding."""
    return s * (e_x + (s * e_x).sum(axis=-1, keepdims=True)) + _own_forward("softmax", [x], dtype)


def _softmax_backward_error(g: np.ndarray, e_g: np.ndarray, x: np.ndarray, s: np.ndarray, e_s: np.ndarray,
                            dtype: Any) -> np.ndarray:
    """Error of ``dx = s (g - <g, s>)`` with errors ``e_g`` in ``g`` and
    ``e_s`` in the forward output ``s`` the rule reuses."""
    gs = (g * s).sum(axis=-1, keepdims=True)
    return (
        s * (e_g + (s * e_g).sum(axis=-1, keepdims=True))
        + np.abs(g - gs) * e_s
        + s * (np.abs(g) * e_s).sum(axis=-1, keepdims=True)
        + _own_vjp("softmax", g, [x], dtype)[0]
    )


def _cost_errors(cost: str, out: np.ndarray, t: np.ndarray, reduction: str, e_out: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """An error ``e_out`` in the cost's input, carried into the loss
    (``sum |dC/d out| e_out``) and into the cost's gradient
    (``|d^2 C / d out^2| e_out``).

    The squared error keeps its second-order term: ``(d + e)^2 - d^2 =
    2 d e + e^2`` with ``|d|`` at most the computed residual plus ``e``, so
    ``2 |d| e + 3 e^2``; where the residual vanishes (a fitted target) the
    second-order term is all there is."""
    if cost == "mse":
        c = {"mean": 2.0 / out.size, "sum": 2.0, "half_sum": 1.0}[reduction]
        return (c * (np.abs(out - t) * e_out + 1.5 * e_out * e_out)).sum(), c * e_out
    scale = _reduction_scale(out, reduction)
    if cost == "cross_entropy":
        return (scale * np.abs(t) / out * e_out).sum(), scale * np.abs(t) / (out * out) * e_out
    # softmax_cross_entropy: dC/dz = scale (softmax(z) sum(t) - t), whose
    # derivative is scale sum(t) times the softmax Jacobian.
    s, _ = _softmax_terms(out)
    mass = np.abs(t).sum(axis=-1, keepdims=True)
    to_loss = (scale * (s * mass + np.abs(t)) * e_out).sum()
    return to_loss, scale * mass * s * (e_out + (s * e_out).sum(axis=-1, keepdims=True))


@dataclass(frozen=True)
class NetworkBound:
    """Per-implementation absolute error bounds of every value a network
    computes (see :func:`network_bound`); ``tolerance`` turns one into the
    budget of a comparison between two implementations."""

    dtype: np.dtype
    z: tuple[np.ndarray, ...]
    a: tuple[np.ndarray, ...]
    output: np.ndarray
    loss: np.ndarray
    d_output: np.ndarray | None
    dA: tuple[np.ndarray, ...] | None
    dZ: tuple[np.ndarray, ...] | None
    dW: tuple[np.ndarray, ...] | None
    db: tuple[np.ndarray, ...] | None
    dx: np.ndarray | None
    model: str = "network first-order bound: per-op bounds carried through |W|, |act'|, |softmax Jacobian|"

    def error(self, quantity: str, layer: int | None = None) -> np.ndarray:
        """One implementation's bound for ``quantity`` (a field name), at
        ``layer`` (0-based) for the per-layer fields."""
        value = getattr(self, quantity)
        if value is None:
            raise ValueError(f"quantity: {quantity!r} was not bounded (network_bound was given no gradients)")
        if isinstance(value, tuple):
            if layer is None:
                raise ValueError(f"layer: {quantity!r} is per layer; pass a layer index")
            value = value[layer]
        return np.asarray(value, dtype=np.float64)

    def tolerance(self, quantity: str, layer: int | None = None) -> np.ndarray:
        """Budget for ``|ours - theirs|``: ``IMPLEMENTATIONS`` times the bound."""
        return IMPLEMENTATIONS * self.error(quantity, layer)


def network_bound(tape: Any, grads: Any = None, *,
                  param_errors: Sequence[tuple[np.ndarray, np.ndarray]] | None = None) -> NetworkBound:
    """First-order error bound of a network's forward and backward pass.

    Model: every op contributes its own rounding (``forward_bound`` /
    ``vjp_bound``: ``k u M``), and an error ``e`` already present in an op's
    inputs reaches its output multiplied by the absolute value of the op's
    derivative -- ``e_z = e_a @ |W| + |a| @ e_W + e_b`` for a dense layer,
    ``|act'(z)| e_z`` for an activation, ``|J_softmax| e`` for the softmax,
    ``|dC/d output| e`` for the cost -- i.e. the network run on absolute
    values. The backward pass is bounded the same way, each VJP rule being a
    function of the cotangent *and* of the forward values it reads (``dZ``
    from ``dA`` and ``a``; ``dW = a^T dZ`` from ``a`` and ``dZ``;
    ``dA_prev = dZ W^T``). The bilinear ops keep their products of two
    errors (``(|a| + e_a)(|W| + e_W) - |a||W|``) and the squared error its
    ``e^2``; the smooth activations' second-order terms are dropped, being
    far below their own rounding. At a relu kink -- ``|z|`` within the
    combined forward error of 0 -- the two sides may take different branches
    and the gradient there is bounded by ``|dA|`` itself.

    ``tape`` is :class:`reference_impl.networks.Tape` (magnitudes are taken
    from the reference's own values, in float64); ``grads`` the
    :class:`~reference_impl.networks.NetworkGradients` of that tape (or
    ``None`` to bound the forward pass only). ``param_errors``: per-layer
    ``(e_W, e_b)`` already in the parameters (used for gradient-descent
    trajectories), zero by default; the input ``x`` is exact.
    """
    net = tape.net
    dtype = np.dtype(tape.loss.dtype)
    layers = tape.layers
    def f(arr: Any) -> np.ndarray:
        return np.asarray(arr, dtype=np.float64)

    if param_errors is None:
        perr = [(np.zeros(r.W.shape), np.zeros(r.b.shape)) for r in layers]
    else:
        if len(param_errors) != len(layers):
            raise ValueError(f"param_errors: {len(param_errors)} pair(s) for {len(layers)} layer(s)")
        perr = [(f(ew), f(eb)) for ew, eb in param_errors]

    # forward
    e_in = np.zeros(f(tape.x).shape)
    e_inputs, ez, ea = [], [], []
    for rec, act, (ew, eb) in zip(layers, net.activations, perr, strict=True):
        x, w, b, z, a = f(rec.x), f(rec.W), f(rec.b), f(rec.z), f(rec.a)
        e_z = e_in @ (np.abs(w) + ew) + np.abs(x) @ ew + eb + _own_forward("dense", [x, w, b], dtype)
        e_a = _act_forward_error(act, z, a, e_z, dtype)
        e_inputs.append(e_in)
        ez.append(e_z)
        ea.append(e_a)
        e_in = e_a
    a_last, out, t = f(layers[-1].a), f(tape.output), f(tape.target)
    params = {"reduction": net.reduction}
    own_cost = _own_forward(net.cost, [out, t], dtype, params)
    # softmax then cross-entropy on its probabilities: the pair is the smooth
    # function a -> C(softmax(a)) with gradient scale (s sum(t) - t), so an
    # error already in a_L is carried by that gradient -- through the two ops
    # separately it would be |t| / s^2 times s, unbounded as s -> 0. What the
    # pair adds itself (softmax's rounding, then the cost's) goes through the
    # ops separately, as they are evaluated.
    fused = net.softmax and net.cost == "cross_entropy"
    if fused:
        own_out = _own_forward("softmax", [a_last], dtype)
        e_out = _softmax_forward_error(a_last, out, ea[-1], dtype)
        scale = _reduction_scale(out, net.reduction)
        mass = np.abs(t).sum(axis=-1, keepdims=True)
        through_pair = scale * (out * mass + np.abs(t))
        own_to_loss, own_to_grad = _cost_errors(net.cost, out, t, net.reduction, own_out)
        e_loss = (through_pair * ea[-1]).sum() + own_to_loss + own_cost
    else:
        e_out = _softmax_forward_error(a_last, out, ea[-1], dtype) if net.softmax else ea[-1]
        to_loss, to_grad = _cost_errors(net.cost, out, t, net.reduction, e_out)
        e_loss = to_loss + own_cost
    if grads is None:
        return NetworkBound(dtype, tuple(ez), tuple(ea), e_out, np.asarray(e_loss), None, None, None, None, None, None)

    # backward
    one = np.ones(())
    d_out = f(grads.d_output)
    own_dout = _own_vjp(net.cost, one, [out, t], dtype, params)[0]
    if fused:
        e_dout = _cost_errors(net.cost, out, t, net.reduction, e_out)[1] + own_dout
        e_pair = scale * mass * out * (ea[-1] + (out * ea[-1]).sum(axis=-1, keepdims=True))
        e_g = e_pair + _softmax_backward_error(d_out, own_to_grad + own_dout, a_last, out, own_out, dtype)
    else:
        e_dout = to_grad + own_dout
        e_g = _softmax_backward_error(d_out, e_dout, a_last, out, e_out, dtype) if net.softmax else e_dout
    n = len(layers)
    e_dA: list[np.ndarray] = [np.empty(0)] * n
    e_dZ, e_dW, e_db = list(e_dA), list(e_dA), list(e_dA)
    for l in range(n - 1, -1, -1):
        rec, lg, (ew, _) = layers[l], grads.layers[l], perr[l]
        x, w, b, z, a = f(rec.x), f(rec.W), f(rec.b), f(rec.z), f(rec.a)
        da, dz = f(lg.dA), f(lg.dZ)
        e_dA[l] = e_g
        e_dZ[l] = _act_backward_error(net.activations[l], da, e_g, z, a, ez[l], ea[l], dtype)
        own_dx, own_dw, own_db = _own_vjp("dense", dz, [x, w, b], dtype)
        dz2, edz2 = dz.reshape(-1, dz.shape[-1]), e_dZ[l].reshape(-1, dz.shape[-1])
        x2, ex2 = np.abs(x).reshape(-1, x.shape[-1]), e_inputs[l].reshape(-1, x.shape[-1])
        e_dW[l] = (x2 + ex2).T @ edz2 + ex2.T @ np.abs(dz2) + own_dw
        e_db[l] = edz2.sum(axis=0) + own_db
        e_g = e_dZ[l] @ (np.abs(w) + ew).T + np.abs(dz) @ ew.T + own_dx
    return NetworkBound(dtype, tuple(ez), tuple(ea), e_out, np.asarray(e_loss), e_dout, tuple(e_dA), tuple(e_dZ),
                        tuple(e_dW), tuple(e_db), e_g)


TRAJECTORY_MODEL_LIMIT = 1e-2
"""The first-order trajectory model holds while, in every layer, the bound
on the parameters' deviation stays below this fraction of the parameters'
largest magnitude. The terms it drops are of relative size
``Delta / |w|``; past a percent the linearisation no longer describes the
run, and where gradient descent is unstable (a step beyond the curvature's
limit, relu units switching from step to step) two correct implementations
may part for good. :func:`trajectory_bound` stops there."""


@dataclass(frozen=True)
class TrajectoryBound:
    """Per-implementation bounds along a gradient-descent run:
    ``params[n]`` holds ``(e_W, e_b)`` per layer after ``n`` steps,
    ``losses[n]`` the bound of the loss at step ``n``, for
    ``n <= valid_steps``; later entries are ``inf`` (the model no longer
    holds, see :data:`TRAJECTORY_MODEL_LIMIT`)."""

    dtype: np.dtype
    params: tuple[tuple[tuple[np.ndarray, np.ndarray], ...], ...]
    losses: tuple[np.ndarray, ...]
    valid_steps: int
    model: str = "gradient descent: Delta_(n+1) = Delta_n + lr e_grad(Delta_n) + u (2 |lr g| + |w_(n+1)|)"

    def tolerance(self, step: int, layer: int, part: str) -> np.ndarray:
        """Budget for ``|ours - theirs|`` of ``W`` or ``b`` (``part``) after ``step`` steps."""
        return IMPLEMENTATIONS * self.params[step][layer][{"W": 0, "b": 1}[part]]


def trajectory_bound(trajectory: Any, x: Any = None, target: Any = None) -> TrajectoryBound:
    """Error bound of each step of :func:`reference_impl.optim.train`.

    Model: each implementation's parameters deviate from the exact
    trajectory by ``Delta_n`` (``Delta_0 = 0``: the same initial weights).
    Step ``n + 1`` computes ``w - lr g(w)`` from parameters that are already
    off by ``Delta_n``, so its gradient error is :func:`network_bound` with
    ``param_errors = Delta_n`` (the deviation carried forward and backward
    through the network, plus that step's roundings), and::

        Delta_(n+1) = Delta_n + lr e_g + u (2 |lr g| + |w_(n+1)|) + 2 tiny

    -- the product ``lr g`` is rounded once, and ``lr`` itself once more
    because an implementation may or may not round ``lr`` to the parameters'
    dtype first; the subtraction is rounded once. The loss at step ``n`` is
    bounded by ``network_bound`` with ``Delta_n``. Errors grow with the
    steps at the rate the network's sensitivity dictates; nothing is reset.
    The bound is given for the steps ``0 .. valid_steps`` over which the
    model holds (:data:`TRAJECTORY_MODEL_LIMIT`); later steps get ``inf``.

    ``trajectory``: a :class:`reference_impl.optim.Trajectory` (its tapes
    hold every forward pass). ``x``, ``target``: optional; when given they
    must be the data the trajectory was trained on.
    """
    for name, given, recorded in (("x", x, trajectory.tapes[0].x), ("target", target, trajectory.tapes[0].target)):
        if given is not None and not np.array_equal(np.asarray(given), recorded):
            raise ValueError(f"{name}: differs from the data the trajectory was trained on")
    lr = float(trajectory.lr)
    dtype = np.dtype(trajectory.losses[0].dtype)
    u, tiny = unit_roundoff(dtype), _tiny(dtype)
    delta = tuple((np.zeros(w.shape), np.zeros(b.shape)) for w, b in trajectory.params[0])
    deltas, losses = [delta], []
    steps = len(trajectory.gradients)
    valid = steps
    for step, grads in enumerate(trajectory.gradients):
        nb = network_bound(trajectory.tapes[step], grads, param_errors=delta)
        assert nb.dW is not None and nb.db is not None  # bounded: gradients were given
        losses.append(nb.loss)
        new = []
        for l, ((ew, eb), (w1, b1), (dw, db)) in enumerate(
            zip(delta, trajectory.params[step + 1], grads.params, strict=True)
        ):
            parts = []
            for e, p1, g, eg in ((ew, w1, dw, nb.dW[l]), (eb, b1, db, nb.db[l])):
                g64, p64 = np.asarray(g, np.float64), np.asarray(p1, np.float64)
                parts.append(e + lr * eg + u * (2 * lr * np.abs(g64) + np.abs(p64)) + 2 * tiny)
            new.append((parts[0], parts[1]))
        delta = tuple(new)
        deltas.append(delta)
        scale = [max(float(np.abs(w).max()), float(np.abs(b).max())) for w, b in trajectory.params[step + 1]]
        if any(max(float(ew.max()), float(eb.max())) > TRAJECTORY_MODEL_LIMIT * sc
               for (ew, eb), sc in zip(delta, scale, strict=True)):
            valid = step  # the deviation after this step is past the model's reach
            break
    if valid == steps:
        losses.append(network_bound(trajectory.tapes[-1], None, param_errors=delta).loss)
    else:
        inf = tuple((np.full(w.shape, np.inf), np.full(b.shape, np.inf)) for w, b in trajectory.params[0])
        deltas = deltas[: valid + 1] + [inf] * (steps - valid)
        losses = losses[: valid + 1] + [np.asarray(np.inf)] * (steps - valid)
    return TrajectoryBound(dtype, tuple(deltas), tuple(losses), valid)


def path_sum_bound(terms: np.ndarray, factors: int, magnitude: np.ndarray) -> Bound:
    """Own rounding of a sum over paths: ``terms`` products of ``factors``
    local derivatives each, summed: ``gamma_(terms + factors) sum |product|``
    (Higham's bound for a sum of products). The errors of the factors
    themselves -- the forward values and local derivatives, which the path
    sum computes as the layer-wise pass does -- are those of
    :func:`network_bound`; a comparison with the layer-wise backward allows
    both."""
    t = np.asarray(terms, dtype=np.float64)
    return Bound(t + factors, np.asarray(magnitude, dtype=np.float64),
                 f"sum over paths: gamma_(terms + {factors}) sum |product of local derivatives|")


def activation_chain_bound(x: Any, cotangent: Any, activations: Sequence[str], softmax: bool
                           ) -> tuple[np.ndarray, np.ndarray]:
    """(forward, VJP) per-implementation bounds of
    ``softmax?(act_n(... act_1(x)))`` -- document 002's
    ``p(X) = softmax(tanh(relu(X)))`` -- by the same first-order model as
    :func:`network_bound`, with no dense layers: the input is exact, each
    stage adds its rounding to the error it receives times ``|stage'|``."""
    xs = np.asarray(x)
    dtype = xs.dtype
    values = [np.asarray(xs, dtype=np.float64)]
    for kind in activations:
        values.append(_FORWARD_ACT[kind](values[-1]))
    errors = [np.zeros(values[0].shape)]
    for i, kind in enumerate(activations):
        errors.append(_act_forward_error(kind, values[i], values[i + 1], errors[i], dtype))
    e_out = errors[-1]
    g = np.asarray(cotangent, dtype=np.float64)
    e_g = np.zeros(g.shape)
    if softmax:
        s, _ = _softmax_terms(values[-1])
        e_s = _softmax_forward_error(values[-1], s, errors[-1], dtype)
        e_out = e_s
        gs = (g * s).sum(axis=-1, keepdims=True)
        e_g = _softmax_backward_error(g, e_g, values[-1], s, e_s, dtype)
        g = s * (g - gs)
    for i in range(len(activations) - 1, -1, -1):
        kind, xin, yout = activations[i], values[i], values[i + 1]
        e_g = _act_backward_error(kind, g, e_g, xin, yout, errors[i], errors[i + 1], dtype)
        g = g * _SLOPE_ACT[kind](xin, yout)
    return e_out, e_g


_FORWARD_ACT: Mapping[str, Callable[[np.ndarray], np.ndarray]] = {
    "relu": lambda x: np.maximum(x, 0.0),
    "tanh": np.tanh,
    "sigmoid": _sigmoid64,
    "identity": lambda x: x,
}

_SLOPE_ACT: Mapping[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "relu": lambda x, y: (x > 0).astype(np.float64),
    "tanh": lambda x, y: 1 - y * y,
    "sigmoid": lambda x, y: y * (1 - y),
    "identity": lambda x, y: np.ones_like(x),
}


__all__ += [
    "NetworkBound",
    "network_bound",
    "TrajectoryBound",
    "trajectory_bound",
    "TRAJECTORY_MODEL_LIMIT",
    "path_sum_bound",
    "activation_chain_bound",
]
