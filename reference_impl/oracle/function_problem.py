"""What ``check_vjp`` and ``check_grad`` resolve before any example: the
:class:`Problem`, the :class:`Finding` a failing example gives, and the
:class:`Counters` a run keeps across examples (:mod:`.function_checks`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import engine
from ..strategies.inputs import Coverage

__all__ = ["Problem", "Finding", "Counters"]


@dataclass(frozen=True)
class Problem:
    """A resolved check: the functions, the names of their arguments, what to differentiate."""

    f: Callable[..., Any]
    vjp: Callable[..., Any]
    f_name: str
    vjp_name: str
    arg_names: tuple[str, ...]
    wrt: tuple[int, ...] | None
    """Indices of the inputs to differentiate; ``None``: every floating input."""
    backends: tuple[str, ...]
    gradient_only: bool = False
    """``vjp`` is a gradient ``grad(*inputs)`` of a scalar ``f``; the VJP is ``v * grad``."""
    piecewise: bool = False  # f declared piecewise smooth: every adjoint test is read below the kinks


@dataclass(frozen=True)
class Finding(engine.Finding):
    """The check engine's finding, and whether the VJP returned the wrong
    structure (counted apart: a misuse rather than a wrong value)."""

    structure_error: bool = False


@dataclass
class Counters:
    evaluated: int = 0
    skipped: int = 0
    structure_errors: int = 0
    cut_by_size: int = 0
    misuse: str = ""
    coverage: Coverage = field(default_factory=Coverage)
    opinions_ran: set[str] = field(default_factory=set)
    opinions_left_out: dict[str, str] = field(default_factory=dict)
    """A backend that failed on the first input it was given: it cannot run ``f`` (NumPy glue around torch, code
    that is not array-API generic), so it is no opinion; said in the result's cuts."""

    def notes(self) -> list[str]:
        return [f"backends: {b!r} left out: it could not run your f on its own arrays ({why}); an opinion needs f "
                "written against the array API (xp = array_namespace(x))" for b, why in self.opinions_left_out.items()]
