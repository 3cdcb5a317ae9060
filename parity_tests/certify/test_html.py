"""``certify --html``: the page parses, holds its summary, figure and rows,
fetches nothing, and the heatmap renders with a failing cell coloured apart
from passing ones (read off the PNG's pixels)."""

from __future__ import annotations

import base64
import io
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from reference_impl.certify import command as certify
from reference_impl.certify.html import COLOURS, heatmap, html_report
from reference_impl.certify.report import Certificate
from reference_impl.certify.summary import groups

from .test_report import ROWS, SETTINGS, _row

pytest.importorskip("matplotlib", reason="--html draws with matplotlib (the 'report' extra)")

pytestmark = pytest.mark.numpy_only

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class _Page(HTMLParser):
    """Tags, attributes and the text of every table cell, by table id."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.open: list[str] = []
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in ("meta", "img", "br"):
            self.open.append(tag)
        if tag == "table":
            self._table = dict(attrs).get("id") or ""
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1] if self.open else None}>"
        self.open.pop()
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append("".join(self._cell))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _cert() -> Certificate:
    return Certificate(SETTINGS, ROWS, certify.environment(), [], 3.0, "2026-01-01T00:00:00+00:00",
                       executor="in this process")


def _pixels(png: bytes) -> np.ndarray:
    from matplotlib import image

    return np.asarray(image.imread(io.BytesIO(png), format="png"))


def _colour_in(px: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The colour near a cell's top left corner (clear of its centred text)."""
    left, top, right, bottom = box
    x, y = left + (right - left) // 6, top + (bottom - top) // 6
    return px[y, x, :3]


def _rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])


def test_the_page_parses_and_holds_summary_figure_and_rows() -> None:
    page = _Page()
    text = html_report(_cert())
    page.feed(text)
    page.close()
    assert not page.open, f"unclosed tags: {page.open}"
    assert text.startswith("<!DOCTYPE html>")
    summary, rows = page.tables["summary"], page.tables["rows"]
    assert summary[0][:3] == ["framework", "mode", "dtype"]
    assert len(summary) - 1 == len(groups(ROWS)) == 4
    assert [r[:3] for r in summary[1:]] == [["torch", "eager", "float32"], ["torch", "compiled", "float32"],
                                            ["jax", "compiled", "float64"], ["fd", "eager", "float64"]]
    assert len(rows) - 1 == len(ROWS)
    assert rows[4][1:6] == ["tanh", "torch", "compiled", "float32", "FAIL"]
    (img,) = [a for t, a in page.tags if t == "img"]
    src = img["src"] or ""
    assert src.startswith("data:image/png;base64,")
    png = base64.b64decode(src.partition(",")[2])
    assert png.startswith(PNG_MAGIC)
    assert int(img["width"] or 0) > 200 and int(img["height"] or 0) > 100
    # self-contained: no script, no stylesheet link, nothing fetched from elsewhere
    assert not any(t in ("script", "link", "iframe") for t, _ in page.tags)
    assert not any(v and v.startswith(("http:", "https:", "//")) for _, a in page.tags for v in a.values())
    assert any(t == "style" for t, _ in page.tags)


def test_the_heatmap_renders_a_failure_in_its_own_colour() -> None:
    figure = heatmap(ROWS)
    assert figure is not None
    px = _pixels(figure.png)
    assert px.shape[:2] == (figure.height, figure.width) and figure.width > 300 and figure.height > 150
    assert px[..., :3].std() > 0.1, "the figure is not blank"
    assert figure.subjects == ["add", "tanh"]
    assert figure.columns == ["torch eager float32", "torch compiled float32", "jax compiled float64",
                              "fd eager float64"]
    failing = _colour_in(px, figure.boxes[("tanh", "torch compiled float32")])
    passing = _colour_in(px, figure.boxes[("add", "torch compiled float32")])
    worse = _colour_in(px, figure.boxes[("tanh", "torch eager float32")])  # 4.2e5 ulp, passing
    judged = _colour_in(px, figure.boxes[("add", "fd eager float64")])
    skipped = _colour_in(px, figure.boxes[("tanh", "fd eager float64")])
    assert np.allclose(failing, _rgb(COLOURS["fail"]), atol=0.02)
    assert np.allclose(judged, _rgb(COLOURS["judged"]), atol=0.02)
    assert np.allclose(skipped, _rgb(COLOURS["skip"]), atol=0.02)
    assert np.abs(failing - passing).max() > 0.3 and np.abs(failing - worse).max() > 0.3
    assert worse.sum() < passing.sum() - 0.5, "a larger grade is drawn darker"


def test_a_certificate_of_golden_rows_only_has_no_figure() -> None:
    rows = [_row("doc_000.json", "reference", "float64", section="golden")]
    assert heatmap(rows) is None
    cert = Certificate(SETTINGS, rows, certify.environment(), [], 1.0, "2026-01-01T00:00:00+00:00")
    assert "No row has a grade to draw" in html_report(cert)


def test_html_option_writes_the_page(tmp_path: Path) -> None:
    path = tmp_path / "c.html"
    code = certify.main(["--ops", "relu,tanh", "--backends", "fd", "--sections", "ops", "--max-examples", "2",
                         "--no-progress", "--workers", "1", "--html", str(path)])
    assert code == 0
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    assert len(page.tables["rows"]) - 1 == 4
    assert [r[0] for r in page.tables["summary"][1:]] == ["fd", "fd"]


def test_html_into_a_missing_folder_is_a_usage_problem(capsys: pytest.CaptureFixture[str]) -> None:
    assert certify.main(["--ops", "relu", "--backends", "fd", "--html", "/nonexistent-folder/c.html"]) == 2
    assert "--html: the folder of" in capsys.readouterr().err
