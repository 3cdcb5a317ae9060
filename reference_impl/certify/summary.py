"""``certify``'s summary: each row's grade, the rows per framework, mode and dtype, the time on N workers.

A row against torch or jax is *graded* (:mod:`reference_impl.engine.grades`):
its largest ulp error against the reference where the result is a normal
number and no subnormal was flushed, and its normwise error in units of
``u``; elements one side flushed to zero are counted (``flushed
subnormals``), not graded. A row against finite differences (``fd``) or a
golden replay is *judged* -- pass or fail, with its error/tolerance ratio --
and not graded: a central difference is an estimate, a printed number has the
document's digits, neither is a value in ulps.

Rows may carry key fields beyond section, subject, backend and dtype
(``mode``, ``device``); a row without them ran in its framework's usual mode
(:data:`USUAL_MODES`: torch eager, jax jitted, NumPy eager) on the ``cpu``.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..frameworks.backends import DEFAULT_MODE
from .modes import usual_mode

__all__ = ["USUAL_MODES", "usual_mode", "mode_suffix", "DEFAULT_DEVICE", "Grade", "Group", "grade_of", "mode_of",
           "device_of", "framework_of", "groups", "lpt_makespan", "projection", "fmt", "row_note"]

USUAL_MODES = DEFAULT_MODE
"""The mode of a row that names none: certify has always run torch eagerly
and jax under ``jax.jit``; finite differences and replays run NumPy, eagerly."""
DEFAULT_DEVICE = "cpu"
JUDGED_BACKENDS = ("fd", "reference")
"""Opinions that are judged (pass or fail), not graded."""


def fmt(v: Any, spec: str = ".3g") -> str:
    """A number for a table: ``-`` for NaN or a missing value."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return "-"
    return "-" if math.isnan(x) else format(x, spec)


def mode_of(row: Any) -> str:
    """The row's mode (``eager``, ``compiled``); its framework's usual mode for a row that has none."""
    return str(_field(row, "mode") or usual_mode(str(_field(row, "backend"))))


def mode_suffix(backend: str, mode: str) -> str:
    """``" compiled"``, ``" eager"``: the mode where it is not the framework's usual one, else nothing."""
    return "" if mode == usual_mode(backend) else f" {mode}"


def device_of(row: Any) -> str:
    return str(_field(row, "device") or DEFAULT_DEVICE)


def _field(row: Any, name: str) -> Any:
    return row.get(name) if isinstance(row, dict) else getattr(row, name, None)


def framework_of(row: Any) -> str:
    """The backend, with the device where it is not the CPU (``torch (cuda)``)."""
    device = device_of(row)
    backend = str(_field(row, "backend"))
    return backend if device == DEFAULT_DEVICE else f"{backend} ({device})"


@dataclass(frozen=True)
class Grade:
    """A row's grade: ``kind`` is ``ulp``, ``normwise`` (no element graded in
    ulps), ``judged`` (finite differences, golden replays) or ``none``
    (nothing measured: a skipped or crashed row, a shape mismatch)."""

    kind: str
    value: float
    normwise: float
    flushed: int

    @property
    def graded(self) -> bool:
        return self.kind in ("ulp", "normwise")


def grade_of(row: Any) -> Grade:
    nan = float("nan")
    if row.backend in JUDGED_BACKENDS or row.section == "golden":
        return Grade("judged", nan, nan, 0)
    ulp, normwise = float(row.worst_ulp_error), float(getattr(row, "worst_normwise", nan))
    flushed = int(getattr(row, "flushed", 0))
    if math.isfinite(ulp):
        return Grade("ulp", ulp, normwise, flushed)
    if math.isfinite(normwise):
        return Grade("normwise", normwise, normwise, flushed)
    return Grade("none", nan, nan, flushed)


def row_note(row: Any) -> str:
    """A few words beside a row: its verdict where it is not a pass, flushed subnormals, judged rows."""
    notes = []
    if row.status == "skip":
        notes.append("skipped")
    elif row.verdict != "pass":
        notes.append(row.verdict)
    g = grade_of(row)
    if g.flushed:
        notes.append(f"flushed subnormals ({g.flushed})")
    if g.kind == "judged":
        notes.append("judged: printed digits" if row.section == "golden" else "judged: finite differences")
    return "; ".join(notes)


