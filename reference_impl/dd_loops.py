"""The compiled array loops of :mod:`reference_impl.double_double`, where numba is installed.

Each loop applies one scalar kernel of :mod:`reference_impl.dd_kernels` (the NumPy path's
algorithm, step for step) to every element of the ``(hi, lo, e)`` arrays of a DD, broadcast
against each other; the row sums and the exact full sum add in the NumPy path's order (the
exact sum is rounded once, as ``math.fsum`` rounds); the fused formulas go from float64
inputs to the rounded result in the steps of their DD spelling. One pass over the arrays replaces the
NumPy path's dozens of temporaries per operation, and the loops have no branches, so LLVM
vectorises them (SIMD lanes compute IEEE's bits as scalars do). double_double imports this
module on first use (``double_double.use_kernels`` turns it on and off).

numba caches each compiled loop on disk, keyed on the loop's own source file; the loops hold
a digest of the files their kernels and tables come from, so that an edit there compiles
them anew instead of loading stale code. The kernels and helpers they inline are not cached
on their own (``dd_kernels._jit``): a loop compiled anew compiles them anew too.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import dd_kernels, dd_tables, double_double
from .dd_kernels import (
    _ZERO_E,
    _add,
    _div,
    _exp,
    _expm1,
    _from_float,
    _jit,
    _jit_cached,
    _ldexp,
    _log,
    _log1p,
    _mul,
    _normal,
    _tanh,
    _to_float,
)

_F64, _I64 = np.dtype(np.float64), np.dtype(np.int64)
_DTYPES = (_F64, _F64, _I64)


# ------------------------------------------------------------------ sums


@_jit
def _pairwise_columns(sh, sl, se, n):  # type: ignore[no-untyped-def]
    """Sum the ``n`` rows of the ``(n, m)`` arrays pairwise into row 0, as the NumPy path sums
    along its last axis: ``(x0 + x1), (x2 + x3), ...`` level by level, an odd last term
    carried to the next; each level adds whole rows of ``m`` (the loop vectorises)."""
    k = n
    while k > 1:
        half = k // 2
        for i in range(half):
            ah, al, ae, bh, bl, be = sh[2 * i], sl[2 * i], se[2 * i], sh[2 * i + 1], sl[2 * i + 1], se[2 * i + 1]
            ch, cl, ce = sh[i], sl[i], se[i]
            for r in range(ch.size):
                ch[r], cl[r], ce[r] = _add(ah[r], al[r], ae[r], bh[r], bl[r], be[r])
        if k % 2:
            sh[half], sl[half], se[half] = sh[k - 1], sl[k - 1], se[k - 1]
        k = half + k % 2


@_jit
def _grow(partials, n, x):  # type: ignore[no-untyped-def]
    """Add ``x`` to the nonoverlapping expansion ``partials[:n]`` exactly (Shewchuk's
    msum, as ``math.fsum`` adds); the new length."""
    i = 0
    for j in range(n):
        y = partials[j]
        if abs(x) < abs(y):
            x, y = y, x
        hi = x + y
        lo = y - (hi - x)
        if lo != 0.0:
            partials[i] = lo
            i += 1
        x = hi
    partials[i] = x
    return i + 1


@_jit
def _rounded(partials, n):  # type: ignore[no-untyped-def]
    """The expansion's exact sum rounded once to nearest (``math.fsum``'s last step)."""
    if n == 0:
        return 0.0
    n -= 1
    hi, lo = partials[n], 0.0
    while n > 0:
        x = hi
        n -= 1
        y = partials[n]
        hi = x + y
        lo = y - (hi - x)
        if lo != 0.0:
            break
    if n > 0 and ((lo < 0.0 and partials[n - 1] < 0.0) or (lo > 0.0 and partials[n - 1] > 0.0)):
        y = lo * 2.0
        x = hi + y
        if y == x - hi:
            hi = x
    return hi


# ------------------------------------------------------------------ fused formulas
# A formula of an op evaluated in one pass from its float64 inputs to its rounded
# result, each step the kernel its NumPy-path spelling calls (``wide.rounded``
# names the spelling), in the same order.


@_jit
def _tanh_vjp(gh, gl, ge, xh, xl, xe):  # type: ignore[no-untyped-def]
    """``g * where(|x| < 0.55, 1 - t*t, 4e / ((1 + e) (1 + e)))``, ``t = tanh x``, ``e = exp(-2|x|)``."""
    ah, al = abs(xh), (-xl if xh < 0 else xl)
    eh, el, ee = _exp(ah * -2, al * -2, xe)
    th, tl, te = _tanh(xh, xl, xe)
    d = _ldexp(ah, min(max(xe, -1200), 1200)) - 0.55  # DD.__lt__ against a float
    ph, pl, pe = _mul(th, tl, te, th, tl, te)
    sh, sl, se = _add(0.5, 0.0, 1, -ph, -pl, pe)  # 1 - t*t, 1 = 0.5 * 2**1
    oh, ol, oe = _add(eh, el, ee, 0.5, 0.0, 1)
    qh, ql, qe = _mul(oh, ol, oe, oh, ol, oe)
    bh, bl, be = _div(eh * 4, el * 4, ee, qh, ql, qe)
    if not (al if d == 0 else d) < 0:
        sh, sl, se = bh, bl, be
    return _mul(gh, gl, ge, sh, sl, se)


@_jit
def _sigmoid(xh, xl, xe):  # type: ignore[no-untyped-def]
    """``where(x >= 0, 1, e) / (1 + e)``, ``e = exp(-|x|)`` (the quotient with 1 or with ``e``)."""
    eh, el, ee = _exp(-abs(xh), -(-xl if xh < 0 else xl), xe)
    dh, dl, de = _add(eh, el, ee, 0.5, 0.0, 1)
    if xh >= 0:
        eh, el, ee = 0.5, 0.0, 1
    return _div(eh, el, ee, dh, dl, de)


@_jit
def _sigmoid_vjp(gh, gl, ge, xh, xl, xe):  # type: ignore[no-untyped-def]
    """``g * (e / ((1 + e) (1 + e)))``, ``e = exp(-|x|)``."""
    eh, el, ee = _exp(-abs(xh), -(-xl if xh < 0 else xl), xe)
    dh, dl, de = _add(eh, el, ee, 0.5, 0.0, 1)
    qh, ql, qe = _mul(dh, dl, de, dh, dl, de)
    rh, rl, re = _div(eh, el, ee, qh, ql, qe)
    return _mul(gh, gl, ge, rh, rl, re)


def rounded(name: str, *arrays: np.ndarray) -> np.ndarray:
    """The fused formula ``name`` (a key of :data:`ROUNDED`) on float64 arrays of one shape (or
    broadcasting), each converted to a DD and the result rounded to float64, in one pass."""
    shape = np.broadcast_shapes(*(np.shape(a) for a in arrays))
    flat = []
    for a in arrays:
        b = np.asarray(a, dtype=np.float64)
        b = b if b.shape == shape else np.broadcast_to(b, shape)  # a view: read-only, copied below
        flat.append((b if b.flags.c_contiguous and b.flags.writeable else np.array(b, order="C")).reshape(-1))
    out = np.empty(flat[0].size)
    ROUNDED[name](*flat, out)
    return out.reshape(shape)


# ------------------------------------------------------------------ loops over arrays
# One loop per kernel, not one loop with a switch on the kernel: measured, a
# switch inside the loop slows exp from 22 to 35 ns an element and the
# normalisation from 3 to 8.


def _compiled(stamp: str) -> dict[str, Any]:
    """The loops called from Python, each holding ``stamp`` (a digest of the sources it is
    compiled from) so that numba's on-disk cache entry changes with any of them."""

    @_jit_cached
    def _pairwise_rows(hi, lo, e, n, oh, ol, oe):  # type: ignore[no-untyped-def]
        """Each row of ``n`` (the flat ``(rows, n)`` arrays) summed pairwise, transposed first."""
        _ = stamp  # in numba's cache key: the kernels' sources (module docstring)
        rows = oh.size
        if n == 0:
            oh[:], ol[:], oe[:] = 0.0, 0.0, _ZERO_E
            return
        sh, sl, se = np.empty((n, rows)), np.empty((n, rows)), np.empty((n, rows), dtype=np.int64)
        for r in range(rows):
            for i in range(n):
                sh[i, r], sl[i, r], se[i, r] = hi[r * n + i], lo[r * n + i], e[r * n + i]
        _pairwise_columns(sh, sl, se, n)
        oh[:], ol[:], oe[:] = sh[0], sl[0], se[0]

    @_jit_cached
    def _fsum_terms(terms):  # type: ignore[no-untyped-def]
        """``(fsum(terms), fsum(terms + [-fsum(terms)]))`` of finite terms: the sum rounded once and its remainder."""
        _ = stamp  # in numba's cache key: the kernels' sources (module docstring)
        partials = np.empty(160)
        n = 0
        for x in terms:
            n = _grow(partials, n, x)
        s1 = _rounded(partials, n)
        n = _grow(partials, n, -s1)
        return s1, _rounded(partials, n)

    @_jit_cached
    def _add_loop(ah, al, ae, bh, bl, be, oh, ol, oe):  # type: ignore[no-untyped-def]
        _ = stamp  # in numba's cache key: the kernels' sources (module docstring)
        for i in range(ah.size):
            oh[i], ol[i], oe[i] = _add(ah[i], al[i], ae[i], bh[i], bl[i], be[i])

    @_jit_cached
    def _mul_loop(ah, al, ae, bh, bl, be, oh, ol, oe):  # type: ignore[no-untyped-def]
        _ = stamp  # in numba's cache key: the kernels' sources (module docstring)
        for i in range(ah.size):
            oh[i], ol[i], oe[i] = _mul(ah[i], al[i], ae[i], bh[i], bl[i], be[i])

    @_jit_cached
    def _div_loop(ah, al, ae, bh, bl, be, oh, ol, oe):  # type: ignore[no-untyped-def]
        _ = stamp  # in numba's cache key: the kernels' sources (module docstring)
        for i in range(ah.size):
            oh[i], ol[i], oe[i] = _div(ah[i], al[i], ae[i], bh[i], bl[i], be[i])

    @_jit_cached
    def _normal_loop(h, lo, e, oh, ol, oe):  # type: ignore[no-untyped-def]
        _ = stamp  # in numba's cache key: the kernels' sources (module docstring)
        for i in range(h.size):
            oh[i], ol[i], oe[i] = _normal(h[i], lo[i], e[i])

    @_jit_cached
    def _exp_loop(h, lo, e, oh, ol, oe):  # type: ignore[no-untyped-def]
        _ = stamp  # in numba's cache key: the kernels' sources (module docstring)
        for i in range(h.size):
            oh[i], ol[i], oe[i] = _exp(h[i], lo[i], e[i])

    @_jit_cached
    def _expm1_loop(h, lo, e, oh, ol, oe):  # type: ignore[no-untyped-def]
        _ = stamp  # in numba's cache key: the kernels' sources (module docstring)
        for i in range(h.size):
            oh[i], ol[i], oe[i] = _expm1(h[i], lo[i], e[i])

    @_jit_cached
    def _log_loop(h, lo, e, oh, ol, oe):  # type: ignore[no-untyped-def]
        _ = stamp  # in numba's cache key: the kernels' sources (module docstring)
        for i in range(h.size):
            oh[i], ol[i], oe[i] = _log(h[i], lo[i], e[i])

    @_jit_cached
    def _log1p_loop(h, lo, e, oh, ol, oe):  # type: ignore[no-untyped-def]
        _ = stamp  # in numba's cache key: the kernels' sources (module docstring)
        for i in range(h.size):
            oh[i], ol[i], oe[i] = _log1p(h[i], lo[i], e[i])

    @_jit_cached
    def _tanh_loop(h, lo, e, oh, ol, oe):  # type: ignore[no-untyped-def]
        _ = stamp  # in numba's cache key: the kernels' sources (module docstring)
        for i in range(h.size):
            oh[i], ol[i], oe[i] = _tanh(h[i], lo[i], e[i])

    @_jit_cached
    def _to_float_loop(h, lo, e, out):  # type: ignore[no-untyped-def]
        _ = stamp  # in numba's cache key: the kernels' sources (module docstring)
        for i in range(h.size):
            out[i] = _to_float(h[i], lo[i], e[i])

    @_jit_cached
    def _from_float_loop(x, oh, ol, oe):  # type: ignore[no-untyped-def]
        _ = stamp  # in numba's cache key: the kernels' sources (module docstring)
        for i in range(x.size):
            oh[i], ol[i], oe[i] = _from_float(x[i])

    @_jit_cached
    def _tanh_rounded(x, out):  # type: ignore[no-untyped-def]
        _ = stamp  # in numba's cache key: the kernels' sources (module docstring)
        for i in range(x.size):
            xh, xl, xe = _from_float(x[i])
            th, tl, te = _tanh(xh, xl, xe)
            out[i] = _to_float(th, tl, te)

    @_jit_cached
    def _sigmoid_rounded(x, out):  # type: ignore[no-untyped-def]
        _ = stamp  # in numba's cache key: the kernels' sources (module docstring)
        for i in range(x.size):
            xh, xl, xe = _from_float(x[i])
            sh, sl, se = _sigmoid(xh, xl, xe)
            out[i] = _to_float(sh, sl, se)

    @_jit_cached
    def _tanh_vjp_rounded(g, x, out):  # type: ignore[no-untyped-def]
        _ = stamp  # in numba's cache key: the kernels' sources (module docstring)
        for i in range(x.size):
            gh, gl, ge = _from_float(g[i])
            xh, xl, xe = _from_float(x[i])
            rh, rl, re = _tanh_vjp(gh, gl, ge, xh, xl, xe)
            out[i] = _to_float(rh, rl, re)

    @_jit_cached
    def _sigmoid_vjp_rounded(g, x, out):  # type: ignore[no-untyped-def]
        _ = stamp  # in numba's cache key: the kernels' sources (module docstring)
        for i in range(x.size):
            gh, gl, ge = _from_float(g[i])
            xh, xl, xe = _from_float(x[i])
            rh, rl, re = _sigmoid_vjp(gh, gl, ge, xh, xl, xe)
            out[i] = _to_float(rh, rl, re)

    return {k: v for k, v in locals().items() if k != "stamp"}


