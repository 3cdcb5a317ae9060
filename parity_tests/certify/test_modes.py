"""``certify --modes`` and ``--devices``: which rows the plan holds, compiled
rows that run and pass, a compiled backend that disagrees with the eager one
failing its row, and the answer when CUDA is asked for and absent."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import pytest

from reference_impl.certify import command as certify
from reference_impl.certify import tasks
from reference_impl.certify.modes import row_key
from reference_impl.frameworks import backends

BASE = tasks.Settings(("torch", "jax", "fd"), ("relu", "softmax"), ("ops", "networks", "golden"), 3, 0, "dev")


def _modes(rows: list[tasks.Task]) -> set[tuple[str, str, str, str]]:
    return {(t.section, t.backend, t.mode, t.device) for t in rows}


@pytest.mark.numpy_only
def test_the_default_plan_has_each_frameworks_usual_mode_and_no_torch_compile() -> None:
    plan = tasks.plan(BASE)
    assert {(b, m, d) for _, b, m, d in _modes(plan)} == {
        ("torch", "eager", "cpu"), ("jax", "compiled", "cpu"), ("fd", "eager", "cpu"), ("reference", "eager", "cpu")}
    assert not [t for t in plan if t.backend == "torch" and t.mode == "compiled"]


@pytest.mark.numpy_only
def test_compiled_rows_appear_only_when_asked() -> None:
    both = tasks.plan(dataclasses.replace(BASE, modes=("eager", "compiled")))
    ops = {(t.subject, t.backend, t.mode, t.dtype) for t in both if t.section == "op"}
    assert ops == {(op, b, m, dt) for op in BASE.ops for b in ("torch", "jax") for m in ("eager", "compiled")
                   for dt in BASE.dtypes} | {(op, "fd", "eager", dt) for op in BASE.ops for dt in BASE.dtypes}
    # the default plan's rows are all there, with the compiled torch and eager jax op rows added
    assert set(tasks.plan(BASE)) <= set(both)
    compiled = tasks.plan(dataclasses.replace(BASE, modes=("compiled",)))
    assert {(t.backend, t.mode) for t in compiled} == {("torch", "compiled"), ("jax", "compiled")}
    assert {t.section for t in compiled if t.backend == "torch"} == {"op"}
    cuda = tasks.plan(dataclasses.replace(BASE, devices=("cuda",)))
    assert {(t.section, t.backend, t.device) for t in cuda} == {("op", "torch", "cuda"), ("op", "jax", "cuda")}


@pytest.mark.numpy_only
def test_a_row_records_its_mode_and_device_and_old_certificates_key_by_the_usual_mode() -> None:
    row = tasks.CertRow("op", "relu", "torch", "float32", mode="compiled", device="cuda")
    d = row.to_dict()
    assert (d["mode"], d["device"]) == ("compiled", "cuda")
    assert row.key == ("op", "relu", "torch", "float32", "compiled", "cuda") == row_key(d)
    old = {"section": "op", "subject": "relu", "backend": "jax", "dtype": "float64"}
    assert row_key(old) == ("op", "relu", "jax", "float64", "compiled", "cpu")  # jax rows were always jitted
    assert tasks.Task("op", "relu", "torch", "float32", mode="compiled").label == "op relu vs torch compiled float32"
    assert tasks.Task("op", "relu", "jax", "float32", mode="compiled").label == "op relu vs jax float32"


@pytest.mark.numpy_only
@pytest.mark.parametrize(("argv", "fragment"), [
    pytest.param(["--modes", "jit"], "--modes: unknown mode 'jit'", id="mode"),
    pytest.param(["--modes", ","], "--modes: empty; choose from eager, compiled", id="no-mode"),
    pytest.param(["--devices", "tpu"], "--devices: unknown device 'tpu'", id="device"),
    pytest.param(["--dtypes", "float8_e4m3fn"], "--dtypes: unknown dtype 'float8_e4m3fn'", id="dtype"),
    pytest.param(["--dtypes", ","], "--dtypes: empty; choose from float16, bfloat16, float32, float64", id="no-dtype"),
])
def test_bad_modes_and_devices_exit_2(argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert certify.main([*argv, "--backends", "fd", "--ops", "relu", "--no-progress"]) == 2
    assert fragment in capsys.readouterr().err


@pytest.mark.numpy_only
def test_cuda_asked_for_and_absent_exits_2_naming_devices(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(backends, "devices_present", lambda name: ("cpu",))
    assert certify.main(["--devices", "cpu,cuda", "--backends", "torch,jax", "--ops", "relu", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--devices cuda: no CUDA device is present here for torch, jax" in err
    assert "certify on --devices cpu" in err


@pytest.mark.torch
def test_cuda_absent_on_this_torch_exits_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert certify.main(["--devices", "cuda", "--backends", "torch", "--ops", "relu", "--no-progress"]) == 2
    assert "--devices cuda: no CUDA device is present here for torch" in capsys.readouterr().err


class _PlantedCompiled:
    """A compiled torch backend whose gradients are 0.1 % off the eager ones."""

    name, mode, device = "torch", "compiled", "cpu"

    def vjp(self, op: str, cotangent: np.ndarray, inputs: tuple[np.ndarray, ...],
            params: dict[str, Any]) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        out, grads = backends.get_backend("torch").vjp(op, cotangent, inputs, params)
        return out, tuple((g * (1 + 1e-3) + np.asarray(1e-3, g.dtype)).astype(g.dtype) for g in grads)


@pytest.mark.torch
def test_compiled_disagreeing_with_eager_fails_its_row(monkeypatch: pytest.MonkeyPatch) -> None:
    real = tasks.get_backend

    def planted(name: str, mode: str | None = None, device: str = "cpu") -> Any:
        return _PlantedCompiled() if (name, mode) == ("torch", "compiled") else real(name, mode, device)

    monkeypatch.setattr(tasks, "get_backend", planted)
    s = tasks.Settings(("torch",), ("tanh",), ("ops",), 5, 0, "dev", modes=("eager", "compiled"))
    cert = certify.run(s, progress=False)
    status = {(r.mode, r.dtype): r.status for r in cert.rows}
    assert status == {(m, dt): "pass" if m == "eager" else "fail" for m in ("eager", "compiled")
                      for dt in s.dtypes}
    for r in cert.rows:
        if r.status == "fail":
            assert "counterexample" in r.detail and "--modes compiled --devices cpu" in r.detail


@pytest.mark.slow
@pytest.mark.torch
@pytest.mark.jax
def test_a_compiled_torch_row_and_a_jitted_jax_row_run_and_pass() -> None:
    import torch

    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    s = tasks.Settings(("torch", "jax"), ("relu",), ("ops",), 3, 0, "dev", dtypes=("float32",),
                       modes=("compiled",))
    cert = certify.run(s, progress=False)
    assert [(r.backend, r.mode, r.device, r.status, r.examples) for r in cert.rows] == [
        ("torch", "compiled", "cpu", "pass", 3), ("jax", "compiled", "cpu", "pass", 3)]
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > graphs  # dynamo compiled, no eager fall-back


@pytest.mark.numpy_only
def test_dtypes_select_the_rows_half_precision_included(tmp_path: Any) -> None:
    out = tmp_path / "cert.json"
    argv = ["--dtypes", "float16,bfloat16", "--backends", "fd", "--ops", "relu,softmax", "--sections", "ops",
            "--max-examples", "5", "--no-progress", "--workers", "1", "--json", str(out)]
    assert certify.main(argv) == 0
    cert = json.loads(out.read_text(encoding="utf-8"))
    assert sorted((r["subject"], r["dtype"], r["status"]) for r in cert["rows"]) == [
        ("relu", "bfloat16", "pass"), ("relu", "float16", "pass"),
        ("softmax", "bfloat16", "pass"), ("softmax", "float16", "pass")]
    assert all(r["examples"] == 5 for r in cert["rows"])
    assert cert["settings"]["dtypes"] == ["float16", "bfloat16"]
