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

A tolerance is finite for every finite input, up to the dtype's largest
value: a rule whose products overflow float64 there is evaluated again in the
wider ``longdouble`` format, and its weighted sum is stored scaled and capped
(``_SATURATION``), so the check it feeds can always fail.

Each op's ``C`` and ``F`` are written down once below, next to each other.
The model is worst-case, not fitted: a correct implementation passes by a
wide margin, a wrong formula (a clamped log, a diagonal-only Jacobian, a NaN
where the value is finite) misses by orders of magnitude.

``reference_impl.accuracy.networks`` carries these per-op errors through whole
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

from ..broadcasting import unbroadcast

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
        with np.errstate(over="ignore"):  # capped below: a finite tolerance can still fail (see _SATURATION)
            floor = _tiny(dtype) * (1.0 + np.asarray(self.floor_scale, dtype=np.float64))
            tol = factor * (k * u * m + floor + np.asarray(self.absolute, dtype=np.float64))
        return np.minimum(np.asarray(tol), _F64_MAX)


E = FUNCTION_ULPS
P = INPUT_ULPS
R = REFERENCE_ULPS


def _f64(*xs: np.ndarray) -> tuple[np.ndarray, ...]:
    return tuple(np.asarray(x, dtype=np.float64) for x in xs)


_WIDE = np.longdouble if np.finfo(np.longdouble).maxexp > np.finfo(np.float64).maxexp else None
"""A format with float64's precision or more and a wider exponent range (the
x87 80-bit ``longdouble``), where the platform has one."""

_F64_MAX = float(np.finfo(np.float64).max)

_SATURATION = 8.0
"""A rule's magnitude is stored as ``magnitude / _SATURATION`` with
``k = _SATURATION``, so that the sum ``P C + F + R |y|`` of terms that each fit
in float64 (inputs near the dtype's largest value: ``C = |x|`` for relu at
``x = 1.8e308``) never overflows. A magnitude beyond ``_SATURATION`` times
float64's largest value is capped there: the tolerance is then at least
``8 u max``, more than the rule's reference term ``R u |y|`` of any
representable result, and stays finite so that the comparison can still fail
(an inf or NaN tolerance would accept anything)."""


def _evaluate(rule: Callable[..., Any], xs: Sequence[np.ndarray], params: Mapping[str, Any]) -> Any:
    """``rule(*xs, **params)`` in float64, or -- where a product of large
    magnitudes overflows there, or ``0 * inf`` makes a NaN, for finite
    inputs -- again in the wide format, where ``|x|^3`` of any float64 fits."""
    out = rule(*xs, **params)
    if _WIDE is None or _all_finite(out):
        return out
    return rule(*(np.asarray(x, dtype=_WIDE) for x in xs), **params)


def _all_finite(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_all_finite(v) for v in value)
    if isinstance(value, str):
        return True
    return bool(np.isfinite(value).all())


def _saturated(value: Any) -> np.ndarray:
    """``value`` in float64, a magnitude beyond its range (or one the model
    could not evaluate, NaN) capped at float64's largest value."""
    with np.errstate(over="ignore", invalid="ignore"):
        v = np.asarray(value, dtype=np.float64)
    return v if np.isfinite(v).all() else np.nan_to_num(v, nan=_F64_MAX, posinf=_F64_MAX)


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


def _sce_value(z: np.ndarray, t: np.ndarray, reduction: str = "mean") -> Any:
    return _reduction_scale(z, reduction) * np.sum(t * _nll64(z))


def _sce_vjp_value(g: np.ndarray, z: np.ndarray, t: np.ndarray, reduction: str = "mean") -> list[Any]:
    sc = float(g) * _reduction_scale(z, reduction)
    return [sc * (_softmax64(z) * t.sum(axis=-1, keepdims=True) - t), sc * _nll64(z)]


def _softmax_vjp_value(g: np.ndarray, x: np.ndarray) -> list[Any]:
    s = _softmax64(x)
    return [s * (g - (g * s).sum(axis=-1, keepdims=True))]


_FORWARD: dict[str, Callable[..., Rule]] = {}
_FORWARD_VALUE: dict[str, Callable[..., Any]] = {}
_VJP: dict[str, Callable[..., list[Rule]]] = {}
_VJP_VALUE: dict[str, Callable[..., list[Any]]] = {}


