"""The error model of every op: its forward rule and its VJP rules, ``C``
(the condition term) and ``F`` (the formula's roundings), side by side.

The acceptance rule they feed, its constants and how a rule becomes a
:class:`~reference_impl.accuracy.acceptance.Bound` are in
:mod:`reference_impl.accuracy.acceptance`; this module registers each op's
rules there (``@forward_rule`` / ``@vjp_rule``) and is the face the rest of
the project imports: ``forward_bound``, ``vjp_bound``, ``Bound``,
``unit_roundoff`` and the constants.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..broadcasting import unbroadcast
from .acceptance import (
    ELEMENTARY_ULPS,
    FUNCTION_ULPS,
    IMPLEMENTATIONS,
    INPUT_ULPS,
    REFERENCE_ULPS,
    Bound,
    E,
    Rule,
    distribution_sum_tolerance,
    forward_bound,
    forward_rule,
    has_model,
    unit_roundoff,
    vjp_bound,
    vjp_rule,
)

__all__ = [
    "unit_roundoff", "ELEMENTARY_ULPS", "FUNCTION_ULPS", "INPUT_ULPS", "REFERENCE_ULPS", "IMPLEMENTATIONS",
    "Bound", "forward_bound", "vjp_bound", "has_model", "distribution_sum_tolerance",
]


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




def _sce_value(z: np.ndarray, t: np.ndarray, reduction: str = "mean") -> Any:
    return _reduction_scale(z, reduction) * np.sum(t * _nll64(z))


def _sce_vjp_value(g: np.ndarray, z: np.ndarray, t: np.ndarray, reduction: str = "mean") -> list[Any]:
    sc = float(g) * _reduction_scale(z, reduction)
    return [sc * (_softmax64(z) * t.sum(axis=-1, keepdims=True) - t), sc * _nll64(z)]


def _softmax_vjp_value(g: np.ndarray, x: np.ndarray) -> list[Any]:
    s = _softmax64(x)
    return [s * (g - (g * s).sum(axis=-1, keepdims=True))]


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
    # subnormal intermediate c g loses up to tiny times |d|; a subnormal input p
    # or t read as 0 (XLA on CPU) loses up to tiny each, times c |g|: two
    # subnormals of opposite signs differ by a normal number up to 2 tiny
    floor = (1 + ag) * (1 + (1 + c) * d) + 2 * ag
    return [(cond, 3 * ag * d, "C = c |g| (|yhat| + |y| + |d|); F = 3 c |g d|", floor),
            (cond, 3 * ag * d, "C = c |g| (|yhat| + |y| + |d|); F = 3 c |g d|", floor)]
