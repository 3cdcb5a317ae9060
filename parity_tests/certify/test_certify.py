"""``python -m reference_impl certify``: reports, exit codes, baseline.

Runs are kept small (a few examples, a few ops); the full default run is
timed separately (README). Exit codes: 0 everything agrees, 1 a
disagreement, 2 a usage or environment problem.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import re
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest

from reference_impl import OPS, ops
from reference_impl.certify import command as certify
from reference_impl.frameworks import backends

SMALL = ["--backends", "fd", "--sections", "ops", "--max-examples", "3", "--no-progress", "--workers", "1"]


def _certify(*args: str) -> int:
    return certify.main(list(args))


def _run_json(tmp_path: Path, *args: str, name: str = "c") -> tuple[int, dict]:
    path = tmp_path / f"{name}.json"
    code = _certify(*args, "--json", str(path))
    return code, json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.numpy_only
def test_writes_valid_json_and_markdown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    md = tmp_path / "c.md"
    code, data = _run_json(tmp_path, "--ops", "relu,softmax", *SMALL, "--markdown", str(md))
    assert code == 0
    env = data["environment"]
    assert env["python"] == platform.python_version()
    assert env["numpy"] == np.__version__
    assert env["hypothesis"] == version("hypothesis")
    assert {"torch", "jax", "platform"} <= set(env) and env["platform"] == platform.platform()
    assert data["settings"]["seed"] == 0 and data["settings"]["profile"] == "dev"
    assert data["result"] == "pass" and data["summary"]["fail"] == 0
    keys = sorted((r["subject"], r["backend"], r["dtype"]) for r in data["rows"])
    assert keys == [(op, "fd", dt) for op in ("relu", "softmax") for dt in ("float32", "float64")]
    for r in data["rows"]:
        assert r["status"] == "pass" and r["examples"] == 3
        assert float(r["worst_ratio"]) <= 1.0
    assert any(c["name"] == "relu'(0)" for c in data["conventions"])
    text = md.read_text(encoding="utf-8")
    assert text.startswith("# reference_impl certificate\n")
    for needle in ("## Environment", f"| numpy | {np.__version__} |", "| seed | 0 |", "| profile | dev |",
                   "| op | relu | fd | eager | float32 | PASS | 3 |", "## Conventions", "## Summary",
                   "| fd | eager | float32 | 2 | 2 | 0 | 0 | judged |"):
        assert needle in text, f"markdown lacks {needle!r}"
    out = capsys.readouterr().out
    assert "section  subject" in out and "everything agrees" in out


@pytest.mark.numpy_only
def test_a_disagreement_exits_1_with_its_counterexample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def tanh_rule_off_by_square(g, ans, x):
        return (g * (1 - ans),)  # 1 - tanh instead of 1 - tanh^2

    monkeypatch.setitem(ops._REGISTRY, "tanh", dataclasses.replace(OPS["tanh"], rule=tanh_rule_off_by_square))
    code, data = _run_json(tmp_path, "--ops", "tanh", *SMALL)
    assert code == 1
    assert data["result"] == "fail"
    failed = [r for r in data["rows"] if r["status"] == "fail"]
    assert failed and all("counterexample" in r["detail"] and "reproduce:" in r["detail"] for r in failed)


@pytest.mark.numpy_only
def test_unknown_op_exits_2_listing_the_valid_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert _certify("--ops", "softmx", "--no-progress") == 2
    err = capsys.readouterr().err
    assert "--ops: unknown op 'softmx' (did you mean 'softmax'?)" in err
    for name in OPS:
        assert name in err


@pytest.mark.numpy_only
def test_missing_backend_exits_2_naming_it_and_the_install(monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(backends, "available", lambda name: name != "torch")
    assert _certify("--backends", "torch,fd", "--ops", "relu", "--no-progress") == 2
    err = capsys.readouterr().err
    assert "backend 'torch' is not installed" in err and backends.INSTALL_HINT["torch"] in err
    assert "--backends jax,fd" in err


@pytest.mark.numpy_only
@pytest.mark.parametrize(("argv", "fragment"), [
    pytest.param(["certify", "--max-examples", "0"], "--max-examples: must be >= 1", id="max-examples"),
    pytest.param(["certify", "--profile", "weekly"], "--profile: unknown profile 'weekly'", id="profile"),
    pytest.param(["certify", "--sections", "nets"], "--sections: unknown section 'nets'", id="sections"),
    pytest.param(["certify", "--backends", "tensorflow"], "--backends: unknown backend 'tensorflow'", id="backend"),
    pytest.param(["certify", "--json", "/nonexistent-folder/c.json"], "--json: the folder of", id="json-folder"),
    pytest.param(["certify", "--seed", "many"], "argument --seed: invalid int value", id="seed"),
    pytest.param(["frobnicate"], "unknown command 'frobnicate'", id="command"),
    pytest.param([], "no command given", id="no-command"),
])
def test_usage_problems_exit_2(argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]) -> None:
    from reference_impl.cli import main

    assert main(argv) == 2
    assert fragment in capsys.readouterr().err


@pytest.mark.numpy_only
@pytest.mark.parametrize(("content", "fragment"), [
    pytest.param(None, "cannot be read (No such file or directory)", id="missing"),
    pytest.param("{not json", "not valid JSON: Expecting property name", id="not-json"),
    pytest.param('{"rows": [{"subject": "relu"}]}', "rows[0] lacks section/subject/backend/dtype", id="not-a-row"),
    pytest.param('{"format": 1}', "no 'rows' list", id="no-rows"),
])
def test_unreadable_baseline_exits_2(tmp_path: Path, content: str | None, fragment: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "old.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    assert _certify("--ops", "relu", *SMALL, "--baseline", str(path)) == 2
    assert fragment in capsys.readouterr().err


@pytest.mark.numpy_only
def test_baseline_ranks_the_largest_change(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, first = _run_json(tmp_path, "--ops", "softmax,tanh", *SMALL, name="first")
    assert code == 0
    # An earlier certificate as it would read had tanh's float32 error been
    # 1000 times larger then, softmax's float64 row failed and numpy been older;
    # the same seed reproduces every other row exactly.
    old = json.loads(json.dumps(first))
    moved = next(r for r in old["rows"] if (r["subject"], r["dtype"]) == ("tanh", "float32"))
    assert float(moved["worst_ratio"]) > 1e-6, "the ranking counts ratios below 1e-6 as no error at all"
    moved["worst_ratio"] = float(moved["worst_ratio"]) * 1000
    flipped = next(r for r in old["rows"] if (r["subject"], r["dtype"]) == ("softmax", "float64"))
    flipped["status"] = "fail"
    old["environment"]["numpy"] = "1.0.0"
    old["rows"].append({**flipped, "subject": "retired_op"})
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old), encoding="utf-8")
    capsys.readouterr()

    code, second = _run_json(tmp_path, "--ops", "softmax,tanh", *SMALL, "--baseline", str(path), name="second")
    assert code == 0
    b = second["baseline"]
    top = b["ranked"][0]
    assert (top["subject"], top["backend"], top["dtype"]) == ("tanh", "fd", "float32")
    assert abs(float(top["decades"]) + 3.0) < 1e-9  # exactly the factor of 1000 put there
    assert all(float(c["decades"]) == 0.0 for c in b["ranked"][1:]), "a fixed seed reproduces the other rows"
    assert [(c["subject"], c["old_status"], c["new_status"]) for c in b["status_changed"]] == [
        ("softmax", "fail", "pass")]
    assert b["versions_changed"]["numpy"] == ["1.0.0", np.__version__]
    assert b["removed"] == ["op / retired_op / fd / float64"]
    out = capsys.readouterr().out
    assert "op tanh vs fd float32:" in out and "(down 3.00 decades)" in out
    assert "STATUS op softmax vs fd float64: fail -> pass" in out


@pytest.mark.numpy_only
def test_progress_bar_shows_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    assert _certify("--ops", "relu", "--backends", "fd", "--sections", "ops", "--max-examples", "2") == 0
    err = capsys.readouterr().err
    # not a terminal here: one line per finished row, with its position and elapsed time
    # (any time: a loaded machine may take longer than ten seconds)
    assert re.search(r"\[1/2 \d\d:\d\d", err) and re.search(r"\[2/2 \d\d:\d\d", err), err
    assert "op relu vs finite differences float64: PASS" in err


@pytest.mark.numpy_only
def test_golden_fixtures_replay_on_the_reference(tmp_path: Path) -> None:
    from reference_impl import golden

    code, data = _run_json(tmp_path, "--sections", "golden", "--backends", "fd", "--no-progress")
    assert code == 0
    files = {e.file for e in golden.entries() if e.expected}
    assert {r["subject"] for r in data["rows"]} == files
    assert all(r["backend"] == "reference" and r["status"] == "pass" and r["examples"] > 0 for r in data["rows"])


def test_module_entry_point_runs_in_a_fresh_process() -> None:
    r = subprocess.run([sys.executable, "-m", "reference_impl", "certify", "--ops", "relu", *SMALL],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    assert re.search(r"\nop +relu +fd +eager +float32 +PASS +3 ", r.stdout), r.stdout


def test_console_script_is_installed() -> None:
    script = shutil.which("reference-impl")
    if script is None:
        pytest.skip("the console script is not on PATH (the package is not installed in this environment)")
    r = subprocess.run([script, "certify", "--help"], capture_output=True, text=True, check=False)
    assert r.returncode == 0 and "--baseline" in r.stdout


@pytest.mark.torch
def test_torch_rows_and_the_kink_conventions(tmp_path: Path) -> None:
    code, data = _run_json(tmp_path, "--ops", "relu", "--backends", "torch", "--sections", "ops",
                           "--max-examples", "3", "--no-progress")
    assert code == 0
    assert {(r["backend"], r["status"]) for r in data["rows"]} == {("torch", "pass")}
    (kink,) = [c for c in data["conventions"] if c["name"] == "relu'(0)"]
    probes = kink["measured at [0.0, -0.0]"]
    # relu'(0) = 0 for the reference and torch.relu; torch.maximum splits the tie, clamp takes the upper side
    assert probes["reference relu"] == probes["torch.relu"] == [0.0, 0.0]
    assert probes["torch.maximum(x, 0)"] == [0.5, 0.5] and probes["torch.clamp(x, min=0)"] == [1.0, 1.0]


@pytest.mark.torch
@pytest.mark.jax
@pytest.mark.slow
def test_network_rows_against_torch_and_finite_differences(tmp_path: Path) -> None:
    code, data = _run_json(tmp_path, "--sections", "networks", "--backends", "torch,fd", "--max-examples", "3",
                           "--no-progress")
    assert code == 0, [r["detail"] for r in data["rows"] if r["status"] != "pass"]
    subjects = {r["subject"] for r in data["rows"] if r["section"] == "network"}
    assert {"preset 000", "preset 002", "preset 004", "random architectures"} <= subjects
    assert {r["backend"] for r in data["rows"]} == {"torch", "fd"}
    assert any(r["section"] == "sgd" for r in data["rows"])
