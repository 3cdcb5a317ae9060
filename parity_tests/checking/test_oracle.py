"""The check-your-own-gradient API (``reference_impl.oracle``).

A deliberately wrong user VJP must be reported as failing with a shrunk
counterexample that really fails; a correct one, written independently of
the reference's rules, must pass; every kind of misuse -- of the oracle or
by the user's function -- must come back as a report, never as a crash.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference_impl as ri
from reference_impl import OPS, engine
from reference_impl.accuracy import ops as tolerances
from reference_impl.networks import MLP
from reference_impl.oracle import op as oracle

SEED = 20261123
"""Every search here uses a fixed seed, so that a failure reproduces."""
N = 30
"""Examples per dtype: enough for the searches below to find their bug."""


# --------------------------------------------------------------------------- user code, right and wrong
#
# Written the way a user would, from the formulas, not from the reference's rules.


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_vjp_full_jacobian(g, x):
    """``g @ J`` with the full Jacobian ``J_ij = s_i (delta_ij - s_j)``."""
    s = _softmax(x)
    jac = s[..., :, None] * (np.eye(x.shape[-1], dtype=x.dtype) - s[..., None, :])
    return (np.einsum("...i,...ij->...j", g, jac),)


def softmax_vjp_diagonal_only(g, x):
    s = _softmax(x)
    return (g * s * (1 - s),)  # keeps only the Jacobian's diagonal


def dense_vjp(g, x, w, b):
    gf = g.reshape(-1, g.shape[-1])
    xf = x.reshape(-1, x.shape[-1])
    return g @ w.T, xf.T @ gf, gf.sum(axis=0)


def dense_vjp_bias_not_summed(g, x, w, b):
    dx, dw, _ = dense_vjp(g, x, w, b)
    return dx, dw, g.reshape(-1, g.shape[-1])[0]  # forgets to sum the bias gradient over the batch


def tanh_vjp(g, x):
    return (g * (1 - np.tanh(x) ** 2),)


def _disagrees(op: str, user_vjp, c: oracle.Counterexample) -> bool:
    """Re-run the user's VJP on the counterexample's arrays and compare with
    the reference under the error model: the counterexample must be real."""
    names = OPS[op].arg_names
    inputs = tuple(c.arrays[n] for n in names)
    g = c.arrays["cotangent"]
    mine = user_vjp(g, *inputs)
    ours = OPS[op].vjp(g, *inputs)
    bounds = tolerances.vjp_bound(op, g, inputs)
    return any(not engine.compare(m, o, b.tolerance(g.dtype), g.dtype).ok for m, o, b in zip(mine, ours, bounds))


# --------------------------------------------------------------------------- wrong VJPs are caught


@pytest.mark.numpy_only
def test_diagonal_only_softmax_vjp_fails_with_a_shrunk_counterexample() -> None:
    result = ri.check_op("softmax", vjp=softmax_vjp_diagonal_only, max_examples=N, seed=SEED)
    assert not result.ok
    assert {c.dtype for c in result.counterexamples} == {"float32", "float64"}
    for c in result.counterexamples:
        assert c.kind == "disagreement" and c.check == "vjp[x]" and c.against == "reference"
        # one class: the diagonal is the whole Jacobian (0), so a counterexample needs two
        assert c.arrays["x"].shape[-1] >= 2
        assert _disagrees("softmax", softmax_vjp_diagonal_only, c)
    failing = [r for r in result.rows if r.status == "fail"]
    assert failing and min(r.worst_ratio for r in failing) > 1.0
    with pytest.raises(AssertionError) as info:
        result.raise_if_failed()
    report = str(info.value)
    for needle in ("vjp of op 'softmax' -- FAILED", "counterexample (float32", "counterexample (float64",
                   "x = np.array(", "cotangent = np.array(", "error/tolerance", "reproduce:"):
        assert needle in report, f"report lacks {needle!r}:\n{report}"


@pytest.mark.numpy_only
def test_dense_vjp_that_forgets_the_bias_sum_fails_only_on_batches() -> None:
    result = ri.check_op("dense", vjp=dense_vjp_bias_not_summed, max_examples=N, seed=SEED)
    assert not result.ok and result.counterexamples
    for c in result.counterexamples:
        assert c.check == "vjp[b]", c.describe()
        x = c.arrays["x"]
        rows = x.reshape(-1, x.shape[-1]).shape[0]
        assert rows >= 2, f"a batch of one row has nothing to sum; got x of shape {x.shape}"
        assert _disagrees("dense", dense_vjp_bias_not_summed, c)
    by_check = {r.check for r in result.rows if r.status != "pass"}
    assert by_check == {"vjp[b]"}, "dx and dW of this VJP are right; only db may fail"


@pytest.mark.numpy_only
def test_correct_user_vjps_pass_with_error_model_tolerances() -> None:
    for op, vjp in (("softmax", softmax_vjp_full_jacobian), ("dense", dense_vjp), ("tanh", tanh_vjp)):
        result = ri.check_op(op, vjp=vjp, max_examples=N, seed=SEED).raise_if_failed()
        assert result.ok and not result.counterexamples and not result.problems
        assert {r.dtype for r in result.rows} == {"float32", "float64"}
        for dt in ("float32", "float64"):
            per_class = {r.shape_class: r.examples for r in result.rows if r.dtype == dt and r.check.startswith("vjp")}
            assert sum(per_class.values()) == N, f"{op} {dt}: {per_class}"
        for r in result.rows:
            assert r.worst_ratio <= 1.0 and r.tolerance > 0
        # the tolerance is the error model's, named by its model
        x = np.ones((2, 3))
        g = np.ones((2, 3))
        args = (x,) if op != "dense" else (x, np.ones((3, 3)), np.ones(3))
        models = {b.model for b in tolerances.vjp_bound(op, g, args)}
        assert {r.model for r in result.rows} <= models


@pytest.mark.numpy_only
@pytest.mark.parametrize(("factor", "passes"), [(0.5, True), (2.0, False)])
def test_the_tolerance_is_the_error_models(factor: float, passes: bool) -> None:
    """A VJP off by ``factor`` times the error model's own tolerance, on every
    element: half of it passes, twice it fails, whatever the input."""
    def off_by(g, x):
        (exact,) = OPS["tanh"].vjp(g, x)
        (bound,) = tolerances.vjp_bound("tanh", g, (x,))
        return ((exact + factor * bound.tolerance(x.dtype)).astype(x.dtype),)

    result = ri.check_op("tanh", vjp=off_by, max_examples=10, seed=SEED)
    assert result.ok is passes, result.report()
    if passes:
        assert all(0.4 <= r.worst_ratio <= 1.0 for r in result.rows), result.report()


@pytest.mark.numpy_only
def test_forward_is_checked_too() -> None:
    def tanh_computed_in_float64(x):
        return np.tanh(x.astype(np.float64))

    ok = ri.check_op("tanh", forward=np.tanh, max_examples=10, seed=SEED)
    assert ok.ok and {r.check for r in ok.rows} == {"forward"}
    wrong = ri.check_op("sigmoid", forward=lambda x: 1 / (1 + np.exp(-x)) + x * 1e-3, max_examples=10, seed=SEED)
    assert not wrong.ok and wrong.counterexamples[0].check == "forward"
    promoted = ri.check_op("tanh", forward=tanh_computed_in_float64, max_examples=10, seed=SEED)
    assert [c.dtype for c in promoted.counterexamples] == ["float32"]
    assert "dtype float64, expected float32" in promoted.counterexamples[0].message


@pytest.mark.numpy_only
def test_same_seed_same_counterexample() -> None:
    a = ri.check_op("softmax", vjp=softmax_vjp_diagonal_only, dtypes=("float64",), max_examples=N, seed=7)
    b = ri.check_op("softmax", vjp=softmax_vjp_diagonal_only, dtypes=("float64",), max_examples=N, seed=7)
    (ca,), (cb,) = a.counterexamples, b.counterexamples
    assert ca.arrays.keys() == cb.arrays.keys()
    for k in ca.arrays:
        np.testing.assert_array_equal(ca.arrays[k], cb.arrays[k])


@pytest.mark.numpy_only
def test_a_function_that_modifies_its_inputs_is_reported_with_what_it_was_given() -> None:
    def vjp_then_scribble(g, x):
        out = tanh_vjp(g, x)
        x[...] = 0.0
        g[...] = 0.0
        return out

    result = ri.check_op("tanh", vjp=vjp_then_scribble, max_examples=10, seed=SEED)
    assert not result.ok
    for c in result.counterexamples:
        assert c.check == "inputs unchanged" and c.kind == "modified input", c.describe()
        assert "your vjp modified its input" in c.message
        # the counterexample holds the arrays as they were handed over, not as the function left them
        x = c.arrays["x"]
        assert np.any(x != 0) or np.any(np.signbit(x)), c.describe()


# --------------------------------------------------------------------------- misuse by the user's function


def _boom(g, x):
    raise ValueError("boom at the kink")


MISUSE = [
    pytest.param(lambda g, x: (tanh_vjp(g, x)[0][..., None],), "has shape", id="wrong-shape"),
    pytest.param(lambda g, x: (tanh_vjp(g, x)[0].astype(np.float64),), "dtype float64, expected float32",
                 id="wrong-dtype"),
    pytest.param(lambda g, x: [tanh_vjp(g, x)[0]], "returned a list", id="list"),
    pytest.param(lambda g, x: (tanh_vjp(g, x)[0].tolist(),), "is a list, not an array", id="list-of-floats"),
    pytest.param(lambda g, x: None, "returned None", id="none"),
    pytest.param(lambda g, x: (np.full_like(x, np.nan),), "is not finite: nan", id="nan"),
    pytest.param(_boom, "raised ValueError: boom at the kink", id="raises"),
    pytest.param(lambda g, x: (1.0,), "is a Python float", id="python-float"),
    pytest.param(lambda g, x: (g, g), "tuple of 2 item(s)", id="too-many-gradients"),
]


@pytest.mark.numpy_only
@pytest.mark.parametrize(("vjp", "fragment"), MISUSE)
def test_misbehaving_user_function_is_reported_with_its_input(vjp, fragment: str) -> None:
    result = ri.check_op("tanh", vjp=vjp, max_examples=10, seed=SEED)
    assert not result.ok and not result.problems
    assert result.counterexamples, "a failure of the user's function needs the input that caused it"
    c = result.counterexamples[0]
    assert c.kind == "user function error", c.describe()
    assert fragment in c.message, c.message
    assert c.message.startswith("your vjp"), c.message
    assert set(c.arrays) == {"cotangent", "x"} and c.arrays["x"].dtype.name == c.dtype
    assert f"x{tuple(c.arrays['x'].shape)}" in c.example  # the description names the very input
    assert any(r.status == "error" for r in result.rows)
    with pytest.raises(AssertionError, match="user function error"):
        result.raise_if_failed()


@pytest.mark.numpy_only
def test_forward_returning_a_list_is_reported() -> None:
    result = ri.check_op("relu", forward=lambda x: np.maximum(x, 0).tolist(), max_examples=5, seed=SEED)
    assert [c.dtype for c in result.counterexamples] == ["float32", "float64"]
    for c in result.counterexamples:
        assert c.check == "forward" and c.message.startswith("your forward: the result is a list, not an array")


# --------------------------------------------------------------------------- misuse of the oracle


@pytest.mark.numpy_only
def test_unknown_op_lists_the_valid_ones() -> None:
    result = ri.check_op("softmx", vjp=tanh_vjp)
    assert not result.ok and not result.rows
    (problem,) = result.problems
    assert problem.startswith("op: unknown op 'softmx'") and "did you mean 'softmax'" in problem
    for name in OPS:
        assert name in problem
    with pytest.raises(AssertionError, match="unknown op 'softmx'"):
        result.raise_if_failed()


@pytest.mark.numpy_only
@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({}, "forward, vjp: give at least one"),
    ({"vjp": "tanh"}, "vjp: expected a callable"),
    ({"vjp": tanh_vjp, "dtypes": ("float8_e4m3fn",)}, "dtypes: 'float8_e4m3fn' is not supported"),
    ({"vjp": tanh_vjp, "max_examples": 0}, "max_examples: expected an int >= 1"),
    ({"vjp": tanh_vjp, "seed": "zero"}, "seed: expected an int or None"),
    ({"vjp": tanh_vjp, "params": {"reduction": "sum"}}, "params: 'reduction' is not a parameter of tanh"),
    ({"vjp": tanh_vjp, "shapes": "tiny"}, "shapes: 'tiny' is not 'free' or 'palette'"),
    ({"vjp": tanh_vjp, "backends": ("tensorflow",)}, "backends: unknown backend 'tensorflow'"),
    ({"vjp": tanh_vjp, "profile": "weekly"}, "profile: 'weekly' is not a profile"),
])
def test_misuse_of_the_oracle_is_reported(kwargs, fragment: str) -> None:
    result = ri.check_op("tanh", **kwargs)
    assert not result.ok and not result.rows
    assert any(p.startswith(fragment) for p in result.problems), result.problems


@pytest.mark.numpy_only
@settings(max_examples=1, database=None)
@given(outer=st.just(None))
def test_a_check_inside_a_hypothesis_test_is_reported_not_crashed(outer: None) -> None:
    result = ri.check_op("tanh", vjp=tanh_vjp, max_examples=2, seed=SEED)
    assert not result.ok and not result.rows
    assert all("cannot run inside a @given test" in p for p in result.problems), result.problems


@pytest.mark.numpy_only
def test_missing_backend_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from reference_impl.frameworks import backends

    # simulate an environment without torch: the uncached lookup, which checks availability
    monkeypatch.setattr(backends, "available", lambda name: name != "torch")
    monkeypatch.setattr(backends, "_backend", backends._backend.__wrapped__)
    result = ri.check_op("tanh", vjp=tanh_vjp, backends=("torch",))
    assert not result.ok
    (problem,) = result.problems
    assert "'torch' is not installed" in problem and backends.INSTALL_HINT["torch"] in problem


@pytest.mark.numpy_only
def test_params_fix_a_reduction() -> None:
    def mse_vjp(g, p, t, reduction):
        c = {"mean": 2.0 / p.size, "sum": 2.0, "half_sum": 1.0}[reduction]
        d = (p - t) * (g * np.asarray(c, p.dtype))
        return d, -d

    result = ri.check_op("mse", vjp=mse_vjp, params={"reduction": "half_sum"}, max_examples=10, seed=SEED)
    assert result.ok, result.report()
    wrong = ri.check_op("mse", vjp=lambda g, p, t, reduction: mse_vjp(g, p, t, "sum"), params={"reduction": "half_sum"},
                        max_examples=10, seed=SEED)
    assert not wrong.ok and "reduction" in wrong.counterexamples[0].message  # the conventions are cited


@pytest.mark.numpy_only
def test_a_vjp_that_forgets_the_mean_is_wrong_not_a_convention() -> None:
    """A reduction mistake nobody declared: the mean's 1/rows forgotten, and a
    fused loss that divides by ``shape[0]`` where the mean is over every element."""
    def sce_vjp_no_mean(g, z, t, reduction):
        shifted = z - z.max(axis=-1, keepdims=True)
        e = np.exp(shifted)
        s = e / e.sum(axis=-1, keepdims=True)
        log_s = shifted - np.log(e.sum(axis=-1, keepdims=True))
        return g * (s * t.sum(axis=-1, keepdims=True) - t), -g * log_s

    forgot = ri.check_op("softmax_cross_entropy", vjp=sce_vjp_no_mean, params={"reduction": "mean"},
                         shapes="free", max_examples=25, seed=SEED)
    assert not forgot.ok
    c = forgot.counterexamples[0]
    assert c.verdict == "wrong" and "a reduction mistake" in c.message, c.message

    def mse_vjp_by_rows(g, p, t, reduction):
        d = 2 * (p - t) * (g / np.asarray(p.shape[0] if p.ndim else 1, p.dtype))
        return d, -d

    by_rows = ri.check_op("mse", vjp=mse_vjp_by_rows, params={"reduction": "mean"}, max_examples=25, seed=SEED)
    assert not by_rows.ok and all(c.verdict == "wrong" for c in by_rows.counterexamples), by_rows.report()


# --------------------------------------------------------------------------- networks and SGD

NET = MLP((3, 5, 2), ("tanh", "identity"), cost="mse")


def net_value_and_grad(params, x, t, *, sum_bias: bool = True):
    """The 3-5-2 tanh network with mean squared error, by hand."""
    (w1, b1), (w2, b2) = params
    a1 = np.tanh(x @ w1 + b1)
    d = a1 @ w2 + b2 - t
    dz2 = 2 * d / d.size
    dz1 = (dz2 @ w2.T) * (1 - a1 * a1)
    db2 = dz2.sum(axis=0) if sum_bias else dz2[0]
    return np.asarray(np.mean(d * d), dtype=x.dtype), ((x.T @ dz1, dz1.sum(axis=0)), (a1.T @ dz2, db2))


def net_step(params, x, t, lr, *, sign: float = 1.0):
    _, grads = net_value_and_grad(params, x, t)
    return tuple((w - sign * np.asarray(lr, w.dtype) * dw, b - sign * np.asarray(lr, b.dtype) * db)
                 for (w, b), (dw, db) in zip(params, grads))


@pytest.mark.numpy_only
def test_network_gradients_right_and_wrong() -> None:
    good = ri.check_network(NET, value_and_grad=net_value_and_grad, max_examples=15, seed=SEED)
    assert good.ok, good.report()
    assert {r.check for r in good.rows} == {"loss", "dW", "db"}
    bad = ri.check_network(NET, value_and_grad=lambda p, x, t: net_value_and_grad(p, x, t, sum_bias=False),
                           max_examples=15, seed=SEED)
    assert not bad.ok
    for c in bad.counterexamples:
        assert c.check == "db" and c.arrays["x"].shape[0] >= 2, c.describe()
    assert all(r.status == "pass" for r in bad.rows if r.shape_class == "batch=1")


@pytest.mark.numpy_only
def test_sgd_step_right_and_wrong() -> None:
    good = ri.check_sgd_step(NET, step=net_step, max_examples=10, seed=SEED)
    assert good.ok, good.report()
    uphill = ri.check_sgd_step(NET, step=lambda p, x, t, lr: net_step(p, x, t, lr, sign=-1.0), lr=0.1,
                               max_examples=10, seed=SEED)
    assert not uphill.ok and uphill.counterexamples[0].check in ("W", "b")
    assert "lr=0.1" in uphill.counterexamples[0].call


@pytest.mark.numpy_only
def test_network_misuse_is_reported() -> None:
    unknown = ri.check_network("005", value_and_grad=net_value_and_grad)
    assert not unknown.ok and "unknown preset '005'" in unknown.problems[0] and "002" in unknown.problems[0]
    listed = ri.check_network(NET, value_and_grad=lambda p, x, t: [1.0, p], max_examples=3, seed=SEED)
    assert "your value_and_grad returned a list" in listed.counterexamples[0].message
    bad_lr = ri.check_sgd_step(NET, step=net_step, lr=-1.0)
    assert any(p.startswith("lr:") for p in bad_lr.problems)


# --------------------------------------------------------------------------- packaging


def test_import_reference_impl_does_not_load_the_oracle() -> None:
    code = ("import sys, reference_impl as ri; assert 'reference_impl.oracle' not in sys.modules; "
            "assert 'hypothesis' not in sys.modules; f = ri.check_op; "
            "import reference_impl.oracle as o; assert f is o.check_op; print('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-800:]
    with pytest.raises(AttributeError, match="no attribute 'check_everything'"):
        ri.check_everything  # noqa: B018 -- the lazy hook must not swallow unknown names


@pytest.mark.torch
def test_torch_as_second_opinion() -> None:
    result = ri.check_op("softmax", vjp=softmax_vjp_full_jacobian, backends=("torch",), max_examples=10, seed=SEED)
    assert result.ok, result.report()
    assert {r.against for r in result.rows} == {"reference", "torch"}
    wrong = ri.check_op("softmax", vjp=softmax_vjp_diagonal_only, backends=("torch",), dtypes=("float64",),
                        max_examples=10, seed=SEED)
    assert {r.against for r in wrong.rows if r.status == "fail"} == {"reference", "torch"}
