"""Hypothesis strategies that draw valid inputs for every op in ``OPS``.

Imports hypothesis, so ``import reference_impl`` does not import this module.

Shapes are drawn by hypothesis (and shrink); values are drawn as a seed per
example plus a named range per array, and the arrays are filled in turn by
NumPy's generator from that seed.
Dense random arrays of up to a few thousand elements are then cheap to draw,
and a failure still reproduces exactly from the example hypothesis prints.

The ranges reach the places where textbook code breaks, each drawn often
enough that 25 examples find it: ``real`` values are ``normal`` (scales 1e-3
to 1e2), near the ``exp_thresholds`` (+-88.7 and +-104 where float32's exp
overflows and sigma underflows, +-709.8 and +-745.1 for float64),
``saturated`` (|x| from 8 to 100 in float32, to 800 in float64) or ``tiny``
(down to subnormal); ``kinked`` values add exact ``0.0`` and ``-0.0``;
``logits`` reach offsets and spreads of 1e4; probabilities reach 1e-30 and,
in float64, 1e-300 (mode ``extreme``); targets include exact zeros (``one_hot``,
``sparse``); every side is 1 (one row, one class) with probability 1/4.
``EXTREME_LOGITS`` (logits near the dtype's limit) are drawn only where asked
for: the frameworks' own softmax cross-entropy returns NaN there.

float16 and bfloat16 reach their own thresholds (:func:`exp_thresholds`:
exp overflows at 11.09 in float16, where 65504 ends the range, and at 88.7
in bfloat16; its value rounds to 0 below -17.3 and -92.9); float16 logits
stay within a quarter of 65504; and an example whose exact result or
gradient would be beyond the half dtype's range (a float16 sum of squares
of 64 x 64 values) has its real inputs and cotangent halved until it is not,
so that every drawn example is valid (the overflow itself is tested on its own).

``shapes="palette"`` draws shapes from a short fixed list per op instead of
freely. A JIT-compiling backend (JAX) compiles once per shape, so a palette
keeps its cache warm; the palettes include the edge cases (one element, one
class, 64 wide, broadcast and batched forms).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import strategies as st

from ..dtypes import info, is_half, resolve
from ..ops import OPS

__all__ = ["Example", "examples", "build_example", "Source", "HypothesisSource", "GeneratorSource",
           "values", "shapes_for", "PALETTES", "MAX_SIDE", "REAL_RANGES", "EXP_THRESHOLDS",
           "EXTREME_LOGITS", "exp_thresholds"]

MAX_SIDE = 64
"""Largest batch or feature size drawn."""

REAL_SCALES = (1e-3, 0.1, 1.0, 3.0, 10.0, 100.0)
REAL_RANGES = ("normal", "normal", "exp_thresholds", "exp_thresholds", "saturated", "tiny")
"""Named ranges of ``real`` values; a repeated name is drawn more often."""
EXP_THRESHOLDS = (88.72, 103.97, 709.78, 745.13)
"""Where exp overflows / sigma's value underflows: float32, then float64."""
_EXP_THRESHOLDS = np.array(EXP_THRESHOLDS)


def exp_thresholds(dtype: Any) -> tuple[float, ...]:
    """Where exp overflows (``log max``) and rounds to 0 (``log`` of half the
    smallest subnormal): float32's and float64's (:data:`EXP_THRESHOLDS`), or
    a half dtype's own (11.09 and 17.33 in float16; 88.72 and 92.88 in bfloat16)."""
    dt = resolve(dtype)
    if not is_half(dt):
        return EXP_THRESHOLDS
    fmt = info(dt)
    return (round(float(np.log(fmt.max)), 2), round(float((fmt.bits - fmt.emin) * np.log(2.0)), 2))
LOGIT_SCALES = (0.1, 1.0, 10.0, 100.0, 1000.0, 1e4)
LOGIT_OFFSETS = (0.0, 0.0, 50.0, -1000.0, 1000.0, -1e4, 1e4)
EXTREME_LOGITS = "extreme_logits"
"""A ``values`` kind: logits of magnitude up to a tenth of the dtype's largest value."""
PROBABILITY_SPREADS = {"smooth": 1.0, "peaked": 3.0, "extreme": 30.0}
"""Standard deviation of the logits a distribution is drawn from."""

Shapes = tuple[tuple[int, ...], ...]


