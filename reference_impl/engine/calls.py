"""Running code under test, one policy for every checker: exceptions become
messages, ``assume()`` becomes "skip this input", modified inputs are
detected, returned values are validated.

Code under test (an *opinion*: a user's function, a framework) receives the
real arrays, not copies, and is compared afterwards with a :class:`Snapshot`
taken before the call: a function that writes into its arguments is wrong for
every caller that reuses them, and a copy would hide that. Whatever it does
wrong -- raises, even ``SystemExit``; returns ``None``, a list, a Python
float, a masked array, the wrong shape or dtype, NaN -- becomes a message
about it, never a crash of the caller. ``KeyboardInterrupt`` still stops the
run; ``hypothesis.assume`` / ``reject`` (``UnsatisfiedAssumption``) and
hypothesis' other control flow pass through, so that the search skips the
input.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from hypothesis.errors import UnsatisfiedAssumption

from .. import pytree
from ..dtypes import is_float

__all__ = ["call", "Snapshot", "type_name", "returned_array", "unpack_tuple", "user_message",
           "UnsatisfiedAssumption"]


def type_name(x: Any) -> str:
    t = type(x)
    return t.__name__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def call(fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any] | None = None) -> tuple[Any, str]:
    """Run code under test: ``(result, "")``, or ``(None, "raised Error:
    message (at file:line)")``."""
    try:
        return fn(*args, **(kwargs or {})), ""
    except (KeyboardInterrupt, UnsatisfiedAssumption):
        raise
    except BaseException as e:  # SystemExit included: the code under test exiting is its failure, not the run's end
        if type(e).__module__.startswith("hypothesis"):
            raise  # hypothesis' control flow (StopTest, ...) must reach hypothesis
        frames = traceback.extract_tb(e.__traceback__)
        where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
        text = f"exit code {e.code!r}" if isinstance(e, SystemExit) else str(e)
        return None, f"raised {type(e).__name__}: {text}{where}"


def user_message(role: str, err: str) -> str:
    """``err`` as a sentence about the user's function ``role``."""
    if err.startswith("your "):
        return err
    return f"your {role} {err}" if err.startswith("raised ") else f"your {role}: {err}"


class Snapshot:
    """Copies of every array leaf of some arguments, to detect in-place writes."""

    def __init__(self, names: Sequence[str], values: Sequence[Any]) -> None:
        self.items: list[tuple[str, Any, np.ndarray]] = []
        for name, value in zip(names, values):
            leaves, structure = pytree.flatten(value)
            for path, leaf in zip(pytree.leaf_paths(structure, name), leaves):
                if isinstance(leaf, np.ndarray):
                    self.items.append((path, leaf, leaf.copy()))

    def changed(self) -> str:
        """Empty when nothing changed; else which argument, how many elements, the first one."""
        for path, live, saved in self.items:
            if live.shape != saved.shape or live.dtype != saved.dtype:
                return f"{path} changed from {saved.dtype.name}{saved.shape} to {live.dtype.name}{live.shape}"
            same = (live == saved) | (np.isnan(live) & np.isnan(saved)) if live.dtype.kind in "fc" else live == saved
            same = np.asarray(same)
            if is_float(live.dtype):
                # 0.0 -> -0.0 is a write too
                same = same & (np.signbit(live) == np.signbit(saved))
            if not same.all():
                bad = np.argwhere(~same)
                idx = tuple(int(i) for i in bad[0]) if live.ndim else ()
                return (f"{path} was modified in place: {int((~same).sum())} of {live.size} element(s) changed, "
                        f"first at index {idx}: {saved[idx]!r} -> {live[idx]!r}")
        return ""


def _expected(shape: tuple[int, ...] | None, dtype: np.dtype | None) -> str:
    if dtype is None:
        return "an array" if shape is None else f"an array of shape {shape}"
    return f"a {dtype.name} array" + ("" if shape is None else f" of shape {shape}")


def returned_array(value: Any, what: str, shape: tuple[int, ...] | None = None,
                   dtype: np.dtype | None = None) -> tuple[np.ndarray | None, str]:
    """``(array, "")`` when ``value`` is a finite floating array of ``shape``
    and ``dtype`` (``None``: not checked); otherwise ``(None, what is wrong)``,
    naming ``what``."""
    expected = _expected(shape, dtype)
    if value is None:
        return None, f"{what} is None; expected {expected}"
    if isinstance(value, (list, tuple)):
        make = f"np.asarray(..., dtype=np.{dtype.name})" if dtype is not None else "np.asarray(...)"
        return None, f"{what} is a {type(value).__name__}, not an array; expected {expected} ({make} makes one)"
    if isinstance(value, np.ma.MaskedArray):
        return None, (f"{what} is a masked array; its mask would be ignored: return a plain array "
                      f"(np.ma.getdata(...), or np.ma.filled(...) with the value you mean)")
    # np.float64 subclasses float: test for NumPy scalars before Python floats
    if not isinstance(value, np.generic) and isinstance(value, (bool, int, float, complex, str, bytes)):
        return None, (f"{what} is a Python {type(value).__name__} ({value!r}), not an array; expected {expected}"
                      + (" (a Python float is float64 and drops the dtype)" if dtype is not None else ""))
    if isinstance(value, np.ndarray):
        arr = value
    elif isinstance(value, np.generic) or hasattr(value, "__array__"):
        try:
            arr = np.asarray(value)
        except Exception as e:  # a framework tensor that refuses conversion (e.g. one that requires grad)
            return None, f"{what} is a {type_name(value)} that np.asarray cannot convert: {type(e).__name__}: {e}"
    else:
        return None, f"{what} is a {type_name(value)}, not an array; expected {expected}"
    if not is_float(arr.dtype):
        return None, f"{what} has dtype {arr.dtype}, not a floating dtype"
    if shape is not None and arr.shape != shape:
        return None, f"{what} has shape {arr.shape}, expected {shape}"
    if dtype is not None and arr.dtype != dtype:
        return None, (f"{what} has dtype {arr.dtype}, expected {dtype.name} (the inputs' dtype; a silent "
                      "precision change is a failure)")
    finite = np.isfinite(arr)
    if not finite.all():
        idx = tuple(int(i) for i in np.argwhere(~finite)[0]) if arr.ndim else ()
        return None, f"{what} is not finite: {float(arr[idx])} at index {idx} (of shape {arr.shape})"
    return arr, ""


def unpack_tuple(value: Any, what: str, names: Sequence[str], hint: str) -> tuple[tuple[Any, ...] | None, str]:
    """A tuple with one item per name, or what is wrong with ``value``."""
    if value is None:
        return None, f"{what} returned None; expected {hint}"
    if isinstance(value, list):
        return None, f"{what} returned a list; expected {hint}"
    if not isinstance(value, tuple):
        return None, f"{what} returned a {type_name(value)}; expected {hint}"
    if len(value) != len(names):
        return None, f"{what} returned a tuple of {len(value)} item(s); expected {hint}"
    return value, ""
