"""What :func:`check_vjp` and :func:`check_grad` return: rows per dtype x shape
class x check, shrunk counterexamples, a readable report.

The rows, the table and the report layout are the engine's
(:mod:`reference_impl.engine.results`), shared with ``check_op``'s
:class:`~reference_impl.engine.results.OracleResult`; this result adds the
inputs skipped by ``assume()`` and the lowest fitted Taylor order. A
counterexample is the check engine's :class:`reference_impl.engine.Counterexample`,
printed the same way wherever it is reported; its arrays add the cotangent
and direction that exposed the failure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..engine.comparison import Counterexample
from ..engine.results import Result, Row, format_number, format_rows, render_report

__all__ = ["Row", "Counterexample", "GradcheckResult", "resolve_name"]


def resolve_name(name: Any) -> str:
    """The caller's ``name=`` for the subject of a check ("" for None), or ``TypeError``."""
    if name is None:
        return ""
    if not isinstance(name, str) or not name.strip():
        raise TypeError(f"name: expected a non-empty string naming the subject in the report, got {name!r}")
    return name


@dataclass(frozen=True)
class GradcheckResult(Result):
    """What :func:`check_vjp` and :func:`check_grad` return."""

    kind: str
    """``vjp`` or ``grad``."""
    subject: str
    """The function's name."""
    functions: tuple[str, ...]
    rows: tuple[Row, ...]
    counterexamples: tuple[Counterexample, ...]
    """At most one per dtype: the shrunk failing input."""
    problems: tuple[str, ...]
    """Nothing could be checked where these apply (every input skipped, a missing backend)."""
    cuts: tuple[str, ...]
    """What ``max_elements`` and ``time_budget`` cut."""
    skipped: int
    """Inputs skipped by ``assume()`` / ``reject()`` in your functions."""
    dtypes: tuple[str, ...]
    backends: tuple[str, ...]
    max_examples: int
    seed: int | None
    profile: str
    coverage: tuple[str, ...] = ()
    """Per floating input: the range of the values drawn and how many inputs reached the named extremes."""
    name: str = ""
    """The caller's name for the subject (``name=``); the report's title where given."""

    @property
    def worst_order(self) -> float:
        orders = [r.worst_order for r in self.rows if not math.isnan(r.worst_order)]
        return min(orders, default=math.nan)

    @property
    def undecided(self) -> int:
        """Checks left without a verdict at a kink (:mod:`reference_impl.engine.kinks`): not failures."""
        return sum(r.undecided for r in self.rows)

    def title(self) -> str:
        return self.name or f"{'/'.join(self.functions)} of {self.subject}"

    def summary_line(self) -> str:
        if self.problems:
            return f"ERROR {self.title()}: {self.problems[0]}"
        status = "PASS" if self.ok else "FAIL"
        undecided = f"; {self.undecided} undecided at a kink" if self.undecided else ""
        return (f"{status} {self.title()}: {self.examples} examples in {', '.join(self.dtypes)}; "
                f"lowest Taylor order {format_number(self.worst_order, '.2f')}{undecided}")

    def report(self) -> str:
        skipped = [f"skipped: {self.skipped} input(s) rejected by assume()/reject() in your functions"] \
            if self.skipped else []
        return render_report(
            f"gradient check: {self.title()} -- {'PASSED' if self.ok else 'FAILED'}",
            f"settings: dtypes {list(self.dtypes)}, opinions {['differences', *self.backends]}, "
            f"max_examples {self.max_examples} per dtype, seed {self.seed}, profile {self.profile!r}",
            notes=[*(f"problem: {p}" for p in self.problems), *(f"cut: {c}" for c in self.cuts), *skipped,
                   *(f"covered: {c}" for c in self.coverage),
                   *(f"undecided at a kink: {r.undecided} example(s) of {r.check} ({r.dtype}, {r.shape_class}), "
                     f"not failures; first: {r.undecided_note}" for r in self.rows if r.undecided)],
            table=format_rows(self.rows) if self.rows else [],
            footnotes=["(order: Taylor remainder order, 2 when right and 1 when wrong; err/tol under the error "
                       "models of reference_impl.engine.differences)"],
            counterexamples=self.counterexamples, seed=self.seed)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "subject": self.subject, "functions": list(self.functions), "ok": self.ok,
                "dtypes": list(self.dtypes), "backends": list(self.backends), "max_examples": self.max_examples,
                "seed": self.seed, "profile": self.profile, "problems": list(self.problems), "cuts": list(self.cuts),
                "skipped": self.skipped, "undecided": self.undecided, "name": self.name,
                "coverage": list(self.coverage), "rows": [r.to_dict() for r in self.rows],
                "counterexamples": [c.to_dict() for c in self.counterexamples]}
