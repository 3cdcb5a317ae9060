"""What every checker returns: rows of worst errors, counterexamples, the report.

One :class:`Row` per check, dtype, shape class and opinion, filled by one
:class:`Tally` of the engine's worst-error accumulator
(:class:`reference_impl.engine.Worst`) for ``check_op``, ``check_network``,
``check_sgd_step``, ``check_vjp`` and ``check_grad`` alike; one table layout
(:func:`format_rows`, whose optional columns -- the Taylor order, the
relative and ulp errors -- appear where some row measured them) and one
report layout (:func:`render_report`). :class:`OracleResult` is what the op
and network checks return; ``check_vjp``'s result adds the Taylor order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self

from .comparison import Comparison, Counterexample, Worst

__all__ = ["Row", "Result", "OracleResult", "Tally", "format_rows", "render_report", "format_number"]


@dataclass(frozen=True)
class Row:
    """One line of a result: a check (``forward``, ``vjp[x]``, ``loss``,
    ``dW``, ...) in one dtype and shape class against one opinion."""

    check: str
    dtype: str
    shape_class: str
    against: str
    """``reference``, ``torch`` or ``jax``."""
    examples: int
    worst_abs_error: float
    worst_rel_error: float
    worst_ulp_error: float
    worst_ratio: float
    """Largest ``|error| / tolerance`` over every element of every example (<= 1 passes)."""
    tolerance: float
    """The tolerance at the element with the largest ratio."""
    model: str
    """The error model that tolerance comes from."""
    status: str
    """``pass``, ``fail`` (values disagree) or ``error`` (the function did not return a valid result)."""
    verdict: str = "pass"
    """The least benign verdict of the row (``reference_impl.engine.VERDICTS``, or ``error``)."""
    worst_order: float = math.nan
    """The lowest fitted Taylor remainder order (NaN for the checks that fit none)."""
    undecided: int = 0
    """Examples with no verdict: their steps crossed a point where the function is not smooth and could not be
    shrunk below it (:mod:`reference_impl.engine.kinks`). Not a failure."""
    undecided_note: str = ""
    """Why, on the first such example."""

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def to_dict(self) -> dict[str, Any]:
        return {k: _json_float(v) for k, v in self.__dict__.items()}


class Result:
    """What every checker's result shares, over its ``rows``, ``problems``
    and ``counterexamples``: the verdict, the example count, the report and
    raising it."""

    rows: tuple[Row, ...]
    counterexamples: tuple[Counterexample, ...]
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when nothing went wrong and at least one example was checked."""
        return (not self.problems and not self.counterexamples and bool(self.rows)
                and all(r.passed for r in self.rows))

    @property
    def examples(self) -> int:
        """Inputs your functions were run on (per dtype and shape class, summed)."""
        seen: dict[tuple[str, str], int] = {}
        for r in self.rows:
            key = (r.dtype, r.shape_class)
            seen[key] = max(seen.get(key, 0), r.examples)
        return sum(seen.values())

    @property
    def worst_ratio(self) -> float:
        return max((r.worst_ratio for r in self.rows), default=0.0)

    def report(self) -> str:
        raise NotImplementedError

    def __str__(self) -> str:
        return self.report()

    def raise_if_failed(self) -> Self:
        """Raise ``AssertionError`` carrying :meth:`report` unless :attr:`ok`; returns ``self``."""
        __tracebackhide__ = True  # a failing test shows the report, not this frame
        if not self.ok:
            raise AssertionError(self.report())
        return self


