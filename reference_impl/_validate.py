"""Input checks shared by every public function.

Each check names the argument and the problem in its message. Bad input must
never turn into a silently wrong number: a wrong dtype is a ``TypeError``, a
wrong shape or value a ``ValueError``.

What :func:`as_array` accepts: float16, bfloat16 (``ml_dtypes.bfloat16``),
float32 and float64 ndarrays (``np.memmap`` too), NumPy float scalars,
Python floats, and lists, tuples or objects with
``__array__`` that convert to one of those dtypes without a cast. What it
refuses, naming the argument and saying how to convert:

* framework tensors (PyTorch, JAX, TensorFlow, CuPy), recognised by the
  module of their type so that no framework is imported here;
* ndarray subclasses that change what the numbers mean: masked arrays (the
  mask would be dropped silently), ``np.matrix`` (``*`` is a matrix
  product), any other subclass;
* ragged nested lists, an ``__array__`` that raises, object, integer, boolean,
  complex, float8 (and the other ``ml_dtypes`` formats), string and datetime arrays;
* arrays of more than :func:`max_elements` elements (default
  :data:`DEFAULT_MAX_ELEMENTS`; environment variable
  ``REFERENCE_IMPL_MAX_ELEMENTS``), so that an absurd shape -- typically a
  broadcast view that occupies no memory -- is a clear error and not a
  ``MemoryError`` from deep inside NumPy.

The finite check reads a broadcast view through its distinct elements only,
so it never allocates a temporary of the view's logical size.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .accuracy.ops import distribution_sum_tolerance
from .dtypes import NAMES, is_bfloat16, resolve, supported

__all__ = [
    "SUPPORTED_DTYPES",
    "DEFAULT_MAX_ELEMENTS",
    "max_elements",
    "set_max_elements",
    "as_array",
    "check_size",
    "overflow_remedy",
    "check_same_dtype",
    "check_finite",
    "check_distribution",
    "check_cotangent",
    "check_choice",
    "check_class_axis",
    "check_int",
    "check_bool",
    "check_shape",
    "check_dtype",
    "check_positive_scale",
    "frozen",
    "quiet_overflow",
    "where_not_finite",
]

SUPPORTED_DTYPES = NAMES
"""The names of the accepted dtypes (``reference_impl.dtypes``): bfloat16's
dtype exists only once ``ml_dtypes`` is imported, so names, not dtypes."""

_USE = "use float16, bfloat16, float32 or float64"

DEFAULT_MAX_ELEMENTS = 2**26
"""Default size limit of one array argument or result: 67,108,864 elements,
512 MiB in float64. The reference computes a few temporaries of an input's
size, so this keeps one call within a few GiB."""


def _limit_from_environment() -> int:
    raw = os.environ.get("REFERENCE_IMPL_MAX_ELEMENTS")
    if raw is None or not raw.strip():
        return DEFAULT_MAX_ELEMENTS
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"REFERENCE_IMPL_MAX_ELEMENTS: expected a positive integer, got {raw!r}") from None
    if value < 1:
        raise ValueError(f"REFERENCE_IMPL_MAX_ELEMENTS: expected a positive integer, got {raw!r}")
    return value


_max_elements = _limit_from_environment()


def max_elements() -> int:
    """The largest number of elements an array argument may have."""
    return _max_elements


def set_max_elements(limit: int) -> int:
    """Set the size limit of array arguments (elements); returns the previous limit."""
    global _max_elements
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
        raise ValueError(f"limit: expected a positive int, got {limit!r}")
    previous, _max_elements = _max_elements, int(limit)
    return previous


# Root modules of array types that must be converted explicitly, with how.
_FRAMEWORK_HINTS = {
    "torch": "a PyTorch tensor; convert it with t.detach().cpu().numpy() "
             "(a bfloat16 tensor first with t.float() or t.double())",
    "jax": "a JAX array; convert it with np.asarray(jax_array)",
    "jaxlib": "a JAX array; convert it with np.asarray(jax_array)",
    "tensorflow": "a TensorFlow tensor; convert it with t.numpy()",
    "cupy": "a CuPy array; convert it with cupy.asnumpy(a)",
}


def _framework_hint(x: Any) -> str | None:
    for cls in type(x).__mro__:
        root = (getattr(cls, "__module__", "") or "").partition(".")[0]
        if root in _FRAMEWORK_HINTS:
            return _FRAMEWORK_HINTS[root]
    return None


def _subclass_problem(x: np.ndarray) -> str | None:
    if type(x) is np.ndarray or isinstance(x, np.memmap):
        return None
    if isinstance(x, np.ma.MaskedArray):
        return ("a masked array: the reference would silently compute on the masked-out values; "
                "pass x.filled(fill_value) or x.compressed(), or np.asarray(x) to drop the mask on purpose")
    if isinstance(x, np.matrix):
        return "an np.matrix (its * is a matrix product and it is always 2-D); pass np.asarray(x)"
    return (f"an ndarray subclass {type(x).__module__}.{type(x).__qualname__}, whose operations may mean "
            "something else; pass np.asarray(x) if its values are plain numbers")


def check_size(shape: tuple[int, ...], name: str) -> None:
    """Refuse an array (argument or result) of more than :func:`max_elements` elements."""
    size = 1
    for n in shape:
        size *= int(n)  # Python ints: a product of huge axes cannot wrap around
    if size > _max_elements:
        raise ValueError(
            f"{name}: shape {tuple(shape)} has {size} elements, more than the limit of {_max_elements} "
            "(reference_impl.set_max_elements or REFERENCE_IMPL_MAX_ELEMENTS change it); "
            "a broadcast view counts with its full shape"
        )


def as_array(x: Any, name: str, *, allow_nonfinite: bool = False) -> np.ndarray:
    """Return ``x`` as a float16/bfloat16/float32/float64 ndarray, or raise naming ``name``.

    Lists and tuples of Python floats are accepted (they become float64);
    integer, boolean, complex and float8 inputs are rejected rather than cast,
    because a cast would hide a dtype bug in the caller's code. See the module
    docstring for everything else that is refused.
    """
    if x is None:
        raise TypeError(f"{name}: expected a floating-point array ({_USE}), got None")
    if isinstance(x, (str, bytes, dict, set, frozenset)):
        raise TypeError(f"{name}: expected a floating-point array ({_USE}), got {type(x).__name__}")
    hint = _framework_hint(x)
    if hint is not None:
        raise TypeError(f"{name}: got {hint}")
    if isinstance(x, np.ndarray):
        problem = _subclass_problem(x)
        if problem is not None:
            raise TypeError(f"{name}: got {problem}")
        arr = np.asarray(x)
    else:
        try:
            arr = np.asarray(x)
        except (ValueError, TypeError, OverflowError, RecursionError, MemoryError) as e:
            if isinstance(x, (list, tuple)):
                raise ValueError(f"{name}: cannot be read as an array (ragged or mixed nesting?): {e}") from None
            raise TypeError(f"{name}: converting the {type(x).__name__} to an array failed: "
                            f"{type(e).__name__}: {e}") from e
        except Exception as e:  # a user-defined __array__ may raise anything
            raise TypeError(f"{name}: converting the {type(x).__name__} to an array failed: "
                            f"{type(e).__name__}: {e}") from e
        if type(arr) is not np.ndarray:
            problem = _subclass_problem(arr)
            if problem is not None:
                raise TypeError(f"{name}: converted to {problem}")
    if arr.dtype == object:
        raise TypeError(f"{name}: expected a numeric array, got an object array from {type(x).__name__} "
                        "(ragged rows, None or Python ints too large for int64?)")
    if not supported(arr.dtype):
        raise TypeError(
            f"{name}: dtype {arr.dtype} is not supported; {_USE} "
            "(integer, boolean, complex, float8, string and datetime inputs are not cast silently)"
        )
    check_size(arr.shape, name)
    if not allow_nonfinite:
        check_finite(arr, name)
    return arr


def _distinct_elements(arr: np.ndarray) -> np.ndarray:
    """A view holding each stored element of ``arr`` once: axes with stride 0
    (a broadcast) are collapsed to length 1."""
    if arr.ndim == 0 or 0 not in arr.strides:
        return arr
    index = tuple(slice(0, 1) if s == 0 else slice(None) for s in arr.strides)
    return arr[index]


def check_finite(arr: np.ndarray, name: str) -> None:
    if bool(np.isfinite(_distinct_elements(arr)).all()):
        return
    finite = np.isfinite(arr)
    count = int(finite.size - np.count_nonzero(finite))
    first = tuple(int(i) for i in np.unravel_index(int(np.argmin(finite.reshape(-1))), arr.shape))
    kind = "NaN" if np.isnan(arr[first]) else "inf"
    raise ValueError(
        f"{name}: contains {count} non-finite value(s) (first: {kind} at index {first}); "
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
        raise ValueError(f"{name}: {_short(value)} is not one of {list(choices)}")
    return value


def frozen(arr: np.ndarray) -> np.ndarray:
    """A read-only copy: what the tape keeps cannot change after the forward
    pass, whether the caller edits their arrays or someone edits the tape."""
    out = np.array(arr, copy=True)
    out.flags.writeable = False
    return out


def quiet_overflow() -> Any:
    """NumPy's overflow warnings off: the network checks its values itself and
    raises an error that names the caller's arguments."""
    return np.errstate(over="ignore", invalid="ignore", divide="ignore")


