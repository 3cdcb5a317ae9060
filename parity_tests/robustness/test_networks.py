"""Robustness of the networks, the presets, the gate graph, the path sum,
gradient descent and the document's examples: every input class, and the
contract of ``test_ops.py`` (a clear error naming an argument the
caller passed, or a finite result equal to an independent formula)."""

from __future__ import annotations

import ast
import time
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Any

import ml_dtypes
import mpmath
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import reference_impl as ri
from reference_impl import engine, examples, graph, optim, paths
from reference_impl.accuracy import networks as network_tolerances
from reference_impl.accuracy import ops as tolerances
from reference_impl.networks import MLP, PRESETS, Tape, preset_000, preset_002, preset_003, preset_004

from .test_ops import FLOATS, SUBCLASSES, _LooksLikeTorch, assert_names_a_passed_argument, extreme_arrays

FAST = settings(deadline=3000, max_examples=50)

NET = MLP((2, 3, 2), ("tanh", "identity"), softmax=True, cost="cross_entropy")


def _valid(dtype: np.dtype) -> tuple[Any, np.ndarray, np.ndarray]:
    params = NET.init_params(seed=1, dtype=dtype)
    x = np.array([[0.5, -0.25], [1.0, 0.75]], dtype=dtype)
    t = np.array([[1.0, 0.0], [0.25, 0.75]], dtype=dtype)
    return params, x, t


def _replace(params: Any, x: np.ndarray, t: np.ndarray, which: str, bad: Any) -> tuple[Any, Any, Any]:
    if which == "x":
        return params, bad, t
    if which == "target":
        return params, x, bad
    l, part = (0, 0) if which == "params[0].W" else (1, 1)
    new = [list(p) for p in params]
    new[l][part] = bad
    return new, x, t


NET_ENTRIES = {
    "forward": lambda p, x, t: NET.forward(p, x, t),
    "value_and_grad": lambda p, x, t: NET.value_and_grad(p, x, t),
    "loss": lambda p, x, t: NET.loss(p, x, t),
    "predict": lambda p, x, t: NET.predict(p, x),
    "graph_gradients": lambda p, x, t: graph.graph_gradients(NET, p, x, t),
    "path_gradients": lambda p, x, t: paths.path_gradients(NET, p, x, t),
    "train": lambda p, x, t: optim.train(NET, p, x, t, lr=0.1, steps=1),
    "enumerate_paths": lambda p, x, t: list(paths.enumerate_paths(NET, p, x, t, 0, 0)),
    # the gradients of valid parameters of the test's dtype (t is valid when the parameters are bad)
    "sgd_step": lambda p, x, t: optim.sgd_step(p, NET.value_and_grad(*_valid(np.asarray(t).dtype)).params, 0.1),
}
TARGETS = ["x", "target", "params[0].W", "params[1].b"]


def _bad_values(base: np.ndarray) -> dict[str, Any]:
    shape = base.shape
    return {
        "int64": np.zeros(shape, np.int64), "bool": np.zeros(shape, bool),
        "float8": base.astype(ml_dtypes.float8_e4m3fn),
        "complex": base.astype(np.complex128), "object": base.astype(object), "str": np.full(shape, "a"),
        "nan": np.where(np.arange(base.size).reshape(shape) == 0, np.nan, base),
        "inf": np.where(np.arange(base.size).reshape(shape) == 0, -np.inf, base),
        "masked": SUBCLASSES["masked"][0](base), "matrix": SUBCLASSES["matrix"][0](base),
        "torch-lookalike": _LooksLikeTorch(base), "ragged": [[0.5], [0.5, 0.25]], "none": None,
        "huge-broadcast": np.broadcast_to(base.reshape(-1)[:1].reshape(()), (10**5, 10**5)),
        "wrong-dtype": base.astype(np.float32 if base.dtype == np.float64 else np.float64),
        "empty": np.zeros((0, *shape[1:]), base.dtype), "scalar": base.reshape(-1)[0],
    }


