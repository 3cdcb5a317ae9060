"""The wider format the reference computes in, the same on every platform.

Each op evaluates its formula in a format wider than the inputs' and rounds
once (``reference_impl.ops``): float16, bfloat16 and float32 inputs in
float64 (their products are exact there); float64 inputs in
double-double with an exponent of its own (:mod:`reference_impl.double_double`:
106-bit significands from IEEE ``+ - * /`` alone, no ``longdouble``, no
``libm``), so x86-64, aarch64, Windows and Apple silicon give the same bits
and a tiny slope times a huge cotangent neither underflows nor overflows.

Sums of products (``matmul``, ``column_sums`` below: every product of the
``matmul`` and ``dense`` ops and VJPs) take the working-dtype arrays
instead: float16, bfloat16 and float32 in float64 BLAS (exact products), float64 through
:mod:`reference_impl.exact_dot` (Ozaki's error-free splitting on float64
BLAS, rounded once).

The formulas are written once, with NumPy operators and the elementary
functions below (``exp``, ``log``, ``log1p``, ``tanh``), which dispatch on
the array: NumPy's own for float64, :mod:`double_double`'s for a
:class:`~reference_impl.double_double.DD`.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from . import double_double as ddm
from . import exact_dot
from .broadcasting import unbroadcast
from .double_double import DD
from .dtypes import is_half

__all__ = ["DD", "extended", "wide", "round_to", "precision", "neg", "exp", "log", "log1p", "tanh", "matmul",
           "column_sums", "sum_to", "blockwise", "blocked", "rounded", "BLOCK", "KERNEL_BLOCK"]

_LONG = np.longdouble
"""The platform's ``longdouble``, which no result depends on (tests set this
to float64 and compare bits)."""


def extended() -> bool:
    """Whether the platform's ``longdouble`` is wider than float64 (x87's
    80-bit format); reported only: float64 computes in double-double either way."""
    info = np.finfo(_LONG)
    return bool(info.nmant >= 63 and info.maxexp > np.finfo(np.float64).maxexp)


def wide(*arrays: np.ndarray) -> tuple[Any, ...]:
    """The inputs in the format the formulas run in: float16, bfloat16 and
    float32 -> float64 (their products are exact there); float64 -> :class:`DD`, exactly."""
    if arrays[0].dtype == np.float32 or is_half(arrays[0].dtype):
        return tuple(np.asarray(a, dtype=np.float64) for a in arrays)
    return tuple(ddm.dd(np.asarray(a, dtype=np.float64)) for a in arrays)


def round_to(y: Any, like: np.ndarray) -> np.ndarray:
    """Round a wide result once to ``like``'s dtype: always a new array. A
    true value beyond the dtype's range becomes +-inf, as IEEE rounding says."""
    if isinstance(y, DD):
        y = y.to_float()
    with np.errstate(over="ignore"):
        return np.array(y, dtype=like.dtype, copy=True)


_NO_CONTEXT = contextlib.nullcontext()


def precision() -> contextlib.AbstractContextManager[Any]:
    """The context the formulas run in: nothing to set (kept for callers)."""
    return _NO_CONTEXT


def neg(x: Any) -> Any:
    """``-x`` with IEEE's sign of zero in every format."""
    return -x if isinstance(x, DD) else np.asarray(np.negative(x))


def exp(x: Any) -> Any:
    """``e**x`` elementwise in ``x``'s format."""
    return ddm.exp(x) if isinstance(x, DD) else np.asarray(np.exp(x))


def log(x: Any) -> Any:
    """Natural logarithm elementwise in ``x``'s format."""
    return ddm.log(x) if isinstance(x, DD) else np.asarray(np.log(x))


def log1p(x: Any) -> Any:
    """``log(1 + x)`` elementwise in ``x``'s format, accurate for tiny ``x``."""
    return ddm.log1p(x) if isinstance(x, DD) else np.asarray(np.log1p(x))


def tanh(x: Any) -> Any:
    """Hyperbolic tangent elementwise in ``x``'s format."""
    return ddm.tanh(x) if isinstance(x, DD) else np.asarray(np.tanh(x))


def rounded(name: str, spec: Callable[..., Any], *arrays: np.ndarray) -> np.ndarray:
    """``round_to(spec(*wide(*arrays)), arrays[-1])``: the formula ``spec`` on the inputs in the
    wide format, rounded once to the last input's dtype. For float64 inputs where the kernels are
    in use, one compiled pass from the inputs to the rounded result (``dd_loops.ROUNDED[name]``:
    the same steps in the same order, so the same bits)."""
    if ddm.KERNELS and all(a.dtype == np.float64 for a in arrays):
        return np.asarray(ddm._kernels().rounded(name, *arrays))
    return round_to(spec(*wide(*arrays)), arrays[-1])


