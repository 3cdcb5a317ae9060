"""``certify``'s reports: the progress display, the certificate, text and Markdown.

Each report opens with the summary -- per framework, mode and dtype: rows,
passes, failures, the worst grade (:mod:`.summary`) -- and then the rows,
one line each; the JSON certificate carries the same summary, every row with
its cost in seconds, and the time projected on more workers where asked.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from .baseline import baseline_text
from .summary import (
    SUMMARY_HEAD,
    fmt,
    framework_of,
    grade_of,
    groups,
    mode_of,
    mode_suffix,
    projection,
    row_note,
    summary_cells,
)
from .tasks import CertRow, Settings, jsonable

__all__ = ["Progress", "Certificate", "text_report", "markdown_report", "table", "summary_table", "FORMAT_VERSION",
           "TABLE_HEAD", "row_cells", "LEGEND"]

FORMAT_VERSION = 2
"""2: the summary by framework, mode and dtype, grades (ulp, normwise, flushed), timing."""


class Progress:
    """A progress bar on ``stream`` (stderr): redrawn in place on a terminal
    at most ten times a second; on a log (CI), one line per finished row and
    a line every ``heartbeat`` seconds inside a long row."""

    def __init__(self, total: int, stream: TextIO | None = None, enabled: bool = True, heartbeat: float = 15.0,
                 width: int = 24) -> None:
        self.total = max(total, 1)
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.heartbeat = heartbeat
        self.width = width
        self.done = 0
        self.label = ""
        self.examples = 0
        self.start = time.monotonic()
        self._last_draw = 0.0
        self._last_line = self.start

    def _elapsed(self) -> str:
        s = int(time.monotonic() - self.start)
        return f"{s // 60:02d}:{s % 60:02d}"

    def begin(self, label: str) -> None:
        self.label, self.examples = label, 0
        self._draw(force=True)

    def tick(self) -> None:
        """One more example in the current row."""
        self.examples += 1
        self._draw()

    def finish(self, status: str) -> None:
        self.done += 1
        if not self.enabled:
            return
        if self.tty:
            self._draw(force=True)
        else:
            self.stream.write(f"[{self.done}/{self.total} {self._elapsed()}] {self.label}: {status} "
                              f"({self.examples} examples)\n")
            self.stream.flush()
            self._last_line = time.monotonic()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if self.tty:
            if not force and now - self._last_draw < 0.1:
                return
            filled = int(self.width * self.done / self.total)
            bar = "#" * filled + "-" * (self.width - filled)
            text = f"\r[{bar}] {self.done}/{self.total} {self._elapsed()}  {self.label}  ({self.examples} examples)"
            self.stream.write(text[:160].ljust(100))
            self.stream.flush()
            self._last_draw = now
        elif now - self._last_line >= self.heartbeat:
            self.stream.write(f"[{self.done}/{self.total} {self._elapsed()}] {self.label}: still running "
                              f"({self.examples} examples so far)\n")
            self.stream.flush()
            self._last_line = now


@dataclass
class Certificate:
    settings: Settings
    rows: list[CertRow]
    environment: dict[str, Any]
    conventions: list[dict[str, Any]]
    elapsed: float
    created: str
    baseline: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    executor: str = ""
    """Where the rows ran: ``in this process``, ``on N local worker processes``, on a Dask scheduler."""
    project_workers: tuple[int, ...] = ()
    """Worker counts to project the run's time on (``--project-workers``)."""

    @property
    def failed(self) -> list[CertRow]:
        return [r for r in self.rows if r.status in ("fail", "error")]

    def counts(self) -> dict[str, int]:
        return {k: sum(1 for r in self.rows if r.status == k) for k in ("pass", "fail", "error", "skip")}

    def timing(self) -> dict[str, Any]:
        return {"elapsed_seconds": round(self.elapsed, 2), "executor": self.executor,
                **projection(self.rows, self.project_workers)}

    def to_dict(self) -> dict[str, Any]:
        return jsonable({
            "format": FORMAT_VERSION,
            "tool": "python -m reference_impl certify",
            "created": self.created,
            "elapsed_seconds": round(self.elapsed, 2),
            "result": "fail" if self.failed else "pass",
            "summary": {**self.counts(), "groups": [g.to_dict() for g in groups(self.rows)]},
            "timing": self.timing(),
            "environment": self.environment,
            "settings": self.settings_dict(),
            "rows": [{**r.to_dict(), "grade": grade_of(r).kind} for r in self.rows],
            "conventions": self.conventions,
            "notes": self.notes,
            "baseline": self.baseline,
        })

    def settings_dict(self) -> dict[str, Any]:
        s = self.settings
        return {"seed": s.seed, "profile": s.profile, "max_examples": s.max_examples, "backends": list(s.backends),
                "ops": list(s.ops), "sections": list(s.sections), "dtypes": list(s.dtypes), "strict": s.strict,
                "modes": list(s.modes), "devices": list(s.devices)}

    def headline(self) -> str:
        c = self.counts()
        return (f"certify: {len(self.rows)} rows, {c['pass']} passed, {c['fail']} failed, {c['error']} errors, "
                f"{c['skip']} skipped in {self.elapsed:.1f} s -- "
                + ("DISAGREEMENT" if self.failed else "everything agrees"))