BAD_KINDS = sorted(_bad_values(np.ones((2, 2))))


@FAST
@given(entry=st.sampled_from(sorted(NET_ENTRIES)), which=st.sampled_from(TARGETS), kind=st.sampled_from(BAD_KINDS),
       dtype=st.sampled_from(FLOATS))
def test_network_entry_points_name_the_bad_argument(entry: str, which: str, kind: str, dtype: np.dtype) -> None:
    assume(not (entry == "predict" and which == "target"))  # predict takes no target
    assume(entry != "sgd_step" or which.startswith("params"))  # a step reads only the parameters
    params, x, t = _valid(dtype)
    base = {"x": x, "target": t, "params[0].W": params[0][0], "params[1].b": params[1][1]}[which]
    bad = _bad_values(base)[kind]
    p2, x2, t2 = _replace(params, x, t, which, bad)
    started = time.perf_counter()
    with pytest.raises((ValueError, TypeError)) as info:
        NET_ENTRIES[entry](p2, x2, t2)
    assert time.perf_counter() - started < 2.0
    # a dtype mismatch or an empty batch is between two arguments: either may be named
    either = kind in ("empty", "wrong-dtype")
    passed = {which, "params", "x", "target"} if either else {which}
    assert_names_a_passed_argument(info.value, passed | ({"grads"} if entry == "sgd_step" else set()))


EXAMPLE_ENTRIES = {
    "g": (lambda v: examples.g(v, v, v), "x"),
    "g_partials": (lambda v: examples.g_partials(1.0, 2.0, v), "z"),
    "composite_p": (lambda v: examples.composite_p(v), "X"),
    "composite_p_vjp": (lambda v: examples.composite_p_vjp(np.ones((2, 2)), v), "X"),
    "composite_p_jacobian": (lambda v: examples.composite_p_jacobian(v), "x"),
    "graph.variable": (lambda v: graph.Graph().variable("W", v), "value"),
}


@FAST
@given(entry=st.sampled_from(sorted(EXAMPLE_ENTRIES)), kind=st.sampled_from(BAD_KINDS))
def test_examples_and_graph_name_the_bad_argument(entry: str, kind: str) -> None:
    # a single argument has no dtype to disagree with; a scalar and an empty leaf are valid
    assume(kind not in ("wrong-dtype", "scalar") and not (kind == "empty" and entry == "graph.variable"))
    call, name = EXAMPLE_ENTRIES[entry]
    base = np.ones(2) if entry in ("g_partials", "composite_p_jacobian") else np.full((2, 2), 0.5)
    if kind == "empty" and entry in ("g", "composite_p"):
        assert call(_bad_values(base)[kind]).size == 0  # elementwise, or zero rows: a valid empty result
        return
    with pytest.raises((ValueError, TypeError)) as info:
        call(_bad_values(base)[kind])
    # g's three arguments are the same array; a cotangent that no longer fits an empty X is named too
    assert_names_a_passed_argument(info.value, {name, "x", "y", "z", "cotangent"})


def test_network_accepts_lists() -> None:
    params, x, t = _valid(np.dtype(np.float64))
    as_lists = [[w.tolist(), b.tolist()] for w, b in params]
    a = NET.value_and_grad(as_lists, x.tolist(), t.tolist())
    b = NET.value_and_grad(params, x, t)
    for u, v in zip(a.dW, b.dW):
        np.testing.assert_array_equal(u, v)


@pytest.mark.torch
def test_network_refuses_torch_tensors_with_a_conversion() -> None:
    torch = pytest.importorskip("torch")
    params, x, t = _valid(np.dtype(np.float64))
    with pytest.raises(TypeError, match=r"^x: got a PyTorch tensor; convert it with t\.detach\(\)\.cpu\(\)\.numpy\(\)"):
        NET.forward(params, torch.from_numpy(x).requires_grad_(True), t)


