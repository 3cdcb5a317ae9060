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
next to the formula they bound. A per-backend override in ``reference_impl/frameworks/recipes.py``
may scale a bound and must say why.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "unit_roundoff",
    "ELEMENTARY_ULPS",
    "IMPLEMENTATIONS",
    "Bound",
    "forward_bound",
    "vjp_bound",
    "distribution_sum_tolerance",
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


def _vjp_add(g: np.ndarray, a: np.ndarray, b: np.ndarray) -> list[tuple[Any, ...]]:
    out = []
    for x in (a, b):
        m, r = _unbroadcast_abs(g, x.shape)
        out.append((r - 1, m, "sum of g over the broadcast axes (length r, r - 1 roundings)"))
    return out


def _vjp_multiply(g: np.ndarray, a: np.ndarray, b: np.ndarray) -> list[tuple[Any, ...]]:
    out = []
    for x, other in ((a, b), (b, a)):
        m, r = _unbroadcast_abs(g * other, x.shape)
        out.append((r, m, "g * other, summed over the broadcast axes"))
    return out


def _vjp_matmul(g: np.ndarray, a: np.ndarray, b: np.ndarray) -> list[tuple[Any, ...]]:
    from .ops import _matmul_vjp

    ga, gb = _matmul_vjp(np.abs(g), np.empty(0), np.abs(a), np.abs(b))  # the rule does not read ``ans``
    batch = int(np.prod(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]), dtype=np.int64))
    n = b.shape[-1] if b.ndim > 1 else 1
    m = a.shape[-2] if a.ndim > 1 else 1
    r_a = batch // int(np.prod(a.shape[:-2], dtype=np.int64))
    r_b = batch // int(np.prod(b.shape[:-2], dtype=np.int64))
    return [
        (n + r_a, ga, "gamma_(N + r) |g| @ |b|^T, r = broadcast batch summed"),
        (m + r_b, gb, "gamma_(M + r) |a|^T @ |g|, r = broadcast batch summed"),
    ]


def _vjp_dense(g: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> list[tuple[Any, ...]]:
    ag = np.abs(g).reshape(-1, g.shape[-1])
    ax = np.abs(x).reshape(-1, x.shape[-1])
    rows = ag.shape[0]
    return [
        (w.shape[1], np.matmul(np.abs(g), np.abs(w).T), "gamma_out |g| @ |W|^T"),
        (rows, ax.T @ ag, "gamma_rows |x|^T @ |g|"),
        (rows, ag.sum(axis=0), "sum of |g| over rows"),
    ]


def _vjp_relu(g: np.ndarray, x: np.ndarray) -> list[tuple[Any, ...]]:
    return [(0, np.abs(g), "exact: g or 0")]


def _vjp_tanh(g: np.ndarray, x: np.ndarray) -> list[tuple[Any, ...]]:
    y = np.tanh(x)
    return [(2 * E + 3, np.abs(g) * (1 + y * y), "|g| (1 + tanh^2): 1 - tanh^2 cancels near saturation",
             np.abs(g))]


def _vjp_sigmoid(g: np.ndarray, x: np.ndarray) -> list[tuple[Any, ...]]:
    y = _sigmoid64(x)
    return [(E + 5, np.abs(g) * y * (np.abs(1 - y) + y), "|g| s (|1 - s| + s): 1 - s cancels near saturation",
             np.abs(g))]


def _vjp_softmax(g: np.ndarray, x: np.ndarray) -> list[tuple[Any, ...]]:
    y, k = _softmax_terms(x)
    n = x.shape[-1]
    m = y * (np.abs(g) + (np.abs(g) * y).sum(axis=-1, keepdims=True))
    floor = np.abs(g) + (np.abs(g) * y).sum(axis=-1, keepdims=True)
    return [(k.max(axis=-1, keepdims=True) + n + 3, m, "s (|g| + sum |g| s), softmax's k + n + 3", floor)]


def _vjp_cross_entropy(g: np.ndarray, p: np.ndarray, t: np.ndarray, reduction: str = "mean") -> list[tuple[Any, ...]]:
    s = abs(float(g)) * _reduction_scale(p, reduction)
    return [
        (3, s * np.abs(t / p), "|y / yhat| times the scale"),
        (E + 2, s * (np.abs(np.log(p)) + 1), "(|log yhat| + 1) times the scale"),
    ]


def _vjp_softmax_cross_entropy(g: np.ndarray, z: np.ndarray, t: np.ndarray,
                               reduction: str = "mean") -> list[tuple[Any, ...]]:
    s = abs(float(g)) * _reduction_scale(z, reduction)
    y, k = _softmax_terms(z)
    am, alse = _lse_terms(z)
    n = z.shape[-1]
    # Fused implementations (torch's cross_entropy backward, autodiff through
    # log_softmax, the reference) form softmax as exp(log_softmax(z)): the
    # subtraction of the log-sum-exp adds a rounding of size u |log p_i|,
    # which exp turns into a relative error of the same size.
    k = k + np.abs(z - z.max(axis=-1, keepdims=True)) + alse
    return [
        (k + 3, s * (y * np.abs(t).sum(axis=-1, keepdims=True) + np.abs(t)),
         "softmax(z) sum(y) + |y|; k: softmax's + |log softmax(z)| + 3",
         s * np.abs(t).sum(axis=-1, keepdims=True)),
        (n + 2 * E + 4, s * (np.abs(z) + am + alse + 1), "|z| + |max| + |lse| + 1: the log-softmax terms"),
    ]


def _vjp_mse(g: np.ndarray, p: np.ndarray, t: np.ndarray, reduction: str = "mean") -> list[tuple[Any, ...]]:
    c = {"mean": 2.0 / p.size, "sum": 2.0, "half_sum": 1.0}[reduction]
    m = abs(float(g)) * c * np.abs(p - t)
    return [(3, m, "c |yhat - y| |g|"), (3, m, "c |yhat - y| |g|")]


_VJP: Mapping[str, Callable[..., list[tuple[Any, ...]]]] = {
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


# ``compare``, ``Comparison`` and ``ulp_error`` live in the check engine
# (reference_impl.engine), the one place a comparison is defined; the names
# stay reachable here for code written against the older layout.
_ENGINE_NAMES = frozenset({"compare", "Comparison", "ulp_error"})


def __getattr__(name: str) -> Any:
    if name in _ENGINE_NAMES:
        return getattr(importlib.import_module("reference_impl.engine"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    return forward_bound(op, args, params).tolerance(dtype) / IMPLEMENTATIONS


def _own_vjp(op: str, cotangent: np.ndarray, args: Sequence[np.ndarray], dtype: np.dtype,
             params: Mapping[str, Any] | None = None) -> list[np.ndarray]:
    """One implementation's own error for each gradient of one op's VJP."""
    return [b.tolerance(dtype) / IMPLEMENTATIONS for b in vjp_bound(op, cotangent, args, params)]


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
