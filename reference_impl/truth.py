"""The truth: every op's forward and VJP in ball arithmetic, from the exact
float inputs, rounded once to the working dtype.

Each value is computed with python-flint's ``arb`` (a midpoint and a
rigorous radius) at ``PRECISION`` bits; where a ball still straddles a
rounding boundary of the working dtype the computation is repeated at four
and sixteen times the precision. The formulas are the textbook definitions,
rearranged only where the rearrangement is an identity that removes a
cancellation arb would otherwise have to resolve with thousands of bits
(``1 - tanh^2 = sech^2``, the softmax Jacobian product as
``s_i sum_j s_j (g_i - g_j)``, the dominant class's cross-entropy gradient as
minus the sum of the others). python-flint is an optional dependency (the
``truth`` extra), imported on first use.

``forward(op, inputs, params)`` and ``vjp(op, cotangent, inputs, params)``
return :class:`Truth` objects: ``rounded`` (the exactly rounded result in the
working dtype), ``value`` (float64 midpoints) and ``ulp_error(actual)``, the
distance of an implementation's result from the exact value in units of the
working dtype's spacing at the rounded truth.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["PRECISION", "Truth", "forward", "vjp"]

PRECISION = 200
"""Working precision in bits of the first attempt."""

_SIGNIFICAND = {np.dtype(np.float32): (24, -126), np.dtype(np.float64): (53, -1022)}
_NEGLIGIBLE_EXPONENT = -200_000
"""``exp(d)`` for ``d`` below this is below 2**-288000: times any finite
float64 it rounds to 0 in every dtype, so it is taken as 0 (arb's exp of
``-1e308`` would need a 1000-bit argument reduction to say the same)."""


def _flint() -> Any:
    try:
        import flint
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError("reference_impl.truth needs python-flint: pip install 'reference-impl[truth]'") from e
    return flint


def _round_exact(man: int, exp: int, dtype: np.dtype) -> float:
    """``man * 2**exp`` rounded to nearest-even in ``dtype`` (as a Python float)."""
    man, exp = int(man), int(exp)
    if man == 0:
        return 0.0
    p, emin = _SIGNIFICAND[dtype]
    sign, m = (-1 if man < 0 else 1), abs(man)
    top = exp + m.bit_length() - 1
    quantum = max(top - (p - 1), emin - (p - 1))
    if quantum > exp:
        shift = quantum - exp
        r, rem = m >> shift, m & ((1 << shift) - 1)
        half = 1 << (shift - 1)
        if rem > half or (rem == half and r & 1):
            r += 1
        m, exp = r, quantum
    try:
        value = math.ldexp(float(m), exp)
    except OverflowError:
        return sign * math.inf
    return sign * (math.inf if value > float(np.finfo(dtype).max) else value)


def _round_point(point: Any, dtype: np.dtype) -> float:
    """An exact arb (radius 0) rounded to ``dtype``."""
    man, exp = point.man_exp()
    return _round_exact(man, exp, dtype)


def _rounded(ball: Any, dtype: np.dtype) -> tuple[float, bool]:
    """(rounding of the midpoint, whether the whole ball rounds the same)."""
    same = _round_point(ball.lower(), dtype) == _round_point(ball.upper(), dtype)
    return _round_point(ball.mid(), dtype), same


@dataclass(frozen=True)
class Truth:
    """One exact result: arb balls, their rounding to ``dtype``, and float64 midpoints."""

    balls: np.ndarray
    dtype: np.dtype
    rounded: np.ndarray
    value: np.ndarray
    determined: bool
    """Every ball rounds to one value of ``dtype`` (false only if even the
    highest precision could not decide a rounding, i.e. a result within
    ~2**-3000 of a rounding boundary)."""

    def ulp_error(self, actual: Any) -> np.ndarray:
        """``|actual - exact| / spacing(rounded)`` elementwise, in float64
        (``inf`` where ``actual`` is not finite)."""
        arb = _flint().arb
        a = np.asarray(actual, dtype=np.float64)
        spacing = np.maximum(np.spacing(np.abs(self.rounded)).astype(np.float64),
                             float(np.finfo(self.dtype).smallest_subnormal))
        out = np.empty(a.shape)
        for idx in np.ndindex(a.shape):
            if not np.isfinite(a[idx]):
                out[idx] = math.inf
                continue
            err = abs(arb(float(a[idx])) - self.balls[idx])
            out[idx] = float((err / arb(float(spacing[idx]))).mid())
        return out


def _balls(x: np.ndarray) -> np.ndarray:
    arb = _flint().arb
    flat = [arb(float(v)) for v in np.asarray(x, dtype=np.float64).ravel()]
    out = np.empty(len(flat), dtype=object)
    out[:] = flat
    return out.reshape(np.shape(x))


def _map(fn: Callable[[Any], Any], x: np.ndarray) -> np.ndarray:
    return np.frompyfunc(fn, 1, 1)(x)


def _exp(d: Any) -> Any:
    arb = _flint().arb
    return arb(0) if d < _NEGLIGIBLE_EXPONENT else d.exp()


def _unbroadcast(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    extra = g.ndim - len(shape)
    if extra > 0:
        g = g.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if stretched:
        g = g.sum(axis=stretched, keepdims=True)
    return np.asarray(g).reshape(shape)


def _rows(x: np.ndarray) -> int:
    return int(np.prod(x.shape[:-1], dtype=np.int64))


def _scale(g: Any, x: np.ndarray, reduction: str) -> Any:
    return g / _rows(x) if reduction == "mean" else g


# ------------------------------------------------------------------ per-op truths: (forward, vjp)


def _softmax(x: np.ndarray) -> np.ndarray:
    m = x.max(axis=-1, keepdims=True)
    e = _map(_exp, x - m)
    return np.asarray(e / e.sum(axis=-1, keepdims=True))


def _softmax_vjp(g: np.ndarray, x: np.ndarray) -> np.ndarray:
    s = _softmax(x)
    diff = g[..., :, None] - g[..., None, :]  # g_i - g_j
    return np.asarray(s * (diff * s[..., None, :]).sum(axis=-1))


def _nll(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(-log softmax, softmax, argmax) with k the argmax; no cancellation."""
    k = np.argmax(np.vectorize(lambda b: float(b.mid()), otypes=[float])(z), axis=-1)[..., None]
    zk = np.take_along_axis(z, k, axis=-1)
    e = _map(_exp, z - zk)
    np.put_along_axis(e, k, _flint().arb(0), axis=-1)
    others = e.sum(axis=-1, keepdims=True)
    nll = (zk - z) + _map(lambda v: v.log1p(), others)
    s = e / (1 + others)
    np.put_along_axis(s, k, 1 / (1 + others), axis=-1)
    return np.asarray(nll), np.asarray(s), k