@pytest.mark.jax
def test_network_refuses_jax_arrays_with_a_conversion() -> None:
    jnp = pytest.importorskip("jax.numpy")
    params, x, t = _valid(np.dtype(np.float64))
    with pytest.raises(TypeError, match=r"^target: got a JAX array; convert it with np\.asarray\(jax_array\)"):
        NET.forward(params, x, jnp.asarray(t))


# --------------------------------------------------------------------------- extreme magnitudes: a truth in Fraction

ONE_LAYER = MLP((2, 2), ("identity",), cost="mse", reduction="sum")


def _exact_one_layer(x: np.ndarray, w: np.ndarray, b: np.ndarray, t: np.ndarray) -> dict[str, list[Fraction]]:
    """``z = x W + b``, ``L = sum (z - t)^2`` and its gradients, exactly."""
    X = [[Fraction(float(v)) for v in row] for row in x]
    W = [[Fraction(float(v)) for v in row] for row in w]
    B = [Fraction(float(v)) for v in b]
    T = [[Fraction(float(v)) for v in row] for row in t]
    z = [[sum(X[r][i] * W[i][j] for i in range(2)) + B[j] for j in range(2)] for r in range(len(X))]
    dz = [[2 * (z[r][j] - T[r][j]) for j in range(2)] for r in range(len(X))]
    return {
        "z": [v for row in z for v in row],
        "loss": [sum((z[r][j] - T[r][j]) ** 2 for r in range(len(X)) for j in range(2))],
        "dZ": [v for row in dz for v in row],
        "dW": [sum(X[r][i] * dz[r][j] for r in range(len(X))) for i in range(2) for j in range(2)],
        "db": [sum(dz[r][j] for r in range(len(X))) for j in range(2)],
        "dx": [sum(dz[r][j] * W[i][j] for j in range(2)) for r in range(len(X)) for i in range(2)],
    }


def _float64(v: Fraction) -> float:
    try:
        return float(v)
    except OverflowError:
        return np.inf if v > 0 else -np.inf


def _in_range(values: list[Fraction], dtype: np.dtype) -> bool | None:
    """True when every value rounds into the dtype's range, False when one is
    clearly beyond it, None within 1% of the boundary (where the network's own
    roundings may decide either way)."""
    top = Fraction(float(np.finfo(dtype).max))
    worst = max(abs(v) for v in values)
    if worst > top * Fraction(101, 100):
        return False
    if worst > top * Fraction(99, 100):
        return None
    return True


@settings(deadline=3000, max_examples=60, suppress_health_check=[HealthCheck.filter_too_much])
@given(data=st.data(), dtype=st.sampled_from(FLOATS))
def test_one_layer_network_at_extreme_magnitudes_matches_exact_arithmetic(data: st.DataObject,
                                                                          dtype: np.dtype) -> None:
    x = data.draw(extreme_arrays(dtype, (1, 2)))
    w = data.draw(extreme_arrays(dtype, (2, 2)))
    b = data.draw(extreme_arrays(dtype, (2,)))
    t = data.draw(extreme_arrays(dtype, (1, 2)))
    exact = _exact_one_layer(x, w, b, t)
    verdicts = [_in_range(v, dtype) for v in exact.values()]
    try:
        tape = ONE_LAYER.forward(((w, b),), x, t)
        grads = ONE_LAYER.backward(tape)
    except ValueError as e:
        assert_names_a_passed_argument(e, {"params", "x"})
        refused = str(e)
        assert False in verdicts or None in verdicts, f"refused although every true value is representable: {refused}"
        return
    # A finite result must be within the error model of the true value, even where that
    # true value is beyond the dtype's range: inputs rounded to the dtype may not determine
    # it (z = 1.9e36 + 88.5 rounds to 1.9e36 in float32, and the residual that scales dW
    # vanishes), and the model's tolerance says so.
    with np.errstate(over="ignore", invalid="ignore"):
        bound = network_tolerances.network_bound(tape, grads)
    for name, got in (("loss", grads.loss), ("dW", grads.dW[0]), ("db", grads.db[0]), ("dx", grads.dx)):
        truth = np.array([_float64(v) for v in exact[name]]).reshape(np.shape(got))
        tol = bound.tolerance(name, 0) if name in ("dW", "db") else bound.tolerance(name)
        # the error model caps a bound beyond float64 (the cost's e^2 near the dtype's
        # largest value) at float64's largest value: a tolerance is never inf or NaN
        assert np.all(np.isfinite(tol)), f"{name}: the error model is not finite: {tol}"
        # a true value beyond float64 itself is compared in exact arithmetic
        flat_got, flat_tol = np.ravel(got), np.ravel(np.broadcast_to(tol, np.shape(got)))
        for j, exact_value in enumerate(exact[name]):
            if not np.isfinite(truth.flat[j]):
                err = abs(Fraction(float(flat_got[j])) - exact_value) if np.isfinite(flat_got[j]) else None
                assert err is not None and err <= Fraction(float(flat_tol[j])), \
                    f"{name}[{j}]: {flat_got[j]!r} against the exact {float(exact_value):.3e}, tolerance {flat_tol[j]}"
        truth = np.where(np.isfinite(truth), truth, got)
        with np.errstate(over="ignore"):
            c = engine.compare(got, truth, tol, dtype, model="network error model against exact arithmetic")
        assert c.ok, f"{name}: {c.describe()}"


