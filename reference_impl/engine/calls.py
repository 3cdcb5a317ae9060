"""Running user code safely: exceptions become messages, ``assume()`` becomes
"skip this input", modified inputs are detected, returned leaves are validated.

A user function receives the real arrays (not copies) and is compared
afterwards with a snapshot taken before the call: a function that writes into
its arguments is wrong for every caller that reuses them, and a copy would hide
that. ``hypothesis.assume`` / ``reject`` raise ``UnsatisfiedAssumption``; it is
let through so that hypothesis (or the example loop) skips the input.
``SystemExit`` and every other exception except ``KeyboardInterrupt`` are the
function's failure on that input.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from hypothesis.errors import UnsatisfiedAssumption

from .. import pytree

__all__ = ["call_user", "Snapshot", "type_name", "check_leaf", "UnsatisfiedAssumption"]


def type_name(x: Any) -> str:
    t = type(x)
    return t.__name__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def call_user(fn: Callable[..., Any], args: Sequence[Any]) -> tuple[Any, str]:
    """``(result, "")`` or ``(None, "raised Error: message (at file:line)")``."""
    try:
        return fn(*args), ""
    except (UnsatisfiedAssumption, KeyboardInterrupt):
        raise
    except BaseException as e:  # SystemExit included: a user function exiting is its failure, not the end of the run
        frames = traceback.extract_tb(e.__traceback__)
        where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
        text = str(e) if not isinstance(e, SystemExit) else f"exit code {e.code!r}"
        return None, f"raised {type(e).__name__}: {text}{where}"


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
            if live.dtype.kind == "f":
                # 0.0 -> -0.0 is a write too
                same = same & (np.signbit(live) == np.signbit(saved))
            if not same.all():
                bad = np.argwhere(~same)
                idx = tuple(int(i) for i in bad[0]) if live.ndim else ()
                return (f"{path} was modified in place: {int((~same).sum())} of {live.size} element(s) changed, "
                        f"first at index {idx}: {saved[idx]!r} -> {live[idx]!r}")
        return ""


def check_leaf(value: Any, what: str, shape: tuple[int, ...] | None,
               dtype: np.dtype | None) -> tuple[np.ndarray | None, str]:
    """A returned leaf as a finite floating array of ``shape`` and ``dtype``
    (``None`` = not checked), or what is wrong with it."""
    if isinstance(value, np.ma.MaskedArray):
        return None, f"{what} is a masked array; expected a plain ndarray (masked values have no gradient meaning)"
    if value is None:
        return None, f"{what} is None; expected an array"
    if isinstance(value, (bool, int, float, complex, str, bytes)) and not isinstance(value, np.generic):
        return None, f"{what} is a Python {type(value).__name__} ({value!r}), not an array"
    if isinstance(value, np.ndarray):
        arr = value
    elif isinstance(value, np.generic) or hasattr(value, "__array__"):
        try:
            arr = np.asarray(value)
        except Exception as e:  # a framework tensor that refuses conversion
            return None, f"{what} is a {type_name(value)} that np.asarray cannot convert: {type(e).__name__}: {e}"
    else:
        return None, f"{what} is a {type_name(value)}, not an array"
    if arr.dtype.kind != "f":
        return None, f"{what} has dtype {arr.dtype}, not a floating dtype"
    if shape is not None and arr.shape != shape:
        return None, f"{what} has shape {arr.shape}, expected {shape} (the shape of the input it is the gradient of)"
    if dtype is not None and arr.dtype != dtype:
        return None, (f"{what} has dtype {arr.dtype}, expected {dtype.name} (the input's dtype; a silent precision "
                      "change is a failure)")
    finite = np.isfinite(arr)
    if not finite.all():
        idx = tuple(int(i) for i in np.argwhere(~finite)[0]) if arr.ndim else ()
        return None, f"{what} is not finite: {float(arr[idx])} at index {idx} (of shape {arr.shape})"
    return arr, ""
