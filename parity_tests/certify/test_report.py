"""``certify``'s summary, grades in the reports, the time on N workers and
``--baseline`` across row keys, on certificates written by hand: every count
and grade below is read off the rows as written here."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from reference_impl.certify import command as certify
from reference_impl.certify.baseline import compare_baseline, key_label, load_baseline, row_key
from reference_impl.certify.report import Certificate, markdown_report, text_report
from reference_impl.certify.summary import grade_of, groups, lpt_makespan, projection
from reference_impl.certify.tasks import CertRow, Settings

pytestmark = pytest.mark.numpy_only

SETTINGS = Settings(backends=("torch", "jax", "fd"), ops=("add", "tanh"), sections=("ops",), max_examples=5, seed=0,
                    profile="dev")


def _row(subject: str, backend: str, dtype: str, *, mode: str | None = None, device: str | None = None,
         status: str = "pass", ulp: float = float("nan"), normwise: float = float("nan"), flushed: int = 0,
         ratio: float = 0.1, seconds: float = 1.0, section: str = "op") -> CertRow:
    row = CertRow(section, subject, backend, dtype, status=status, examples=5, worst_ulp_error=ulp,
                  worst_normwise=normwise, flushed=flushed, worst_ratio=ratio, seconds=seconds,
                  verdict="pass" if status == "pass" else "inaccurate")
    for name, value in (("mode", mode), ("device", device)):
        if value is not None:
            setattr(row, name, value)  # key fields a row may carry beyond the four
    return row


ROWS = [
    _row("add", "torch", "float32", ulp=1.0, normwise=0.5),
    _row("tanh", "torch", "float32", ulp=4.2e5, normwise=0.8),
    _row("add", "torch", "float32", mode="compiled", ulp=2.0, normwise=0.5),
    _row("tanh", "torch", "float32", mode="compiled", status="fail", ulp=3e6, normwise=40.0, ratio=3.0),
    _row("add", "jax", "float64", ulp=28.0, normwise=1.3, flushed=31),
    _row("tanh", "jax", "float64", normwise=2.0),  # no element graded in ulps
    _row("add", "fd", "float64", ulp=3.9e9, normwise=1e7, ratio=0.14),  # finite differences: never graded
    _row("tanh", "fd", "float64", status="skip", ratio=float("nan")),
]


def _cert(rows: list[CertRow] = ROWS) -> Certificate:
    return Certificate(SETTINGS, rows, certify.environment(), [], 12.5, "2026-01-01T00:00:00+00:00",
                       executor="on 2 local worker processes", project_workers=(2, 4))


def test_grades_name_their_kind() -> None:
    kinds = [grade_of(r).kind for r in ROWS]
    assert kinds == ["ulp", "ulp", "ulp", "ulp", "ulp", "normwise", "judged", "judged"]
    assert grade_of(ROWS[4]).flushed == 31
    assert grade_of(ROWS[5]).value == 2.0
    assert math.isnan(grade_of(ROWS[6]).value), "a finite-difference row has no grade, whatever it measured"


def test_summary_groups_by_framework_mode_and_dtype() -> None:
    got = {(g.framework, g.mode, g.dtype): g for g in groups(ROWS)}
    # a row without a mode ran in its framework's usual one: torch eager, jax jitted, NumPy eager
    assert list(got) == [("torch", "eager", "float32"), ("torch", "compiled", "float32"),
                         ("jax", "compiled", "float64"), ("fd", "eager", "float64")]
    eager = got[("torch", "eager", "float32")]
    assert (eager.rows, eager.passed, eager.failed, eager.worst_ulp, eager.worst_ulp_subject) == (
        2, 2, 0, 4.2e5, "op tanh")
    compiled = got[("torch", "compiled", "float32")]
    assert (compiled.passed, compiled.failed, compiled.worst_ulp, compiled.worst_ratio) == (1, 1, 3e6, 3.0)
    jax = got[("jax", "compiled", "float64")]
    assert (jax.worst_ulp, jax.worst_normwise, jax.flushed_rows) == (28.0, 2.0, 1)
    fd = got[("fd", "eager", "float64")]
    assert (fd.graded, fd.passed, fd.skipped, fd.worst_grade()) == (False, 1, 1, "judged")


def test_a_device_other_than_the_cpu_is_its_own_framework_column() -> None:
    rows = [_row("add", "torch", "float32", ulp=1.0), _row("add", "torch", "float32", device="cuda", ulp=5.0)]
    assert [(g.framework, g.worst_ulp) for g in groups(rows)] == [("torch", 1.0), ("torch (cuda)", 5.0)]


def test_text_report_puts_the_summary_first_and_grades_only_what_means_something() -> None:
    text = text_report(_cert())
    lines = text.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("framework "))
    rows_head = next(i for i, line in enumerate(lines) if line.startswith("section "))
    assert head < rows_head, "the summary comes before the rows"
    summary = {tuple(line.split()[:3]): line for line in lines[head + 2:rows_head - 1]}
    assert "4.2e+05 ulp (op tanh)" in summary[("torch", "eager", "float32")]
    assert "flushed subnormals in 1 row" in summary[("jax", "compiled", "float64")]
    assert " judged " in summary[("fd", "eager", "float64")]
    detail = {tuple(line.split()[:5]): line for line in lines[rows_head + 2:] if line.startswith("op ")}
    fd_line = detail[("op", "add", "fd", "eager", "float64")]
    assert "3.9e+09" not in fd_line and "judged: finite differences" in fd_line
    assert "flushed subnormals (31)" in detail[("op", "add", "jax", "compiled", "float64")]
    assert detail[("op", "tanh", "torch", "compiled", "float32")].split()[5] == "FAIL"
    assert "2 workers" in text and "4 workers" in text


def test_markdown_and_json_carry_the_summary(tmp_path: Path) -> None:
    cert = _cert()
    md = markdown_report(cert)
    assert md.index("## Summary") < md.index("## Results")
    assert "| torch | compiled | float32 | 2 | 1 | 1 | 0 | 3e+06 ulp (op tanh) | 40 | 3 |" in md
    data = json.loads(json.dumps(cert.to_dict(), allow_nan=False))
    assert data["format"] == 2
    assert data["summary"]["pass"] == 6 and data["summary"]["fail"] == 1 and data["summary"]["skip"] == 1
    by_key = {(g["framework"], g["mode"], g["dtype"]): g for g in data["summary"]["groups"]}
    assert by_key[("jax", "compiled", "float64")]["flushed_rows"] == 1
    assert [r["grade"] for r in data["rows"]] == [grade_of(r).kind for r in ROWS]
    # 8 rows of 1 s: 4 s on 2 workers, 2 s on 4
    assert data["timing"]["projected_seconds"] == {"2": 4.0, "4": 2.0}
    assert data["timing"]["row_seconds_total"] == 8.0


def test_longest_processing_time_schedule() -> None:
    # the classic case: LPT puts 5|4, then 3 on the 4, 3 on the 5, 3 on the 7 -> 10 (the best split is 9)
    assert lpt_makespan([5, 4, 3, 3, 3], 2) == 10.0
    assert lpt_makespan([5, 4, 3, 3, 3], 1) == 18.0
    assert lpt_makespan([5, 4, 3, 3, 3], 64) == 5.0
    assert lpt_makespan([], 4) == 0.0
    with pytest.raises(ValueError, match="workers"):
        lpt_makespan([1.0], 0)
    p = projection([_row("a", "torch", "float32", seconds=s) for s in (5, 4, 3, 3, 3)], [2])
    assert p["projected_seconds"] == {"2": 10.0} and p["longest_row"]["seconds"] == 5.0


def test_project_workers_is_checked(capsys: pytest.CaptureFixture[str]) -> None:
    assert certify.main(["--ops", "relu", "--backends", "fd", "--project-workers", "4,zero", "--no-progress"]) == 2
    assert "--project-workers: 'zero' is not a worker count" in capsys.readouterr().err


# ------------------------------------------------------------------ baseline across keys


OLD_CERTIFICATE = {
    "format": 1,
    "created": "2025-06-01T00:00:00+00:00",
    "environment": {"numpy": "2.0.0"},
    "settings": {"seed": 0, "profile": "dev", "max_examples": 5},
    "rows": [  # as certify wrote them before rows had a mode or a device, float32 and float64 only
        {"section": "op", "subject": "add", "backend": "torch", "dtype": "float32", "status": "pass",
         "worst_ratio": 0.1},
        {"section": "op", "subject": "tanh", "backend": "torch", "dtype": "float32", "status": "pass",
         "worst_ratio": "nan"},
        {"section": "op", "subject": "retired", "backend": "torch", "dtype": "float64", "status": "pass",
         "worst_ratio": 0.2},
        {"section": "op", "subject": "add", "backend": "jax", "dtype": "float32", "status": "pass",
         "worst_ratio": 0.3},
    ],
}


def test_an_old_certificate_compares_on_the_rows_it_shares(tmp_path: Path) -> None:
    path = tmp_path / "old.json"
    path.write_text(json.dumps(OLD_CERTIFICATE), encoding="utf-8")
    old = load_baseline(path)
    new = [_row("add", "torch", "float32", mode="eager", device="cpu", ratio=10.0),
           _row("tanh", "torch", "float32", mode="eager", device="cpu", status="fail"),
           _row("add", "torch", "float32", mode="compiled", device="cpu"),
           _row("add", "torch", "bfloat16", mode="eager", device="cpu"),
           _row("add", "torch", "bfloat16", mode="compiled", device="cpu"),
           _row("add", "jax", "float32", mode="compiled", device="cpu", ratio=0.3),  # jitted, as jax always ran
           _row("add", "jax", "float32", mode="eager", device="cpu")]
    b = compare_baseline(old, new, {"numpy": "2.0.0"}, str(path), {"seed": 0, "profile": "dev", "max_examples": 5})
    assert b["shared"] == 3
    assert [c["row"] for c in b["ranked"]] == ["op / add / torch / float32", "op / add / jax / float32"]
    assert abs(b["ranked"][0]["decades"] - 2.0) < 1e-12  # 0.1 -> 10
    assert [(c["subject"], c["old_status"], c["new_status"]) for c in b["status_changed"]] == [("tanh", "pass", "fail")]
    assert b["added"] == ["op / add / torch / compiled / float32", "op / add / torch / bfloat16",
                          "op / add / torch / compiled / bfloat16", "op / add / jax / eager / float32"]
    assert b["added_by_group"] == {"torch compiled float32": 1, "torch eager bfloat16": 1,
                                   "torch compiled bfloat16": 1, "jax eager float32": 1}
    assert b["removed"] == ["op / retired / torch / float64"]
    cert = _cert(new)
    cert.baseline = b
    text = text_report(cert)
    assert "compared on the 3 rows both runs have; 4 new, 1 gone" in text
    assert ("new rows: 4 (torch compiled float32: 1; torch eager bfloat16: 1; torch compiled bfloat16: 1; "
            "jax eager float32: 1)") in text
    assert "rows gone: 1 (torch eager float64: 1) -- op / retired / torch / float64" in text
    assert "STATUS op tanh vs torch float32: pass -> fail" in text


def test_row_keys_default_to_the_usual_mode_on_the_cpu() -> None:
    assert row_key(OLD_CERTIFICATE["rows"][0]) == ("op", "add", "torch", "float32", "eager", "cpu")
    assert row_key(_row("add", "torch", "float32")) == row_key(OLD_CERTIFICATE["rows"][0])
    assert row_key(OLD_CERTIFICATE["rows"][3]) == ("op", "add", "jax", "float32", "compiled", "cpu")
    assert key_label(("op", "add", "jax", "float16", "eager", "cuda")) == "op / add / jax / eager / cuda / float16"
    assert key_label(("op", "add", "jax", "float16", "compiled", "cpu")) == "op / add / jax / float16"


def test_a_baseline_row_with_a_bad_mode_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"rows": [{**OLD_CERTIFICATE["rows"][0], "mode": 3}]}), encoding="utf-8")
    with pytest.raises(certify.UsageError, match=r"rows\[0\]: mode/device must be strings"):
        load_baseline(path)
