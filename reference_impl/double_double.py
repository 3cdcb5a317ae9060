"""Double-double numbers with their own exponent, vectorised in NumPy.

A :class:`DD` array holds ``(hi + lo) * 2**e`` per element: ``hi`` and ``lo`` float64 with
``|lo| <= ulp(hi) / 2``, ``e`` an int64 array; ``hi`` is normalised to ``[0.5, 1)`` (a zero's
``e`` far below every other) by every sum and on entry to every elementary function, and a
product or quotient moves it at most a binade or two from there. The pair gives 106 bits of
significand; the separate exponent lets a slope far below float64's smallest number
(``tanh'(400) ~ 1e-347``) multiply a cotangent near its largest, and a sum of values near
``1.8e308`` overflow nowhere. Only IEEE's correctly rounded ``+ - * /`` and exact scalings by
powers of two are used (no ``libm``, no ``longdouble``, no FMA), so every platform computes the same bits.

Error-free transformations (``u = 2**-53``): :func:`two_sum` (Knuth),
:func:`fast_two_sum` (Dekker, ``|a| >= |b|``), :func:`two_prod` (Dekker's
product with Veltkamp's splitting). Arithmetic on pairs, relative error of
the exact result (Joldes, Muller, Popescu's bounds for these algorithms):
``+ -`` at most ``3 u**2`` (the accurate sum; differences of nearly equal
values are exact), ``*`` at most ``7 u**2``, ``/`` at most ``15 u**2``.
The elementary functions carry their own bound in their docstrings.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
from typing import Any

import numpy as np

from . import dd_tables as T

__all__ = ["DD", "two_sum", "fast_two_sum", "two_prod", "dd", "exp", "expm1", "log", "log1p", "tanh", "use_kernels"]

_F = np.float64
ZERO_E = T.ZERO_E


def two_sum(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(s, t)`` with ``s = fl(a + b)`` and ``s + t = a + b`` exactly."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def fast_two_sum(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(s, t)`` with ``s + t = a + b`` exactly, for ``|a| >= |b|`` (or ``a = 0``)."""
    s = a + b
    return s, b - (s - a)


_split = T.veltkamp