def _sce_vjp(g: Any, z: np.ndarray, t: np.ndarray, reduction: str) -> tuple[np.ndarray, np.ndarray]:
    nll, s, k = _nll(z)
    dz = s * t.sum(axis=-1, keepdims=True) - t
    np.put_along_axis(dz, k, _flint().arb(0), axis=-1)
    np.put_along_axis(dz, k, -dz.sum(axis=-1, keepdims=True), axis=-1)
    sc = _scale(g, z, reduction)
    return dz * sc, nll * sc


def _matmul_vjp(g: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    g2 = g
    if a.ndim == 1 and b.ndim == 1:
        g2 = g.reshape(1, 1)
    elif a.ndim == 1:
        g2 = np.expand_dims(g, -2)
    elif b.ndim == 1:
        g2 = np.expand_dims(g, -1)
    da = _unbroadcast(np.matmul(g2, np.swapaxes(b2, -1, -2)), a2.shape).reshape(a.shape)
    db = _unbroadcast(np.matmul(np.swapaxes(a2, -1, -2), g2), b2.shape).reshape(b.shape)
    return da, db


def _forward_of(op: str, xs: Sequence[np.ndarray], raw: Sequence[np.ndarray], p: Mapping[str, Any]) -> Any:
    red = p.get("reduction", "mean")
    if op == "add":
        return xs[0] + xs[1]
    if op == "multiply":
        return xs[0] * xs[1]
    if op == "matmul":
        return np.matmul(xs[0], xs[1])
    if op == "dense":
        return np.matmul(xs[0], xs[1]) + xs[2]
    if op == "relu":
        return np.where(raw[0] > 0, xs[0], _balls(np.zeros(raw[0].shape)))
    if op == "tanh":
        return _map(lambda v: v.tanh(), xs[0])
    if op == "sigmoid":
        return _map(lambda v: 1 / (1 + _exp(-v)), xs[0])
    if op == "softmax":
        return _softmax(xs[0])
    if op == "cross_entropy":
        rows = -(xs[1] * _map(lambda v: v.log(), xs[0])).sum(axis=-1)
        return rows.sum() / (_rows(raw[0]) if red == "mean" else 1)
    if op == "softmax_cross_entropy":
        rows = (xs[1] * _nll(xs[0])[0]).sum(axis=-1)
        return rows.sum() / (_rows(raw[0]) if red == "mean" else 1)
    if op == "mse":
        d = xs[0] - xs[1]
        return (d * d).sum() / {"mean": raw[0].size, "sum": 1, "half_sum": 2}[red]
    raise KeyError(f"op: no truth for {op!r}")


def _vjp_of(op: str, g: Any, xs: Sequence[np.ndarray], raw: Sequence[np.ndarray],
            p: Mapping[str, Any]) -> tuple[Any, ...]:
    red = p.get("reduction", "mean")
    if op == "add":
        return _unbroadcast(g, raw[0].shape), _unbroadcast(g, raw[1].shape)
    if op == "multiply":
        return _unbroadcast(g * xs[1], raw[0].shape), _unbroadcast(g * xs[0], raw[1].shape)
    if op == "matmul":
        return _matmul_vjp(g, xs[0], xs[1])
    if op == "dense":
        gf, xf = g.reshape(-1, g.shape[-1]), xs[0].reshape(-1, xs[0].shape[-1])
        return np.matmul(g, xs[1].T), np.matmul(xf.T, gf), gf.sum(axis=0)
    if op == "relu":
        return (np.where(raw[0] > 0, g, _balls(np.zeros(raw[0].shape))),)
    if op == "tanh":
        return (g * _map(lambda v: 1 / (v.cosh() * v.cosh()), xs[0]),)
    if op == "sigmoid":
        return (g * _map(lambda v: _exp(-abs(v)) / ((1 + _exp(-abs(v))) ** 2), xs[0]),)
    if op == "softmax":
        return (_softmax_vjp(g, xs[0]),)
    if op == "cross_entropy":
        sc = _scale(g, raw[0], red)
        return -(xs[1] / xs[0]) * sc, -_map(lambda v: v.log(), xs[0]) * sc
    if op == "softmax_cross_entropy":
        return _sce_vjp(g, xs[0], xs[1], red)
    if op == "mse":
        r = (xs[0] - xs[1]) * g
        dp = {"mean": 2 * r / raw[0].size, "sum": 2 * r, "half_sum": r}[red]
        return dp, -dp
    raise KeyError(f"op: no truth for {op!r}")


def _truth(compute: Callable[[], Any], dtype: np.dtype) -> Any:
    """Run ``compute`` at rising precision until every ball's rounding is decided."""
    ctx = _flint().ctx
    saved = ctx.prec
    try:
        for prec in (PRECISION, 4 * PRECISION, 16 * PRECISION):
            ctx.prec = prec
            results = compute()
            many = isinstance(results, tuple)
            truths = tuple(_make(np.asarray(r, dtype=object) if np.ndim(r) else _obj0(r), dtype)
                           for r in (results if many else (results,)))
            if all(t.determined for t in truths):
                break
    finally:
        ctx.prec = saved
    return truths if many else truths[0]


def _obj0(v: Any) -> np.ndarray:
    out = np.empty((), dtype=object)
    out[()] = v.item() if isinstance(v, np.ndarray) else v
    return out


def _make(balls: np.ndarray, dtype: np.dtype) -> Truth:
    rounded = np.empty(balls.shape, dtype=dtype)
    value = np.empty(balls.shape)
    determined = True
    for idx in np.ndindex(balls.shape):
        r, ok = _rounded(balls[idx], dtype)
        rounded[idx] = r
        ball: Any = balls[idx]
        value[idx] = _round_point(ball.mid(), np.dtype(np.float64))
        determined &= ok
    return Truth(balls, dtype, rounded, value, determined)


def forward(op: str, inputs: Sequence[Any], params: Mapping[str, Any] | None = None) -> Truth:
    """The exact forward of ``op`` at the float ``inputs``."""
    raw = [np.asarray(x) for x in inputs]
    dtype = raw[0].dtype
    return _truth(lambda: _forward_of(op, [_balls(x) for x in raw], raw, dict(params or {})), dtype)


def vjp(op: str, cotangent: Any, inputs: Sequence[Any], params: Mapping[str, Any] | None = None) -> tuple[Truth, ...]:
    """The exact gradients of ``op`` (one per input) for ``cotangent``."""
    raw = [np.asarray(x) for x in inputs]
    g = np.asarray(cotangent)
    dtype = raw[0].dtype

    def compute() -> tuple[Any, ...]:
        gb = _balls(g)
        return tuple(_vjp_of(op, gb if gb.ndim else gb[()], [_balls(x) for x in raw], raw, dict(params or {})))

    return _truth(compute, dtype)