def forward_rule(op: str, value: Callable[..., Any]) -> Callable[[Callable[..., Rule]], Callable[..., Rule]]:
    """Register the function below as ``op``'s forward rule (``C``, ``F``,
    model); ``value(*inputs, **params)`` is the exact forward in float64, whose
    magnitude gives the reference's own rounding term."""
    def register(rule: Callable[..., Rule]) -> Callable[..., Rule]:
        _FORWARD[op], _FORWARD_VALUE[op] = rule, value
        return rule
    return register


def vjp_rule(op: str,
             value: Callable[..., list[Any]]) -> Callable[[Callable[..., list[Rule]]], Callable[..., list[Rule]]]:
    """Register the function below as ``op``'s VJP rules, one per input;
    ``value(g, *inputs, **params)`` gives the exact gradients (0 where ``F``
    already holds each term's magnitude)."""
    def register(rule: Callable[..., list[Rule]]) -> Callable[..., list[Rule]]:
        _VJP[op], _VJP_VALUE[op] = rule, value
        return rule
    return register


_MSE_SCALE: Mapping[str, Callable[[int], float]] = {"mean": lambda n: 1.0 / n, "sum": lambda n: 1.0,
                                                   "half_sum": lambda n: 0.5}
"""mse's factor before the sum of squares, per reduction, for ``N`` elements."""


# ---------------------------------------------------------------- forward rules: C (condition), F (formula)


@forward_rule("add", value=np.add)
def _fwd_add(a: np.ndarray, b: np.ndarray) -> Rule:
    y = np.abs(a) + np.abs(b)
    return y, y, "C = |a| + |b|; F = one rounding of a + b", 2.0


@forward_rule("multiply", value=np.multiply)
def _fwd_multiply(a: np.ndarray, b: np.ndarray) -> Rule:
    y = np.abs(a * b)
    return 2 * y, y, "C = 2 |a b|; F = one rounding", np.abs(a) + np.abs(b) + 1


@forward_rule("matmul", value=np.matmul)
def _fwd_matmul(a: np.ndarray, b: np.ndarray) -> Rule:
    m = np.abs(np.matmul(np.abs(a), np.abs(b)))
    dy = np.matmul(np.abs(a), np.ones(b.shape)) + np.matmul(np.ones(a.shape), np.abs(b)) + a.shape[-1]
    return 2 * m, a.shape[-1] * m, "C = 2 |a| @ |b|; F = K |a| @ |b| (a sum of K products)", dy