@dataclass(frozen=True)
class OracleResult(Result):
    """What :func:`check_op`, :func:`check_network` and :func:`check_sgd_step` return."""

    kind: str
    """``op``, ``network`` or ``sgd_step``."""
    subject: str
    """The op's name or the network's description."""
    functions: tuple[str, ...]
    """Which of your functions were checked (``forward``, ``vjp``, ...)."""
    rows: tuple[Row, ...]
    counterexamples: tuple[Counterexample, ...]
    """At most one per dtype: the shrunk failing input."""
    problems: tuple[str, ...]
    """Misuse of the oracle or a missing backend; nothing was checked where these apply."""
    dtypes: tuple[str, ...]
    backends: tuple[str, ...]
    max_examples: int
    seed: int | None
    profile: str
    cuts: tuple[str, ...] = ()
    """What ``max_elements`` and ``time_budget`` cut: inputs not checked, a search or shrink stopped early."""
    name: str = ""
    """The caller's name for the subject (``check_op(..., name=...)``); the report's title where given."""

    def title(self) -> str:
        if self.name:
            return self.name
        what = "/".join(self.functions) or "nothing"
        subject = f"op '{self.subject}'" if self.kind == "op" else self.subject
        return f"{what} of {subject}"

    def summary_line(self) -> str:
        """One line: status, subject, examples, worst error/tolerance."""
        if self.problems:
            return f"ERROR {self.title()}: {self.problems[0]}"
        status = "PASS" if self.ok else "FAIL"
        against = ", ".join(["reference", *self.backends])
        cut = f" (cut: {len(self.cuts)} limit(s) reached)" if self.cuts else ""
        return (f"{status} {self.title()}: {self.examples} examples in {', '.join(self.dtypes)} against {against}; "
                f"worst error/tolerance {self.worst_ratio:.3g}{cut}")

    def report(self) -> str:
        """The readable report: every row, the counterexamples and the problems."""
        errors = dict.fromkeys(f"error in {r.check} ({r.dtype}, {r.shape_class}): {r.model}"
                               for r in self.rows if r.status == "error")  # each distinct invalid result, once
        return render_report(
            f"gradient oracle: {self.title()} -- {'PASSED' if self.ok else 'FAILED'}",
            f"settings: dtypes {list(self.dtypes)}, backends {['reference', *self.backends]}, "
            f"max_examples {self.max_examples} per dtype, seed {self.seed}, profile {self.profile!r}",
            notes=[*(f"problem: {p}" for p in self.problems), *(f"cut: {c}" for c in self.cuts)],
            table=format_rows(self.rows) if self.rows else [],
            footnotes=["(errors are |yours - theirs|; tolerance from reference_impl.accuracy.ops at the element "
                       "with the worst error/tolerance)", *errors],
            counterexamples=self.counterexamples, seed=self.seed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "subject": self.subject, "functions": list(self.functions), "ok": self.ok,
            "dtypes": list(self.dtypes), "backends": list(self.backends), "max_examples": self.max_examples,
            "seed": self.seed, "profile": self.profile, "problems": list(self.problems), "cuts": list(self.cuts),
            "name": self.name, "rows": [r.to_dict() for r in self.rows],
            "counterexamples": [c.to_dict() for c in self.counterexamples],
        }


def render_report(title: str, settings: str, *, notes: Sequence[str], table: Sequence[str], footnotes: Sequence[str],
                  counterexamples: Sequence[Counterexample], seed: int | None) -> str:
    """The one layout of every checker's report (``check_op``,
    ``check_network``, ``check_sgd_step``, ``check_vjp``, ``check_grad``):
    title, settings, notes, the rows' table with its footnotes, then each
    counterexample and how to reproduce it."""
    lines = [title, f"  {settings}", *(f"  {n}" for n in notes)]
    if table:
        lines.append("")
        lines.extend(f"  {line}" for line in (*table, *footnotes))
    for c in counterexamples:
        lines.append("")
        lines.extend("  " + line for line in c.describe().splitlines())
    if counterexamples:
        lines.append("")
        lines.append("  reproduce: call your function on the arrays above, or rerun the check with "
                     f"seed={seed if seed is not None else '<an int>'} (a fixed seed replays the search)")
    return "\n".join(lines)


def _json_float(v: Any) -> Any:
    # JSON has no inf/nan; a ratio of inf (a shape mismatch) is kept readable
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


def format_number(v: float, spec: str = ".2e") -> str:
    if isinstance(v, float) and math.isnan(v):
        return "-"
    return format(v, spec)