# --------------------------------------------------------------------------- named cases


def _underflowing_net(dtype: Any = np.float32) -> tuple[MLP, Any, np.ndarray]:
    """Three classes with logits z = (w, -w, w - 5) (every z exact), w =
    96.073 in float32, 400 in float64: softmax(z)_1 = e^-2w is below the
    dtype's smallest subnormal and rounds to 0, the other two are
    representable."""
    net = MLP((3, 3), ("identity",), softmax=True, cost="cross_entropy")
    w = np.float32(96.073) if dtype == np.float32 else np.float64(400.0)
    params = ((np.diag(np.array([w, w, w], dtype)), np.array([0.0, 0.0, -5.0], dtype)),)
    return net, params, np.array([[1.0, -1.0, 1.0]], dtype)


def _mp_softmax(z: np.ndarray) -> list[Any]:
    mpmath.mp.dps = 60
    zs = [mpmath.mpf(float(v)) for v in z]
    total = sum(mpmath.exp(v) for v in zs)
    return [mpmath.exp(v) / total for v in zs]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fallback", [False, True], ids=["wide", "decimal-fallback"])
def test_cross_entropy_net_whose_softmax_underflows_gives_the_true_loss_and_gradients(
        dtype: Any, fallback: bool, request: pytest.FixtureRequest) -> None:
    if fallback:
        request.getfixturevalue("decimal_fallback")
    net, params, x = _underflowing_net(dtype)
    t = np.array([[0.25, 0.0, 0.75]], dtype)
    tape = net.forward(params, x, t)
    z = tape.layers[0].z[0]
    w = params[0][0][0, 0]
    assert z.tolist() == [w, -w, w - 5]  # exact
    assert float(tape.output[0, 1]) == 0.0  # the rounded softmax underflows; its true value e^-2w does not vanish
    s = _mp_softmax(z)
    true_loss = -sum(mpmath.mpf(float(tv)) * mpmath.log(sv) for tv, sv in zip(t[0], s))
    bound = tolerances.forward_bound("softmax_cross_entropy", [tape.layers[0].z, t]).tolerance(dtype)
    assert abs(Fraction(float(tape.loss)) - Fraction(float(true_loss))) <= Fraction(float(bound)), (tape.loss,
                                                                                                  true_loss)
    grads = net.backward(tape)
    # dL/dz = softmax(z) - t (a distribution target), and dL/d(output) = -t / softmax(z): 0 where t = 0
    true_dz = np.array([float(sv - mpmath.mpf(float(tv))) for sv, tv in zip(s, t[0])])
    dz_bound = tolerances.vjp_bound("softmax_cross_entropy", np.ones((), dtype), [tape.layers[0].z, t])[0]
    assert np.all(np.abs(grads.dZ[0][0].astype(np.float64) - true_dz) <= dz_bound.tolerance(dtype)[0])
    # -t / s where s > 0 is one rounded division of a wide softmax: within 2 units of roundoff
    true_dout = [float(-mpmath.mpf(float(tv)) / sv) for tv, sv in zip(t[0], s)]
    assert float(grads.d_output[0, 1]) == 0.0
    np.testing.assert_allclose(grads.d_output[0, [0, 2]], [true_dout[0], true_dout[2]],
                               rtol=2 * tolerances.unit_roundoff(dtype))
    assert all(np.all(np.isfinite(a)) for a in (*grads.dW, *grads.db, grads.dx))


