"""``certify --html PATH``: the certificate as one self-contained page.

The page holds the summary, a heatmap of the grades -- one row per subject
(an op, a network, gradient descent), one column per framework, mode and
dtype -- and the rows; inline CSS, the figure embedded as a base64 PNG, no
script and nothing fetched from elsewhere, so it can be mailed or kept as a
build artifact. The figure is drawn with matplotlib's Agg backend (the
``report`` extra), imported on use.

A graded cell's colour is its grade, ``log10`` of the ulps (of the normwise
figure where no element is graded in ulps, marked ``n``; ``*`` marks flushed
subnormals); a failure is red whatever its grade, a crash dark red, a
skipped row grey, a passing row against finite differences (judged, not
graded) green.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .baseline import baseline_text
from .report import LEGEND, TABLE_HEAD, Certificate, row_cells, timing_text
from .summary import SUMMARY_HEAD, fmt, framework_of, grade_of, groups, mode_of, summary_cells

__all__ = ["Heatmap", "heatmap", "html_report", "COLOURS", "GRADE_CMAP"]

COLOURS = {"fail": "#d62728", "error": "#67000d", "skip": "#bdbdbd", "judged": "#74c476", "none": "#ffffff",
           "empty": "#f7f7f7"}
"""Cell colours that are not a grade."""
GRADE_CMAP = "Blues"
"""A grade's colour: light (1 ulp or less) to dark (many)."""
MAX_DECADES = 3
"""The colour scale reaches at least 10**MAX_DECADES ulps (more where a row does)."""


@dataclass
class Heatmap:
    """The figure as PNG bytes and where each cell lies in it."""

    png: bytes
    width: int
    height: int
    subjects: list[str]
    """Row labels, top to bottom."""
    columns: list[str]
    """Column labels (framework, mode, dtype), left to right."""
    boxes: dict[tuple[str, str], tuple[int, int, int, int]] = field(default_factory=dict)
    """``(subject, column) -> (left, top, right, bottom)`` in pixels from the top left."""


def _subject(r: Any) -> str:
    return r.subject if r.section == "op" else f"{r.section}: {r.subject}"


def _column(r: Any) -> str:
    return f"{framework_of(r)} {mode_of(r)} {r.dtype}"


def _cell(r: Any, norm: Any, cmap: Any) -> tuple[tuple[float, ...], str]:
    """``(RGBA, text)`` of one row's cell."""
    from matplotlib import colors

    g = grade_of(r)
    if r.status in ("fail", "error", "skip"):
        return colors.to_rgba(COLOURS[r.status]), {"fail": "FAIL", "error": "ERR", "skip": "skip"}[r.status]
    if g.kind == "judged":
        return colors.to_rgba(COLOURS["judged"]), "ok"
    if not g.graded:
        return colors.to_rgba(COLOURS["none"]), "-"
    text = format(g.value, ".2g") + ("n" if g.kind == "normwise" else "") + ("*" if g.flushed else "")
    return tuple(cmap(norm(math.log10(max(g.value, 1.0))))), text


