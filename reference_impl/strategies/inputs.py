"""Describing the inputs of a function to check: :class:`Arg` and :class:`Inputs`.

An :class:`Arg` names a value kind of the library (``reference_impl.strategies``)
and a shape; an :class:`Inputs` lists the arguments of ``f`` in call order::

    Inputs(z=Arg("logits", shape=("batch", 10)),
           y=Arg("labels", shape=("batch",), classes=10))

Value kinds:

=========================  ==========================================================
``real``                   normal values (scales 1e-3 to 1e2), values near exp's
                           overflow and underflow thresholds (+-88.7, +-104, +-709.8,
                           +-745.1), saturated ones (to 100 in float32, 800 in float64)
                           and tiny ones (down to subnormal)
``kinked``                 ``real`` with exact ``+0.0`` / ``-0.0`` in a drawn fraction of
                           places; the gradient there is a convention and is not tested
                           (steps along a random direction keep each element's sign)
``logits``                 normal values, scales 0.1 to 1e4, offsets up to +-1e4
``distribution``           rows on the simplex: smooth, peaked, one-hot or sparse
``positive_distribution``  rows on the simplex with every entry > 0 (safe under ``log``)
``one_hot``                one-hot rows (floating; classes = last side)
``labels``                 integer class indices in ``[0, classes)`` (int64)
=========================  ==========================================================

``scale=`` fixes the scale (a number or a tuple to draw from) of ``real``,
``kinked`` and ``logits``; ``range=(low, high)`` draws ``real`` values
uniformly instead. Either keeps the named extremes of ``real`` and
``kinked`` (exp's thresholds, saturation, the smallest normal number) that
lie inside the range -- all of them under a scale -- in one drawn input of
four, unless ``extremes=False``: narrowing never silently drops them.

A side of ``shape`` is an int (fixed), ``None`` (drawn in ``Inputs.sides``)
or a string: a named side, drawn once and shared by every argument that
names it. Sides shrink towards their low end, values towards seed 0, so a
failure shrinks to a small input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import strategies as st

from ..dtypes import info, is_float
from ..pytree import flatten, leaf_paths, unflatten
from . import exp_thresholds
from . import values as library_values

__all__ = ["Arg", "Inputs", "KINDS", "Drawn", "spec_strategy", "leaf_count", "extremes_of", "Coverage"]

KINDS = ("real", "kinked", "logits", "distribution", "positive_distribution", "one_hot", "labels")
_LIBRARY_KINDS = ("real", "kinked", "logits", "distribution", "positive_distribution")

Side = int | str | None


def _is_int(v: object) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


@dataclass(frozen=True)
class Arg:
    """One argument: a value kind, a shape, and optionally a scale or range."""

    kind: str = "real"
    shape: tuple[Side, ...] = (None,)
    scale: float | tuple[float, ...] | None = None
    range: tuple[float, float] | None = None
    classes: int | str | None = None
    """``labels`` only: the number of classes (or a named side)."""
    extremes: bool = True
    """With ``scale`` or ``range``, still place the named extremes (:data:`EXTREMES`)
    that lie inside ``range`` (all of them under a ``scale``) in one drawn
    input of four; ``False`` draws only what ``scale`` / ``range`` say."""

    def __post_init__(self) -> None:
        shape: Any = self.shape  # checked as whatever the caller passed
        scale: Any = self.scale
        value_range: Any = self.range
        if self.kind not in KINDS:
            raise ValueError(f"kind: unknown value kind {self.kind!r}; valid: {', '.join(KINDS)}")
        if not isinstance(shape, tuple):
            raise TypeError(f"shape: expected a tuple of int / None / str sides, got {type(shape).__name__}")
        for s in shape:
            if not (s is None or isinstance(s, str) or (_is_int(s) and int(s) >= 1)):
                raise ValueError(f"shape: each side must be an int >= 1, None or a name; got {s!r}")
        if scale is not None:
            scales = scale if isinstance(scale, tuple) else (scale,)
            if self.kind not in ("real", "kinked", "logits") or not scales or not all(
                    _is_number(s) and math.isfinite(float(s)) and float(s) > 0 for s in scales):
                raise ValueError(f"scale: a positive number (or tuple) for real/kinked/logits, got {self.scale!r} "
                                 f"for kind {self.kind!r}")
        if not isinstance(self.extremes, (bool, np.bool_)):
            raise TypeError(f"extremes: expected True or False, got {type(self.extremes).__name__} {self.extremes!r}")
        if value_range is not None:
            ok = (self.kind == "real" and isinstance(value_range, tuple) and len(value_range) == 2
                  and all(_is_number(v) and math.isfinite(float(v)) for v in value_range)
                  and float(value_range[0]) < float(value_range[1]))
            if not ok:
                raise ValueError(f"range: a (low, high) pair with low < high, for kind 'real'; got {self.range!r}")
        if self.kind == "labels":
            if self.classes is None:
                raise ValueError("classes: required for kind 'labels' (an int >= 1 or a named side)")
        elif self.classes is not None:
            raise ValueError(f"classes: only for kind 'labels', not {self.kind!r}")
        if self.kind in ("distribution", "positive_distribution", "one_hot") and not self.shape:
            raise ValueError(f"shape: kind {self.kind!r} needs at least one side (the classes)")

    @property
    def floating(self) -> bool:
        return self.kind != "labels"


@dataclass(frozen=True)
class Inputs:
    """The arguments of ``f`` in call order, by name. An argument is an
    :class:`Arg`, or a pytree (dict, tuple, list) whose leaves are :class:`Arg`
    or fixed NumPy arrays -- the parameters of a model, say."""

    args: tuple[tuple[str, Any], ...]
    sides: tuple[int, int] = (1, 16)

    def __init__(self, *positional: Any, sides: tuple[int, int] = (1, 16), **named: Any) -> None:
        items = [(f"arg{i}", a) for i, a in enumerate(positional)] + list(named.items())
        if not items:
            raise ValueError("Inputs: at least one argument")
        for name, a in items:
            leaves, _ = flatten(a)
            if not leaves:
                raise ValueError(f"{name}: an empty container; expected an Arg or a pytree of Args")
            for leaf in leaves:
                if not isinstance(leaf, (Arg, np.ndarray)):
                    raise TypeError(f"{name}: expected an Arg, a NumPy array or a dict/tuple/list of them, "
                                    f"got a {type(leaf).__name__}")
        if not (isinstance(sides, tuple) and len(sides) == 2 and all(isinstance(s, int) for s in sides)
                and 1 <= sides[0] <= sides[1]):
            raise ValueError(f"sides: a (low, high) pair of ints with 1 <= low <= high, got {sides!r}")
        object.__setattr__(self, "args", tuple(items))
        object.__setattr__(self, "sides", sides)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.args)


@dataclass
class Drawn:
    """One drawn input tuple with what is known about it."""

    args: tuple[Any, ...]
    kinds: tuple[tuple[str | None, ...], ...]
    """Per argument, the value kind of each leaf (``None`` where not known:
    a fixed array, or a user's strategy)."""
    recipe: dict[str, Any] = field(default_factory=dict)
    cut: bool = False
    """The drawn sides were reduced to respect ``max_elements``."""


def _cap_sides(sides: dict[Any, int], free: list[Any], shapes: list[tuple[Any, ...]], fixed_elements: int,
               cap: int) -> bool:
    def total() -> int:
        return fixed_elements + sum(math.prod(sides[k] for k in shape) for shape in shapes)

    cut = False
    while total() > cap:
        big = max((k for k in free if sides[k] > 1), key=lambda k: sides[k], default=None)
        if big is None:
            break
        sides[big] = max(1, sides[big] // 2)
        cut = True
    return cut


def _draw_value(draw: st.DrawFn, a: Arg, shape: tuple[int, ...], dtype: np.dtype, classes: int
                ) -> tuple[np.ndarray, dict[str, Any]]:
    if a.kind in _LIBRARY_KINDS and a.scale is None and a.range is None:
        drawn: tuple[np.ndarray, dict[str, Any]] = draw(library_values(a.kind, shape, dtype))
        return drawn
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    r: dict[str, Any] = {"kind": a.kind, "seed": seed}
    if a.kind == "labels":
        r["classes"] = classes
        return rng.integers(0, classes, size=shape).astype(np.int64), r
    if a.kind == "one_hot":
        idx = rng.integers(0, shape[-1], size=shape[:-1])
        out = np.zeros(shape)
        np.put_along_axis(out, idx[..., None], 1.0, axis=-1)
        return out.astype(dtype), r
    if a.range is not None:
        r["range"] = a.range
        x = rng.uniform(a.range[0], a.range[1], size=shape)
    else:
        scales: tuple[float, ...] = a.scale if isinstance(a.scale, tuple) else (float(a.scale or 1.0),)
        scale = float(draw(st.sampled_from(scales)))
        x = rng.standard_normal(shape) * scale
        r["scale"] = scale
    if a.kind in ("real", "kinked") and a.extremes and draw(st.integers(0, 3)) == 0:
        x, r["extremes"] = _with_extremes(rng, x, dtype, a.range)
    if a.kind == "kinked":
        frac = draw(st.sampled_from((0.0, 0.25, 0.5)))
        mask = rng.random(shape) < frac
        x = np.where(mask, np.where(rng.random(shape) < 0.5, 0.0, -0.0), x)
        r["zero_fraction"] = frac
    return x.astype(dtype), r


def extremes_of(dtype: np.dtype) -> tuple[float, ...]:
    """The named extremes of ``real`` values in ``dtype``, positive side:
    exp's overflow and sigma's underflow thresholds (:data:`EXP_THRESHOLDS`),
    the saturation the library draws up to, the smallest normal number; a
    half dtype's own thresholds (:func:`exp_thresholds`) and narrower top."""
    top = {"float16": 20.0, "float64": 800.0}.get(dtype.name, 100.0)
    return (*exp_thresholds(dtype), 8.0, top, info(dtype).tiny)


def _with_extremes(rng: np.random.Generator, x: np.ndarray, dtype: np.dtype,
                   value_range: tuple[float, float] | None) -> tuple[np.ndarray, float]:
    """``x`` with a drawn fraction of its elements moved to the named extremes
    (each within 2 of its point, either sign) that lie inside ``value_range``."""
    points = np.array([s * e for e in extremes_of(dtype) for s in (1.0, -1.0)])
    if value_range is not None:
        points = points[(points >= value_range[0]) & (points <= value_range[1])]
    if points.size == 0 or x.size == 0:
        return x, 0.0
    fraction = float(rng.choice((0.25, 0.5, 1.0)))
    chosen = points[rng.integers(0, points.size, size=x.shape)]
    jitter = np.where(np.abs(chosen) >= 8.0, rng.uniform(-2.0, 2.0, size=x.shape), 0.0)
    moved = chosen + jitter
    if value_range is not None:
        moved = np.clip(moved, value_range[0], value_range[1])
    return np.where(rng.random(x.shape) < fraction, moved, x), fraction


def _side_key(name: str, leaf: int, i: int, s: Side) -> Any:
    if isinstance(s, int):
        return ("fixed", s)
    if s is None:
        return ("free", name, leaf, i)
    return ("named", s)


@st.composite
def spec_strategy(draw: st.DrawFn, spec: Inputs, dtype: Any, max_elements: int) -> Drawn:
    """Draw one input tuple for ``spec`` in ``dtype`` with at most ``max_elements`` elements in all."""
    dtype = np.dtype(dtype)
    lo, hi = spec.sides
    sides: dict[Any, int] = {}
    free: list[Any] = []
    shapes: list[tuple[Any, ...]] = []
    fixed_elements = 0
    flat = []
    for name, tree in spec.args:
        leaves, structure = flatten(tree)
        flat.append((name, leaves, structure))
        for j, leaf in enumerate(leaves):
            if isinstance(leaf, np.ndarray):
                fixed_elements += leaf.size
                continue
            extra = ((leaf.classes,) if leaf.kind == "labels" else ())
            keys = []
            for i, s in enumerate((*leaf.shape, *extra)):
                key = _side_key(name, j, i, s)
                if key not in sides:
                    sides[key] = int(s) if key[0] == "fixed" else draw(st.integers(lo, hi))
                    if key[0] != "fixed":
                        free.append(key)
                keys.append(key)
            shapes.append(tuple(keys[:len(leaf.shape)]))
    cut = _cap_sides(sides, free, shapes, fixed_elements, max_elements)
    args: list[Any] = []
    kinds: list[tuple[str | None, ...]] = []
    recipe: dict[str, Any] = {}
    for name, leaves, structure in flat:
        out_leaves: list[Any] = []
        leaf_kinds: list[str | None] = []
        paths = leaf_paths(structure, name)
        for j, (leaf, path) in enumerate(zip(leaves, paths)):
            if isinstance(leaf, np.ndarray):
                out_leaves.append(leaf.astype(dtype) if is_float(leaf.dtype) else leaf.copy())
                leaf_kinds.append(None)
                recipe[path] = "fixed"
                continue
            shape = tuple(sides[_side_key(name, j, i, s)] for i, s in enumerate(leaf.shape))
            classes = 0
            if leaf.kind == "labels":
                classes = sides[_side_key(name, j, len(leaf.shape), leaf.classes)]
            arr, r = _draw_value(draw, leaf, shape, dtype, classes)
            out_leaves.append(arr)
            leaf_kinds.append(leaf.kind)
            recipe[path] = r
        args.append(unflatten(structure, out_leaves))
        kinds.append(tuple(leaf_kinds))
    return Drawn(tuple(args), tuple(kinds), recipe, cut)


def leaf_count(values: Sequence[Any]) -> int:
    leaves, _ = flatten(tuple(values))
    return sum(int(np.size(x)) for x in leaves)


_EXTREME_RANGES = ("exp_thresholds", "saturated", "tiny")
"""The library's named ranges of ``real`` values that are extremes (:data:`reference_impl.strategies.REAL_RANGES`)."""


@dataclass
class Coverage:
    """What the drawn inputs covered, for the report: per floating input leaf,
    ``[lowest, highest, inputs that reached the named extremes, inputs]``."""

    leaves: dict[str, list[float]] = field(default_factory=dict)

    def fold(self, names: Sequence[str], args: Sequence[Any], recipe: dict[str, Any]) -> None:
        """Take in one drawn input (its arrays and the recipe that drew them)."""
        for name, arg in zip(names, args):
            values, structure = flatten(arg)
            for path, leaf in zip(leaf_paths(structure, name), values):
                a = np.asarray(leaf)
                if not is_float(a.dtype) or a.size == 0:
                    continue
                c = self.leaves.setdefault(path, [math.inf, -math.inf, 0, 0])
                c[0], c[1] = min(c[0], float(a.min())), max(c[1], float(a.max()))
                r = recipe.get(path)
                c[2] += int(isinstance(r, dict) and (bool(r.get("extremes")) or r.get("range") in _EXTREME_RANGES))
                c[3] += 1

    def lines(self) -> list[str]:
        return [f"{path} drawn in [{lo:.4g}, {hi:.4g}], the named extremes in {n:g} of {total:g} input(s)"
                for path, (lo, hi, n, total) in self.leaves.items()]
