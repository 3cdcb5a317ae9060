"""The oracle's controls: ``wrt``, narrowed ``inputs``, declared
``conventions``, ``max_elements``, ``time_budget``, the check that user code
leaves its inputs alone, and ``assume()`` in user code -- for ``check_op``,
``check_network`` and ``check_sgd_step``.

Each control is tested both ways: what it lets through must pass, and what
it must still catch must fail.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume
from hypothesis import strategies as st

import reference_impl as ri
from reference_impl import OPS
from reference_impl.networks import MLP
from reference_impl.strategies.inputs import Arg, Inputs

SEED = 20261123
N = 30

pytestmark = pytest.mark.numpy_only


# --------------------------------------------------------------------------- user code


def tanh_vjp(g, x):
    return (g * (1 - np.tanh(x) ** 2),)


def relu_vjp_with(d0: float, slope_below: float = 0.0):
    """relu's VJP with ``relu'(0) = d0`` (and a leak below 0 when ``slope_below``)."""
    def vjp(g, x):
        return (g * np.where(x > 0, 1.0, np.where(x == 0, d0, slope_below)).astype(x.dtype),)
    return vjp


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _rows(z):
    return int(np.prod(z.shape[:-1])) if z.ndim > 1 else 1


def sce_logits_vjp(g, z, t, reduction="mean"):
    """d/dz of the mean softmax cross-entropy only: a library that does not differentiate targets."""
    scale = g / _rows(z) if reduction == "mean" else g
    return ((_softmax(z) * t.sum(axis=-1, keepdims=True) - t) * scale).astype(z.dtype)


def sce_labels_vjp(g, z, labels, reduction="mean"):
    """The same, for integer class labels."""
    return sce_logits_vjp(g, z, np.eye(z.shape[-1], dtype=z.dtype)[labels], reduction)


LOGITS_AND_ONE_HOT = Inputs(logits=Arg("logits", shape=("batch", "classes")),
                            target=Arg("one_hot", shape=("batch", "classes")))
LOGITS_AND_LABELS = Inputs(logits=Arg("logits", shape=("batch", "classes")),
                           target=Arg("labels", shape=("batch",), classes="classes"))

NET = MLP((3, 5, 2), ("tanh", "identity"), cost="mse")


def net_value_and_grad(params, x, t):
    (w1, b1), (w2, b2) = params
    a1 = np.tanh(x @ w1 + b1)
    d = a1 @ w2 + b2 - t
    dz2 = 2 * d / d.size
    dz1 = (dz2 @ w2.T) * (1 - a1 * a1)
    return np.asarray(np.mean(d * d), dtype=x.dtype), ((x.T @ dz1, dz1.sum(axis=0)), (a1.T @ dz2, dz2.sum(axis=0)))


def net_step(params, x, t, lr):
    _, grads = net_value_and_grad(params, x, t)
    return tuple((w - np.asarray(lr, w.dtype) * dw, b - np.asarray(lr, b.dtype) * db)
                 for (w, b), (dw, db) in zip(params, grads))


# --------------------------------------------------------------------------- inputs unchanged


def test_a_forward_that_writes_into_its_input_is_a_finding() -> None:
    def tanh_in_place(x):
        return np.tanh(x, out=x)

    result = ri.check_op("tanh", forward=tanh_in_place, max_examples=10, seed=SEED)
    assert not result.ok
    assert {c.check for c in result.counterexamples} == {"inputs unchanged"}
    assert "your forward modified its input: x was modified in place" in result.counterexamples[0].message
    honest = ri.check_op("tanh", forward=np.tanh, max_examples=10, seed=SEED)
    assert honest.ok, honest.report()


def test_a_vjp_that_scales_its_cotangent_in_place_is_a_finding() -> None:
    def vjp(g, x):
        g *= 1 - np.tanh(x) ** 2  # the right gradient, computed in the caller's array
        return (g,)

    result = ri.check_op("tanh", vjp=vjp, max_examples=10, seed=SEED)
    assert not result.ok
    assert all(c.check == "inputs unchanged" and "cotangent was modified" in c.message
               for c in result.counterexamples), result.report()


def test_a_network_gradient_that_writes_into_params_is_a_finding() -> None:
    def value_and_grad(params, x, t):
        out = net_value_and_grad(params, x, t)
        params[0][1][...] = 0.0  # zeroes b1 as a side effect
        return out

    result = ri.check_network(NET, value_and_grad=value_and_grad, max_examples=10, seed=SEED)
    assert not result.ok
    assert "params[0][1] was modified in place" in result.counterexamples[0].message


def test_an_in_place_sgd_step_is_a_finding() -> None:
    def step_in_place(params, x, t, lr):
        _, grads = net_value_and_grad(params, x, t)
        for (w, b), (dw, db) in zip(params, grads):
            w -= lr * dw
            b -= lr * db
        return params

    result = ri.check_sgd_step(NET, step=step_in_place, max_examples=10, seed=SEED)
    assert not result.ok
    assert result.counterexamples[0].check == "inputs unchanged", result.report()
    assert ri.check_sgd_step(NET, step=net_step, max_examples=10, seed=SEED).ok


# --------------------------------------------------------------------------- conventions


@pytest.mark.parametrize("d0", [0.5, 1.0])
def test_a_declared_relu_kink_is_checked_as_declared(d0: float) -> None:
    vjp = relu_vjp_with(d0)
    undeclared = ri.check_op("relu", vjp=vjp, max_examples=N, seed=SEED)
    assert not undeclared.ok and all(c.verdict == "convention" for c in undeclared.counterexamples)
    declared = ri.check_op("relu", vjp=vjp, conventions={"relu'(0)": d0}, max_examples=N, seed=SEED)
    assert declared.ok, declared.report()


def test_a_declared_kink_does_not_hide_an_error_elsewhere_or_another_kink() -> None:
    leaky = ri.check_op("relu", vjp=relu_vjp_with(1.0, slope_below=0.01), conventions={"relu'(0)": 1},
                        max_examples=N, seed=SEED)
    assert not leaky.ok
    c = leaky.counterexamples[0]
    assert c.check == "vjp[x]" and c.verdict == "wrong", c.describe()
    other = ri.check_op("relu", vjp=relu_vjp_with(1.0), conventions={"relu'(0)": 0.5}, max_examples=N, seed=SEED)
    assert not other.ok and other.counterexamples[0].check == "vjp[x]"


def _dense_vjp_torch_layout(g, x, w, b):
    gf, xf = g.reshape(-1, g.shape[-1]), x.reshape(-1, x.shape[-1])
    return g @ w.T, (xf.T @ gf).T, gf.sum(axis=0)


def test_a_declared_dense_layout_is_checked_transposed() -> None:
    undeclared = ri.check_op("dense", vjp=_dense_vjp_torch_layout, dtypes=("float64",), max_examples=N, seed=SEED)
    assert not undeclared.ok
    layout = {"dense layout": "(outputs, inputs)"}
    declared = ri.check_op("dense", vjp=_dense_vjp_torch_layout, conventions=layout, dtypes=("float64",),
                           max_examples=N, seed=SEED)
    assert declared.ok, declared.report()

    def wrong_bias(g, x, w, b):
        dx, dw, db = _dense_vjp_torch_layout(g, x, w, b)
        return dx, dw, 2 * db

    still_wrong = ri.check_op("dense", vjp=wrong_bias, conventions=layout, dtypes=("float64",), max_examples=N,
                              seed=SEED)
    assert not still_wrong.ok and still_wrong.counterexamples[0].check == "vjp[b]"


def test_a_network_in_torch_layout() -> None:
    def value_and_grad(params, x, t):
        assert params[0][0].shape == (5, 3)  # (outputs, inputs), as declared
        loss, grads = net_value_and_grad(tuple((w.T, b) for w, b in params), x, t)
        return loss, tuple((dw.T, db) for dw, db in grads)

    result = ri.check_network(NET, value_and_grad=value_and_grad, conventions={"dense layout": "(outputs, inputs)"},
                              max_examples=10, seed=SEED)
    assert result.ok, result.report()


# --------------------------------------------------------------------------- wrt and narrowed inputs


def test_wrt_logits_with_one_returned_gradient() -> None:
    kwargs = {"wrt": ("logits",), "inputs": LOGITS_AND_ONE_HOT, "max_examples": N, "seed": SEED}
    right = ri.check_op("softmax_cross_entropy", vjp=sce_logits_vjp, **kwargs)
    assert right.ok, right.report()
    assert {r.check for r in right.rows} == {"vjp[logits]"}

    def missing_mean(g, z, t, reduction="mean"):
        return sce_logits_vjp(g, z, t, "sum")  # forgets to divide by the rows

    wrong = ri.check_op("softmax_cross_entropy", vjp=missing_mean, params={"reduction": "mean"}, **kwargs)
    assert not wrong.ok and wrong.counterexamples[0].check == "vjp[logits]"
    assert wrong.counterexamples[0].arrays["logits"].shape[0] >= 2


def test_integer_labels_stand_for_one_hot_targets() -> None:
    kwargs = {"wrt": ("logits",), "inputs": LOGITS_AND_LABELS, "max_examples": N, "seed": SEED}
    right = ri.check_op("softmax_cross_entropy", vjp=sce_labels_vjp, **kwargs)
    assert right.ok, right.report()

    def off_by_one_class(g, z, labels, reduction="mean"):
        return sce_labels_vjp(g, z, (labels + 1) % z.shape[-1], reduction)

    wrong = ri.check_op("softmax_cross_entropy", vjp=off_by_one_class, **kwargs)
    assert not wrong.ok
    c = wrong.counterexamples[0]
    assert c.arrays["target"].dtype.kind == "i" and c.arrays["logits"].shape[-1] >= 2, c.describe()


def test_a_strategy_and_a_range_narrow_the_draws() -> None:
    seen: list[np.ndarray] = []

    def recording(g, x):
        seen.append(x.copy())
        return tanh_vjp(g, x)

    two_d = st.tuples(st.integers(1, 5), st.integers(1, 5), st.integers(0, 99)).map(
        lambda s: (np.random.default_rng(s[2]).normal(size=(s[0], s[1])),))
    assert ri.check_op("tanh", vjp=recording, inputs=two_d, max_examples=15, seed=SEED).ok
    assert seen and all(x.ndim == 2 for x in seen)
    seen.clear()
    ranged = Arg("real", shape=(None, None), range=(-0.5, 2.0))
    assert ri.check_op("tanh", vjp=recording, inputs=ranged, max_examples=15, seed=SEED).ok
    assert seen and all(x.min() >= -0.5 and x.max() <= 2.0 for x in seen)


def test_network_wrt_and_labels() -> None:
    only_dw = ri.check_network(NET, value_and_grad=lambda p, x, t: (net_value_and_grad(p, x, t)[0], tuple(
        dw for dw, _ in net_value_and_grad(p, x, t)[1])), wrt=("W",), max_examples=10, seed=SEED)
    assert only_dw.ok, only_dw.report()
    assert {r.check for r in only_dw.rows} == {"loss", "dW"}

    classifier = MLP((3, 4), ("identity",), cost="softmax_cross_entropy")

    def value_and_grad(params, x, labels):
        ((w, b),) = params
        z = x @ w + b
        t = np.eye(4, dtype=x.dtype)[labels]
        s = _softmax(z)
        loss = np.asarray(-np.mean(np.sum(t * np.log(s), axis=-1)), dtype=x.dtype)
        dz = (s - t) / x.shape[0]
        return loss, ((x.T @ dz, dz.sum(axis=0)),)

    # a naive log(softmax): normal data only (at exp's thresholds it is rightly found wrong)
    data = Inputs(x=Arg("real", shape=("batch", 3), scale=1.0, extremes=False),
                  target=Arg("labels", shape=("batch",), classes=4))
    labelled = ri.check_network(classifier, value_and_grad=value_and_grad, inputs=data, max_examples=10, seed=SEED)
    assert labelled.ok, labelled.report()


def test_network_data_from_a_strategy_within_max_elements() -> None:
    seen: list[tuple[int, int]] = []

    def recording(params, x, t):
        seen.append((x.shape[0], x.size + t.size))
        return net_value_and_grad(params, x, t)

    def pair(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        return rng.normal(size=(rows, 3)), rng.normal(size=(rows, 2))

    pairs = st.builds(pair, st.integers(1, 20), st.integers(0, 99))
    params = sum(w.size + b.size for w, b in NET.init_params(0, np.float64))
    result = ri.check_network(NET, value_and_grad=recording, inputs=pairs, max_elements=params + 25,
                              max_examples=20, seed=SEED)
    assert result.ok, result.report()
    assert seen and max(size for _, size in seen) <= 25 and max(rows for rows, _ in seen) >= 2
    wrong_width = st.just((np.ones((2, 4)), np.ones((2, 2))))
    with pytest.raises(ValueError, match=r"inputs: a drawn \(x, target\) is outside what the network accepts"):
        ri.check_network(NET, value_and_grad=net_value_and_grad, inputs=wrong_width, max_examples=3, seed=SEED)


def test_sgd_wrt_freezes_the_others() -> None:
    def weights_only(params, x, t, lr):
        _, grads = net_value_and_grad(params, x, t)
        return tuple((w - np.asarray(lr, w.dtype) * dw, b.copy()) for (w, b), (dw, _) in zip(params, grads))

    assert ri.check_sgd_step(NET, step=weights_only, wrt=("W",), max_examples=10, seed=SEED).ok
    trains_b_too = ri.check_sgd_step(NET, step=net_step, wrt=("W",), max_examples=10, seed=SEED)
    assert not trains_b_too.ok and trains_b_too.counterexamples[0].check == "b"


# --------------------------------------------------------------------------- max_elements and time_budget


def test_max_elements_bounds_every_drawn_input() -> None:
    sizes: list[int] = []

    def recording(op):
        def vjp(g, *inputs, **params):
            sizes.append(sum(x.size for x in inputs))
            return OPS[op].vjp(g, *inputs, **params)  # right, so that the search runs on: only sizes matter
        return vjp

    assert ri.check_op("matmul", vjp=recording("matmul"), max_elements=40, max_examples=20, seed=SEED).ok
    sce = "softmax_cross_entropy"
    narrowed = ri.check_op(sce, vjp=recording(sce), inputs=LOGITS_AND_ONE_HOT, max_elements=40, max_examples=20,
                           seed=SEED)
    assert narrowed.ok and len(sizes) >= 80 and max(sizes) <= 40
    assert any(c.startswith("max_elements 40:") for c in narrowed.cuts), narrowed.report()

    rows: list[int] = []

    def net_recording(params, x, t):
        rows.append(x.size + t.size + sum(w.size + b.size for w, b in params))
        return net_value_and_grad(params, x, t)

    assert ri.check_network(NET, value_and_grad=net_recording, max_elements=40, max_examples=20, seed=SEED).ok
    assert rows and max(rows) <= 40


def test_a_time_budget_stops_a_slow_check_and_says_so() -> None:
    calls = [0]

    def slow(g, x):
        calls[0] += 1
        time.sleep(0.05)
        return tanh_vjp(g, x)

    result = ri.check_op("tanh", vjp=slow, max_examples=200, seed=SEED, time_budget=0.5)
    assert calls[0] < 100  # far fewer than the 400 examples asked for
    assert result.ok and len(result.cuts) == 2 and all("time_budget 0.5 s" in c for c in result.cuts)
    assert "cut:" in result.report()


def test_a_time_budget_keeps_the_smallest_failure_found() -> None:
    def slow_wrong(g, x):
        time.sleep(0.02)
        return (2 * tanh_vjp(g, x)[0],)

    result = ri.check_op("tanh", vjp=slow_wrong, dtypes=("float64",), max_examples=200, seed=SEED, time_budget=0.3)
    assert not result.ok and result.counterexamples
    c = result.counterexamples[0]
    x, g = c.arrays["x"], c.arrays["cotangent"]
    assert not np.allclose(slow_wrong(g, x)[0], tanh_vjp(g, x)[0])  # a real failure, whatever was cut


# --------------------------------------------------------------------------- assume() in user code


def test_assume_skips_an_op_input() -> None:
    def rows_only(g, x):
        assume(x.ndim == 2)
        return tanh_vjp(g, x)

    result = ri.check_op("tanh", vjp=rows_only, max_examples=N, seed=SEED)
    assert result.ok, result.report()
    assert {r.shape_class for r in result.rows} == {"x:2d"}


def test_assume_skips_a_network_input() -> None:
    def batches_only(params, x, t):
        assume(x.shape[0] > 1)
        return net_value_and_grad(params, x, t)

    result = ri.check_network(NET, value_and_grad=batches_only, max_examples=15, seed=SEED)
    assert result.ok, result.report()
    assert {r.shape_class for r in result.rows} == {"batch>1"}


def test_assume_skips_an_sgd_input() -> None:
    def small_rates_only(params, x, t, lr):
        assume(lr < 1.0)
        return net_step(params, x, t, lr)

    result = ri.check_sgd_step(NET, step=small_rates_only, max_examples=15, seed=SEED)
    assert result.ok, result.report()


# --------------------------------------------------------------------------- misuse of the controls


@pytest.mark.parametrize(("kwargs", "error", "fragment"), [
    pytest.param({"wrt": ("labels",)}, ValueError, "wrt: unknown input 'labels'", id="wrt-unknown"),
    pytest.param({"wrt": 3}, TypeError, "wrt:", id="wrt-type"),
    pytest.param({"wrt": ("target",), "inputs": LOGITS_AND_LABELS}, ValueError,
                 "wrt: 'target' is drawn as integer labels", id="wrt-labels"),
    pytest.param({"conventions": {"relu'(0)": 1}}, ValueError, "does not apply to op 'softmax_cross_entropy'",
                 id="conventions-other-op"),
    pytest.param({"conventions": {"reduction": "sum"}}, ValueError, "conventions: unknown convention 'reduction'",
                 id="conventions-not-declarable"),
    pytest.param({"conventions": ["relu'(0)"]}, TypeError, "conventions:", id="conventions-type"),
    pytest.param({"max_elements": 0}, ValueError, "max_elements:", id="max-elements"),
    pytest.param({"time_budget": -1}, ValueError, "time_budget:", id="time-budget"),
    pytest.param({"inputs": Inputs(logits=Arg("logits"))}, ValueError, "inputs: describe every input",
                 id="inputs-missing"),
    pytest.param({"inputs": 3}, TypeError, "inputs:", id="inputs-type"),
    pytest.param({"inputs": Inputs(logits=Arg("logits", shape=(2, 3)), target=Arg("real", shape=(2, 3)))},
                 ValueError, "inputs: a drawn input is outside the domain of softmax_cross_entropy", id="outside"),
    pytest.param({"inputs": st.just("not arrays")}, ValueError, "inputs: the strategy drew", id="strategy-draws"),
])
def test_misuse_of_a_control_names_it(kwargs, error, fragment: str) -> None:
    with pytest.raises(error, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        ri.check_op("softmax_cross_entropy", vjp=sce_logits_vjp, max_examples=5, seed=SEED, **kwargs)


def test_network_misuse_of_a_control_names_it() -> None:
    with pytest.raises(ValueError, match="max_elements: 10 is below"):
        ri.check_network(NET, value_and_grad=net_value_and_grad, max_elements=10)
    with pytest.raises(ValueError, match="wrt: unknown input 'x'"):
        ri.check_sgd_step(NET, step=net_step, wrt=("x",))
    with pytest.raises(ValueError, match="does not apply to a network"):
        ri.check_network(NET, value_and_grad=net_value_and_grad, conventions={"relu'(0)": 0.5})


def test_the_readme_example_of_the_controls_runs() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"<!-- oracle-controls-example -->\s*```python\n(.*?)```", readme, re.DOTALL)
    assert len(blocks) == 1 and "wrt=(\"logits\",)" in blocks[0]
    exec(compile(blocks[0], "README.md oracle controls example", "exec"), {"__name__": "__readme__"})