@dataclass
class Group:
    """The rows of one framework, mode and dtype."""

    framework: str
    mode: str
    dtype: str
    rows: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    worst_ulp: float = float("nan")
    worst_ulp_subject: str = ""
    worst_normwise: float = float("nan")
    worst_ratio: float = float("nan")
    flushed_rows: int = 0
    graded: bool = False

    def add(self, row: Any) -> None:
        self.rows += 1
        status = row.status
        self.passed += status == "pass"
        self.failed += status == "fail"
        self.errors += status == "error"
        self.skipped += status == "skip"
        g = grade_of(row)
        self.graded = self.graded or g.graded
        if g.kind == "ulp" and not g.value <= self.worst_ulp:
            self.worst_ulp, self.worst_ulp_subject = g.value, f"{row.section} {row.subject}"
        if math.isfinite(g.normwise) and not g.normwise <= self.worst_normwise:
            self.worst_normwise = g.normwise
        ratio = float(row.worst_ratio)
        if not math.isnan(ratio) and not ratio <= self.worst_ratio:
            self.worst_ratio = ratio
        self.flushed_rows += g.flushed > 0

    def worst_grade(self) -> str:
        if not self.graded:
            return "judged"
        if math.isnan(self.worst_ulp):
            return "-"
        return f"{fmt(self.worst_ulp)} ulp ({self.worst_ulp_subject})"

    def note(self) -> str:
        parts = []
        if self.errors:
            parts.append(f"{self.errors} crashed")
        if self.flushed_rows:
            parts.append(f"flushed subnormals in {self.flushed_rows} row{'s' if self.flushed_rows > 1 else ''}")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"framework": self.framework, "mode": self.mode, "dtype": self.dtype, "rows": self.rows,
                "pass": self.passed, "fail": self.failed, "error": self.errors, "skip": self.skipped,
                "graded": self.graded, "worst_ulp": self.worst_ulp, "worst_ulp_row": self.worst_ulp_subject,
                "worst_normwise": self.worst_normwise, "worst_ratio": self.worst_ratio,
                "flushed_rows": self.flushed_rows}


SUMMARY_HEAD = ("framework", "mode", "dtype", "rows", "pass", "fail", "skip", "worst ulp", "normwise u", "err/tol",
                "note")


def summary_cells(g: Group) -> tuple[str, ...]:
    return (g.framework, g.mode, g.dtype, str(g.rows), str(g.passed), str(g.failed + g.errors), str(g.skipped),
            g.worst_grade(), fmt(g.worst_normwise), fmt(g.worst_ratio), g.note())


def groups(rows: Sequence[Any]) -> list[Group]:
    """One :class:`Group` per framework, mode and dtype, in the order they first appear."""
    out: dict[tuple[str, str, str], Group] = {}
    for r in rows:
        key = (framework_of(r), mode_of(r), str(r.dtype))
        if key not in out:
            out[key] = Group(*key)
        out[key].add(r)
    order = {name: i for i, name in enumerate(dict.fromkeys(k[0] for k in out))}
    modes = {name: i for i, name in enumerate(dict.fromkeys(k[1] for k in out))}
    return sorted(out.values(), key=lambda g: (order[g.framework], modes[g.mode]))


# ------------------------------------------------------------------ time on N workers


def lpt_makespan(costs: Sequence[float], workers: int) -> float:
    """The wall time of running ``costs`` on ``workers`` workers, longest
    first, each to the worker that is free first (longest-processing-time
    scheduling, within 4/3 of the best schedule)."""
    if workers < 1:
        raise ValueError(f"workers: must be >= 1, got {workers}")
    loads = [0.0] * min(workers, max(len(costs), 1))
    for c in sorted((max(float(c), 0.0) for c in costs), reverse=True):
        heapq.heappush(loads, heapq.heappop(loads) + c)
    return max(loads)


def projection(rows: Sequence[Any], workers: Sequence[int]) -> dict[str, Any]:
    """The measured row costs (``seconds``) and the projected wall time on each of ``workers``."""
    costs = [float(r.seconds) for r in rows]
    longest = max(rows, key=lambda r: float(r.seconds), default=None)
    return {
        "row_seconds_total": round(sum(costs), 2),
        "longest_row": None if longest is None else {"row": _label(longest), "seconds": round(longest.seconds, 2)},
        "projected_seconds": {str(n): round(lpt_makespan(costs, n), 2) for n in workers},
    }


def _label(r: Any) -> str:
    return f"{r.section} {r.subject} vs {framework_of(r)}{mode_suffix(r.backend, mode_of(r))} {r.dtype}"
