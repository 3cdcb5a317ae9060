"""What :func:`check_vjp` and :func:`check_grad` return: rows per dtype x shape
class x check, shrunk counterexamples, a readable report.

The wording and the fields follow :class:`reference_impl.oracle.OracleResult`
(``Row``, ``ok``, ``report()``, ``raise_if_failed()``); a row adds the fitted
Taylor order. A counterexample is the check engine's
:class:`reference_impl.engine.Counterexample`, printed the same way wherever
it is reported; its arrays add the cotangent and direction that exposed the
failure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..engine.comparison import Counterexample
from ..engine.results import render_report

__all__ = ["Row", "Counterexample", "GradcheckResult", "Tally", "format_rows"]


@dataclass(frozen=True)
class Row:
    """One line of a result: a check in one dtype and shape class against one opinion.

    Checks: ``taylor[x]`` (remainder order), ``adjoint[x]`` (against
    extrapolated differences), ``float32 vs float64[x]``, ``gradient[x]``
    (finite, dtype, shape), ``inputs unchanged`` and ``f``; ``against`` is
    ``differences``, ``float64``, ``torch``, ``jax`` or ``contract``."""

    check: str
    dtype: str
    shape_class: str
    against: str
    examples: int
    worst_order: float
    """Lowest fitted Taylor order (nan for other checks or when none was fitted)."""
    worst_abs_error: float
    worst_ratio: float
    """Largest ``|error| / tolerance`` over every example (<= 1 passes)."""
    tolerance: float
    model: str
    status: str
    """``pass``, ``fail`` or ``error`` (the function did not return a valid result)."""

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, float) and not math.isfinite(v) else v) for k, v in self.__dict__.items()}



def _fmt(v: float, spec: str = ".2e") -> str:
    return "-" if isinstance(v, float) and math.isnan(v) else format(v, spec)


def format_rows(rows: Sequence[Row]) -> list[str]:
    """Rows as an aligned plain-text table."""
    head = ("dtype", "check", "shape class", "against", "examples", "order", "worst abs", "err/tol", "tolerance",
            "status")
    body = [(r.dtype, r.check, r.shape_class, r.against, str(r.examples), _fmt(r.worst_order, ".2f"),
             _fmt(r.worst_abs_error), _fmt(r.worst_ratio, ".3g"), _fmt(r.tolerance), r.status.upper()) for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    return [fmt(head), fmt(tuple("-" * w for w in widths)), *(fmt(b) for b in body)]


@dataclass
class _Cell:
    examples: int = 0
    worst_order: float = math.nan
    worst_abs: float = 0.0
    worst_ratio: float = math.nan
    tolerance: float = math.nan
    model: str = ""
    status: str = "pass"


class Tally:
    """Worst values per (check, dtype, shape class, against) over every example run."""

    def __init__(self) -> None:
        self.cells: dict[tuple[str, str, str, str], _Cell] = {}

    def _cell(self, check: str, dtype: str, shape_class: str, against: str) -> _Cell:
        return self.cells.setdefault((check, dtype, shape_class, against), _Cell())

    def order(self, check: str, dtype: str, shape_class: str, order: float, failed: bool, model: str) -> None:
        c = self._cell(check, dtype, shape_class, "differences")
        c.examples += 1
        if not math.isnan(order) and (math.isnan(c.worst_order) or order < c.worst_order):
            c.worst_order = order
        if not c.model or failed:
            c.model = model
        if failed:
            c.status = "fail"

    def ratio(self, check: str, dtype: str, shape_class: str, against: str, abs_error: float, ratio: float,
              tolerance: float, model: str) -> None:
        c = self._cell(check, dtype, shape_class, against)
        c.examples += 1
        c.worst_abs = max(c.worst_abs, abs_error)
        if math.isnan(c.worst_ratio) or ratio > c.worst_ratio:
            c.worst_ratio, c.tolerance, c.model = ratio, tolerance, model
        if not ratio <= 1.0:
            c.status = "fail"

    def passed(self, check: str, dtype: str, shape_class: str, against: str, model: str) -> None:
        c = self._cell(check, dtype, shape_class, against)
        c.examples += 1
        c.model = c.model or model

    def error(self, check: str, dtype: str, shape_class: str, against: str, message: str) -> None:
        c = self._cell(check, dtype, shape_class, against)
        c.examples += 1
        c.status = "error"
        c.model = message

    def rows(self) -> tuple[Row, ...]:
        keys = sorted(self.cells, key=lambda k: (k[1], k[2], k[0], k[3]))
        return tuple(Row(k[0], k[1], k[2], k[3], c.examples, c.worst_order, c.worst_abs, c.worst_ratio, c.tolerance,
                         c.model, c.status) for k in keys for c in [self.cells[k]])


@dataclass(frozen=True)
class GradcheckResult:
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

    @property
    def ok(self) -> bool:
        """True when nothing went wrong and at least one example was checked."""
        return (not self.problems and not self.counterexamples and bool(self.rows)
                and all(r.passed for r in self.rows))

    @property
    def examples(self) -> int:
        seen: dict[tuple[str, str], int] = {}
        for r in self.rows:
            key = (r.dtype, r.shape_class)
            seen[key] = max(seen.get(key, 0), r.examples)
        return sum(seen.values())

    @property
    def worst_order(self) -> float:
        orders = [r.worst_order for r in self.rows if not math.isnan(r.worst_order)]
        return min(orders, default=math.nan)

    def title(self) -> str:
        return f"{'/'.join(self.functions)} of {self.subject}"

    def summary_line(self) -> str:
        if self.problems:
            return f"ERROR {self.title()}: {self.problems[0]}"
        status = "PASS" if self.ok else "FAIL"
        return (f"{status} {self.title()}: {self.examples} examples in {', '.join(self.dtypes)}; "
                f"lowest Taylor order {_fmt(self.worst_order, '.2f')}")

    def report(self) -> str:
        skipped = [f"skipped: {self.skipped} input(s) rejected by assume()/reject() in your functions"] \
            if self.skipped else []
        return render_report(
            f"gradient check: {self.title()} -- {'PASSED' if self.ok else 'FAILED'}",
            f"settings: dtypes {list(self.dtypes)}, opinions {['differences', *self.backends]}, "
            f"max_examples {self.max_examples} per dtype, seed {self.seed}, profile {self.profile!r}",
            notes=[*(f"problem: {p}" for p in self.problems), *(f"cut: {c}" for c in self.cuts), *skipped],
            table=format_rows(self.rows) if self.rows else [],
            footnotes=["(order: Taylor remainder order, 2 when right and 1 when wrong; err/tol under the error "
                       "models of reference_impl.engine.differences)"],
            counterexamples=self.counterexamples, seed=self.seed)

    __str__ = report

    def raise_if_failed(self) -> GradcheckResult:
        """Raise ``AssertionError`` carrying :meth:`report` unless :attr:`ok`; returns ``self``."""
        if not self.ok:
            raise AssertionError(self.report())
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "subject": self.subject, "functions": list(self.functions), "ok": self.ok,
                "dtypes": list(self.dtypes), "backends": list(self.backends), "max_examples": self.max_examples,
                "seed": self.seed, "profile": self.profile, "problems": list(self.problems), "cuts": list(self.cuts),
                "skipped": self.skipped, "rows": [r.to_dict() for r in self.rows],
                "counterexamples": [c.to_dict() for c in self.counterexamples]}