TABLE_HEAD = ("section", "subject", "backend", "mode", "dtype", "status", "examples", "ulp", "normwise u", "err/tol",
              "note")

LEGEND = ("ulp: the largest error against the reference in ulps of the dtype, where the result is a normal number "
          "(the accuracy grade; --strict fails a passing row above reference_impl.engine.STRICT_ULP_LIMIT); "
          "normwise u: the largest error / (u x the largest magnitude of the terms, the error model's scale); "
          "err/tol: the largest error / the error model's tolerance there (<= 1 passes); flushed subnormals: "
          "elements one side flushed to zero, which only the tolerance's underflow floor admits, counted and not "
          "graded; rows against finite differences (fd) and golden replays are judged (pass/fail, err/tol), "
          "not graded.")


def row_cells(r: CertRow) -> tuple[str, ...]:
    g = grade_of(r)
    ulp = fmt(g.value) if g.kind == "ulp" else "-"
    normwise = fmt(g.normwise) if g.graded else "-"
    return (r.section, r.subject, framework_of(r), mode_of(r), r.dtype, r.status.upper(), str(r.examples), ulp,
            normwise, fmt(r.worst_ratio), row_note(r))


def _aligned(head: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    return "\n".join([line(head), line(tuple("-" * w for w in widths)), *(line(b) for b in body)])


def table(rows: Sequence[CertRow]) -> str:
    """The rows, one line each."""
    return _aligned(TABLE_HEAD, [row_cells(r) for r in rows])


def summary_table(rows: Sequence[CertRow]) -> str:
    """One line per framework, mode and dtype."""
    return _aligned(SUMMARY_HEAD, [summary_cells(g) for g in groups(rows)])


def timing_text(cert: Certificate) -> str:
    t = cert.timing()
    where = f" {cert.executor}" if cert.executor else ""
    out = f"time: {cert.elapsed:.1f} s{where}; the rows cost {t['row_seconds_total']:.1f} s in all"
    if t["longest_row"]:
        out += f" (longest: {t['longest_row']['row']}, {t['longest_row']['seconds']:.1f} s)"
    if t["projected_seconds"]:
        out += ("; projected, longest row first to the first free worker: "
                + ", ".join(f"{n} workers {v:.1f} s" for n, v in t["projected_seconds"].items()))
    return out


def text_report(cert: Certificate) -> str:
    s = cert.settings
    env = cert.environment
    out = [
        f"reference_impl certify -- seed {s.seed}, profile {s.profile}, {s.max_examples} examples per row, "
        f"backends {', '.join(s.backends)}",
        f"  python {env['python']}, numpy {env['numpy']}, torch {env['torch']}, jax {env['jax']}, "
        f"hypothesis {env['hypothesis']}, {env['platform']}",
        "",
        cert.headline(),
        "",
        summary_table(cert.rows),
        "",
        table(cert.rows),
        "",
        LEGEND,
    ]
    if cert.conventions:
        out += ["", "Conventions (differences of convention, not failures):"]
        for c in cert.conventions:
            out.append(f"  {c['name']}: {c['convention']}")
            for k, v in c.get("measured at [0.0, -0.0]", {}).items():
                out.append(f"      {k}: gradient {v}")
    for r in cert.rows:
        if r.status == "skip":
            out += ["", f"SKIPPED {_row_name(r)}: {r.detail}"]
    for r in cert.failed:
        out += ["", f"FAILED {_row_name(r)}:", _indent(r.detail)]
    if cert.baseline is not None:
        out += ["", baseline_text(cert.baseline)]
    for n in cert.notes:
        out += ["", n]
    out += ["", timing_text(cert), "", cert.headline()]
    return "\n".join(out)


def _row_name(r: CertRow) -> str:
    return f"{r.section} {r.subject} vs {framework_of(r)}{mode_suffix(r.backend, mode_of(r))} {r.dtype}"


def _indent(text: str, pad: str = "  ") -> str:
    return "\n".join(pad + line for line in text.splitlines())


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(head: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |",
            *("| " + " | ".join(_md_escape(c) for c in cells) + " |" for cells in body)]


def markdown_report(cert: Certificate) -> str:
    s = cert.settings
    env = cert.environment
    out = [
        "# reference_impl certificate",
        "",
        f"**Result: {'DISAGREEMENT' if cert.failed else 'everything agrees'}** -- "
        + cert.headline().removeprefix("certify: ").rpartition(" -- ")[0] + f" ({cert.created}).",
        "",
        "## Summary",
        "",
        *_md_table(SUMMARY_HEAD, [summary_cells(g) for g in groups(cert.rows)]),
        "",
        _md_escape(timing_text(cert)),
        "",
        "## Environment",
        "",
        "| | |",
        "| --- | --- |",
        *(f"| {k} | {_md_escape(str(v))} |" for k, v in env.items()),
        "",
        "## Settings",
        "",
        "| | |",
        "| --- | --- |",
        f"| seed | {s.seed} |",
        f"| profile | {s.profile} |",
        f"| examples per row | {s.max_examples} |",
        f"| backends | {', '.join(s.backends)} |",
        f"| sections | {', '.join(s.sections)} |",
        f"| ops | {', '.join(s.ops)} |",
        "",
        "## Results",
        "",
        _md_escape(LEGEND),
        "",
        *_md_table(TABLE_HEAD, [row_cells(r) for r in cert.rows]),
    ]
    if cert.failed:
        out += ["", "## Disagreements", ""]
        for r in cert.failed:
            out += [f"### {_row_name(r)}", "", "```", r.detail, "```", ""]
    skipped = [r for r in cert.rows if r.status == "skip"]
    if skipped:
        out += ["", "## Skipped", ""]
        out += [f"- {_row_name(r)}: {_md_escape(r.detail)}" for r in skipped]
    if cert.conventions:
        out += ["", "## Conventions", "", "Differences of convention, listed, not counted as failures.", ""]
        for c in cert.conventions:
            out.append(f"- **{_md_escape(c['name'])}**: {_md_escape(c['convention'])}")
            for k, v in c.get("measured at [0.0, -0.0]", {}).items():
                out.append(f"  - `{k}` at `[0.0, -0.0]`: gradient `{v}`")
    if cert.baseline is not None:
        out += ["", "## Changes since the baseline", "", "```", baseline_text(cert.baseline), "```"]
    return "\n".join(out) + "\n"