@dataclass
class Example:
    """One drawn example: inputs, parameters and a cotangent for the output."""

    op: str
    inputs: tuple[np.ndarray, ...]
    params: dict[str, Any]
    cotangent: np.ndarray
    recipe: dict[str, Any] = field(default_factory=dict)
    """How the values were drawn (seed, scales) -- enough to rebuild them."""

    @property
    def dtype(self) -> np.dtype:
        return self.inputs[0].dtype

    def describe(self) -> str:
        names = OPS[self.op].arg_names
        shapes = ", ".join(f"{n}{tuple(x.shape)}" for n, x in zip(names, self.inputs))
        params = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return f"{self.op}({shapes}{params}) {self.dtype}, recipe {self.recipe}"

    def __repr__(self) -> str:  # hypothesis prints this for a falsifying example
        return f"Example<{self.describe()}>"


# ------------------------------------------------------------------ sources of randomness
#
# Every drawn decision (a shape's side, a range's name, a seed) is one
# bounded integer, asked of a *source*: hypothesis' ``draw`` (so that the
# decision shrinks towards the first option) or a plain NumPy generator (so
# that a screen of many examples costs no hypothesis bookkeeping). The two
# run the same functions below, so they cover the same shapes, ranges and
# frequencies, and a generator's decisions, replayed by hypothesis as its
# choice sequence, rebuild the same example.


class Source:
    """Where the decisions come from: :meth:`integer` in ``[lo, hi]``."""

    def integer(self, lo: int, hi: int) -> int:
        raise NotImplementedError

    def pick(self, options: tuple[Any, ...]) -> Any:
        """One of ``options``, the first the simplest."""
        return options[self.integer(0, len(options) - 1)]


# Strategies are built once, not per draw: hypothesis computes properties
# of every new strategy object, which costs more than the draw itself.
_INTEGERS: dict[tuple[int, int], st.SearchStrategy[int]] = {}


class HypothesisSource(Source):
    """Decisions drawn by hypothesis: one bounded-integer choice each."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw

    def integer(self, lo: int, hi: int) -> int:
        strategy = _INTEGERS.get((lo, hi))
        if strategy is None:
            strategy = _INTEGERS[(lo, hi)] = st.integers(lo, hi)
        return int(self.draw(strategy))


class GeneratorSource(Source):
    """Decisions drawn by a NumPy generator, recorded in :attr:`choices` in
    the order hypothesis would make them."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.choices: list[int] = []

    def integer(self, lo: int, hi: int) -> int:
        # a uniform double scaled to the range: a tenth of the cost of rng.integers per call, and
        # uniform to within 2**-53 relative over ranges up to SEED_MAX
        value = lo + int(self.rng.random() * (hi - lo + 1))
        self.choices.append(value)
        return value


SEED_MAX = 2**32 - 1


# ------------------------------------------------------------------ values


def _distribution(rng: np.random.Generator, shape: tuple[int, ...], mode: str, positive: bool) -> np.ndarray:
    n = shape[-1]
    if mode == "one_hot" and not positive:
        out = np.zeros(shape)
        idx = rng.integers(0, n, size=shape[:-1])
        np.put_along_axis(out, idx[..., None], 1.0, axis=-1)
        return out
    if mode == "sparse" and not positive:
        logits = rng.standard_normal(shape)
        logits[rng.random(shape) < 0.5] = -np.inf
        # keep at least one finite entry per row
        logits[..., 0] = np.where(np.all(np.isinf(logits), axis=-1), 0.0, logits[..., 0])
    elif mode == "near_zero":
        # probabilities down to ~1e-300: a logit spread of 300 in float64 (float32 clamps at its tiny)
        logits = rng.standard_normal(shape) * 300.0
    else:
        logits = rng.standard_normal(shape) * PROBABILITY_SPREADS[mode]
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


_DISTRIBUTION_MODES = {
    "positive_distribution": ("smooth", "peaked", "extreme", "near_zero"),
    "distribution": ("smooth", "peaked", "one_hot", "sparse", "extreme"),
}
_ZERO_FRACTIONS = (0.0, 0.25, 0.5)