def test_cross_entropy_net_whose_true_loss_is_192_is_not_refused() -> None:
    net, params, x = _underflowing_net()
    t = np.array([[0.0, 1.0, 0.0]], np.float32)  # the class whose probability underflows
    loss = net.loss(params, x, t)
    true_loss = -mpmath.log(_mp_softmax(net.forward(params, x, t).layers[0].z[0])[1])
    assert 192 < true_loss < 193  # 2w + log(1 + e^-5): representable, though e^-192 is not
    assert abs(Fraction(float(loss)) - Fraction(float(true_loss))) <= Fraction(float(np.spacing(np.float32(192)))), \
        (loss, true_loss)
    # its gradient w.r.t. that output, -1 / e^-192, is beyond float32: an error naming the caller's arguments
    with pytest.raises(ValueError, match=r"^params, x, target: the gradient dL/d\(output\) overflows float32 at "
                                         r"index \(0, 1\), where the softmax output underflows") as info:
        net.value_and_grad(params, x, t)
    assert "softmax_cross_entropy" in str(info.value)
    for entry in (graph.graph_gradients, paths.path_gradients):
        with pytest.raises(ValueError, match=r"^params, x, target: the softmax output underflows to 0 at \(0, 1\)"):
            entry(net, params, x, t)


def test_an_overflow_caused_by_the_target_names_target() -> None:
    net = MLP((2, 2), ("identity",), cost="mse")
    params = net.init_params()
    x = np.ones((1, 2))
    with pytest.raises(ValueError, match=r"^params, x, target: the forward pass overflows float64: the loss") as info:
        net.forward(params, x, np.ones((1, 2)) * 1e200)  # (z - 1e200)^2 = 1e400
    assert_names_a_passed_argument(info.value, {"target"})


def test_init_params_with_a_scale_beyond_the_dtype_names_scale() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning from a cast: an error, before any inf is returned
        with pytest.raises(ValueError, match=r"^scale: 1e\+39 draws W of layer 0 beyond the range of float32"):
            MLP((2, 3), ("relu",)).init_params(scale=1e39, dtype="float32")
    params = MLP((2, 3), ("relu",)).init_params(scale=1e30, dtype="float32")  # about 1e30: representable
    assert all(np.all(np.isfinite(a)) for pair in params for a in pair)


@pytest.mark.parametrize(("sizes", "elements"), [((10**6, 10**6), 10**12), ((1, 2**26 + 1), 2**26 + 1),
                                                 ((2, 2, 10**5, 10**5), 10**10)])
def test_init_params_of_a_layer_over_the_size_limit_names_sizes(sizes: tuple[int, ...], elements: int) -> None:
    net = MLP(sizes, ("relu",) * (len(sizes) - 1))
    started = time.perf_counter()
    with pytest.raises(ValueError, match=rf"^sizes: the W of layer \d: shape \(.*\) has {elements} elements, more "
                                         "than the limit"):
        net.init_params()
    assert time.perf_counter() - started < 1.0  # refused before anything is drawn


