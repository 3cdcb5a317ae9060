"""The floating-point formats the reference accepts, and their parameters.

float16 and float32/float64 are NumPy's; bfloat16 is ``ml_dtypes.bfloat16``
(the NumPy dtype of the JAX ecosystem), recognised here by its dtype's kind
and name so that ``import reference_impl`` never imports ``ml_dtypes``; it is
imported on first use of :func:`resolve` ("bfloat16") or :func:`info`.

=========  ===========  ==========  =================  ================
format     significand  u           smallest normal    largest
=========  ===========  ==========  =================  ================
float16    11 bits      2**-11      6.10e-05 (2**-14)  65504
bfloat16   8 bits       2**-8       1.18e-38 (2**-126) 3.39e38
float32    24 bits      2**-24      1.18e-38           3.40e38
float64    53 bits      2**-53      2.23e-308          1.80e308
=========  ===========  ==========  =================  ================
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["NAMES", "HALF", "Info", "info", "is_bfloat16", "is_float", "is_half", "supported", "resolve",
           "accumulation"]

NAMES = ("float16", "bfloat16", "float32", "float64")
"""The dtypes the reference accepts, narrowest first."""

HALF = ("float16", "bfloat16")
"""The half-precision formats: computed in float64 by the reference, and in
float32 internally by the frameworks (see :mod:`reference_impl.accuracy.acceptance`)."""


@dataclass(frozen=True)
class Info:
    """A format's parameters: ``u`` (unit roundoff, ``eps / 2``), ``tiny``
    (smallest normal), ``max`` (largest finite), ``subnormal`` (smallest
    positive), ``bits`` (significand bits, the implicit one included) and
    ``emin`` (exponent of ``tiny``)."""

    name: str
    u: float
    tiny: float
    max: float
    subnormal: float
    bits: int
    emin: int


def is_bfloat16(dtype: Any) -> bool:
    """Whether ``dtype`` is ``ml_dtypes.bfloat16`` (without importing ml_dtypes)."""
    return isinstance(dtype, np.dtype) and dtype.kind == "V" and dtype.name == "bfloat16"


def is_half(dtype: Any) -> bool:
    """float16 or bfloat16."""
    return isinstance(dtype, np.dtype) and (dtype == np.float16 or is_bfloat16(dtype))


def is_float(dtype: Any) -> bool:
    """A binary floating-point dtype: NumPy's (kind ``f``) or bfloat16."""
    return isinstance(dtype, np.dtype) and (dtype.kind == "f" or is_bfloat16(dtype))


def supported(dtype: Any) -> bool:
    """One of :data:`NAMES` (an ``np.dtype``)."""
    return isinstance(dtype, np.dtype) and (is_bfloat16(dtype) or (dtype.kind == "f" and dtype.name in NAMES))


def resolve(dtype: Any) -> np.dtype:
    """``np.dtype(dtype)``, with ``"bfloat16"`` (the name) resolved through
    ``ml_dtypes``. Raises ``TypeError`` where NumPy knows no such dtype."""
    if isinstance(dtype, str) and dtype == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(dtype)


def info(dtype: Any) -> Info:
    """The parameters of a supported dtype (``np.finfo`` does not know
    bfloat16; ``ml_dtypes.finfo`` does)."""
    return _info(resolve(dtype))


@functools.cache
def _info(dt: np.dtype) -> Info:
    if is_bfloat16(dt):
        import ml_dtypes

        fi: Any = ml_dtypes.finfo(dt)  # type: ignore[no-untyped-call]
    else:
        fi = np.finfo(dt)
    return Info(dt.name, float(fi.eps) / 2, float(fi.tiny), float(fi.max), float(fi.smallest_subnormal),
                int(fi.nmant) + 1, int(fi.minexp))


def accumulation(dtype: Any) -> np.dtype:
    """The format frameworks accumulate ``dtype``'s sums and evaluate its
    elementwise functions in: float32 for the half formats (torch's CPU
    kernels' ``opmath`` type, XLA's upcast), the dtype itself otherwise."""
    dt = resolve(dtype)
    return np.dtype(np.float32) if is_half(dt) else dt
