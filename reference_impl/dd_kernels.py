"""Compiled kernels for :mod:`reference_impl.double_double`, where numba is installed.

Each kernel is the NumPy path's algorithm, step for step, on one element
at a time: the same IEEE ``+ - * /`` in the same order, the same exact
scalings by powers of two and the same tables (:mod:`reference_impl.dd_tables`);
TwoSum, Fast2Sum and Veltkamp's splitting are the NumPy path's own functions,
compiled for scalars. Nothing is compiled with fast-math (no reassociation,
no contraction into FMA), so the kernels return the NumPy path's bits (the
test suite compares them on every kernel and op). One pass over the
arrays replaces the NumPy path's dozens of array temporaries per operation.

The kernels take and return the ``(hi, lo, e)`` arrays of a DD, broadcast
against each other. double_double imports this module on first use, where
numba is installed (``double_double.use_kernels`` turns it on and off).
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


_F64, _I64 = np.dtype(np.float64), np.dtype(np.int64)
_DTYPES = (_F64, _F64, _I64)


def _jit(f: Any) -> Any:
    """Compiled on first call and cached on disk; IEEE semantics (a division by 0 is inf or nan, no exception)."""
    return numba.njit(cache=True, nogil=True, inline="always", error_model="numpy")(f)


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
    """``math.frexp`` from the bits for a normal ``x``; the rest (zeros,
    subnormals, inf, nan) by ``math.frexp`` itself."""
    b = _as_bits(x)
    field = (b >> 52) & 0x7FF
    if field == 0 or field == 0x7FF:
        return math.frexp(x)
    return _as_float((b & ~(np.int64(0x7FF) << 52)) | (np.int64(1022) << 52)), field - 1022


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
    if e > limit:
        return math.copysign(2.0**limit, hi), 0.0
    p = _pow2(min(max(e, -1022), limit))
    return hi * p, lo * p


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
def _to_float(hi: float, lo: float, e: int) -> float:
    e = min(max(e, -2300), 2300)
    full = math.ldexp(hi + lo, e)
    if abs(full) < _TINY:
        h = math.ldexp(hi, e)
        rest = (hi - math.ldexp(h, -e)) + lo
        full = h + math.ldexp(rest, e)
    return math.copysign(0.0, hi) if full == 0 else full


# ------------------------------------------------------------------ loops over arrays
# One loop per kernel, not one loop with a switch on the kernel: measured, a
# switch inside the loop slows exp from 22 to 35 ns an element and the
# normalisation from 3 to 8.


@_jit
def _add_loop(ah, al, ae, bh, bl, be, oh, ol, oe):  # type: ignore[no-untyped-def]
    for i in range(ah.size):
        oh[i], ol[i], oe[i] = _add(ah[i], al[i], ae[i], bh[i], bl[i], be[i])


@_jit
def _mul_loop(ah, al, ae, bh, bl, be, oh, ol, oe):  # type: ignore[no-untyped-def]
    for i in range(ah.size):
        oh[i], ol[i], oe[i] = _mul(ah[i], al[i], ae[i], bh[i], bl[i], be[i])


@_jit
def _div_loop(ah, al, ae, bh, bl, be, oh, ol, oe):  # type: ignore[no-untyped-def]
    for i in range(ah.size):
        oh[i], ol[i], oe[i] = _div(ah[i], al[i], ae[i], bh[i], bl[i], be[i])


@_jit
def _normal_loop(h, lo, e, oh, ol, oe):  # type: ignore[no-untyped-def]
    for i in range(h.size):
        oh[i], ol[i], oe[i] = _normal(h[i], lo[i], e[i])


@_jit
def _exp_loop(h, lo, e, oh, ol, oe):  # type: ignore[no-untyped-def]
    for i in range(h.size):
        oh[i], ol[i], oe[i] = _exp(h[i], lo[i], e[i])


@_jit
def _expm1_loop(h, lo, e, oh, ol, oe):  # type: ignore[no-untyped-def]
    for i in range(h.size):
        oh[i], ol[i], oe[i] = _expm1(h[i], lo[i], e[i])


@_jit
def _log_loop(h, lo, e, oh, ol, oe):  # type: ignore[no-untyped-def]
    for i in range(h.size):
        oh[i], ol[i], oe[i] = _log(h[i], lo[i], e[i])


@_jit
def _log1p_loop(h, lo, e, oh, ol, oe):  # type: ignore[no-untyped-def]
    for i in range(h.size):
        oh[i], ol[i], oe[i] = _log1p(h[i], lo[i], e[i])


@_jit
def _tanh_loop(h, lo, e, oh, ol, oe):  # type: ignore[no-untyped-def]
    for i in range(h.size):
        oh[i], ol[i], oe[i] = _tanh(h[i], lo[i], e[i])


@_jit
def _to_float_loop(h, lo, e, out):  # type: ignore[no-untyped-def]
    for i in range(h.size):
        out[i] = _to_float(h[i], lo[i], e[i])


def _flat(parts: tuple[Any, ...]) -> tuple[tuple[int, ...], list[np.ndarray]]:
    """The common shape of DD components and each as a contiguous, writable
    1-D array of its dtype (float64 halves, int64 exponents), broadcast where
    the shapes differ: one compiled signature per kernel (a strided or
    read-only array would compile another). A DD's own components (arrays of
    one shape and these dtypes) skip the conversion."""
    shape = np.shape(parts[0])
    if not all(type(p) is np.ndarray and p.shape == shape and p.dtype is _DTYPES[i % 3] for i, p in enumerate(parts)):
        shape = np.broadcast_shapes(*(np.shape(p) for p in parts))
        parts = tuple(_filled(np.asarray(p, dtype=_DTYPES[i % 3]), shape) for i, p in enumerate(parts))
    return shape, [(p if p.flags.c_contiguous and p.flags.writeable else np.array(p, order="C")).reshape(-1)
                   for p in parts]


def _filled(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``a`` broadcast to ``shape`` as a new array (a constant of a formula, a row's sum)."""
    if a.shape == shape:
        return a
    out = np.empty(shape, a.dtype)
    out[...] = a
    return out


def _run(loop: Any, parts: tuple[Any, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    shape, flat = _flat(parts)
    n = flat[0].size
    out = (np.empty(n), np.empty(n), np.empty(n, dtype=np.int64))
    loop(*flat, *out)
    return out[0].reshape(shape), out[1].reshape(shape), out[2].reshape(shape)


LOOPS = {"add": _add_loop, "mul": _mul_loop, "div": _div_loop, "normal": _normal_loop, "exp": _exp_loop,
         "expm1": _expm1_loop, "log": _log_loop, "log1p": _log1p_loop, "tanh": _tanh_loop}


def run(name: str, *parts: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The kernel ``name`` (a key of :data:`LOOPS`) on the ``(hi, lo, e)`` of
    one DD (or two, for ``add``, ``mul``, ``div``), broadcast: the result's ``(hi, lo, e)``."""
    return _run(LOOPS[name], parts)


def to_float(hi: Any, lo: Any, e: Any) -> np.ndarray:
    """A DD's value rounded to float64 once (``DD.to_float``'s algorithm)."""
    shape, flat = _flat((hi, lo, e))
    out = np.empty(flat[0].size)
    _to_float_loop(*flat, out)
    return out.reshape(shape)