def test_backward_of_a_hand_made_tape_names_tape() -> None:
    import dataclasses

    params, x, t = _valid(np.dtype(np.float64))
    tape = NET.forward(params, x, t)
    for bad in (Tape(NET, (), tape.output, tape.target, tape.loss), dataclasses.replace(tape, loss=tape.loss * 2)):
        with pytest.raises(ValueError, match=r"^tape: not recorded by MLP\.forward") as info:
            NET.backward(bad)
        assert_names_a_passed_argument(info.value, {"tape"})
    with pytest.raises(TypeError, match=r"^tape: expected the Tape returned by MLP\.forward"):
        NET.backward(None)  # type: ignore[arg-type]
    assert np.all(np.isfinite(NET.backward(tape).dx))


@pytest.mark.parametrize("bad", [None, [np.nan], "abc"])
def test_graph_variable_with_no_name_names_value(bad: Any) -> None:
    with pytest.raises((ValueError, TypeError), match=r"^value: ") as info:
        graph.Graph().variable(None, bad)
    assert "None" not in str(info.value).split(":", 1)[0]


def test_graph_loss_gate_names_prediction_not_the_ops_own_argument() -> None:
    g = graph.Graph()
    p, y = g.variable("p", np.array([[0.5, 0.75]])), g.variable("y", np.array([[1.0, 0.0]]))
    with pytest.raises(ValueError, match=r"^prediction, target: probs: each row") as info:
        g.loss("cross_entropy", p, y)
    assert_names_a_passed_argument(info.value, {"prediction"})


def test_train_with_a_huge_number_of_steps_is_refused_at_once() -> None:
    params, x, t = _valid(np.dtype(np.float64))
    started = time.perf_counter()
    with pytest.raises(ValueError, match=r"^steps: a trajectory of 1000000000000000000000000000000 steps keeps"):
        optim.train(NET, params, x, t, lr=0.1, steps=10**30)
    assert time.perf_counter() - started < 2.0


def test_g_whose_intermediate_overflows_but_whose_result_does_not_is_computed() -> None:
    x = y = np.float32(2e38)
    z = np.float32(1e-30)
    got = examples.g(x, y, z)  # 2x + y = 6e38 is beyond float32; (2x + y) z = 6e8 is not
    exact = (2 * Fraction(float(x)) + Fraction(float(y))) * Fraction(float(z))
    assert got.dtype == np.float32 and float(got) == float(np.float32(float(exact)))  # rounded once: exact
    got_sum = examples.g(np.float32(2e38), np.float32(-3e38), np.float32(1e-8))  # 2x = 4e38 overflows, 2x + y does not
    assert float(got_sum) == float(np.float32(float((2 * Fraction(float(np.float32(2e38)))
                                                    + Fraction(float(np.float32(-3e38))))
                                                   * Fraction(float(np.float32(1e-8))))))
    with pytest.raises(ValueError, match=r"^x, y, z: g = \(2x \+ y\) z overflows float32"):
        examples.g(x, y, np.float32(1.0))


def test_mlp_whose_layer_overflows_names_the_layer_and_the_callers_arguments() -> None:
    net = MLP((2, 2, 2), ("identity", "tanh"), cost="mse")
    params = ((np.full((2, 2), 3e38, np.float32), np.zeros(2, np.float32)),
              (np.ones((2, 2), np.float32), np.zeros(2, np.float32)))
    with pytest.raises(ValueError, match=r"^params, x: the forward pass overflows float32: z of layer 0"):
        net.forward(params, np.array([[1.0, 1.0]], np.float32), np.zeros((1, 2), np.float32))


def test_tape_keeps_copies_so_later_edits_cannot_change_gradients() -> None:
    preset = preset_002()
    params = [[w.copy(), b.copy()] for w, b in preset.init_params(seed=3)]
    x, t = np.array([[0.2, 0.1]]), np.array([[1.0, 0.0, 0.0]])
    tape = preset.net.forward(params, x, t)
    before = preset.net.backward(tape)
    params[0][0][:] = 7.0
    params[2][1][:] = -3.0
    x[:] = 9.0
    t[:] = [0.0, 1.0, 0.0]
    after = preset.net.backward(tape)
    for u, v in zip(before.dW + before.db, after.dW + after.db):
        np.testing.assert_array_equal(u, v)
    assert not tape.layers[0].W.flags.writeable and not tape.x.flags.writeable


