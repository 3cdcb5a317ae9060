"""The accuracy grades of one comparison (:func:`reference_impl.engine.compare`).

A grade says how accurate the implementation under test is against the
reference, apart from whether it passed:

* ``ulp`` -- the largest error in ulps of the working dtype over the
  elements where that means something: the reference is a normal number
  larger than its tolerance (elsewhere the value is zero within the rounding
  of the terms it is computed from, or subnormal) and no subnormal was flushed;
* ``normwise`` -- ``max |actual - expected| / (u max scale)``: the error
  against the size of the terms (the error model's magnitude ``M`` for an op,
  :mod:`reference_impl.accuracy.acceptance`; the reference's own values
  elsewhere), ``u`` the unit roundoff (``u max scale`` at least the smallest subnormal);
* ``flushed`` -- elements whose error only the tolerance's underflow floor
  admits (``tiny (1 + |factors|)``): one side flushed a subnormal to zero, as
  XLA on CPU does. Those are counted and graded in neither figure.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..accuracy.acceptance import tiny, unit_roundoff

__all__ = ["FLUSH_MIN_SUBNORMALS", "Grades", "grade", "bound_grading"]

FLUSH_MIN_SUBNORMALS = 4.0
"""An error only the underflow floor admits counts as a flushed subnormal above
this many of the dtype's smallest subnormals; below, it may be the rounding of
a subnormal result (half a subnormal per operation)."""


@dataclass(frozen=True)
class Grades:
    ulp: float
    """NaN where no element is graded in ulps."""
    normwise: float
    flushed: int


def grade(err: np.ndarray, expected: np.ndarray, tol: np.ndarray, ulp: np.ndarray, resolved: np.ndarray,
          dtype: Any, floor: Any = None, scale: Any = None) -> Grades:
    """The grades of one comparison from its elementwise errors ``err``, the
    reference's values ``expected`` (float64), the tolerance ``tol``, the ulp
    errors ``ulp`` and the ``resolved`` mask (``|expected| > tol``).
    ``floor``: the part of ``tol`` that admits underflow (None: nothing counts
    as flushed); ``scale``: the magnitude of the terms (None: ``|expected|``)."""
    dtype = np.dtype(dtype)
    if floor is None:
        flushed = np.zeros(err.shape, bool)
    else:
        least = FLUSH_MIN_SUBNORMALS * float(np.finfo(dtype).smallest_subnormal)
        flushed = (err <= tol) & (err > np.maximum(tol - np.asarray(floor, np.float64), least))
    graded = resolved & ~flushed & (np.abs(expected) >= tiny(dtype))
    ulp_grade = float(ulp[graded].max()) if graded.any() else float("nan")
    kept = err[~flushed]
    size = np.abs(expected) if scale is None else np.asarray(scale, np.float64)
    with np.errstate(invalid="ignore"):
        largest = float(np.nan_to_num(size, posinf=np.finfo(np.float64).max).max(initial=0.0))
    unit = max(unit_roundoff(dtype) * largest, float(np.finfo(dtype).smallest_subnormal))
    normwise = (float(kept.max()) if kept.size else 0.0) / unit
    return Grades(ulp_grade, normwise, int(flushed.sum()))


def bound_grading(bound: Any, dtype: Any, factor: float = 1.0) -> dict[str, Any]:
    """``compare``'s ``floor`` and ``scale`` for an op's error bound
    (:class:`reference_impl.accuracy.acceptance.Bound`): its tolerance without
    the rounding term, and its magnitude ``M``."""
    floor = dataclasses.replace(bound, k=0.0, magnitude=0.0).tolerance(dtype, factor)
    return {"floor": np.asarray(floor), "scale": np.asarray(bound.magnitude, np.float64)}
