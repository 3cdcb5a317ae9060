"""Compiled scalar kernels for :mod:`reference_impl.double_double`, where numba is installed.

Each kernel is the NumPy path's algorithm, step for step, on one element: the same IEEE
``+ - * /`` in the same order, the same exact scalings by powers of two and the same tables
(:mod:`reference_impl.dd_tables`); TwoSum, Fast2Sum and Veltkamp's splitting are the NumPy
path's own functions, compiled for scalars. Nothing is compiled with fast-math (no
reassociation, no contraction into FMA), so the kernels return the NumPy path's bits (the test
suite compares them on every kernel and op). No kernel branches: a choice is a select of two
computed values, and ``frexp``/``ldexp`` come from the IEEE bits, so that the array loops over
them (:mod:`reference_impl.dd_loops`) vectorise.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

from . import dd_tables as T
from .double_double import fast_two_sum, two_sum

_ZERO_E, _ALIGN, _TINY = T.ZERO_E, T.ALIGN, T.TINY
_EXP_TH, _EXP_TL, _EXP_THH, _EXP_THL = T.EXP_TH, T.EXP_TL, T.EXP_THH, T.EXP_THL
_LOG_TH, _LOG_TL = T.LOG_TH, T.LOG_TL
_L1, _L2, _L3, _INV_L = T.L1, T.L2, T.L3, T.INV_L
_LN2_HI, _LN2_LO, _LN2_HH, _LN2_HL = T.LN2_HI, T.LN2_LO, T.LN2_HH, T.LN2_HL
_EXP_MASK, _LOG_N, _HALF_LOG_N, _SQRT_HALF = T.EXP_N - 1, float(T.LOG_N), T.LOG_N // 2, T.SQRT_HALF
_TWO54 = 2.0**54


def _jit(f: Any) -> Any:
    """Compiled on first use in each process, never cached on disk on its own; IEEE semantics (a
    division by 0 is inf or nan, no exception); inlined by LLVM into its callers (``forceinline``:
    a third of the compile time of numba's own inlining, the same vectorised loops). Only the
    loops of :mod:`reference_impl.dd_loops` are cached (:func:`_jit_cached`), keyed on a digest of
    everything they inline: numba keys a cached function on its own file alone, so a kernel cached
    here would outlive an edit of the tables it reads, and a loop compiled anew would link it."""
    return numba.njit(cache=False, nogil=True, forceinline=True, error_model="numpy")(f)


def _jit_cached(f: Any) -> Any:
    """:func:`_jit`'s compilation, cached on disk (for the loops called from Python). Where numba
    finds no writable cache directory (a read-only install and no writable user cache;
    ``NUMBA_CACHE_DIR`` names one), compiled in every process instead."""
    try:
        return numba.njit(cache=True, nogil=True, error_model="numpy")(f)
    except RuntimeError as e:
        if "cannot cache" not in str(e):
            raise
        return numba.njit(cache=False, nogil=True, error_model="numpy")(f)


# ------------------------------------------------------------------ error-free transformations (scalars)


# the NumPy path's own functions, compiled for scalars
_two_sum, _fast_two_sum, _split = _jit(two_sum), _jit(fast_two_sum), _jit(T.veltkamp)


@_jit
def _two_prod_halves(a: float, b: float, ah: float, al: float) -> tuple[float, float]:
    p = a * b
    bh, bl = _split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


@_jit
def _two_prod(a: float, b: float) -> tuple[float, float]:
    ah, al = _split(a)
    return _two_prod_halves(a, b, ah, al)


@_jit
def _two_sqr(a: float) -> tuple[float, float]:
    p = a * a
    ah, al = _split(a)
    return p, ((ah * ah - p) + 2 * (ah * al)) + al * al


def _intrinsic(f: Any) -> Any:
    return intrinsic(f)


@_intrinsic
def _as_float(typingctx: Any, bits: Any) -> Any:
    """The float64 whose IEEE bits are the int64 ``bits``."""
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


@_intrinsic
def _as_bits(typingctx: Any, x: Any) -> Any:
    """The IEEE bits of the float64 ``x`` as an int64."""
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.IntType(64))
    return types.int64(types.float64), codegen


@_jit
def _pow2(k: int) -> float:
    """``2.0**k`` from the bits, for ``k`` in ``[-1022, 1023]`` (as the callers clamp)."""
    return _as_float(np.int64(k + 1023) << 52)


@_jit
def _frexp(x: float) -> tuple[float, int]:
    """``math.frexp`` from the bits, without a branch (the loops vectorise):
    a subnormal ``x`` scaled by ``2**54`` first (exact), a zero, inf or nan
    returned as ``(x, 0)``."""
    sub = ((_as_bits(x) >> 52) & 0x7FF) == 0
    b = _as_bits(x * (_TWO54 if sub else 1.0))
    field = (b >> 52) & 0x7FF
    m = _as_float((b & ~(np.int64(0x7FF) << 52)) | (np.int64(1022) << 52))
    special = (x == 0) | (field == 0x7FF)
    return (x if special else m), (0 if special else field - (1076 if sub else 1022))


# ------------------------------------------------------------------ DD arithmetic (scalars)


@_jit
def _normal(hi: float, lo: float, e: int) -> tuple[float, float, int]:
    m, k = _frexp(hi)
    low = lo * _pow2(min(-k, 1023))
    return m, low, (_ZERO_E if m == 0 else e + k)


@_jit
def _add(ah: float, al: float, ae: int, bh: float, bl: float, be: int) -> tuple[float, float, int]:
    e = max(ae, be)
    pa, pb = _pow2(max(ae - e, _ALIGN)), _pow2(max(be - e, _ALIGN))
    s0, t = _two_sum(ah * pa, bh * pb)
    u, v = _two_sum(al * pa, bl * pb)
    s, t = _fast_two_sum(s0, t + u)
    s, t = _fast_two_sum(s, t + v)
    return _normal(s0 if s == 0 else s, t, e)


@_jit
def _mul(ah: float, al: float, ae: int, bh: float, bl: float, be: int) -> tuple[float, float, int]:
    p, t = _two_prod(ah, bh)
    s, t = _fast_two_sum(p, t + (ah * bl + al * bh))
    return (p if p == 0 else s), t, ae + be


@_jit
def _div(ah: float, al: float, ae: int, bh: float, bl: float, be: int) -> tuple[float, float, int]:
    q = ah / bh
    p, t = _two_prod(q, bh)
    r = (((ah - p) - t) + al - q * bl) / bh
    s, t = _fast_two_sum(q, r)
    return (q if q == 0 else s), t, ae - be


@_jit
def _plain(hi: float, lo: float, e: int, limit: int) -> tuple[float, float]:
    big = e > limit
    p = _pow2(min(max(e, -1022), limit))
    return (math.copysign(2.0**limit, hi) if big else hi * p), (0.0 if big else lo * p)


@_jit
def _exp_parts(hi: float, lo: float, e: int) -> tuple[Any, Any, float, float, float]:
    xh, xl = _plain(hi, lo, e, 12)
    k = np.rint(xh * _INV_L)
    rh, rl = _two_sum(xh - k * _L1, -(k * _L2))
    rh, rl = _fast_two_sum(rh, rl + (xl - k * _L3))
    ki = np.int64(k)
    j = ki & _EXP_MASK
    sq, sqe = _two_sqr(rh)
    tail = rh * sq * ((1 / 6) + rh * ((1 / 24) + rh * ((1 / 120) + rh * (1 / 720))))
    eh, el = _fast_two_sum(rh, 0.5 * sq)
    eh, el = _fast_two_sum(eh, el + (rl + (0.5 * sqe + (rh * rl + tail))))
    return ki >> 11, j, _EXP_TL[j], eh, el


@_jit
def _exp(hi: float, lo: float, e: int) -> tuple[float, float, int]:
    hi, lo, e = _normal(hi, lo, e)
    m, j, tl, eh, el = _exp_parts(hi, lo, e)
    th = _EXP_TH[j]
    p, pt = _two_prod_halves(th, eh, _EXP_THH[j], _EXP_THL[j])
    s, t = _fast_two_sum(th, p)
    s, t = _fast_two_sum(s, t + (tl + (pt + (th * el + tl * eh))))
    return _normal(s, t, m)


@_jit
def _expm1(hi: float, lo: float, e: int) -> tuple[float, float, int]:
    hi, lo, e = _normal(hi, lo, e)
    if e < -40:  # x + x**2/2
        sh, sl, se = _mul(hi, lo, e, hi, lo, e)
        return _add(hi, lo, e, sh * 0.5, sl * 0.5, se)
    m, j, tl, eh, el = _exp_parts(hi, lo, e)
    sc = _pow2(max(m, -1022))
    th, tl = _EXP_TH[j] * sc, tl * sc
    base_h, base_l = _two_sum(th, -1.0)
    p, pt = _two_prod(th, eh)
    s, t = _two_sum(base_h, p)
    s, t = _fast_two_sum(s, t + (base_l + tl + (pt + (th * el + tl * eh))))
    return _normal(s, t, 0)


@_jit
def _log(hi: float, lo: float, e: int) -> tuple[float, float, int]:
    hi, lo, e = _normal(hi, lo, e)
    if not hi > 0 or hi == math.inf:  # outside the domain; no table index from there
        return (-math.inf if hi == 0 else math.inf if hi == math.inf else math.nan), 0.0, 0
    low = hi < _SQRT_HALF
    mh, ml = (2 * hi, 2 * lo) if low else (hi, lo)
    nf = float(e - 1 if low else e)
    j = np.rint(mh * _LOG_N)
    c = j / _LOG_N
    ji = np.int64(j) - _HALF_LOG_N
    ch, ce = _frexp(c)
    dh, dl = _two_sum(mh - c, ml)
    nh, nl, ne = _normal(dh, dl, 0)
    r_h, r_l, r_e = _div(nh, nl, ne, ch, 0.0, _ZERO_E if ch == 0 else ce)
    rh, rl = _plain(r_h, r_l, r_e, 0)
    sq, sqe = _two_sqr(rh)
    tail = rh * sq * ((1 / 3) + rh * (-0.25 + rh * (0.2 + rh * (-1 / 6 + rh * (1 / 7)))))
    lh, ll = _fast_two_sum(rh, -0.5 * sq)
    lh, ll = _two_sum(lh, ll + (rl + (-0.5 * sqe - rh * rl + tail)))
    head_h, head_l = _two_prod_halves(_LN2_HI, nf, _LN2_HH, _LN2_HL)
    head_l = head_l + nf * _LN2_LO
    s1, t1 = _two_sum(_LOG_TH[ji], lh)
    s, t = _two_sum(head_h, s1)
    s, t = _two_sum(s, t + (head_l + (t1 + (_LOG_TL[ji] + ll))))
    return _normal(s, t, 0)


@_jit
def _from_float(x: float) -> tuple[float, float, int]:
    m, k = _frexp(x)
    return m, 0.0, (_ZERO_E if m == 0 else k)


@_jit
def _log1p(hi: float, lo: float, e: int) -> tuple[float, float, int]:
    hi, lo, e = _normal(hi, lo, e)
    if e < -20:  # x - x**2/2 + x**3 (1/3 - x/4 + x**2/5)
        xf = _to_float(hi, lo, e)
        cube = xf * xf * xf * ((1 / 3) + xf * (-0.25 + xf * 0.2))
        sh, sl, se = _mul(hi, lo, e, hi, lo, e)
        dh, dl, de = _add(hi, lo, e, -(sh * 0.5), -(sl * 0.5), se)
        ch, cl, ce = _from_float(cube)
        return _add(dh, dl, de, ch, cl, ce)
    oh, ol, oe = _add(hi, lo, e, 0.5, 0.0, 1)  # x + 1, 1 = 0.5 * 2**1
    return _log(oh, ol, oe)


@_jit
def _tanh(hi: float, lo: float, e: int) -> tuple[float, float, int]:
    dh, dl, de = _expm1(abs(hi) * -2, (-lo if hi < 0 else lo) * -2, e)
    nh, nl, ne = _add(dh, dl, de, 0.5, 0.0, 2)  # 2 + d, 2 = 0.5 * 2**2
    th, tl, te = _div(-dh, -dl, de, nh, nl, ne)
    th, tl = abs(th), (-tl if th < 0 else tl)
    return (-th, -tl, te) if math.copysign(1.0, hi) < 0 else (th, tl, te)


@_jit
def _ldexp(v: float, e: int) -> float:
    """``math.ldexp(v, e)`` for ``e`` in ``[-2300, 2300]`` and ``|v| < 2**969`` (every use
    below), without a call (the loops vectorise): exact scalings by powers of two
    with the one rounding last; below ``2**-2044`` (``e`` clamped) the result is 0 either way."""
    e = max(e, -2044)
    neg = e < -1022
    a = e + 1022 if neg else min(e, 1023)
    b = -1022 if neg else min(max(e - 1023, 0), 1023)
    return (v * _pow2(a)) * _pow2(b)


@_jit
def _to_float(hi: float, lo: float, e: int) -> float:
    e = min(max(e, -2300), 2300)
    full = _ldexp(hi + lo, e)
    h = _ldexp(hi, e)
    rest = (hi - _ldexp(h, -e)) + lo
    sub = h + _ldexp(rest, e)
    out = sub if abs(full) < _TINY else full
    return math.copysign(0.0, hi) if out == 0 else out