def test_sgd_step_with_an_lr_beyond_float32_names_lr() -> None:
    params = NET.init_params(dtype=np.float32)
    grads = NET.value_and_grad(params, np.ones((1, 2), np.float32), np.array([[1.0, 0.0]], np.float32))
    with pytest.raises(ValueError, match=r"^lr: 1e\+39 exceeds the largest float32"):
        optim.sgd_step(params, grads, 1e39)
    new = optim.sgd_step(params, grads, 1e39 / 1e10)  # representable in float32: a step, maybe overflowing
    assert all(np.all(np.isfinite(a)) for pair in new for a in pair)


def test_train_blames_lr_not_the_callers_params_for_a_step_that_overflows() -> None:
    net = MLP((2, 2), ("identity",))
    params = net.init_params(dtype=np.float32)
    x, t = np.ones((1, 2), np.float32), np.full((1, 2), 5.0, np.float32)
    with pytest.raises(ValueError, match=r"^lr: ") as info:
        optim.train(net, params, x, t, lr=1e36, steps=4)
    assert "params[" not in str(info.value).split(":", 1)[0]


def test_count_paths_of_a_deep_net_is_exact_beyond_int64() -> None:
    net = MLP((2,) * 67, ("relu",) * 66)
    # widths 2: sum over layers l of n (m + 2) 2^(65 - l) + m n 2^65 = 8 (2^66 - 1) + 2^67
    assert paths.count_paths(net) == 8 * (2**66 - 1) + 2**67
    assert paths.count_paths(net, rows=3) == 3 * (8 * (2**66 - 1) + 2**67)


def test_path_gradients_refuses_a_66_layer_net_at_once() -> None:
    net = MLP((2,) * 67, ("relu",) * 66)
    params = net.init_params()
    started = time.perf_counter()
    with pytest.raises(ValueError, match=r"^net: the sum over paths of .* has 737869762948382064632 terms"):
        paths.path_gradients(net, params, np.ones((1, 2)), np.ones((1, 2)))
    assert time.perf_counter() - started < 5.0


def test_count_paths_refuses_bad_rows() -> None:
    with pytest.raises(TypeError, match=r"^rows: expected an int"):
        paths.count_paths(NET, rows=1.5)
    with pytest.raises(ValueError, match=r"^rows: expected an int >= 1"):
        paths.count_paths(NET, rows=0)


def test_graph_edited_into_a_cycle_is_an_error_not_a_hang() -> None:
    g = graph.Graph()
    a, b = g.variable("a", np.ones(2)), g.variable("b", np.ones(2))
    c = g.add(a, b)
    d = g.multiply(c, b)
    with pytest.raises(AttributeError):
        c.inputs = (d, b)  # type: ignore[misc]  # nodes are frozen
    object.__setattr__(c, "inputs", (d, b))  # edited anyway
    with pytest.raises(ValueError, match=r"^output: the graph upstream of 'multiply3' has a cycle"):
        g.backward(d, np.ones(2))
    object.__setattr__(c, "inputs", (a, "not a node"))
    with pytest.raises(ValueError, match=r"^output: node 'add2' upstream of 'multiply3' has an input that is not"):
        g.backward(d, np.ones(2))


def test_graph_gradients_are_copies() -> None:
    g = graph.Graph()
    a, b = g.variable("a", np.ones(2)), g.variable("b", np.ones(2))
    out = g.add(a, b)
    grads = g.backward(out, np.ones(2))
    grads["a"][0] = 5.0
    assert grads["b"][0] == 1.0


