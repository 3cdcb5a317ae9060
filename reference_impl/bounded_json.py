"""Reading JSON from disk within bounds: the one reader of the golden
fixtures and of ``certify --baseline``.

A file is read only if it is a regular file (a FIFO or ``/dev/zero`` would
block or never end) of at most ``max_bytes``; its text is parsed only if it
nests at most ``max_depth`` levels (the parser recurses) and every numeral
has at most ``max_number_chars`` characters (``int()`` of a long numeral is
quadratic). Duplicate keys and ``NaN``/``Infinity`` are refused: JSON would
keep the last duplicate silently, and neither constant is a JSON number.
Every problem is a :class:`JSONLimitError` whose message the caller prefixes
with the name of the file it was given.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from collections.abc import Callable
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

__all__ = ["JSONLimitError", "read_bytes", "loads", "read_json", "nesting_depth"]


class JSONLimitError(ValueError):
    """A file or text that is not JSON within the limits; the message names no file."""


def read_bytes(file: Traversable | Path, max_bytes: int) -> bytes:
    """The file's bytes, if it is a regular file of at most ``max_bytes``."""
    if isinstance(file, Path):
        try:
            info = os.stat(file)
        except OSError as e:
            raise JSONLimitError(f"cannot be read ({e.strerror or e})") from None
        except ValueError as e:  # a NUL in the path
            raise JSONLimitError(f"cannot be read ({e})") from None
        if stat.S_ISDIR(info.st_mode):
            raise JSONLimitError("a directory, not a regular file")
        if not stat.S_ISREG(info.st_mode):
            raise JSONLimitError("not a regular file (a FIFO, socket or device?)")
        if info.st_size > max_bytes:
            raise JSONLimitError(f"{info.st_size} bytes, more than the limit of {max_bytes}")
    elif not file.is_file():
        raise JSONLimitError("not a regular file")
    try:
        with file.open("rb") as fh:
            data: bytes = fh.read(max_bytes + 1)
    except OSError as e:
        raise JSONLimitError(f"cannot be read ({e.strerror or e})") from None
    if len(data) > max_bytes:
        raise JSONLimitError(f"more than the limit of {max_bytes} bytes")
    return data


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


def nesting_depth(text: str) -> int:
    """Deepest nesting of arrays and objects, strings skipped (linear: the
    string pattern has no nested repetition)."""
    depth = deepest = 0
    for m in _BRACKET.finditer(_STRING.sub("", text)):
        depth += 1 if m.group() in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _number(literal: str, convert: Callable[[str], Any], max_chars: int) -> Any:
    if len(literal) > max_chars:
        raise ValueError(f"a number of {len(literal)} characters ({literal[:12]}...) is longer than the limit of "
                         f"{max_chars}")
    value = convert(literal)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{literal} is beyond the range of float64")
    return value


def loads(data: bytes, *, max_depth: int, max_number_chars: int) -> Any:
    """Parse UTF-8 JSON ``data`` within the limits."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise JSONLimitError(f"not UTF-8 text ({e})") from None
    deepest = nesting_depth(text)
    if deepest > max_depth:
        raise JSONLimitError(f"JSON nested {deepest} deep, more than the limit of {max_depth}")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_reject_constant,
                          parse_int=lambda s: _number(s, int, max_number_chars),
                          parse_float=lambda s: _number(s, float, max_number_chars))
    except json.JSONDecodeError as e:
        raise JSONLimitError(f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except (ValueError, RecursionError) as e:
        raise JSONLimitError(str(e)) from None


def read_json(file: Traversable | Path, *, max_bytes: int, max_depth: int, max_number_chars: int) -> Any:
    """:func:`read_bytes` then :func:`loads`."""
    return loads(read_bytes(file, max_bytes), max_depth=max_depth, max_number_chars=max_number_chars)
