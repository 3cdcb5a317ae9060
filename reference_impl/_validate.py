"""Input checks shared by every public function.

Each check names the argument and the problem in its message. Bad input must
never turn into a silently wrong number: a wrong dtype is a ``TypeError``, a
wrong shape or value a ``ValueError``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "SUPPORTED_DTYPES",
    "as_array",
    "check_same_dtype",
    "check_finite",
    "check_distribution",
    "check_cotangent",
    "check_choice",
    "check_class_axis",
]

SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def as_array(x: Any, name: str, *, allow_nonfinite: bool = False) -> np.ndarray:
    """Return ``x`` as a float32/float64 ndarray, or raise naming ``name``.

    Lists and tuples of Python floats are accepted (they become float64);
    integer, boolean, complex and float16 inputs are rejected rather than cast,
    because a cast would hide a dtype bug in the caller's code.
    """
    if x is None:
        raise TypeError(f"{name}: expected a float32 or float64 array, got None")
    if isinstance(x, (str, bytes, dict, set)):
        raise TypeError(f"{name}: expected a float32 or float64 array, got {type(x).__name__}")
    arr = np.asarray(x)
    if arr.dtype == object:
        raise TypeError(f"{name}: expected a numeric array, got an object array from {type(x).__name__}")
    if arr.dtype not in SUPPORTED_DTYPES:
        raise TypeError(
            f"{name}: dtype {arr.dtype} is not supported; use float32 or float64 "
            "(integer, boolean, complex and float16 inputs are not cast silently)"
        )
    if not allow_nonfinite:
        check_finite(arr, name)
    return arr


def check_finite(arr: np.ndarray, name: str) -> None:
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))
        first = tuple(int(i) for i in bad[0]) if arr.ndim else ()
        kind = "NaN" if np.isnan(arr[first] if arr.ndim else arr) else "inf"
        raise ValueError(
            f"{name}: contains {len(bad)} non-finite value(s) (first: {kind} at index {first}); "
            "the reference is defined for finite inputs only"
        )


def check_same_dtype(**arrays: np.ndarray) -> np.dtype:
    """All named arrays must share one dtype: no silent promotion."""
    items = list(arrays.items())
    first_name, first = items[0]
    for name, arr in items[1:]:
        if arr.dtype != first.dtype:
            raise TypeError(
                f"{name}: dtype {arr.dtype} differs from {first_name}'s {first.dtype}; "
                "mixed precision is not promoted silently, cast explicitly"
            )
    return first.dtype


def check_class_axis(arr: np.ndarray, name: str) -> None:
    if arr.ndim < 1:
        raise ValueError(f"{name}: expected at least 1 dimension (classes on the last axis), got a scalar")
    if arr.shape[-1] < 1:
        raise ValueError(f"{name}: the class axis (last) is empty")


def check_distribution(arr: np.ndarray, name: str, *, strictly_positive: bool = False) -> None:
    """Each row (last axis) must be a probability distribution.

    Entries must be non-negative (positive if ``strictly_positive``) and each
    row must sum to 1 within the rounding a correct normalisation leaves
    (``tolerances.distribution_sum_tolerance``).
    """
    from .tolerances import distribution_sum_tolerance

    check_class_axis(arr, name)
    if strictly_positive:
        if np.any(arr <= 0):
            idx = tuple(int(i) for i in np.argwhere(arr <= 0)[0])
            raise ValueError(
                f"{name}: probabilities must be > 0 (log of 0 is -inf); got {arr[idx]!r} at index {idx}"
            )
    elif np.any(arr < 0):
        idx = tuple(int(i) for i in np.argwhere(arr < 0)[0])
        raise ValueError(f"{name}: a distribution has no negative entries; got {arr[idx]!r} at index {idx}")
    if np.any(arr > 1):
        idx = tuple(int(i) for i in np.argwhere(arr > 1)[0])
        raise ValueError(f"{name}: a probability cannot exceed 1; got {arr[idx]!r} at index {idx}")
    sums = arr.astype(np.float64).sum(axis=-1)
    tol = distribution_sum_tolerance(arr.shape[-1], arr.dtype)
    off = np.abs(sums - 1.0) > tol
    if np.any(off):
        idx = tuple(int(i) for i in np.argwhere(np.atleast_1d(off))[0]) if sums.ndim else ()
        worst = float(np.atleast_1d(sums)[idx] if sums.ndim else sums)
        raise ValueError(
            f"{name}: each row (last axis) must sum to 1 (within {tol:.3g}); row {idx} sums to {worst!r}"
        )


def check_cotangent(cotangent: Any, out_shape: tuple[int, ...], dtype: np.dtype, name: str = "cotangent") -> np.ndarray:
    """The cotangent must have the output's shape and dtype and be finite."""
    g = as_array(cotangent, name)
    if g.shape != tuple(out_shape):
        raise ValueError(f"{name}: shape {g.shape} does not match the output shape {tuple(out_shape)}")
    if g.dtype != dtype:
        raise TypeError(f"{name}: dtype {g.dtype} differs from the inputs' {dtype}")
    return g


def check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}: {value!r} is not one of {list(choices)}")
    return value
