"""The fixtures' data model: an entry's inputs, steps and expected
quantities, errata, and a file of them, as :mod:`.loader` builds them from
checked JSON (and :mod:`.replay` evaluates them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._validate import check_choice, check_int

__all__ = ["DTYPE", "MAX_FIXTURE_ELEMENTS", "DERIVATIONS", "Input", "Step", "Expectation", "Entry", "Erratum",
           "FixtureFile", "half_unit", "shape_of", "printed_with"]

DTYPE = np.dtype(np.float64)
"""Fixtures are replayed in float64: their numbers have 8 significant decimals,
more than float32 carries."""

MAX_FIXTURE_ELEMENTS = 4096
"""Most elements one declared shape may have (the shipped fixtures use at most 16)."""

DERIVATIONS = {"log": np.log}
"""Functions a derived input may apply to another input."""


# =========================================================================== data model


@dataclass(frozen=True, eq=False)
class Input:
    """A named input of an entry's graph."""

    name: str
    role: str
    """input, parameter (its gradient is what training needs), target,
    cotangent (seeds a backward pass), constant, or hyperparameter."""
    origin: str
    """document, formula (a constant of a stated formula), derived, placeholder."""
    shape: tuple[int, ...]
    value: np.ndarray | None
    """float64; ``None`` for placeholders (see :func:`input_values`)."""
    decimals: int | None = None
    derivation: tuple[str, str] | None = None
    """``(function, source input)`` for derived inputs."""
    placeholder: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class Step:
    """``output = OPS[op].forward(*inputs, **params)``."""

    op: str
    inputs: tuple[str, ...]
    params: Mapping[str, str]
    output: str


@dataclass(frozen=True, eq=False)
class Expectation:
    """One expected quantity of an entry."""

    index: int
    """Position in the entry's ``expected`` list (names it in messages)."""
    quantity: str
    origin: str
    note: str
    tolerance_rule: str
    tolerance: float | None
    of: str | None = None
    seeds: Mapping[str, str] | None = None
    wrt: str | None = None
    ops: tuple[str, ...] | None = None
    shape: tuple[int, ...] | None = None
    value: Any = None
    """float64 array for value/gradient/sum; a tuple of ints for shape; an
    int for size and the counts; ``None`` with ``equals``."""
    equals: str | None = None
    decimals: int | None = None

    def label(self) -> str:
        if self.quantity == "gradient":
            of = self.of if self.of is not None else "(" + ", ".join(
                f"{k} seeded with {v}" for k, v in (self.seeds or {}).items()) + ")"
            return f"gradient of {of} w.r.t. {self.wrt}"
        if self.quantity == "chain_length":
            return f"chain length from {self.wrt} to {self.of}"
        if self.quantity == "op_count":
            return f"number of steps using {list(self.ops or ())}"
        return f"{self.quantity} of {self.of}"

    def seed_spec(self) -> tuple[tuple[str, str | None], ...] | None:
        """The backward pass this expectation needs, or ``None``."""
        if self.quantity == "gradient":
            if self.seeds is not None:
                return tuple(sorted((k, v) for k, v in self.seeds.items()))
            return ((str(self.of), None),)
        if self.quantity == "gradient_count":
            return ((str(self.of), None),)
        return None


@dataclass(frozen=True, eq=False)
class Entry:
    """One fixture entry (see the module docstring)."""

    id: str
    document: str
    section: str
    description: str
    inputs: tuple[Input, ...]
    steps: tuple[Step, ...]
    expected: tuple[Expectation, ...]
    lost: str | None
    stand_ins: tuple[str, ...]
    unchecked: str | None
    file: str
    """Name of the fixture file the entry was read from."""
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def input(self, name: str) -> Input:
        """The input called ``name``; any other name is a ``ValueError``
        naming ``name`` and listing the entry's inputs."""
        return {i.name: i for i in self.inputs}[check_choice(name, "name", tuple(i.name for i in self.inputs))]

    @property
    def ops(self) -> tuple[str, ...]:
        """The distinct ops of the graph, in order of first use."""
        return tuple(dict.fromkeys(s.op for s in self.steps))


@dataclass(frozen=True)
class Erratum:
    """An error of a document, found while extracting its numbers."""

    id: str
    document: str
    section: str
    located_by: str
    """A verbatim fragment of the document that finds the spot."""
    correction: str
    explanation: str
    entries: tuple[str, ...]
    file: str


@dataclass(frozen=True, eq=False)
class FixtureFile:
    name: str
    document: str
    entries: tuple[Entry, ...]
    errata: tuple[Erratum, ...]
    raw: dict[str, Any] = field(repr=False)
    """The parsed JSON, for rewriting derived values."""


# =========================================================================== semantic checks


def shape_of(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list):
        return ()
    if not value:
        return (0,)
    subs = [shape_of(v) for v in value]
    if any(s != subs[0] for s in subs) or any(isinstance(v, list) != isinstance(value[0], list) for v in value):
        raise ValueError("ragged nested list (rows of different shapes)")
    return (len(value), *subs[0])


def half_unit(decimals: int) -> float:
    """Half a unit in the last printed digit: ``0.5 * 10**-decimals``;
    ``decimals`` an int >= 0 (the schema's bound on printed decimals)."""
    # beyond 400 decimals the power underflows to 0 as it does at 400; a huge int would not convert to float
    return 0.5 * 10.0 ** -min(check_int(decimals, "decimals", minimum=0), 400)


def printed_with(value: np.ndarray, decimals: int) -> bool:
    """Whether every element has no more than ``decimals`` decimals."""
    scaled = np.asarray(value, dtype=np.float64) * 10.0 ** decimals
    # a decimal string read into binary and scaled carries a few ulps of error, never a whole unit
    slack = 16 * float(np.finfo(np.float64).eps) * np.maximum(1.0, np.abs(scaled))
    return bool(np.all(np.abs(scaled - np.round(scaled)) <= slack))