def matmul(a: np.ndarray, b: np.ndarray, bias: np.ndarray | None = None,
           shape: tuple[int, ...] | None = None) -> np.ndarray:
    """``a @ b (+ bias)`` of working-dtype arrays (at least 2-D, batch axes
    broadcast), summed over the batch axes that ``shape`` broadcasts (as
    ``unbroadcast``), in the wide format: float16, bfloat16 and float32 as
    ``np.matmul`` in float64 (every product exact); float64 by :func:`exact_dot.matmul`, already the
    exact value rounded (within 3/4 ulp, or 1/2 ulp plus 1/4 ulp of
    ``|a| @ |b| + |bias|`` where the terms cancel)."""
    if a.dtype == np.float64:
        return exact_dot.matmul(a, b, bias, shape)
    out = np.matmul(*wide(a, b))
    if bias is not None:
        out = out + wide(bias)[0]
    return out if shape is None else unbroadcast(out, shape)


def column_sums(x: np.ndarray) -> np.ndarray:
    """``x.sum(axis=0)`` of a 2-D working-dtype array in the wide format:
    float16, bfloat16 and float32 summed in float64, float64 as the product ``1^T x`` of
    :func:`exact_dot.matmul` (exact terms, one rounding)."""
    if x.dtype == np.float64:
        return exact_dot.matmul(np.ones((1, x.shape[0])), x)[0]
    return np.asarray(wide(x)[0].sum(axis=0))


def sum_to(x: Any, shape: tuple[int, ...]) -> Any:
    """``unbroadcast`` in ``x``'s format: a :class:`DD` summed pairwise in
    double-double over the broadcast axes, any other array as NumPy's."""
    if not isinstance(x, DD):
        return unbroadcast(x, shape)
    shape = tuple(int(n) for n in shape)
    extra = x.ndim - len(shape)
    if extra < 0 or any(n not in (1, m) for n, m in zip(shape, x.shape[extra:])):
        raise ValueError(f"shape: {shape} does not broadcast to grad's shape {x.shape}")
    if extra > 0:
        x = x.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and x.shape[i] != 1)
    if stretched:
        x = x.sum(axis=stretched, keepdims=True)
    return x.reshape(shape)


BLOCK = 4096
"""Elements per block of :func:`blockwise`: a double-double formula makes
dozens of temporaries, and at this size they stay in cache and come from
the allocator's free lists instead of fresh pages."""
KERNEL_BLOCK = 16384
"""Elements per block where the double-double kernels are in use
(``double_double.KERNELS``) and the input is float64: each operation is one
pass with three temporaries, and a longer block has less Python around it."""


def blockwise(f: Callable[..., tuple[Any, ...]], *arrays: np.ndarray, rows: bool = False) -> tuple[Any, ...]:
    """``f(*arrays)`` (a tuple of results) evaluated on consecutive blocks of
    about :data:`BLOCK` (:data:`KERNEL_BLOCK`) elements and joined: for elementwise formulas
    (arrays of one shape), or with ``rows`` for row-wise ones (blocks of
    whole rows of the last axis; each result has the rows' leading shape,
    with or without the last axis). The same bits as one call: the formulas
    act on each element or row alone."""
    x = arrays[0]
    block = KERNEL_BLOCK if ddm.KERNELS and x.dtype == np.float64 else BLOCK
    if x.size <= block or x.ndim == 0 or (rows and x.ndim == 1):  # a single row is one block
        return f(*arrays)
    width = x.shape[-1] if rows else 1
    flat = [a.reshape(-1, width) if rows else a.reshape(-1) for a in arrays]
    step = max(1, block // max(width, 1))
    parts = [f(*(a[i:i + step] for a in flat)) for i in range(0, flat[0].shape[0], step)]
    lead = x.shape[:-1] if rows else x.shape
    tails = [(r.shape if isinstance(r, DD) else np.shape(r))[1:] for r in parts[0]]
    return tuple(_join([p[j] for p in parts]).reshape(lead + tail) for j, tail in enumerate(tails))


def _join(parts: list[Any]) -> Any:
    if isinstance(parts[0], DD):
        return DD(*(np.concatenate([getattr(p, c) for p in parts]) for c in ("hi", "lo", "e")))
    return np.concatenate(parts)


def blocked(rows: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a forward or VJP rule whose last positional argument is the
    op's input: every array argument of that shape is cut by :func:`blockwise`
    (the others, parameters and a cotangent of another shape, pass whole)."""
    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(f)
        def run(*args: Any, **kwargs: Any) -> Any:
            shape = np.shape(args[-1])
            cut = [i for i, a in enumerate(args) if isinstance(a, np.ndarray) and a.shape == shape]
            single = []

            def call(*blocks: np.ndarray) -> tuple[Any, ...]:
                full = list(args)
                for i, b in zip(cut, blocks):
                    full[i] = b
                out = f(*full, **kwargs)
                single.append(not isinstance(out, tuple))
                return (out,) if single[-1] else tuple(out)

            res = blockwise(call, *(args[i] for i in cut), rows=rows)
            return res[0] if single[0] else res
        return run
    return decorate