def _draw_values(src: Source, rng: np.random.Generator, kind: str, shape: tuple[int, ...], dtype: np.dtype
                 ) -> tuple[np.ndarray, dict[str, Any]]:
    """The body of :func:`values` with the generator given: an example
    fills all its arrays from one seeded generator (seeding one costs more
    than filling a small array)."""
    recipe: dict[str, Any] = {"kind": kind}
    if kind in ("real", "kinked"):
        x, r = _real(src, rng, shape, dtype)
        recipe.update(r)
        if kind == "kinked":
            # exact zeros of both signs at the kink, in a drawn fraction of places
            frac = src.pick(_ZERO_FRACTIONS)
            mask = rng.random(shape) < frac
            signs = rng.random(shape) < 0.5
            x = np.where(mask, np.where(signs, 0.0, -0.0), x)
            recipe["zero_fraction"] = frac
    elif kind == "logits":
        scale = src.pick(LOGIT_SCALES)
        offset = src.pick(LOGIT_OFFSETS)
        x = rng.standard_normal(shape) * scale + offset
        if dtype == np.float16:
            x = np.clip(x, -info(dtype).max / 4, info(dtype).max / 4)
        recipe.update(scale=scale, offset=offset)
    elif kind == EXTREME_LOGITS:
        big = info(dtype).max / 10
        x = rng.choice([-big, -big / 3, 0.0, big / 7, big], size=shape) * rng.uniform(0.5, 1.0, size=shape)
    elif kind in _DISTRIBUTION_MODES:
        mode = src.pick(_DISTRIBUTION_MODES[kind])
        x = _distribution(rng, shape, mode, positive=kind == "positive_distribution")
        recipe["mode"] = mode
    else:
        raise ValueError(f"kind: unknown value kind {kind!r}")
    arr = np.asarray(x, dtype=dtype)
    if kind == "positive_distribution":
        # The op requires > 0 (float32 may round a tiny probability to 0), and -y / yhat times a cotangent
        # of up to ~1e3 must stay representable: probabilities stop at 1e4 / (the dtype's largest value),
        # about 3e-35 in float32 and 6e-305 in float64.
        if is_half(dtype):
            # a half dtype's range is narrow (-y / yhat of a float16 cotangent of 40 is finite above
            # 6e-4): probabilities stop at 100 / max (1.5e-3 float16, 3e-37 bfloat16), the row renormalised
            p = np.maximum(arr.astype(np.float64), 100 / info(dtype).max)
            arr = np.asarray(p / p.sum(axis=-1, keepdims=True), dtype=dtype)
            return np.maximum(arr, np.asarray(info(dtype).tiny, dtype=dtype)), recipe
        arr = np.maximum(arr, np.asarray(1e4 / info(dtype).max, dtype=dtype))
    return arr, recipe