def heatmap(rows: Sequence[Any], dpi: int = 100) -> Heatmap | None:
    """The grades of ``rows`` (golden replays left out) as a heatmap, or None when no row has a cell."""
    from matplotlib import colormaps, colors
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    cells = [r for r in rows if r.section != "golden"]
    if not cells:
        return None
    subjects = list(dict.fromkeys(_subject(r) for r in cells))
    order = {f"{g.framework} {g.mode} {g.dtype}": i for i, g in enumerate(groups(cells))}
    columns = sorted(dict.fromkeys(_column(r) for r in cells), key=lambda c: order[c])
    graded = [grade_of(r).value for r in cells if grade_of(r).graded and math.isfinite(grade_of(r).value)]
    top = max([MAX_DECADES, *(math.ceil(math.log10(max(v, 1.0))) for v in graded)])
    norm, cmap = colors.Normalize(vmin=0.0, vmax=float(top)), colormaps[GRADE_CMAP]
    empty = colors.to_rgba(COLOURS["empty"])
    image: list[list[tuple[float, ...]]] = [[empty for _ in columns] for _ in subjects]
    texts: dict[tuple[int, int], str] = {}
    for r in cells:
        i, j = subjects.index(_subject(r)), columns.index(_column(r))
        image[i][j], texts[(i, j)] = _cell(r, norm, cmap)

    fig = Figure(figsize=(2.6 + 0.85 * len(columns), 1.9 + 0.3 * len(subjects)), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.imshow(image, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(len(columns)), [c.replace(" ", "\n") for c in columns], fontsize=7)
    ax.set_yticks(range(len(subjects)), subjects, fontsize=7)
    ax.tick_params(top=True, labeltop=True, bottom=False, labelbottom=False, length=0)
    ax.set_xticks([x - 0.5 for x in range(1, len(columns))], minor=True)
    ax.set_yticks([y - 0.5 for y in range(1, len(subjects))], minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    for (i, j), text in texts.items():
        r, g, b, _ = image[i][j]
        dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
        ax.text(j, i, text, ha="center", va="center", fontsize=6, color="white" if dark else "black")
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, shrink=0.8,
                 label="grade (log10 ulp)")
    fig.legend(handles=[Patch(color=COLOURS[k], label=label) for k, label in (
        ("fail", "fail"), ("error", "crashed"), ("skip", "skipped"), ("judged", "judged (fd): pass"))],
        loc="outside lower center", ncol=4, fontsize=7, frameon=False)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    width, height = (int(v) for v in fig.canvas.get_width_height())
    boxes = {}
    for i, s in enumerate(subjects):
        for j, c in enumerate(columns):
            (x0, y0), (x1, y1) = ax.transData.transform([(j - 0.5, i + 0.5), (j + 0.5, i - 0.5)])
            boxes[(s, c)] = (round(x0), round(height - y0), round(x1), round(height - y1))
    return Heatmap(buf.getvalue(), width, height, subjects, columns, boxes)


CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 110em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
.result { font-size: 1.15em; font-weight: bold; padding: .4em .8em; display: inline-block; border-radius: 4px; }
.result.pass { background: #e5f5e0; } .result.fail { background: #fee0d2; }
table { border-collapse: collapse; font-size: .85em; }
th, td { border: 1px solid #ddd; padding: .2em .5em; text-align: left; }
th { background: #f0f0f0; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.fail td, tr.error td { background: #fee0d2; } tr.skip td { color: #777; }
.note { color: #555; font-size: .85em; max-width: 80em; }
pre { background: #f7f7f7; padding: .6em; overflow-x: auto; font-size: .8em; }
"""

_NUMERIC = {"rows", "pass", "fail", "skip", "examples", "ulp", "normwise u", "err/tol"}


def _table(table_id: str, head: Sequence[str], body: Sequence[tuple[str, Sequence[str]]]) -> str:
    """An HTML table; ``body`` is ``(row class, cells)``."""
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    trs = []
    for cls, cells in body:
        tds = "".join(f'<td class="num">{html.escape(c)}</td>' if h in _NUMERIC else f"<td>{html.escape(c)}</td>"
                      for h, c in zip(head, cells))
        trs.append(f'<tr class="{html.escape(cls)}">{tds}</tr>')
    return f'<table id="{table_id}"><thead><tr>{th}</tr></thead><tbody>{"".join(trs)}</tbody></table>'


def html_report(cert: Certificate, dpi: int = 100) -> str:
    """The page (module docstring)."""
    s, env = cert.settings, cert.environment
    ok = not cert.failed
    summary = _table("summary", SUMMARY_HEAD, [("fail" if g.failed + g.errors else "pass", summary_cells(g))
                                               for g in groups(cert.rows)])
    detail = _table("rows", TABLE_HEAD, [(r.status, row_cells(r)) for r in cert.rows])
    figure = heatmap(cert.rows, dpi=dpi)
    if figure is None:
        picture = "<p>No row has a grade to draw (golden replays only).</p>"
    else:
        data = base64.b64encode(figure.png).decode("ascii")
        picture = (f'<figure><img id="heatmap" src="data:image/png;base64,{data}" width="{figure.width}" '
                   f'height="{figure.height}" alt="heatmap of the grades: {len(figure.subjects)} subjects by '
                   f'{len(figure.columns)} framework, mode and dtype columns"><figcaption class="note">'
                   f"{html.escape(LEGEND)}</figcaption></figure>")
    versions = ", ".join(f"{k} {env.get(k)}" for k in ("python", "numpy", "torch", "jax", "hypothesis") if k in env)
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        "<title>reference_impl certificate</title>", f"<style>{CSS}</style></head><body>",
        "<h1>reference_impl certificate</h1>",
        f'<p class="result {"pass" if ok else "fail"}">{html.escape(cert.headline())}</p>',
        f'<p class="note">seed {s.seed}, profile {html.escape(s.profile)}, {s.max_examples} examples per row, '
        f"backends {html.escape(', '.join(s.backends))}; {html.escape(versions)}; "
        f"{html.escape(str(env.get('platform')))}; created {html.escape(cert.created)}</p>",
        "<h2>Summary</h2>", summary, f'<p class="note">{html.escape(timing_text(cert))}</p>',
        "<h2>Grades</h2>", picture, "<h2>Rows</h2>", detail,
    ]
    if cert.failed:
        parts.append("<h2>Disagreements</h2>")
        parts += [f"<details open><summary>{html.escape(' '.join(row_cells(r)[:5]))}</summary>"
                  f"<pre>{html.escape(r.detail)}</pre></details>" for r in cert.failed]
    if cert.conventions:
        parts.append("<h2>Conventions</h2><ul>")
        parts += [f"<li><b>{html.escape(c['name'])}</b>: {html.escape(c['convention'])}</li>" for c in cert.conventions]
        parts.append("</ul>")
    if cert.baseline is not None:
        parts += ["<h2>Changes since the baseline</h2>", f"<pre>{html.escape(baseline_text(cert.baseline))}</pre>"]
    parts.append(f'<p class="note">{html.escape(fmt(cert.elapsed, ".1f"))} s. Written by python -m reference_impl '
                 "certify --html.</p></body></html>")
    return "\n".join(parts) + "\n"
