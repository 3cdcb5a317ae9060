"""``certify``'s reports: the progress display, the certificate, text and Markdown."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from .baseline import baseline_text
from .tasks import CertRow, Settings, jsonable

__all__ = ["Progress", "Certificate", "text_report", "markdown_report", "table", "FORMAT_VERSION"]

FORMAT_VERSION = 1


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

    @property
    def failed(self) -> list[CertRow]:
        return [r for r in self.rows if r.status in ("fail", "error")]

    def to_dict(self) -> dict[str, Any]:
        counts = {k: sum(1 for r in self.rows if r.status == k) for k in ("pass", "fail", "error", "skip")}
        return jsonable({
            "format": FORMAT_VERSION,
            "tool": "python -m reference_impl certify",
            "created": self.created,
            "elapsed_seconds": round(self.elapsed, 2),
            "result": "fail" if self.failed else "pass",
            "summary": counts,
            "environment": self.environment,
            "settings": self.settings_dict(),
            "rows": [r.to_dict() for r in self.rows],
            "conventions": self.conventions,
            "notes": self.notes,
            "baseline": self.baseline,
        })

    def settings_dict(self) -> dict[str, Any]:
        s = self.settings
        return {"seed": s.seed, "profile": s.profile, "max_examples": s.max_examples, "backends": list(s.backends),
                "ops": list(s.ops), "sections": list(s.sections), "dtypes": list(s.dtypes), "strict": s.strict,
                "modes": list(s.modes), "devices": list(s.devices)}


def _f(v: float, spec: str = ".2e") -> str:
    if isinstance(v, float) and math.isnan(v):
        return "-"
    return format(v, spec)


TABLE_HEAD = ("section", "subject", "backend", "dtype", "status", "examples", "worst rel", "worst ulp",
              "err/tol", "tolerance", "verdict")


def _cells(r: CertRow) -> tuple[str, ...]:
    return (r.section, r.subject, r.backend, r.dtype, r.status.upper(), str(r.examples), _f(r.worst_rel_error),
            _f(r.worst_ulp_error, ".3g"), _f(r.worst_ratio, ".3g"), _f(r.tolerance), r.verdict)


def table(rows: Sequence[CertRow]) -> str:
    body = [_cells(r) for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(TABLE_HEAD)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    return "\n".join([line(TABLE_HEAD), line(tuple("-" * w for w in widths)), *(line(b) for b in body)])


def text_report(cert: Certificate) -> str:
    s = cert.settings
    env = cert.environment
    out = [
        f"reference_impl certify -- seed {s.seed}, profile {s.profile}, {s.max_examples} examples per row, "
        f"backends {', '.join(s.backends)}",
        f"  python {env['python']}, numpy {env['numpy']}, torch {env['torch']}, jax {env['jax']}, "
        f"hypothesis {env['hypothesis']}, {env['platform']}",
        "",
        table(cert.rows),
        "",
        "err/tol: the largest error divided by the error model's tolerance at that element (<= 1 passes); "
        "worst rel / ulp: over elements larger than their tolerance; worst ulp is the row's accuracy grade "
        "(--strict fails a passing row above reference_impl.engine.STRICT_ULP_LIMIT); verdict: the least benign "
        "class of the row's comparisons (convention, dtype, shape, non-finite, inaccurate, wrong).",
    ]
    if cert.conventions:
        out += ["", "Conventions (differences of convention, not failures):"]
        for c in cert.conventions:
            out.append(f"  {c['name']}: {c['convention']}")
            for k, v in c.get("measured at [0.0, -0.0]", {}).items():
                out.append(f"      {k}: gradient {v}")
    skipped = [r for r in cert.rows if r.status == "skip"]
    for r in skipped:
        out += ["", f"SKIPPED {r.section} {r.subject} vs {r.backend} {r.dtype}: {r.detail}"]
    for r in cert.failed:
        out += ["", f"FAILED {r.section} {r.subject} vs {r.backend} {r.dtype}:", _indent(r.detail)]
    if cert.baseline is not None:
        out += ["", baseline_text(cert.baseline)]
    for n in cert.notes:
        out += ["", n]
    counts = cert.to_dict()["summary"]
    out += ["", f"certify: {len(cert.rows)} rows, {counts['pass']} passed, {counts['fail']} failed, "
                f"{counts['error']} errors, {counts['skip']} skipped in {cert.elapsed:.1f} s -- "
                + ("DISAGREEMENT" if cert.failed else "everything agrees")]
    return "\n".join(out)


def _indent(text: str, pad: str = "  ") -> str:
    return "\n".join(pad + line for line in text.splitlines())


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_report(cert: Certificate) -> str:
    s = cert.settings
    env = cert.environment
    counts = cert.to_dict()["summary"]
    out = [
        "# reference_impl certificate",
        "",
        f"**Result: {'DISAGREEMENT' if cert.failed else 'everything agrees'}** -- {len(cert.rows)} rows, "
        f"{counts['pass']} passed, {counts['fail']} failed, {counts['error']} errors, {counts['skip']} skipped "
        f"in {cert.elapsed:.1f} s "
        f"({cert.created}).",
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
        "`err/tol` is the largest error divided by the error model's tolerance at that element (<= 1 passes); "
        "worst relative and ulp errors are taken over elements larger than their tolerance.",
        "",
        "| " + " | ".join(TABLE_HEAD) + " |",
        "| " + " | ".join("---" for _ in TABLE_HEAD) + " |",
        *("| " + " | ".join(_md_escape(c) for c in _cells(r)) + " |" for r in cert.rows),
    ]
    if cert.failed:
        out += ["", "## Disagreements", ""]
        for r in cert.failed:
            out += [f"### {r.section} {r.subject} vs {r.backend} ({r.dtype})", "", "```", r.detail, "```", ""]
    skipped = [r for r in cert.rows if r.status == "skip"]
    if skipped:
        out += ["", "## Skipped", ""]
        out += [f"- {r.section} {r.subject} vs {r.backend} ({r.dtype}): {_md_escape(r.detail)}" for r in skipped]
    if cert.conventions:
        out += ["", "## Conventions", "", "Differences of convention, listed, not counted as failures.", ""]
        for c in cert.conventions:
            out.append(f"- **{_md_escape(c['name'])}**: {_md_escape(c['convention'])}")
            for k, v in c.get("measured at [0.0, -0.0]", {}).items():
                out.append(f"  - `{k}` at `[0.0, -0.0]`: gradient `{v}`")
    if cert.baseline is not None:
        out += ["", "## Changes since the baseline", "", "```", baseline_text(cert.baseline), "```"]
    return "\n".join(out) + "\n"