def overflow_remedy(dtype: Any, smaller: str) -> str:
    """What to do about a true value beyond ``dtype``'s range: ``smaller``
    (inputs of smaller magnitude), and a wider dtype only where one exists --
    float64 is the widest the reference computes in."""
    dt = np.dtype(dtype)
    if dt == np.float16:
        return f"{smaller}, or use float32 or float64"
    return f"{smaller}, or use float64" if dt == np.float32 or is_bfloat16(dt) else smaller


def where_not_finite(arr: np.ndarray) -> str:
    bad = np.argwhere(~np.isfinite(np.atleast_1d(arr)))[0]
    return f"index {tuple(int(i) for i in bad)}" if arr.ndim else "the scalar"


def check_int(value: Any, name: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an int, got {type(value).__name__} {_short(value)}")
    if value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")
    return int(value)


def check_bool(value: Any, name: str) -> bool:
    """A flag is ``True`` or ``False`` (a NumPy bool too), never a truthy
    object: ``write="no"`` must not mean "write"."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {type(value).__name__} {_short(value)}")
    return bool(value)


_MAX_RANK = 64
"""NumPy's most axes (``numpy.ndarray`` has at most 64 dimensions)."""


def check_shape(shape: Any, name: str) -> tuple[int, ...]:
    """A shape is a sequence of ints >= 0 (``()`` for a scalar), of at most
    64 axes and at most :func:`max_elements` elements; an int is refused
    rather than read as ``(n,)``, as it is in no signature here."""
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence):
        raise TypeError(f"{name}: expected a tuple of ints (one per axis), got {type(shape).__name__} "
                        f"{_short(shape)}")
    if len(shape) > _MAX_RANK:
        raise ValueError(f"{name}: {len(shape)} axes, more than NumPy's {_MAX_RANK}")
    dims = tuple(check_int(n, f"{name}[{i}]", minimum=0) for i, n in enumerate(shape))
    check_size(dims, name)
    return dims


def _short(value: Any) -> str:
    """``repr(value)``, cut to a line: a message never prints a whole array."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_dtype(dtype: Any, name: str = "dtype") -> np.dtype:
    """A supported dtype, given as a dtype, a type or a name ("bfloat16" too)."""
    try:
        dt = resolve(dtype)
    except TypeError:
        raise TypeError(f"{name}: {dtype!r} is not a dtype; {_USE}") from None
    if not supported(dt):
        raise TypeError(f"{name}: {dt} is not supported; {_USE}")
    return dt


def check_positive_scale(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__} {value!r}")
    v = float(value)
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name}: must be finite and > 0, got {value!r}")
    return v