def format_rows(rows: Sequence[Row]) -> list[str]:
    """Rows as an aligned plain-text table; the order, relative and ulp
    columns only where some row has them."""
    cols: list[tuple[str, Any]] = [
        ("dtype", lambda r: r.dtype), ("check", lambda r: r.check), ("shape class", lambda r: r.shape_class),
        ("against", lambda r: r.against), ("examples", lambda r: str(r.examples))]
    if any(not math.isnan(r.worst_order) for r in rows):
        cols.append(("order", lambda r: format_number(r.worst_order, ".2f")))
    cols.append(("worst abs", lambda r: format_number(r.worst_abs_error)))
    if any(not (math.isnan(r.worst_rel_error) and math.isnan(r.worst_ulp_error)) for r in rows):
        cols += [("worst rel", lambda r: format_number(r.worst_rel_error)),
                 ("worst ulp", lambda r: format_number(r.worst_ulp_error, ".3g"))]
    cols += [("err/tol", lambda r: "-" if r.worst_ratio == 0 and math.isnan(r.tolerance)  # nothing measured
              else format_number(r.worst_ratio, ".3g")),
             ("tolerance", lambda r: format_number(r.tolerance)),
             ("status", lambda r: r.status.upper()), ("verdict", lambda r: r.verdict)]
    if any(r.undecided for r in rows):
        cols.append(("undecided", lambda r: f"{r.undecided} at a kink" if r.undecided else ""))
    head = tuple(h for h, _ in cols)
    body = [tuple(cell(r) for _, cell in cols) for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    return [fmt(head), fmt(tuple("-" * w for w in widths)), *(fmt(b) for b in body)]


class Tally:
    """Worst errors per (check, dtype, shape class, against), over every
    example hypothesis ran -- the search and the shrinking alike: each is a
    real input the function was run on."""

    def __init__(self) -> None:
        self.cells: dict[tuple[str, str, str, str], Worst] = {}
        self.undecided: dict[tuple[str, str, str, str], tuple[int, str]] = {}

    def _cell(self, check: str, dtype: str, shape_class: str, against: str) -> Worst:
        return self.cells.setdefault((check, dtype, shape_class, against), Worst())

    def record(self, check: str, dtype: str, shape_class: str, against: str, comp: Comparison,
               new_example: bool = True) -> None:
        """Fold one comparison in; ``new_example=False`` for a further
        comparison on the same input (another layer of one network)."""
        c = self._cell(check, dtype, shape_class, against)
        c.examples += int(new_example)
        c.fold(comp)

    def record_error(self, check: str, dtype: str, shape_class: str, against: str, message: str) -> None:
        c = self._cell(check, dtype, shape_class, against)
        c.examples += 1
        c.error(message)

    def record_ratio(self, check: str, dtype: str, shape_class: str, against: str, abs_error: float, ratio: float,
                     tolerance: float, model: str) -> None:
        """One example's error already divided by its tolerance (:meth:`Worst.fold_ratio`)."""
        c = self._cell(check, dtype, shape_class, against)
        c.examples += 1
        c.fold_ratio(abs_error, ratio, tolerance, model)

    def record_order(self, check: str, dtype: str, shape_class: str, order: float, failed: bool, model: str) -> None:
        """One example's fitted Taylor order, against finite differences (:meth:`Worst.fold_order`)."""
        c = self._cell(check, dtype, shape_class, "differences")
        c.examples += 1
        c.fold_order(order, failed, model)

    def record_pass(self, check: str, dtype: str, shape_class: str, against: str, model: str) -> None:
        """One example on which a check with nothing to measure held."""
        c = self._cell(check, dtype, shape_class, against)
        c.examples += 1
        c.note_pass(model)

    def record_undecided(self, check: str, dtype: str, shape_class: str, against: str, note: str) -> None:
        """One example the check could not decide (steps across a kink that
        could not be shrunk below it): counted, not a failure."""
        key = (check, dtype, shape_class, against)
        self._cell(*key).examples += 1
        count, first = self.undecided.get(key, (0, note))
        self.undecided[key] = (count + 1, first)

    def rows(self) -> tuple[Row, ...]:
        order = {"reference": 0, "torch": 1, "jax": 2, "contract": 3}
        keys = sorted(self.cells, key=lambda k: (k[1], k[2], k[0], order.get(k[3], 9), k[3]))
        out = []
        for k in keys:
            c = self.cells[k]
            count, note = self.undecided.get(k, (0, ""))
            out.append(Row(k[0], k[1], k[2], k[3], c.examples, c.abs_error, c.rel_error, c.ulp_error,
                           c.ratio, c.tolerance, c.model or note, c.status, c.verdict, c.order, count, note))
        return tuple(out)