@forward_rule("dense", value=lambda x, w, b: np.matmul(x, w) + b)
def _fwd_dense(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> Rule:
    m = np.matmul(np.abs(x), np.abs(w))
    dy = np.matmul(np.abs(x), np.ones(w.shape)) + np.matmul(np.ones(x.shape), np.abs(w)) + x.shape[-1] + 2
    return 2 * m + np.abs(b), (x.shape[-1] + 1) * (m + np.abs(b)), \
        "C = 2 |x| @ |W| + |b|; F = (K + 1) (|x| @ |W| + |b|)", dy


@forward_rule("relu", value=lambda x: np.maximum(x, 0.0))
def _fwd_relu(x: np.ndarray) -> Rule:
    return np.maximum(x, 0.0), 0.0, "C = |relu(x)|; F = 0 (a selection)", 1.0


@forward_rule("tanh", value=np.tanh)
def _fwd_tanh(x: np.ndarray) -> Rule:
    t = np.tanh(x)
    return np.abs(x) * (1 - t * t), E * np.abs(t), "C = |x| sech^2 x; F = E |tanh x|", 1.0


@forward_rule("sigmoid", value=_sigmoid64)
def _fwd_sigmoid(x: np.ndarray) -> Rule:
    s = _sigmoid64(x)
    return np.abs(x) * s * (1 - s), (E + 2) * s, "C = |x| s (1 - s); F = (E + 2) s (exp, 1 + e, division)", 1.0


@forward_rule("softmax", value=_softmax64)
def _fwd_softmax(x: np.ndarray) -> Rule:
    s, k = _softmax_terms(x)
    ax = np.abs(x)
    return s * (ax + (s * ax).sum(axis=-1, keepdims=True)), k * s, \
        "C = s_i (|x_i| + sum s_j |x_j|); F = s_i (|x_i - max| + sum s |x - max| + 2E + n + 2)", x.shape[-1] + 2.0


@forward_rule("cross_entropy",
              value=lambda p, t, reduction="mean": _reduction_scale(p, reduction) * -np.sum(t * np.log(p)))
def _fwd_cross_entropy(p: np.ndarray, t: np.ndarray, reduction: str = "mean") -> Rule:
    c = _reduction_scale(p, reduction)
    terms = np.abs(t) * np.abs(np.log(p))
    n, r = p.shape[-1], _rows(p)
    return c * np.sum(np.abs(t) + terms), c * (E + n + r + 2) * np.sum(terms), \
        "C = sum |y| (1 + |log yhat|); F = (E + n + rows + 2) sum |y log yhat|", \
        c * np.sum(np.abs(np.log(p)) + np.abs(t) / p) + n + r


@forward_rule("softmax_cross_entropy", value=_sce_value)
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


@forward_rule("mse", value=lambda p, t, reduction="mean": _MSE_SCALE[reduction](p.size) * np.sum((p - t) ** 2))
def _fwd_mse(p: np.ndarray, t: np.ndarray, reduction: str = "mean") -> Rule:
    c = _MSE_SCALE[reduction](p.size)
    d = p - t
    return c * np.sum(2 * np.abs(d) * (np.abs(p) + np.abs(t))), c * (p.size + 3) * np.sum(d * d), \
        "C = sum 2 |d| (|yhat| + |y|); F = (N + 3) sum d^2", c * np.sum(2 * np.abs(d) + 1) + p.size


# ---------------------------------------------------------------- VJP rules: C (condition), F (formula)


@vjp_rule("add", value=lambda g, a, b: [unbroadcast(g, a.shape), unbroadcast(g, b.shape)])
def _vjp_add(g: np.ndarray, a: np.ndarray, b: np.ndarray) -> list[Rule]:
    out: list[Rule] = []
    for x in (a, b):
        m = unbroadcast(np.abs(g), x.shape)
        r = _length(g.shape, x.shape)
        out.append((m, (r - 1) * m, "C = sum |g|; F = (r - 1) sum |g| over the r broadcast", r))
    return out


@vjp_rule("multiply", value=lambda g, a, b: [unbroadcast(g * b, a.shape), unbroadcast(g * a, b.shape)])
def _vjp_multiply(g: np.ndarray, a: np.ndarray, b: np.ndarray) -> list[Rule]:
    out: list[Rule] = []
    for x, other in ((a, b), (b, a)):
        m = unbroadcast(np.abs(g * other), x.shape)
        floor = unbroadcast(np.broadcast_to(np.abs(g) + np.abs(other) + 1, g.shape), x.shape)
        out.append((2 * m, _length(g.shape, x.shape) * m, "C = 2 sum |g other|; F = r sum |g other|", floor))
    return out


def _abs_matmul_vjp(g: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(|g| @ |b|^T, |a|^T @ |g|)`` summed over broadcast batch axes, 1-D operands promoted."""
    g, a, b = np.abs(g), np.abs(a), np.abs(b)
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    g2 = g.reshape(1, 1) if a.ndim == 1 and b.ndim == 1 else (
        np.expand_dims(g, -2) if a.ndim == 1 else (np.expand_dims(g, -1) if b.ndim == 1 else g))
    ga = unbroadcast(np.matmul(g2, np.swapaxes(b2, -1, -2)), a2.shape).reshape(a.shape)
    gb = unbroadcast(np.matmul(np.swapaxes(a2, -1, -2), g2), b2.shape).reshape(b.shape)
    return ga, gb


@vjp_rule("matmul", value=lambda g, a, b: [0.0, 0.0])  # within F: |a b| <= |a| |b|
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


@vjp_rule("dense", value=lambda g, x, w, b: [0.0, 0.0, 0.0])
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


@vjp_rule("relu", value=lambda g, x: [np.where(x > 0, g, 0.0)])
def _vjp_relu(g: np.ndarray, x: np.ndarray) -> list[Rule]:
    return [(np.where(x > 0, np.abs(g), 0.0), 0.0, "C = |g| [x > 0]; F = 0 (a selection)", 1.0)]


@vjp_rule("tanh", value=lambda g, x: [g * (1 - np.tanh(x) ** 2)])
def _vjp_tanh(g: np.ndarray, x: np.ndarray) -> list[Rule]:
    t = np.tanh(x)
    e = np.exp(-2 * np.abs(x))
    sech2 = np.where(np.abs(x) > 0.55, 4 * e / (1 + e) ** 2, 1 - t * t)
    ag = np.abs(g)
    return [(ag * sech2 * (1 + 2 * np.abs(x * t)), ag * (2 * E + 3) * (sech2 + t * t),
             "C = |g| sech^2 (1 + 2 |x tanh x|); F = (2E + 3) |g| (sech^2 + tanh^2): 1 - tanh^2 may cancel",
             ag + 1)]


@vjp_rule("sigmoid", value=lambda g, x: [g * _sigmoid64(x) * (1 - _sigmoid64(x))])
def _vjp_sigmoid(g: np.ndarray, x: np.ndarray) -> list[Rule]:
    s = _sigmoid64(x)
    e = np.exp(-np.abs(x))
    slope = e / (1 + e) ** 2
    ag = np.abs(g)
    return [(ag * slope * (1 + np.abs(x) * np.abs(1 - 2 * s)), ag * (E + 5) * s * (np.abs(1 - s) + s),
             "C = |g| s' (1 + |x| |1 - 2s|); F = (E + 5) |g| s (|1 - s| + s): 1 - s may cancel", ag + 1)]


@vjp_rule("softmax", value=_softmax_vjp_value)
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


@vjp_rule("cross_entropy", value=lambda g, p, t, reduction="mean": [0.0, 0.0])  # F already has each term's magnitude
def _vjp_cross_entropy(g: np.ndarray, p: np.ndarray, t: np.ndarray, reduction: str = "mean") -> list[Rule]:
    sc = abs(float(g)) * _reduction_scale(p, reduction)
    q = np.abs(t / p)
    lg = np.abs(np.log(p))
    return [
        (3 * sc * q, 3 * sc * q, "C = 3 |g y / yhat|; F = 3 roundings", (1 + sc) * (1 + np.abs(t)) / p),
        (sc * (1 + lg), (E + 2) * sc * lg, "C = |g| (1 + |log yhat|); F = (E + 2) |g log yhat|", (1 + sc) * (1 + lg)),
    ]


@vjp_rule("softmax_cross_entropy", value=_sce_vjp_value)
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


@vjp_rule("mse", value=lambda g, p, t, reduction="mean": [0.0, 0.0])
def _vjp_mse(g: np.ndarray, p: np.ndarray, t: np.ndarray, reduction: str = "mean") -> list[Rule]:
    c = {"mean": 2.0 / p.size, "sum": 2.0, "half_sum": 1.0}[reduction]
    ag = abs(float(g)) * c
    d = np.abs(p - t)
    cond = ag * (np.abs(p) + np.abs(t) + d)
    # a flushed subnormal g loses up to tiny times d(grad)/dg = c |d|; a flushed
    # subnormal intermediate c g loses up to tiny times |d|
    floor = (1 + ag) * (1 + (1 + c) * d)
    return [(cond, 3 * ag * d, "C = c |g| (|yhat| + |y| + |d|); F = 3 c |g d|", floor),
            (cond, 3 * ag * d, "C = c |g| (|yhat| + |y| + |d|); F = 3 c |g d|", floor)]


def _bound(rule: Rule, exact: Any) -> Bound:
    """The rule's terms weighted and summed, in the wide format where the rule
    was evaluated there, then stored scaled by ``1 / _SATURATION``."""
    cond, formula, model = rule[0], rule[1], rule[2]
    floor = rule[3] if len(rule) > 3 else 0.0
    magnitude = (P / _SATURATION) * np.asarray(cond) + np.asarray(formula) / _SATURATION \
        + (R / _SATURATION) * np.abs(exact)
    return Bound(np.full(np.shape(magnitude), _SATURATION), _saturated(magnitude), model, _saturated(floor))


def forward_bound(op: str, inputs: Sequence[np.ndarray], params: Mapping[str, Any] | None = None) -> Bound:
    """What an implementation of ``op``'s forward may differ from the
    reference by: the acceptance rule above."""
    xs, kw = _f64(*inputs), dict(params or {})
    with np.errstate(all="ignore"):  # an overflow is retried wide, then saturated (see _SATURATION)
        rule, exact = _evaluate(lambda *a, **p: (_FORWARD[op](*a, **p), _exact_forward(op, a, p)), xs, kw)
        return _bound(rule, exact)


def vjp_bound(op: str, cotangent: np.ndarray, inputs: Sequence[np.ndarray],
              params: Mapping[str, Any] | None = None) -> tuple[Bound, ...]:
    """What each gradient of an implementation of ``op``'s VJP may differ
    from the reference by: the acceptance rule above."""
    g, *xs = _f64(cotangent, *inputs)
    kw = dict(params or {})
    with np.errstate(all="ignore"):  # an overflow is retried wide, then saturated (see _SATURATION)
        rules, exact = _evaluate(lambda g, *a, **p: (_VJP[op](g, *a, **p), _exact_vjp(op, g, a, p)), (g, *xs), kw)
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


def has_model(op: str) -> bool:
    return op in _FORWARD and op in _VJP
