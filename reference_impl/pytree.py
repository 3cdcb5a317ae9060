"""Pytrees: nested tuples, lists and dicts of arrays, flattened to a list of leaves.

NumPy only. A *structure* records the containers and where the leaves sit,
so that a function's gradients can be matched against its inputs, cotangents
built for its outputs, and every leaf named in a message (``params['W1']``,
``x[0]``). Dicts are flattened in sorted key order, so two dicts with the same
keys have the same structure whatever order they were built in. Anything that
is not a tuple, list or dict is a leaf (whether a leaf is an acceptable
array is for the caller to decide).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Structure", "flatten", "unflatten", "leaf_paths", "tree_map", "describe"]


@dataclass(frozen=True)
class Structure:
    """The shape of a pytree without its leaves."""

    kind: str
    """``leaf``, ``tuple``, ``list`` or ``dict``."""
    children: tuple[Structure, ...] = ()
    keys: tuple[Any, ...] = ()
    """Dict keys, sorted; empty for other kinds."""

    @property
    def num_leaves(self) -> int:
        return 1 if self.kind == "leaf" else sum(c.num_leaves for c in self.children)


_LEAF = Structure("leaf")


def _sorted_keys(d: dict[Any, Any]) -> list[Any]:
    try:
        return sorted(d)
    except TypeError:  # keys of mixed types: keep them in a stable, readable order
        return sorted(d, key=repr)


def flatten(tree: Any) -> tuple[list[Any], Structure]:
    """``(leaves, structure)``; leaves in depth-first order."""
    leaves: list[Any] = []

    def walk(node: Any) -> Structure:
        if isinstance(node, dict):
            keys = _sorted_keys(node)
            return Structure("dict", tuple(walk(node[k]) for k in keys), tuple(keys))
        if isinstance(node, (tuple, list)):
            return Structure("list" if isinstance(node, list) else "tuple", tuple(walk(c) for c in node))
        leaves.append(node)
        return _LEAF

    return leaves, walk(tree)


def unflatten(structure: Structure, leaves: Sequence[Any]) -> Any:
    """Rebuild a pytree of ``structure`` from ``leaves`` (as ``flatten`` ordered them)."""
    it = iter(leaves)

    def build(s: Structure) -> Any:
        if s.kind == "leaf":
            return next(it)
        kids = [build(c) for c in s.children]
        if s.kind == "dict":
            return dict(zip(s.keys, kids))
        return kids if s.kind == "list" else tuple(kids)

    out = build(structure)
    if next(it, _SENTINEL) is not _SENTINEL:
        raise ValueError("leaves: more leaves than the structure holds")
    return out


_SENTINEL = object()


def leaf_paths(structure: Structure, root: str) -> list[str]:
    """A readable name per leaf: ``root``, ``root[0]``, ``root['W1'][1]``."""
    out: list[str] = []

    def walk(s: Structure, prefix: str) -> None:
        if s.kind == "leaf":
            out.append(prefix)
            return
        labels = [repr(k) for k in s.keys] if s.kind == "dict" else [str(i) for i in range(len(s.children))]
        for label, child in zip(labels, s.children):
            walk(child, f"{prefix}[{label}]")

    walk(structure, root)
    return out


def tree_map(fn: Callable[[Any], Any], tree: Any) -> Any:
    """``tree`` with ``fn`` applied to every leaf."""
    leaves, structure = flatten(tree)
    return unflatten(structure, [fn(x) for x in leaves])


def describe(structure: Structure) -> str:
    """A short text form: ``array``, ``(array, array)``, ``{'W': array, 'b': array}``."""
    if structure.kind == "leaf":
        return "array"
    parts = [describe(c) for c in structure.children]
    if structure.kind == "dict":
        return "{" + ", ".join(f"{k!r}: {p}" for k, p in zip(structure.keys, parts)) + "}"
    if structure.kind == "list":
        return "[" + ", ".join(parts) + "]"
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"