def two_prod(a: Any, b: Any, halves: tuple[Any, Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(p, t)`` with ``p = fl(a b)`` and ``p + t = a b`` exactly (Dekker; ``halves``: ``a``'s, if known;
    no overflow or underflow in the operands' halves: ``2**-969 < |a|, |b| < 2**995``)."""
    p = a * b
    ah, al = _split(a) if halves is None else halves
    bh, bl = _split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def two_sqr(a: Any) -> tuple[np.ndarray, np.ndarray]:
    """:func:`two_prod` ``(a, a)`` with one splitting, the same bits (its cross products are equal)."""
    p = a * a
    ah, al = _split(a)
    return p, ((ah * ah - p) + 2 * (ah * al)) + al * al


def _pow2(k: Any) -> np.ndarray:
    """``2.0**k`` for integers ``k`` in ``[-1022, 1023]``, from the bits (faster than ``ldexp``)."""
    return np.asarray((np.asarray(k, np.int64) + 1023) << 52).view(_F)


def _normal(hi: np.ndarray, lo: np.ndarray, e: np.ndarray) -> DD:
    m, k = np.frexp(hi)
    k = k.astype(np.int64)
    # below 2**-1022 the low half is already 0: the clamp loses nothing
    return DD(m, lo * _pow2(np.minimum(-k, 1023)), np.where(m == 0, ZERO_E, e + k))


def _normalised(x: DD) -> DD:
    return _normal(x.hi, x.lo, x.e)


def dd(x: Any) -> DD:
    """A float64 array (or scalar) as a :class:`DD`, exactly; a DD unchanged."""
    if isinstance(x, DD):
        return x
    if isinstance(x, (int, float)) and x != 0:
        return _constant(float(x))
    return _from_float(np.asarray(x, dtype=_F))


def _from_float(x: np.ndarray) -> DD:
    m, k = np.frexp(x)
    return DD(m, np.zeros_like(m), np.where(m == 0, ZERO_E, k.astype(np.int64)))


@functools.lru_cache(maxsize=256)
def _constant(x: float) -> DD:
    """A nonzero constant of a formula (``1 + e``, ``4 * e``), converted once."""
    m, k = np.frexp(np.asarray(x, dtype=_F))
    return DD(m, np.zeros_like(m), k.astype(np.int64))


class DD:
    """An array of double-double numbers with an exponent each (module docstring).

    NumPy operators, comparisons and ``np.abs`` work on it, and so do
    ``np.where``, ``np.take_along_axis``, ``np.put_along_axis``,
    ``np.argmax``, ``np.argsort`` and ``np.cumsum``; the orderings (argmax,
    argsort, max) and ``cumsum`` use the value rounded to float64 (exact for
    the float64 values they are applied to). :func:`to_float` rounds once."""

    __slots__ = ("e", "hi", "lo")
    __array_priority__ = 100.0

    def __init__(self, hi: np.ndarray, lo: np.ndarray, e: np.ndarray) -> None:
        self.hi, self.lo, self.e = hi, lo, e

    shape = property(lambda self: np.shape(self.hi))
    ndim = property(lambda self: np.ndim(self.hi))
    size = property(lambda self: np.size(self.hi))

    def __repr__(self) -> str:
        return f"DD({self.to_float()!r})"

    def __getitem__(self, key: Any) -> DD:
        return DD(self.hi[key], self.lo[key], self.e[key])

    def reshape(self, *shape: Any) -> DD:
        return DD(self.hi.reshape(*shape), self.lo.reshape(*shape), self.e.reshape(*shape))

    def to_float(self) -> np.ndarray:
        """The value rounded to float64 once (to +-inf beyond its range; the
        sign of a zero kept): ``fl(hi + lo)`` scaled, exact for a normal
        result; a subnormal one is ``hi`` scaled with its rounding remainder
        (and ``lo``) added back on the subnormal grid, so that it too is
        rounded from all 106 bits."""
        e = np.clip(self.e, -2300, 2300)
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            full = np.ldexp(self.hi + self.lo, e)
            h = np.ldexp(self.hi, e)
            rest = (self.hi - np.ldexp(h, -e)) + self.lo  # exact: h is hi to the result's last bit
            sub = h + np.ldexp(rest, e)
        out = np.where(np.abs(full) < T.TINY, sub, full)
        return np.asarray(np.where(out == 0, np.copysign(0.0, self.hi), out))

    def _approx(self) -> np.ndarray:
        with np.errstate(over="ignore", under="ignore"):
            return np.asarray(np.ldexp(self.hi, np.clip(self.e, -1200, 1200)))

    # ---------------------------------------------------------------- arithmetic

    def __neg__(self) -> DD:
        return DD(-self.hi, -self.lo, self.e)

    def __abs__(self) -> DD:
        neg = self.hi < 0
        return DD(np.abs(self.hi), np.where(neg, -self.lo, self.lo), self.e)

    def __add__(self, other: Any) -> DD:
        return _add(self, dd(other))

    __radd__ = __add__

    def __sub__(self, other: Any) -> DD:
        return _add(self, -dd(other))

    def __rsub__(self, other: Any) -> DD:
        return _add(dd(other), -self)

    def __mul__(self, other: Any) -> DD:
        if _power_of_two(other):
            return DD(self.hi * other, self.lo * other, self.e)  # exact: the mantissas are far from float64's limits
        return _mul(self, dd(other))

    __rmul__ = __mul__

    def __truediv__(self, other: Any) -> DD:
        if _power_of_two(other):
            return DD(self.hi / other, self.lo / other, self.e)
        return _div(self, dd(other))

    def __rtruediv__(self, other: Any) -> DD:
        return _div(dd(other), self)

    def _sign_of_difference(self, other: Any) -> np.ndarray:
        """An array with the sign of ``self - other``: against a float
        scalar from ``hi`` scaled (exact where that is a normal number; the
        low half decides a tie), else from the DD difference."""
        if isinstance(other, (int, float)):
            if other == 0:
                return self.hi
            d = self._approx() - float(other)
            return np.where(d == 0, self.lo, d)
        return (self - dd(other)).hi

    def __lt__(self, other: Any) -> np.ndarray: return self._sign_of_difference(other) < 0
    def __le__(self, other: Any) -> np.ndarray: return self._sign_of_difference(other) <= 0
    def __gt__(self, other: Any) -> np.ndarray: return self._sign_of_difference(other) > 0
    def __ge__(self, other: Any) -> np.ndarray: return self._sign_of_difference(other) >= 0
    def __eq__(self, other: Any) -> np.ndarray: return self._sign_of_difference(other) == 0  # type: ignore[override]

    __hash__ = None  # type: ignore[assignment]

    # ---------------------------------------------------------------- reductions

    def sum(self, axis: Any = None, keepdims: bool = False) -> DD:
        """The sum over ``axis`` (an int, a tuple or all): over every axis,
        the exact sum rounded to a DD (``_fsum``: relative error ``u**2``);
        otherwise pairwise in DD, relative error at most ``3 u**2 ceil(log2 n)``
        of the sum of the magnitudes."""
        axes = tuple(range(self.ndim)) if axis is None else (axis,) if np.isscalar(axis) else tuple(axis)
        axes = tuple(a % max(self.ndim, 1) for a in axes)
        keep = [a for a in range(self.ndim) if a not in axes]
        out_shape = tuple(1 if a in axes else n for a, n in enumerate(self.shape)) if keepdims \
            else tuple(self.shape[a] for a in keep)
        if len(axes) == self.ndim and self.size and np.any(self.hi != 0):
            return _fsum(self).reshape(out_shape)
        n = math.prod(self.shape[a] for a in axes)
        flat = DD(*(np.transpose(np.asarray(c), keep + list(axes)).reshape((*(self.shape[a] for a in keep), n))
                    for c in (self.hi, self.lo, self.e)))
        return _pairwise(flat).reshape(out_shape)

    def mean(self) -> DD:
        return self.sum() / self.size

    def max(self, axis: int = -1, keepdims: bool = False) -> DD:
        k = np.expand_dims(np.argmax(self._approx(), axis=axis), axis)
        out = DD(*(np.take_along_axis(c, k, axis=axis) for c in (self.hi, self.lo, self.e)))
        return out if keepdims else out.reshape(np.squeeze(out.hi, axis).shape)

    # ---------------------------------------------------------------- NumPy protocol

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        ops = {np.absolute: abs, np.negative: lambda a: -a, np.add: lambda a, b: dd(a) + b,
               np.subtract: lambda a, b: dd(a) - b, np.multiply: lambda a, b: dd(a) * b,
               np.true_divide: lambda a, b: dd(a) / b, np.greater: lambda a, b: dd(a) > b,
               np.less: lambda a, b: dd(a) < b, np.greater_equal: lambda a, b: dd(a) >= b,
               np.less_equal: lambda a, b: dd(a) <= b, np.equal: lambda a, b: dd(a) == b}
        if method != "__call__" or kwargs or ufunc not in ops:
            return NotImplemented
        return ops[ufunc](*inputs)  # type: ignore[operator]

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        if func is np.where:
            return _select(args[0], dd(args[1]), dd(args[2]))
        if func is np.take_along_axis:
            x, idx = args[0], args[1]
            return DD(*(np.take_along_axis(c, idx, **kwargs) for c in (x.hi, x.lo, x.e)))
        if func is np.put_along_axis:
            x, idx, v = args[0], args[1], dd(args[2])
            for c, vc in zip((x.hi, x.lo, x.e), (v.hi, v.lo, v.e)):
                np.put_along_axis(c, idx, vc, **kwargs)
            return None
        if func in (np.argmax, np.argsort, np.cumsum):
            return func(args[0]._approx(), *args[1:], **kwargs)
        return NotImplemented


def _fsum(x: DD) -> DD:
    """``sum(x)`` of every element (not all zero): the halves scaled exactly to the largest exponent
    (terms 1022 binades below it dropped), summed exactly and rounded to a DD (:func:`_exact_sum`)."""
    e = x.e.ravel()
    top = int(e[x.hi.ravel() != 0].max())
    p = _pow2(np.maximum(e - top, T.ALIGN))
    s1, s2 = _exact_sum(np.concatenate([x.hi.ravel() * p, x.lo.ravel() * p]))
    return _normal(np.asarray(s1), np.asarray(s2), np.asarray(top, dtype=np.int64))


def _exact_sum(terms: np.ndarray) -> tuple[float, float]:
    """``math.fsum`` of ``terms`` (exact, rounded once) and of the remainder."""
    s1 = math.fsum(t := terms.tolist())
    return s1, math.fsum([*t, -s1])


def _power_of_two(v: Any) -> bool:
    """``v`` a scalar ``+-2**k`` with ``|k| <= 64`` (``2 * x``, ``e / 2``): a product by it is exact."""
    return isinstance(v, (int, float)) and v != 0 and 2.0**-64 <= abs(v) <= 2.0**64 \
        and math.frexp(v)[0] in (0.5, -0.5)


def _pairwise(flat: DD) -> DD:
    """The sum over the last axis (keepdims), pairwise: ``(x0 + x1), (x2 + x3), ...`` level by level."""
    while (n := flat.shape[-1]) > 1:
        pairs = flat[..., 0:n - 1:2] + flat[..., 1:n:2]
        flat = pairs if n % 2 == 0 else DD(*(np.concatenate([getattr(pairs, c), getattr(flat, c)[..., n - 1:]],
                                                             axis=-1) for c in ("hi", "lo", "e")))
    return flat if flat.shape[-1] else dd(np.zeros((*flat.shape[:-1], 1)))


def _add(a: DD, b: DD) -> DD:
    """The accurate double-double sum (both halves two-summed), after scaling
    both to the larger exponent; a zero keeps IEEE's sign (``-0 + -0 = -0``)."""
    e = np.maximum(a.e, b.e)
    sa, sb = np.maximum(a.e - e, T.ALIGN), np.maximum(b.e - e, T.ALIGN)
    pa, pb = _pow2(sa), _pow2(sb)
    ah, al, bh, bl = a.hi * pa, a.lo * pa, b.hi * pb, b.lo * pb
    s0, t = two_sum(ah, bh)
    u, v = two_sum(al, bl)
    s, t = fast_two_sum(s0, t + u)
    s, t = fast_two_sum(s, t + v)
    return _normal(np.where(s == 0, s0, s), t, e)


def _mul(a: DD, b: DD) -> DD:
    p, t = two_prod(a.hi, b.hi)
    s, t = fast_two_sum(p, t + (a.hi * b.lo + a.lo * b.hi))
    return DD(np.where(p == 0, p, s), t, a.e + b.e)  # |hi| in [1/4, 1) times the factors' drift: no rescaling


def _div(a: DD, b: DD) -> DD:
    q = a.hi / b.hi
    p, t = two_prod(q, b.hi)
    r = (((a.hi - p) - t) + a.lo - q * b.lo) / b.hi
    s, t = fast_two_sum(q, r)
    return DD(np.where(q == 0, q, s), t, a.e - b.e)


# -------------------------------------------------------------------- elementary functions


def _plain(x: DD, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """``x`` as an unscaled pair, its magnitude clamped below ``2**limit``."""
    big = x.e > limit
    p = _pow2(np.clip(x.e, -1022, limit))  # below 2**-1022 a value is as good as its clamp to the callers
    with np.errstate(under="ignore"):
        hi, lo = x.hi * p, x.lo * p
    return np.where(big, np.copysign(2.0**limit, x.hi), hi), np.where(big, 0.0, lo)


def _exp_parts(x: DD) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``exp(x) = 2**m T (1 + eps)``: ``(m, j, Tl, eps_hi, eps_lo, k)``, ``T = 2**(j/2048) = Th + Tl``.

    ``x = k ln2/2048 + r`` with ``ln2/2048`` in three parts (the first two of
    28 bits, so ``k`` times them is exact); ``eps = r + r**2/2 + r**3 q(r)``
    with ``r**2`` two-multiplied and the tail ``q`` (to ``r**6/720``) in
    float64: truncation below ``2**-99``, the tail's rounding below ``2**-92``."""
    xh, xl = _plain(x, 12)  # |x| >= 4096: exp(+-4096) = 2**+-5909, beyond any product of two float64 numbers
    k = np.rint(xh * T.INV_L)
    rh, rl = two_sum(xh - k * T.L1, -(k * T.L2))
    rh, rl = fast_two_sum(rh, rl + (xl - k * T.L3))
    ki = k.astype(np.int64)
    j = ki & (T.EXP_N - 1)
    sq, sqe = two_sqr(rh)
    tail = rh * sq * ((1 / 6) + rh * ((1 / 24) + rh * ((1 / 120) + rh * (1 / 720))))
    eh, el = fast_two_sum(rh, 0.5 * sq)
    eh, el = fast_two_sum(eh, el + (rl + (0.5 * sqe + (rh * rl + tail))))
    return ki >> 11, j, T.EXP_TL[j], eh, el, k


def exp(x: Any) -> DD:
    """``e**x`` of a DD (or float64) array: relative error below ``2**-91``
    (the reduction's tail, ``T``'s and the final product's roundings). No
    overflow or underflow: the result's exponent is its own. Beyond
    ``|x| = 4096`` it is ``exp(+-4096)``, whose product with any two float64
    numbers still rounds to 0 or inf as the true value's does."""
    x = _normalised(dd(x))
    m, j, tl, eh, el, _ = _exp_parts(x)
    th = T.EXP_TH[j]
    p, pt = two_prod(th, eh, (T.EXP_THH[j], T.EXP_THL[j]))
    s, t = fast_two_sum(th, p)
    s, t = fast_two_sum(s, t + (tl + (pt + (th * el + tl * eh))))
    return _normal(s, t, m)


def expm1(x: Any) -> DD:
    """``e**x - 1`` of a DD array with ``x < 2``: ``(2**m T - 1) + 2**m T eps``
    (no ``1 + eps`` formed, so ``eps`` keeps its relative accuracy): relative
    error below ``2**-78`` (``2**-91`` absolute over ``|e**x - 1| >= 2**-13``
    where ``T != 1``), and ``x + x**2/2`` (relative ``2**-120``) below ``2**-40``."""
    x = _normalised(dd(x))
    m, j, tl, eh, el, _ = _exp_parts(x)
    sc = _pow2(np.maximum(m, -1022))
    th, tl = T.EXP_TH[j] * sc, tl * sc  # exact where 2**m T >= 2**-1022; below, e**x - 1 = -1 to 2**-1000
    base_h, base_l = two_sum(th, -1.0)
    p, pt = two_prod(th, eh)
    s, t = two_sum(base_h, p)
    s, t = fast_two_sum(s, t + (base_l + tl + (pt + (th * el + tl * eh))))
    out = _normal(s, t, np.zeros(np.shape(s), np.int64))
    small = x.e < -40
    series = x + x * x * 0.5
    return _select(small, series, out)


def log(x: Any) -> DD:
    """Natural logarithm of a positive DD array: ``x = 2**n m`` with ``m`` in
    ``[1/sqrt2, sqrt2)``, ``log x = n ln2 + log c + log1p(r)``, ``c`` the
    nearest ``j/4096``, ``r = (m - c)/c`` divided in DD and ``log1p(r) = r -
    r**2/2 + r**3 q(r)`` (to ``r**7``). Absolute error below ``2**-91`` in
    ``log m``; relative below ``2**-78`` overall (``|log x| >= 2**-13``
    wherever ``c != 1``; where ``c = 1`` the tail's error is relative to ``r``).
    Outside the domain IEEE's values: ``log 0 = -inf``, ``log inf = inf``, else nan."""
    x = _normalised(dd(x))
    bad = ~(x.hi > 0) | (x.hi == np.inf)
    edge = np.where(x.hi == 0, -np.inf, np.where(x.hi == np.inf, np.inf, np.nan))
    x = _select(bad, dd(np.ones(np.shape(x.hi))), x)  # no table index from outside the domain
    low = x.hi < T.SQRT_HALF
    mh, ml = np.where(low, 2 * x.hi, x.hi), np.where(low, 2 * x.lo, x.lo)
    nf = np.where(low, x.e - 1, x.e).astype(_F)
    j = np.rint(mh * T.LOG_N)
    c = j / T.LOG_N
    ji = j.astype(np.int64) - T.LOG_N // 2
    zero = np.zeros(np.shape(mh), np.int64)
    r = _div(_normal(*two_sum(mh - c, ml), zero), dd(c))  # mh - c exact (Sterbenz)
    rh, rl = _plain(r, 0)
    sq, sqe = two_sqr(rh)
    tail = rh * sq * ((1 / 3) + rh * (-0.25 + rh * (0.2 + rh * (-1 / 6 + rh * (1 / 7)))))
    lh, ll = fast_two_sum(rh, -0.5 * sq)
    lh, ll = two_sum(lh, ll + (rl + (-0.5 * sqe - rh * rl + tail)))
    head_h, head_l = two_prod(T.LN2_HI, nf, (T.LN2_HH, T.LN2_HL))  # exact: n has at most 41 bits, ln2's high part 53
    head_l = head_l + nf * T.LN2_LO
    s1, t1 = two_sum(T.LOG_TH[ji], lh)
    s, t = two_sum(head_h, s1)
    s, t = two_sum(s, t + (head_l + (t1 + (T.LOG_TL[ji] + ll))))
    return _select(bad, DD(edge, np.zeros_like(edge), zero), _normal(s, t, zero))


def _select(cond: np.ndarray, a: DD, b: DD) -> DD:
    return DD(np.where(cond, a.hi, b.hi), np.where(cond, a.lo, b.lo), np.where(cond, a.e, b.e))


def log1p(x: Any) -> DD:
    """``log(1 + x)`` of a DD array ``x > -1``: below ``|x| = 2**-20`` the
    series ``x - x**2/2 + x**3 (1/3 - x/4 + x**2/5)`` (``x**2`` in DD, the
    tail in float64: relative error below ``2**-99``), else ``log`` of the DD
    ``1 + x`` (its rounding ``2**-106`` absolute, at most ``2**-85`` of
    ``log1p``): relative error below ``2**-78`` in all."""
    x = _normalised(dd(x))
    xf = x.to_float()
    with np.errstate(under="ignore"):
        cube = dd(xf * xf * xf * ((1 / 3) + xf * (-0.25 + xf * 0.2)))
    series = x - x * x * 0.5 + cube
    return _select(x.e < -20, series, log(1 + x))


def tanh(x: Any) -> DD:
    """Hyperbolic tangent of a DD array: ``-d/(2 + d)`` with ``d = expm1(-2|x|)``
    in ``(-1, 0]`` (``2 + d`` never cancels; ``-d = 1 - e**-2|x|`` keeps
    ``expm1``'s relative accuracy): relative error below ``2**-76``; the sign
    of ``x`` (and of a zero) kept."""
    x = dd(x)
    d = expm1(-2 * abs(x))
    t = abs(-d / (2 + d))
    return _select(np.signbit(x.hi), -t, t)


# -------------------------------------------------------------------- compiled kernels

_NUMPY_PATH: dict[str, Any] = {"_add": _add, "_mul": _mul, "_div": _div, "_normal": _normal, "exp": exp,
                               "expm1": expm1, "log": log, "log1p": log1p, "tanh": tanh, "to_float": DD.to_float,
                               "_from_float": _from_float, "_pairwise": _pairwise, "_exact_sum": _exact_sum}


@functools.cache
def _kernels() -> Any:
    from . import dd_loops  # on first use: numba's import takes about a second
    return dd_loops


def _kernel_path() -> dict[str, Any]:
    def kernel(name: str) -> Any:
        def f(*xs: Any) -> DD:
            return DD(*_kernels().run(name.strip("_"), *(c for x in map(dd, xs) for c in (x.hi, x.lo, x.e))))
        return functools.wraps(_NUMPY_PATH[name])(f)

    return {**{n: kernel(n) for n in ("_add", "_mul", "_div", "exp", "expm1", "log", "log1p", "tanh")},
            "_normal": lambda hi, lo, e: DD(*_kernels().run("normal", hi, lo, e)),
            "_from_float": lambda x: DD(*_kernels().from_float(x)),
            "_pairwise": lambda x: DD(*_kernels().pairwise(x.hi, x.lo, x.e)),
            "_exact_sum": lambda t: r if (r := _kernels().exact_sum(t)) else _NUMPY_PATH["_exact_sum"](t),
            "to_float": functools.wraps(DD.to_float)(lambda self: _kernels().to_float(self.hi, self.lo, self.e))}


def use_kernels(on: bool) -> bool:
    """Compute with the compiled kernels (:mod:`dd_loops`; numba) or the NumPy path, the same bits
    either way; returns whether the kernels were in use. At import: the kernels, where numba is
    installed and the environment variable ``REFERENCE_IMPL_KERNELS`` is not ``numpy``."""
    global KERNELS
    if on and importlib.util.find_spec("numba") is None:
        raise RuntimeError("on: the compiled kernels need numba (pip install numba)")
    was, KERNELS = KERNELS, bool(on)
    path = _kernel_path() if on else _NUMPY_PATH
    DD.to_float = path["to_float"]  # type: ignore[method-assign]
    globals().update({k: v for k, v in path.items() if k != "to_float"})
    return was


KERNELS = False
"""Whether the compiled kernels are in use (:func:`use_kernels`)."""
use_kernels(importlib.util.find_spec("numba") is not None
            and os.environ.get("REFERENCE_IMPL_KERNELS", "").lower() != "numpy")
