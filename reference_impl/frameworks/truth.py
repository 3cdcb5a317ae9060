"""The truth: every op's forward and VJP in ball arithmetic, from the exact
float inputs, rounded once to the working dtype.

Each value is computed with python-flint's ``arb`` (a midpoint and a
rigorous radius) at ``PRECISION`` bits; where a ball still straddles a
rounding boundary of the working dtype the computation is repeated at four
and sixteen times the precision. The formulas themselves are each op's
``truth_forward`` / ``truth_vjp`` recipes in
``reference_impl/frameworks/recipes.py``, a third opinion beside torch and
jax; this module evaluates them. python-flint is an optional dependency (the
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
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..broadcasting import unbroadcast
from ..dtypes import info
from .recipes import SPECS

__all__ = ["PRECISION", "Truth", "forward", "vjp"]

PRECISION = 200
"""Working precision in bits of the first attempt."""

_NEGLIGIBLE_EXPONENT = -200_000
"""``exp(d)`` for ``d`` below this is below 2**-288000: times any finite
float64 it rounds to 0 in every dtype, so it is taken as 0 (arb's exp of
``-1e308`` would need a 1000-bit argument reduction to say the same)."""


def _flint() -> Any:
    try:
        import flint
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError("reference_impl.frameworks.truth needs python-flint: "
                          "pip install 'reference-impl[truth]'") from e
    return flint


def _round_exact(man: int, exp: int, dtype: np.dtype) -> float:
    """``man * 2**exp`` rounded to nearest-even in ``dtype`` (as a Python float)."""
    man, exp = int(man), int(exp)
    if man == 0:
        return 0.0
    fmt = info(dtype)
    p, emin = fmt.bits, fmt.emin
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
    return sign * (math.inf if value > fmt.max else value)


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
        r = np.abs(self.rounded)
        with np.errstate(over="ignore"):  # above the dtype's largest value the next one is inf
            spacing = np.spacing(r)
        # at the largest value the ulp is the spacing below it
        spacing = np.where(np.isinf(spacing) & np.isfinite(r), np.spacing(np.nextafter(r, 0)), spacing)
        spacing = np.maximum(spacing.astype(np.float64), info(self.dtype).subnormal)
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


def _mid(x: np.ndarray) -> np.ndarray:
    return np.asarray(np.vectorize(lambda b: float(b.mid()), otypes=[float])(x))


def _zeros(shape: tuple[int, ...]) -> np.ndarray:
    return _balls(np.zeros(shape))


def _namespace() -> SimpleNamespace:
    """What a truth recipe in ``SPECS[op]`` receives (see recipes.py)."""
    return SimpleNamespace(arb=_flint().arb, map=_map, exp=_exp, zeros=_zeros, mid=_mid, unbroadcast=unbroadcast)


def _recipes(op: str) -> tuple[Callable[..., Any], Callable[..., tuple[Any, ...]]]:
    spec = SPECS.get(op)
    if spec is None or spec.truth_forward is None or spec.truth_vjp is None:
        raise KeyError(f"op: no truth for {op!r} in reference_impl/frameworks/recipes.py")
    return spec.truth_forward, spec.truth_vjp


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
    """The exact forward of ``op`` at the float ``inputs``, by the
    ``truth_forward`` recipe of ``SPECS[op]``."""
    recipe, _ = _recipes(op)
    raw = [np.asarray(x) for x in inputs]
    dtype = raw[0].dtype
    return _truth(lambda: recipe(_namespace(), *[_balls(x) for x in raw], **dict(params or {})), dtype)


def vjp(op: str, cotangent: Any, inputs: Sequence[Any], params: Mapping[str, Any] | None = None) -> tuple[Truth, ...]:
    """The exact gradients of ``op`` (one per input) for ``cotangent``, by
    the ``truth_vjp`` recipe of ``SPECS[op]``."""
    _, recipe = _recipes(op)
    raw = [np.asarray(x) for x in inputs]
    g = np.asarray(cotangent)
    dtype = raw[0].dtype

    def compute() -> tuple[Any, ...]:
        gb = _balls(g)
        return tuple(recipe(_namespace(), gb if gb.ndim else gb[()], *[_balls(x) for x in raw], **dict(params or {})))

    return _truth(compute, dtype)