@st.composite
def values(draw: st.DrawFn, kind: str, shape: tuple[int, ...], dtype: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """Draw an array of ``kind`` (see ``ops.Domain``) and its recipe."""
    src = HypothesisSource(draw)
    seed = src.integer(0, SEED_MAX)
    arr, recipe = _draw_values(src, np.random.default_rng(seed), kind, shape, resolve(dtype))
    return arr, {"seed": seed, **recipe}


def _real(src: Source, rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype
          ) -> tuple[np.ndarray, dict[str, Any]]:
    """Real values from one of ``REAL_RANGES``, with the recipe that rebuilds them."""
    name = src.pick(REAL_RANGES)
    # the signs are drawn first whatever the range, so that values() gives the same arrays for a seed as before
    signs = rng.random(shape) < 0.5
    if name == "normal":
        scale = src.pick(REAL_SCALES)
        return rng.standard_normal(shape) * scale, {"range": name, "scale": scale}
    if name == "exp_thresholds":
        points = np.array(exp_thresholds(dtype))
        x = points[rng.integers(0, len(points), size=shape)] + rng.uniform(-2, 2, size=shape)
        return np.where(signs, -x, x), {"range": name}
    if name == "saturated":
        top = {"float16": 20.0, "float64": 800.0}.get(dtype.name, 100.0)
        x = rng.uniform(8.0, top, size=shape)
        return np.where(signs, -x, x), {"range": name}
    tiny = info(dtype).tiny
    return rng.standard_normal(shape) * tiny * 2.0 ** rng.uniform(-20, 20, size=shape), {"range": name}


# ------------------------------------------------------------------ shapes

_MATMUL_FORMS = ("mm", "mm", "mv", "vm", "vv", "batched", "batched_both")
_RANK_SIDES = {1: MAX_SIDE, 2: MAX_SIDE, 3: 16}
"""The largest side per rank of an elementwise input."""
_BROADCAST_SIDE = 16


def _side(src: Source) -> int:
    """A side: 1 (one row, one class) in a quarter of draws, else 1..64, 2..64 or 1..8."""
    form = src.integer(0, 3)
    if form == 0:
        return 1
    return src.integer(*((1, MAX_SIDE), (2, MAX_SIDE), (1, 8))[form - 1])


def _elementwise_shape(src: Source) -> Shapes:
    rank = src.integer(1, 3)
    return (tuple(src.integer(1, _RANK_SIDES[rank]) for _ in range(rank)),)


def _broadcast_pair(src: Source) -> Shapes:
    """Two shapes that broadcast together: a common shape of 0-3 axes, from
    which each operand drops leading axes and turns some to 1."""
    rank = src.integer(0, 3)
    full = [src.integer(1, _BROADCAST_SIDE) for _ in range(rank)]
    pair = []
    for _ in range(2):
        kept = full[src.integer(0, rank):]
        pair.append(tuple(1 if src.integer(0, 1) else side for side in kept))
    return tuple(pair)


def _matmul_pair(src: Source) -> Shapes:
    form = src.pick(_MATMUL_FORMS)
    m, k, n, b = _side(src), _side(src), _side(src), src.integer(1, 4)
    return {
        "mm": ((m, k), (k, n)),
        "mv": ((m, k), (k,)),
        "vm": ((k,), (k, n)),
        "vv": ((k,), (k,)),
        "batched": ((b, m, k), (k, n)),
        "batched_both": ((b, m, k), (1, k, n)),
    }[form]


def _lead(src: Source) -> tuple[int, ...]:
    """Leading batch axes: none, one of any size, or two small ones."""
    forms = ((), (_side(src),), (src.integer(1, 4), src.integer(1, 16)))
    return forms[src.integer(0, 2)]


def _dense_triple(src: Source) -> Shapes:
    i, o = _side(src), _side(src)
    lead = _lead(src)
    return ((*lead, i), (i, o), (o,))


def _rows(src: Source) -> Shapes:
    lead = _lead(src)
    return ((*lead, _side(src)),)


def _row_pairs(src: Source) -> Shapes:
    (shape,) = _rows(src)
    return (shape, shape)


def _same_pair(src: Source) -> Shapes:
    (shape,) = _elementwise_shape(src)
    return (shape, shape)


PALETTES: dict[str, tuple[Shapes, ...]] = {
    "elementwise": (((1,),), ((64,),), ((7, 13),), ((3, 4, 5),)),
    "broadcast_pair": (((), (5,)), ((4, 1), (1, 6)), ((8, 16), (16,)), ((2, 3, 4), (2, 3, 4))),
    "matmul": (((1, 1), (1, 1)), ((7, 13), (13, 5)), ((64,), (64, 3)), ((2, 5, 8), (8, 4))),
    "dense": (((3,), (3, 4), (4,)), ((1, 1), (1, 1), (1,)), ((32, 64), (64, 10), (10,)), ((2, 5, 8), (8, 3), (3,))),
    "rows": (((1,),), ((3,),), ((8, 10),), ((64, 64),)),
    "row_pairs": (((1,), (1,)), ((3,), (3,)), ((8, 10), (8, 10)), ((2, 3, 64), (2, 3, 64))),
    "same_pair": (((1,), (1,)), ((7, 13), (7, 13)), ((64,), (64,)), ((3, 4, 5), (3, 4, 5))),
}


def _free_shapes(kind: str) -> Callable[[Source], Shapes]:
    return {"elementwise": _elementwise_shape, "broadcast_pair": _broadcast_pair, "matmul": _matmul_pair,
            "dense": _dense_triple, "rows": _rows, "row_pairs": _row_pairs, "same_pair": _same_pair}[kind]


def _shapes(src: Source, kind: str, mode: str) -> Shapes:
    if mode == "palette":
        shapes: Shapes = src.pick(PALETTES[kind])
        return shapes
    if mode != "free":
        raise ValueError(f"mode: {mode!r} is not 'free' or 'palette'")
    return _free_shapes(kind)(src)


@st.composite
def _shape_strategy(draw: st.DrawFn, kind: str, mode: str) -> Shapes:
    return _shapes(HypothesisSource(draw), kind, mode)


_SHAPE_STRATEGIES: dict[tuple[str, str], st.SearchStrategy[Shapes]] = {}


def shapes_for(op: str, mode: str = "free") -> st.SearchStrategy[Shapes]:
    """Strategy of input shapes for ``op``; ``mode`` is ``free`` or ``palette``."""
    kind = OPS[op].domain.shapes
    if mode not in ("free", "palette"):
        raise ValueError(f"mode: {mode!r} is not 'free' or 'palette'")
    if (kind, mode) not in _SHAPE_STRATEGIES:
        _SHAPE_STRATEGIES[(kind, mode)] = _shape_strategy(kind, mode)
    return _SHAPE_STRATEGIES[(kind, mode)]


def _matmul_shape(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    """``np.matmul``'s result shape: 1-D operands promoted, then the promoted axis dropped."""
    batch = np.broadcast_shapes(a[:-2], b[:-2])
    rows = a[-2:-1] if len(a) > 1 else ()
    cols = b[-1:] if len(b) > 1 else ()
    return (*batch, *rows, *cols)


_OUTPUT_SHAPES: dict[str, Callable[[Shapes], tuple[int, ...]]] = {
    "elementwise": lambda s: s[0],
    "broadcast_pair": lambda s: np.broadcast_shapes(*s),
    "matmul": lambda s: _matmul_shape(*s),
    "dense": lambda s: (*s[0][:-1], s[1][1]),
    "rows": lambda s: s[0],
    "row_pairs": lambda s: (),
}
"""The output shape per shape kind, from the input shapes alone (the forward
is not run just to learn it): the ``row_pairs`` ops are losses, reduced to
a scalar by every reduction they accept. Kinds not listed run the forward."""


def build_example(src: Source, op: str, dtype: Any, shapes: str = "free",
                  params: dict[str, Any] | None = None) -> Example:
    """A valid ``Example`` for ``op`` in ``dtype``, every decision asked of
    ``src``: :func:`examples` with hypothesis, or a plain generator
    (:class:`GeneratorSource`) for a screen without hypothesis' overhead.

    ``params`` fixes keyword parameters; the others are drawn from the op's
    allowed values.
    """
    if op not in OPS:
        raise KeyError(f"op: unknown op {op!r}; known: {sorted(OPS)}")
    spec = OPS[op]
    dtype = resolve(dtype)
    input_shapes = _shapes(src, spec.domain.shapes, shapes)
    seed = src.integer(0, SEED_MAX)
    rng = np.random.default_rng(seed)
    inputs = []
    recipe: dict[str, Any] = {"seed": seed}
    for name, kind, shape in zip(spec.arg_names, spec.domain.values, input_shapes):
        arr, r = _draw_values(src, rng, kind, shape, dtype)
        inputs.append(arr)
        recipe[name] = r
    chosen = dict(params or {})
    for k, allowed in spec.params.items():
        if k not in chosen:
            chosen[k] = src.pick(tuple(allowed))
    shape_of = _OUTPUT_SHAPES.get(spec.domain.shapes)
    out_shape = tuple(shape_of(input_shapes)) if shape_of else np.shape(spec.impl(*inputs, **chosen))
    g, r = _draw_values(src, rng, "real", out_shape, dtype)
    recipe["cotangent"] = r
    if is_half(dtype):
        inputs, g, recipe["halved"] = _within_range(op, inputs, chosen, g)
    return Example(op, tuple(inputs), chosen, g, recipe)


def _within_range(op: str, inputs: list[np.ndarray], params: dict[str, Any], g: np.ndarray
                  ) -> tuple[list[np.ndarray], np.ndarray, int]:
    """Halve the real and logit inputs and the cotangent (exactly, a power of
    two) until the reference's forward and VJP are within the dtype's range;
    returns how many times they were halved."""
    spec = OPS[op]
    scalable = [kind in ("real", "kinked", "logits") for kind in spec.domain.values]
    for halved in range(64):
        try:
            spec.vjp(g, *inputs, **params)
            spec.forward(*inputs, **params)
            return inputs, g, halved
        except ValueError:
            inputs = [np.asarray(x / 2, dtype=x.dtype) if s else x for x, s in zip(inputs, scalable)]
            g = np.asarray(g / 2, dtype=g.dtype)
    return inputs, g, 64


@st.composite
def examples(draw: st.DrawFn, op: str, dtype: Any, shapes: str = "free",
             params: dict[str, Any] | None = None) -> Example:
    """Draw a valid ``Example`` for ``op`` in ``dtype`` (:func:`build_example`
    with hypothesis as the source, so that the example shrinks)."""
    return build_example(HypothesisSource(draw), op, dtype, shapes, params)