def test_composite_p_jacobian_of_20000_elements_is_a_size_error() -> None:
    started = time.perf_counter()
    with pytest.raises(ValueError, match=r"^x: a row of 20000 elements has a 20000 x 20000 Jacobian"):
        examples.composite_p_jacobian(np.ones(20000))
    assert time.perf_counter() - started < 1.0


def test_composite_p_jacobian_is_the_product_of_the_local_jacobians() -> None:
    x = np.array([0.5, -1.0, 2.0])
    f = np.maximum(x, 0.0)
    gv = np.tanh(f)
    s = np.exp(gv) / np.exp(gv).sum()
    expected = (np.diag(s) - np.outer(s, s)) @ np.diag(1 - gv**2) @ np.diag((x > 0).astype(float))
    np.testing.assert_allclose(examples.composite_p_jacobian(x), expected, rtol=0, atol=4e-16)


@settings(deadline=2000, max_examples=60)
@given(data=st.data(), dtype=st.sampled_from(FLOATS))
def test_g_at_extreme_magnitudes_is_exact_or_refused(data: st.DataObject, dtype: np.dtype) -> None:
    x, y, z = (data.draw(extreme_arrays(dtype)) for _ in range(3))
    exact = [(2 * Fraction(float(a)) + Fraction(float(b))) * Fraction(float(c)) for a, b, c in zip(x, y, z)]
    top = Fraction(float(np.finfo(dtype).max))
    q_exact = [2 * Fraction(float(a)) + Fraction(float(b)) for a, b in zip(x, y)]
    try:
        got = examples.g(x, y, z)
    except ValueError as e:
        assert_names_a_passed_argument(e, {"x", "y", "z"})
        refused = str(e)
        assert max(abs(v) for v in exact + q_exact) > top * Fraction(99, 100), refused
        return
    assert np.all(np.isfinite(got))
    # two roundings (2x + y, then the product): within 2 units of the last place of each element
    truth = np.array([float(v) for v in exact])
    u = tolerances.unit_roundoff(dtype)
    bound = 2 * u * np.array([float(abs(q) * abs(Fraction(float(c)))) for q, c in zip(q_exact, z)]) \
        + float(np.finfo(dtype).smallest_subnormal)
    assert np.all(np.abs(got.astype(np.float64) - truth) <= bound * (1 + 4 * u)), (got, truth)


def test_g_partials_are_independent_arrays() -> None:
    dx, dy, dz = examples.g_partials(1.0, -5.0, 7.0)
    assert (float(dx), float(dy), float(dz)) == (14.0, 7.0, -3.0)
    dy[...] = 0.0
    assert float(examples.g_partials(1.0, -5.0, 7.0)[1]) == 7.0


# --------------------------------------------------------------------------- presets and structure


@pytest.mark.parametrize("key", sorted(PRESETS))
def test_presets_refuse_bad_inputs_naming_them(key: str) -> None:
    preset = {"000": preset_000, "002": preset_002, "003": preset_003, "004": preset_004}[key]()
    params = preset.init_params()
    n_in, n_out = preset.net.sizes[0], preset.net.sizes[-1]
    for bad, name in ((np.full((1, n_in), np.nan), "x"), (np.ones((1, n_in), np.int64), "x")):
        with pytest.raises((ValueError, TypeError)) as info:
            preset.gradients(params, bad, np.full((1, n_out), 1.0 / n_out))
        assert_names_a_passed_argument(info.value, {name})
    with pytest.raises((ValueError, TypeError)) as info:
        preset.update(params, lr=float("nan"), x=np.ones((1, n_in)), target=np.full((1, n_out), 1.0 / n_out))
    assert_names_a_passed_argument(info.value, {"lr"})


def test_networks_and_optim_do_not_import_each_other() -> None:
    root = Path(ri.__file__).parent

    def imports(path: Path) -> set[str]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                found.add("." * node.level + (node.module or ""))
        return found

    for path in sorted((root / "networks").glob("*.py")):
        assert not {m for m in imports(path) if m.endswith("optim")}, f"{path.name} imports optim"
    assert ".networks" in imports(root / "optim.py")
