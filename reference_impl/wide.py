"""The wider format the reference computes in, on every platform.

Each op evaluates its formula in a format wider than the inputs' and rounds
once (``reference_impl.ops``): float16, bfloat16 and float32 inputs in
float64 (their products are exact there); float64 inputs in
NumPy's ``longdouble`` where that is wider -- the x87 80-bit format on
x86-64 (64-bit significand, exponents to +-16384), IEEE quad on aarch64
Linux -- and elsewhere (Windows, Apple silicon: ``longdouble`` is plain
float64) in Python's :mod:`decimal` at 40 digits, elementwise on object
arrays: slower, with the same guarantee, checked against ball arithmetic in
the truth tier with this fallback forced.

Sums of products (``matmul``, ``column_sums`` below: every product of the
``matmul`` and ``dense`` ops and VJPs) take the working-dtype arrays
instead: float16, bfloat16 and float32 in float64 BLAS (exact products), float64 through
:mod:`reference_impl.exact_dot` (Ozaki's error-free splitting on float64
BLAS, rounded once), the same bits on every platform.

The formulas are written once, with NumPy operators and the elementary
functions below (``exp``, ``log``, ``log1p``, ``tanh``), which dispatch on
the array: NumPy's own for float64 and ``longdouble``, :mod:`decimal`'s for
object arrays. ``precision()`` sets the decimal context an op runs in, so
that the caller's own decimal context never changes a result.
"""

from __future__ import annotations

import contextlib
import decimal
import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from . import exact_dot
from .broadcasting import unbroadcast
from .dtypes import is_half

__all__ = ["extended", "wide", "round_to", "precision", "neg", "exp", "log", "log1p", "tanh", "matmul", "column_sums"]

_LONG = np.longdouble
"""The platform's ``longdouble``; the fallback below is taken where it has
no more precision than float64 (tests force it by setting this to float64)."""

_CONTEXT = decimal.Context(prec=40, rounding=decimal.ROUND_HALF_EVEN, Emin=-999999, Emax=999999,
                           traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow])
"""40 significant digits (133 bits) and an exponent range no float64
product, sum or exp of the ops can leave."""


def extended() -> bool:
    """Whether ``longdouble`` is wider than float64 in precision (at least the
    x87's 64-bit significand) and in exponent range (IBM's double-double on
    POWER has the first, not the second: a tiny slope times a huge cotangent
    would underflow there)."""
    return _wider(_LONG)


@functools.cache
def _wider(long: Any) -> bool:
    info = np.finfo(long)
    return bool(info.nmant >= 63 and info.maxexp > np.finfo(np.float64).maxexp)


def wide(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """The inputs in the format the formulas run in: float16, bfloat16 and
    float32 -> float64 (their products are exact there); float64 ->
    ``longdouble`` (11 more bits on x87) or, without a wider ``longdouble``,
    exact :class:`decimal.Decimal` values in an object array."""
    if arrays[0].dtype == np.float32 or is_half(arrays[0].dtype):
        return tuple(np.asarray(a, dtype=np.float64) for a in arrays)
    if extended():
        return tuple(np.asarray(a, dtype=_LONG) for a in arrays)
    return tuple(_elementwise(decimal.Decimal, np.asarray(a, dtype=np.float64)) for a in arrays)


def round_to(y: Any, like: np.ndarray) -> np.ndarray:
    """Round a wide result once to ``like``'s dtype: always a new array. A
    true value beyond the dtype's range becomes +-inf, as IEEE rounding says
    (a decimal converts through its exact digits, correctly rounded)."""
    with np.errstate(over="ignore"):
        return np.array(y, dtype=like.dtype, copy=True)


_NO_CONTEXT = contextlib.nullcontext()


def precision() -> contextlib.AbstractContextManager[Any]:
    """The decimal context the formulas run in where the fallback is used (a no-op elsewhere)."""
    return _NO_CONTEXT if extended() else decimal.localcontext(_CONTEXT)


def _elementwise(f: Callable[[Any], Any], x: np.ndarray) -> np.ndarray:
    return np.asarray(np.frompyfunc(f, 1, 1)(x), dtype=object)


def _decimal(f: Callable[[decimal.Decimal], decimal.Decimal]) -> Callable[[Any], decimal.Decimal]:
    """``f`` on an element of an object array, which may hold a plain int
    where a formula put a constant (``np.put_along_axis(e, k, 0)``)."""
    return lambda v: f(v if isinstance(v, decimal.Decimal) else decimal.Decimal(v))


def _decimal_log1p(v: decimal.Decimal) -> decimal.Decimal:
    """``log(1 + v)``; below 1e-10 the series, as ``1 + v`` would drop ``v``'s low digits."""
    if abs(v) < decimal.Decimal("1e-10"):
        return v - v * v / 2 + v * v * v / 3
    return (1 + v).ln()


def _decimal_tanh(v: decimal.Decimal) -> decimal.Decimal:
    """``tanh(v) = (1 - e) / (1 + e)``, ``e = exp(-2|v|)``, signed; below
    1e-5 the series, where ``1 - e`` would cancel."""
    a = abs(v)
    if a < decimal.Decimal("1e-5"):
        a2 = a * a
        t = a * (1 - a2 / 3 + 2 * a2 * a2 / 15 - 17 * a2 * a2 * a2 / 315)
    else:
        e = (-2 * a).exp()
        t = (1 - e) / (1 + e)
    return t.copy_sign(v)


def neg(x: Any) -> np.ndarray:
    """``-x`` with IEEE's sign of zero in every format (decimal's unary minus
    turns ``-0`` into ``+0``; the fallback must give the same bits)."""
    x = np.asarray(x)
    return _elementwise(_decimal(decimal.Decimal.copy_negate), x) if x.dtype == object else np.asarray(np.negative(x))


def exp(x: Any) -> np.ndarray:
    """``e**x`` elementwise in ``x``'s format."""
    x = np.asarray(x)  # a ufunc on a 0-d array returns a bare element
    return _elementwise(_decimal(decimal.Decimal.exp), x) if x.dtype == object else np.asarray(np.exp(x))


def log(x: Any) -> np.ndarray:
    """Natural logarithm elementwise in ``x``'s format."""
    x = np.asarray(x)  # a ufunc on a 0-d array returns a bare element
    return _elementwise(_decimal(decimal.Decimal.ln), x) if x.dtype == object else np.asarray(np.log(x))


def log1p(x: Any) -> np.ndarray:
    """``log(1 + x)`` elementwise in ``x``'s format, accurate for tiny ``x``."""
    x = np.asarray(x)  # a ufunc on a 0-d array returns a bare element
    return _elementwise(_decimal(_decimal_log1p), x) if x.dtype == object else np.asarray(np.log1p(x))


def tanh(x: Any) -> np.ndarray:
    """Hyperbolic tangent elementwise in ``x``'s format."""
    x = np.asarray(x)  # a ufunc on a 0-d array returns a bare element
    return _elementwise(_decimal(_decimal_tanh), x) if x.dtype == object else np.asarray(np.tanh(x))


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