def _digest() -> str:
    """SHA-256 of the sources the loops are compiled from (the kernels, the tables and
    their data, the error-free transformations): numba keys its cache on the loop's own
    file only, and compiles the tables in as constants."""
    h = hashlib.sha256()
    for m in (dd_kernels, dd_tables, double_double):
        h.update(Path(m.__file__ or "").read_bytes())
    for table in (dd_tables.EXP_TH, dd_tables.EXP_TL, dd_tables.LOG_TH, dd_tables.LOG_TL):
        h.update(table.tobytes())
    return h.hexdigest()


_C = _compiled(_digest())


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


LOOPS = {"add": _C["_add_loop"], "mul": _C["_mul_loop"], "div": _C["_div_loop"], "normal": _C["_normal_loop"],
         "exp": _C["_exp_loop"], "expm1": _C["_expm1_loop"], "log": _C["_log_loop"], "log1p": _C["_log1p_loop"],
         "tanh": _C["_tanh_loop"]}
ROUNDED = {"tanh": _C["_tanh_rounded"], "tanh_vjp": _C["_tanh_vjp_rounded"], "sigmoid": _C["_sigmoid_rounded"],
           "sigmoid_vjp": _C["_sigmoid_vjp_rounded"]}


def run(name: str, *parts: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The kernel ``name`` (a key of :data:`LOOPS`) on the ``(hi, lo, e)`` of
    one DD (or two, for ``add``, ``mul``, ``div``), broadcast: the result's ``(hi, lo, e)``."""
    return _run(LOOPS[name], parts)


def to_float(hi: Any, lo: Any, e: Any) -> np.ndarray:
    """A DD's value rounded to float64 once (``DD.to_float``'s algorithm)."""
    shape, flat = _flat((hi, lo, e))
    out = np.empty(flat[0].size)
    _C["_to_float_loop"](*flat, out)
    return out.reshape(shape)


def from_float(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A float64 array as the ``(hi, lo, e)`` of a DD, exactly (``double_double.dd``)."""
    shape, (flat,) = _flat((x,))
    out = (np.empty(flat.size), np.empty(flat.size), np.empty(flat.size, dtype=np.int64))
    _C["_from_float_loop"](flat, *out)
    return out[0].reshape(shape), out[1].reshape(shape), out[2].reshape(shape)


def pairwise(hi: np.ndarray, lo: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairwise DD sum over the last axis (keepdims), in the NumPy path's order."""
    shape = np.shape(hi)
    n = shape[-1]
    _, flat = _flat((hi, lo, e))
    rows = flat[0].size // n if n else math.prod(shape[:-1])
    out = (np.empty(rows), np.empty(rows), np.empty(rows, dtype=np.int64))
    _C["_pairwise_rows"](*flat, n, *out)
    keep = (*shape[:-1], 1)
    return out[0].reshape(keep), out[1].reshape(keep), out[2].reshape(keep)


def exact_sum(terms: np.ndarray) -> tuple[float, float] | None:
    """``double_double._exact_sum``: the exact sum of float64 ``terms`` rounded once, and its
    remainder rounded once; None where a term is not finite (``math.fsum`` has its own rules there)."""
    if not np.all(np.isfinite(terms)):
        return None
    s1, s2 = _C["_fsum_terms"](np.ascontiguousarray(terms, dtype=np.float64))
    return float(s1), float(s2)


def warm(start: float = 0.0) -> None:
    """Compile (or load from numba's cache) every loop now, on small arrays, instead of on first use.

    ``start`` (in ``[0, 1)``) is where in the list of loops to begin, wrapping round: processes
    that warm at the same time on a cold cache (test workers) begin at different places, so
    that each compiles its share and then loads the others' from the cache."""
    if not 0.0 <= start < 1.0:
        raise ValueError(f"start: {start!r} is not in [0, 1)")
    x = from_float(np.array([[0.5, -3.0], [2.0**-1074, 7.0]]))
    calls: list[tuple[Callable[..., Any], tuple[Any, ...]]] = [
        *((run, (n, *x, *x) if n in ("add", "mul", "div") else (n, *x)) for n in LOOPS),
        (to_float, x), (pairwise, x), (exact_sum, (x[0].ravel(),)),
        *((rounded, (n, x[0], x[0]) if n.endswith("_vjp") else (n, x[0])) for n in ROUNDED)]
    k = int(start * len(calls))
    for f, args in calls[k:] + calls[:k]:
        f(*args)
