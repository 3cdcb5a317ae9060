"""Hostile input to the checkers themselves: the oracle, ``certify
--baseline`` and the engine answer with one clear message naming what the
caller passed, never a traceback, a hang or the end of the caller; and one
disagreement prints the same numbers whoever reports it."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import assume

import reference_impl as ri
from reference_impl import OPS
from reference_impl.certify import command as certify
from reference_impl.certify import tasks as certify_tasks
from reference_impl.engine import divergence as network_checks
from reference_impl.engine.comparison import compare
from reference_impl.engine.results import Tally
from reference_impl.networks import MLP
from reference_impl.oracle import op as oracle
from reference_impl.strategies import Example

from ..harness import ParityFailure, check_vjp

pytestmark = pytest.mark.numpy_only
rng = np.random.default_rng(20261123)


def softmax_vjp(g, x):
    s = ri.softmax(x)
    return (s * (g - (g * s).sum(axis=-1, keepdims=True)),)


def diagonal_softmax_vjp(g, x):
    s = ri.softmax(x)
    return (g * s * (1 - s),)  # keeps only the Jacobian's diagonal


# --------------------------------------------------------------------------- one disagreement, one set of numbers

_NUMBERS = re.compile(r"abs error [^,]+, rel error [^,]+, ulp error [^;]+; tolerance there [^ ]+ "
                      r"\(error/tolerance = [^;]+;")


def test_a_wrong_vjp_prints_the_same_numbers_in_the_suite_the_oracle_and_certify() -> None:
    x = rng.standard_normal((4, 5))
    ex = Example("softmax", (x,), {}, rng.standard_normal((4, 5)))
    wrong = diagonal_softmax_vjp(ex.cotangent, x)

    with pytest.raises(ParityFailure) as info:  # the parity suite's assertion
        check_vjp(ex, "wrong", wrong)
    suite = _NUMBERS.search(str(info.value))

    tally = Tally()  # the oracle's check of a user's VJP
    found = oracle.op_evaluator("softmax", None, diagonal_softmax_vjp, (), tally)(ex)
    assert found is not None and found.verdict == "wrong"
    from_oracle = _NUMBERS.search(found.message)

    class WrongBackend:  # certify's op row, with the wrong VJP as the framework under test
        name = "wrong"

        def vjp(self, op, cotangent, inputs, params):
            return OPS[op].forward(*inputs), diagonal_softmax_vjp(cotangent, *inputs)

    row = certify_tasks.CertRow("op", "softmax", "wrong", "float64")
    from_certify_finding = certify_tasks.backend_evaluator("softmax", WrongBackend(), row)(ex)
    assert from_certify_finding is not None
    from_certify = _NUMBERS.search(from_certify_finding.message)

    assert suite and from_oracle and from_certify
    assert suite.group(0) == from_oracle.group(0) == from_certify.group(0)
    (oracle_row,) = [r for r in tally.rows() if r.check == "vjp[x]"]
    assert (oracle_row.worst_abs_error, oracle_row.worst_rel_error, oracle_row.worst_ulp_error) == (
        row.worst_abs_error, row.worst_rel_error, row.worst_ulp_error)
    assert oracle_row.verdict == row.verdict == "wrong"


# --------------------------------------------------------------------------- verdict classes


def test_relu_kink_difference_is_a_convention_not_an_error_ratio() -> None:
    x = np.array([0.0, -0.0, 1.0, -2.0])
    ex = Example("relu", (x,), {}, np.ones(4))
    found = oracle.op_evaluator("relu", None, lambda g, x: (g * (x >= 0),), (), Tally())(ex)
    assert found is not None and found.verdict == "convention"
    assert "relu'(0)" in found.message and "error/tolerance" not in found.message


def test_a_sum_for_a_mean_is_a_wrong_result_with_its_factor_named() -> None:
    """A factor no caller declared is a wrong gradient, never a convention
    (the reduction is a parameter every implementation receives)."""
    p, t = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    ref = ri.mse(p, t, reduction="mean")
    comp = compare(ref * p.size, ref, 1e-15, np.float64, conventions=("reduction",))
    assert comp.verdict == "wrong" and "times 12: a reduction mistake" in comp.describe()
    half = compare(ref / 2, ref, 1e-15, np.float64, conventions=("reduction",))
    assert half.verdict == "wrong" and "times 0.5" in half.describe()


def test_nan_where_the_reference_is_finite_is_classified_non_finite() -> None:
    comp = compare(np.array([1.0, np.nan]), np.array([1.0, 2.0]), 1e-15, np.float64)
    assert comp.verdict == "non-finite" and "the reference is finite" in comp.describe()


def test_inaccurate_and_wrong_are_split_at_ten_times_the_tolerance() -> None:
    e = np.array([1.0, 2.0])
    assert compare(e + np.array([0, 5e-15]), e, 1e-15, np.float64).verdict == "inaccurate"
    assert compare(e + np.array([0, 5e-14]), e, 1e-15, np.float64).verdict == "wrong"
    assert compare(e.astype(np.float32), e, 1e-15, np.float64).verdict == "dtype"


# --------------------------------------------------------------------------- the oracle's entries


def test_oracle_reports_a_masked_array_returned_by_user_code() -> None:
    r = ri.check_op("softmax", vjp=lambda g, x: (np.ma.array(softmax_vjp(g, x)[0]),), max_examples=3, seed=1)
    assert not r.ok and r.counterexamples
    assert "masked array" in r.counterexamples[0].message


def test_oracle_backends_not_a_sequence_is_a_problem_naming_backends() -> None:
    r = ri.check_op("softmax", vjp=softmax_vjp, backends=5)
    assert not r.ok and r.problems and r.problems[0].startswith("backends:")


def test_oracle_array_valued_params_is_a_problem_naming_params() -> None:
    r = ri.check_op("mse", vjp=lambda g, p, t, reduction: (p, t), params={"reduction": np.array([1.0, 2.0])})
    assert not r.ok and any(p.startswith("params['reduction']") for p in r.problems), r.problems


def test_user_function_raising_system_exit_is_its_failure_not_the_end_of_the_caller() -> None:
    def exits(g, x):
        sys.exit(3)

    r = ri.check_op("softmax", vjp=exits, max_examples=2, seed=0)
    assert not r.ok and "raised SystemExit" in r.counterexamples[0].message


def test_user_function_raising_a_custom_base_exception_is_its_failure() -> None:
    class Abort(BaseException):
        pass

    def aborts(g, x):
        raise Abort("stop")

    r = ri.check_op("softmax", vjp=aborts, max_examples=2, seed=0)
    assert not r.ok and "raised Abort: stop" in r.counterexamples[0].message


def test_user_function_keyboard_interrupt_still_stops_the_run() -> None:
    def interrupted(g, x):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ri.check_op("softmax", vjp=interrupted, max_examples=2, seed=0)


def test_oracle_empty_dtypes_is_a_problem_naming_dtypes() -> None:
    r = ri.check_op("softmax", vjp=softmax_vjp, dtypes=[])
    assert not r.ok and r.problems and r.problems[0].startswith("dtypes:")


def test_check_network_refuses_a_huge_max_batch_at_once() -> None:
    with pytest.raises(ValueError, match=r"^max_batch: 1000000000 is above the limit"):
        ri.check_network("002", value_and_grad=lambda p, x, t: None, max_batch=10**9)


def _three_layer_value_and_grad(wrong_layer: int | None):
    """Backpropagation through tanh, tanh, identity with mean squared error,
    written out; ``wrong_layer`` (0-based) uses 1 - tanh instead of 1 - tanh^2."""

    def value_and_grad(params, x, t):
        a, zs = [x], []
        for l, (w, b) in enumerate(params):
            z = a[-1] @ w + b
            zs.append(z)
            a.append(np.tanh(z) if l < 2 else z)
        out = a[-1]
        loss = np.mean((out - t) ** 2)  # a NumPy scalar: np.float64 in float64
        d_a = 2 * (out - t) / out.size
        grads: list = [None] * 3
        for l in (2, 1, 0):
            if l == 2:
                dz = d_a
            elif l == wrong_layer:
                dz = d_a * (1 - np.tanh(zs[l]))
            else:
                dz = d_a * (1 - np.tanh(zs[l]) ** 2)
            grads[l] = (a[l].T @ dz, dz.sum(axis=0))
            d_a = dz @ params[l][0].T
        return loss, tuple(grads)

    return value_and_grad


def test_check_network_accepts_a_numpy_float64_loss() -> None:
    net = MLP((3, 4, 4, 2), ("tanh", "tanh", "identity"), cost="mse")
    r = ri.check_network(net, value_and_grad=_three_layer_value_and_grad(None), dtypes=("float64",),
                         max_examples=5, seed=0)
    assert r.ok, r.report()


def test_check_network_names_layer_2_when_the_error_starts_there() -> None:
    net = MLP((3, 4, 4, 2), ("tanh", "tanh", "identity"), cost="mse")
    r = ri.check_network(net, value_and_grad=_three_layer_value_and_grad(1), dtypes=("float64",),
                         max_examples=10, seed=0)
    assert not r.ok
    message = r.counterexamples[0].message
    assert "(layer 2 of 3)" in message, message


def test_first_divergence_names_layer_2_when_the_error_starts_there() -> None:
    net = MLP((3, 4, 4, 2), ("tanh", "tanh", "identity"), cost="mse")
    params = net.init_params(0, np.float64, 1.0)
    x, t = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    tape = net.forward(params, x, t)
    grads = net.backward(tape)
    # what a framework whose layer-2 activation rule is off would return
    dz = list(grads.dZ)
    dz[1] = dz[1] * 1.5
    d_w = list(grads.dW)
    d_b = list(grads.db)
    d_w[1], d_b[1] = tape.layers[1].x.T @ dz[1], dz[1].sum(axis=0)
    dz[0] = (dz[1] @ params[1][0].T) * (1 - np.tanh(tape.layers[0].z) ** 2)
    d_w[0], d_b[0] = x.T @ dz[0], dz[0].sum(axis=0)
    theirs = SimpleNamespace(loss=tape.loss, z=tuple(r.z for r in tape.layers), dZ=tuple(dz), dW=tuple(d_w),
                             db=tuple(d_b), dx=dz[0] @ params[0][0].T)
    message = network_checks.first_divergence(net, tape, grads, theirs, network_checks.network_tolerance(tape, grads),
                                               "framework")
    assert message is not None and "part first at layer 2 of 3, dZ" in message, message


def test_check_op_writes_nothing_into_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYPOTHESIS_STORAGE_DIRECTORY", raising=False)
    assert ri.check_op("softmax", vjp=softmax_vjp, max_examples=3, seed=0).ok
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- certify --baseline, checked before the run


@pytest.fixture
def no_run(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the run started although the baseline is unusable")

    monkeypatch.setattr(certify, "run", refuse)


def _baseline_exit(path: Path | str, capsys: pytest.CaptureFixture[str]) -> str:
    code = certify.main(["--ops", "relu", "--backends", "fd", "--sections", "ops", "--max-examples", "1",
                         "--no-progress", "--workers", "1", "--baseline", str(path)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("certify: --baseline:"), err
    return err


def test_baseline_nested_a_million_deep(tmp_path: Path, no_run: None, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 10**6 + "]" * 10**6, encoding="utf-8")
    assert "JSON nested 1000000 deep, more than the limit of 64" in _baseline_exit(path, capsys)


def test_baseline_with_a_5000_digit_number(tmp_path: Path, no_run: None, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "digits.json"
    path.write_text('{"rows": [], "n": ' + "9" * 5000 + "}", encoding="utf-8")
    assert "a number of 5000 characters" in _baseline_exit(path, capsys)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_baseline_a_fifo(tmp_path: Path, no_run: None, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    assert "not a regular file" in _baseline_exit(path, capsys)


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero here")
def test_baseline_dev_zero(no_run: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert "not a regular file" in _baseline_exit("/dev/zero", capsys)


def test_baseline_a_directory(tmp_path: Path, no_run: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert "a directory, not a regular file" in _baseline_exit(tmp_path, capsys)


def test_baseline_environment_not_a_dict(tmp_path: Path, no_run: None, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "env.json"
    path.write_text(json.dumps({"rows": [], "environment": [1, 2]}), encoding="utf-8")
    assert "'environment' is a list" in _baseline_exit(path, capsys)


def test_baseline_unhashable_row_keys(tmp_path: Path, no_run: None, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "keys.json"
    row = {"section": "op", "subject": ["relu"], "backend": "fd", "dtype": "float64"}
    path.write_text(json.dumps({"rows": [row]}), encoding="utf-8")
    assert "must be strings" in _baseline_exit(path, capsys)


def test_baseline_identical_rerun_says_no_changes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--ops", "relu", "--backends", "fd", "--sections", "ops", "--max-examples", "2", "--no-progress",
            "--workers", "1"]
    first = tmp_path / "first.json"
    assert certify.main([*args, "--json", str(first)]) == 0
    capsys.readouterr()
    assert certify.main([*args, "--baseline", str(first)]) == 0
    out = capsys.readouterr().out
    assert "  no changes" in out and "NOTE" not in out


def test_baseline_with_other_settings_says_so_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--ops", "relu", "--backends", "fd", "--sections", "ops", "--max-examples", "2", "--no-progress",
            "--workers", "1"]
    first = tmp_path / "first.json"
    assert certify.main([*args, "--json", str(first)]) == 0
    capsys.readouterr()
    assert certify.main([*args, "--seed", "7", "--baseline", str(first)]) == 0
    out = capsys.readouterr().out
    text = out[out.index("Changes since the baseline"):]
    lines = text.splitlines()
    assert lines[1].startswith("  NOTE: the two runs drew different examples (seed 0 -> 7)"), text


# --------------------------------------------------------------------------- certify's process pool


@pytest.mark.slow
def test_certify_rows_do_not_depend_on_the_number_of_workers(tmp_path: Path) -> None:
    args = ["--ops", "relu,tanh", "--backends", "fd", "--sections", "ops", "--max-examples", "3", "--no-progress"]
    rows = {}
    for workers in ("1", "2"):
        path = tmp_path / f"w{workers}.json"
        assert certify.main([*args, "--workers", workers, "--json", str(path)]) == 0
        data = json.loads(path.read_text(encoding="utf-8"))
        # verdicts, not error values: hypothesis mixes constants of the modules a process has loaded into its
        # draws, and this test's process has loaded the test suite, the workers have not
        rows[workers] = [(r["subject"], r["dtype"], r["status"], r["verdict"], r["examples"]) for r in data["rows"]]
    assert rows["1"] == rows["2"] and len(rows["1"]) == 4


@pytest.mark.torch
def test_strict_fails_a_passing_row_above_the_accuracy_grade(monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--ops", "relu", "--backends", "torch", "--sections", "ops", "--max-examples", "2", "--no-progress",
            "--workers", "1"]
    monkeypatch.setattr(certify_tasks, "STRICT_ULP_LIMIT", -1.0)  # every measured grade is above it
    assert certify.main(args) == 0  # without --strict the grade is reported, not gated
    assert certify.main([*args, "--strict"]) == 1
    assert "--strict: accuracy grade" in capsys.readouterr().out


def test_user_function_calling_assume_skips_the_example() -> None:
    def vjp_of_wide_rows(g, x):
        assume(x.shape[-1] > 1)  # the user's code declines single-class rows
        return softmax_vjp(g, x)

    r = ri.check_op("softmax", vjp=vjp_of_wide_rows, max_examples=10, seed=0)
    assert r.ok, r.report()


def test_a_transposed_weight_gradient_is_the_dense_layout_convention() -> None:
    def vjp_torch_layout(g, x, w, b):
        dx, dw, db = ri.dense_vjp(g, x, w, b)
        return dx, np.ascontiguousarray(dw.T), db  # (outputs, inputs), as torch.nn.Linear stores W

    x, w, b = rng.standard_normal((4, 3)), rng.standard_normal((3, 2)), rng.standard_normal(2)
    ex = Example("dense", (x, w, b), {}, rng.standard_normal((4, 2)))
    found = oracle.op_evaluator("dense", None, vjp_torch_layout, (), Tally())(ex)
    assert found is not None and found.verdict == "convention" and "dense layout" in found.message
    assert "error/tolerance" not in found.message


def test_check_op_takes_a_negative_seed_as_hypothesis_does() -> None:
    """Any int is a seed (the NumPy screen reduces it; distinct seeds stay distinct)."""
    right = ri.check_op("tanh", vjp=lambda g, x: (g * (1 - np.tanh(x) ** 2),), max_examples=10, seed=-1)
    assert right.ok, right.report()
    wrong = ri.check_op("tanh", vjp=lambda g, x: (g * (1 + np.tanh(x) ** 2),), max_examples=10, seed=-1)
    assert not wrong.ok and wrong.seed == -1
