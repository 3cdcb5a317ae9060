"""Whole networks against PyTorch and JAX: random architectures, the four
documents' networks, and the error model's own checks.

Every comparison allows what :func:`reference_impl.accuracy.networks.network_bound`
derives for the case at hand; a failure names the first layer and quantity
(z, loss, dZ, dW, db, dx) where the two sides part.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from reference_impl.accuracy import networks as network_tolerances
from reference_impl.dtypes import resolve
from reference_impl.engine import divergence as nc
from reference_impl.frameworks import networks as na
from reference_impl.networks import ACTIVATIONS, MLP, preset_000, preset_002, preset_003, preset_004, recursion_003
from reference_impl.optim import train
from reference_impl.strategies import networks as nst

DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]
seeds = st.integers(0, 2**32 - 1)


def _reference(net: MLP, params, x, t):
    tape = net.forward(params, x, t)
    grads = net.backward(tape)
    return tape, grads, nc.network_tolerance(tape, grads)


def _check_against(backend: str, net: MLP, params, x, t, context: str) -> None:
    tape, grads, tol = _reference(net, params, x, t)
    run = na.torch_value_and_grad if backend == "torch" else na.jax_value_and_grad
    nc.assert_agrees(net, tape, grads, run(net, params, x, t), tol, backend, context)


# --------------------------------------------------------------------------- random architectures


@pytest.mark.torch
@pytest.mark.parametrize("dtype", DTYPES)
@given(case=nst.cases(nst.architectures()))
def test_gradients_match_torch_on_random_architectures(case: nst.Case, dtype) -> None:
    assume(case.in_domain(dtype))
    params = case.params(dtype)
    x, t = case.data(dtype)
    _check_against("torch", case.net, params, x, t, str(case))


@pytest.mark.jax
@pytest.mark.parametrize("dtype", DTYPES)
@given(case=nst.palette_cases())
def test_gradients_match_jax_on_palette_architectures(case: nst.Case, dtype) -> None:
    assume(case.in_domain(dtype))
    params = case.params(dtype)
    x, t = case.data(dtype)
    _check_against("jax", case.net, params, x, t, str(case))


HALF = [pytest.param("float16", id="float16"), pytest.param("bfloat16", id="bfloat16")]
HALF_EXAMPLES = 6


@pytest.mark.torch
@pytest.mark.parametrize("dtype", HALF)
@settings(max_examples=HALF_EXAMPLES, deadline=None)
@given(case=nst.cases(nst.architectures()))
def test_half_gradients_match_torch(case: nst.Case, dtype: str) -> None:
    """The networks in float16 and bfloat16, judged with the dtype's ``u`` and range."""
    dt = resolve(dtype)
    assume(case.in_domain(dt))
    params = case.params(dt)
    x, t = case.data(dt)
    _check_against("torch", case.net, params, x, t, str(case))


@pytest.mark.jax
@pytest.mark.parametrize("dtype", HALF)
@settings(max_examples=HALF_EXAMPLES, deadline=None)
@given(case=nst.palette_cases())
def test_half_gradients_match_jax(case: nst.Case, dtype: str) -> None:
    dt = resolve(dtype)
    assume(case.in_domain(dt))
    params = case.params(dt)
    x, t = case.data(dt)
    _check_against("jax", case.net, params, x, t, str(case))


@pytest.mark.torch
def test_torch_adapter_transposes_linear_weights() -> None:
    # A non-square layer, so that a missing transpose cannot go unnoticed.
    net = MLP((3, 5, 2), ("tanh", "identity"))
    params = net.init_params(seed=7)
    model = na.torch_model(net, params)
    raw = na.torch_linear_weights(model)
    assert [w.shape for w in raw] == [(5, 3), (2, 5)], "nn.Linear stores (outputs, inputs)"
    for (w, _), stored in zip(params, raw, strict=True):
        np.testing.assert_array_equal(stored, w.T)
    x = np.random.default_rng(0).normal(size=(4, 3))
    tape = net.forward(params, x, np.zeros((4, 2)))
    bound = network_tolerances.network_bound(tape)
    cmp = nc.check(na.torch_predict(net, params, x), tape.output, bound.tolerance("output"), np.float64)
    assert cmp.ok, cmp.describe()
    grads = na.torch_value_and_grad(net, params, x, np.zeros((4, 2)))
    assert [g.shape for g in grads.dW] == [(3, 5), (5, 2)], "gradients come back in the (inputs, outputs) layout"


# --------------------------------------------------------------------------- the error model locates and catches


def _fixed_case(dtype):
    net = MLP((4, 6, 5, 3), ("tanh", "sigmoid", "identity"), cost="softmax_cross_entropy")
    case = nst.Case(net, 5, 3, 1.0, "soft")
    params = case.params(dtype)
    x, t = case.data(dtype)
    return net, params, x, t


@pytest.mark.torch
@pytest.mark.parametrize(("quantity", "layer", "where"), [
    ("dW", 1, "layer 2 of 3, dW"),
    ("dZ", 0, "layer 1 of 3, dZ"),
    ("db", 2, "layer 3 of 3, db"),
    ("dx", None, "the input, dx"),
])
def test_a_divergence_is_reported_where_it_first_occurs(quantity, layer, where) -> None:
    net, params, x, t = _fixed_case(np.float64)
    tape, grads, tol = _reference(net, params, x, t)
    theirs = na.torch_value_and_grad(net, params, x, t)
    assert nc.first_divergence(net, tape, grads, theirs, tol, "torch") is None
    tampered = getattr(theirs, quantity)
    values = list(tampered) if layer is not None else [tampered]
    idx = layer if layer is not None else 0
    values[idx] = values[idx] * (1 + 1e-6)
    broken = na.FrameworkResult(**{**theirs.__dict__, quantity: tuple(values) if layer is not None else values[0]})
    message = nc.first_divergence(net, tape, grads, broken, tol, "torch", context="test")
    assert message is not None
    assert where in message
    for part in ("op:", "backend torch", "dtype float64", "worst element", "ulp error", "tolerance"):
        assert part in message


@pytest.mark.torch
@pytest.mark.parametrize(("dtype", "relative"), [
    pytest.param(np.float32, 1e-3, id="float32"),
    pytest.param(np.float64, 1e-9, id="float64"),
    # the worst-case network bound is loose in half precision (its condition terms carry u = 2**-11 and
    # 2**-8 through every layer): only an error of a factor 4 (float16) and 10 (bfloat16) is caught here
    pytest.param(resolve("float16"), 3.0, id="float16"),
    pytest.param(resolve("bfloat16"), 9.0, id="bfloat16"),
])
def test_network_bound_catches_a_small_relative_error(dtype, relative) -> None:
    # The bound is worst-case, but not so loose that an error of this size
    # (far above rounding, far below a wrong formula) would pass.
    net, params, x, t = _fixed_case(dtype)
    _, grads, tol = _reference(net, params, x, t)
    theirs = na.torch_value_and_grad(net, params, x, t)
    for l in range(net.depth):
        for quantity in ("dZ", "dW", "db"):
            mine = getattr(grads, quantity)[l]
            off = (mine.astype(np.float64) * (1 + relative)).astype(dtype)
            assert nc.check(getattr(theirs, quantity)[l], mine, tol(quantity, l), dtype).ok
            assert not nc.check(off, mine, tol(quantity, l), dtype).ok, (quantity, l)


# --------------------------------------------------------------------------- document 000


@pytest.mark.torch
@pytest.mark.parametrize("dtype", DTYPES)
@given(activation=st.sampled_from(ACTIVATIONS), outputs=st.integers(1, 5), batch=st.integers(1, 8), seed=seeds)
def test_preset_000_four_gradients_match_torch(activation, outputs, batch, seed, dtype) -> None:
    preset = preset_000(activation, outputs)
    assert preset.net.sizes == (1, 1, outputs), "one input, one hidden unit"
    case = nst.Case(preset.net, batch, seed, 1.0, "soft")
    params = case.params(dtype)
    x, t = case.data(dtype)
    grads = preset.gradients(params, x, t)
    shapes = {k: v.shape for k, v in grads.items()}
    assert shapes == {"L": (), "dL/dw": (1, 1), "dL/db": (1,), "dL/dv": (1, outputs), "dL/dc": (outputs,)}
    tape, full, tol = _reference(preset.net, params, x, t)
    theirs = na.torch_value_and_grad(preset.net, params, x, t)
    nc.assert_agrees(preset.net, tape, full, theirs, tol, "torch", str(case))
    for key, other, layer, quantity in (("dL/dw", theirs.dW[0], 0, "dW"), ("dL/db", theirs.db[0], 0, "db"),
                                        ("dL/dv", theirs.dW[1], 1, "dW"), ("dL/dc", theirs.db[1], 1, "db")):
        cmp = nc.check(other, grads[key], tol(quantity, layer), dtype)
        assert cmp.ok, f"{key}: {cmp.describe()}"
    if outputs == 1:
        # softmax of a single unit is exactly 1: the cost is 0 whatever the weights.
        assert grads["L"] == 0 and theirs.loss == 0
        for key in ("dL/dw", "dL/db", "dL/dv", "dL/dc"):
            assert np.all(grads[key] == 0), key
        for other in (*theirs.dW, *theirs.db):
            assert np.all(other == 0)


# --------------------------------------------------------------------------- document 002


@pytest.mark.torch
@pytest.mark.parametrize("dtype", DTYPES)
@given(seed=seeds, scale=st.sampled_from(nst.SCALES))
def test_preset_002_documented_form_and_update_match_torch(seed, scale, dtype) -> None:
    # JAX sees the same network and inputs in test_graph_paths' five-way test.
    preset = preset_002()
    assert preset.net.sizes == (2, 4, 4, 3) and preset.net.activations == ("relu", "tanh", "identity")
    assert preset.net.softmax and preset.net.cost == "cross_entropy" and preset.lr == 0.01
    params = preset.init_params(seed, dtype, scale)
    x, t = preset.x.astype(dtype), preset.target.astype(dtype)
    np.testing.assert_array_equal(x, np.array([[0.2, 0.1]], dtype))
    np.testing.assert_array_equal(t, np.array([[1.0, 0.0, 0.0]], dtype))
    grads = preset.gradients(params)
    tape, full, tol = _reference(preset.net, params, x, t)
    context = f"preset_002().init_params({seed}, {np.dtype(dtype).name}, {scale})"
    theirs = na.torch_value_and_grad(preset.net, params, x, t)
    nc.assert_agrees(preset.net, tape, full, theirs, tol, "torch", context)
    for l, (w, b) in enumerate(preset.names):
        assert nc.check(theirs.dW[l], grads[f"dJ/d{w}"], tol("dW", l), dtype).ok
        assert nc.check(theirs.db[l], grads[f"dJ/d{b}"], tol("db", l), dtype).ok
    # The document's update with lr = 0.01, against torch.optim.SGD.
    updated = preset.update(params)
    assert set(updated) == {"wij", "bj", "wjk", "bk", "wko", "bo"}
    path, _ = na.torch_sgd(preset.net, params, x, t, preset.lr, steps=1)
    bound = network_tolerances.trajectory_bound(train(preset.net, params, x, t, lr=preset.lr, steps=1))
    for l, (w, b) in enumerate(preset.names):
        for name, part, theirs_p in ((w, "W", path[1][l][0]), (b, "b", path[1][l][1])):
            cmp = nc.check(theirs_p, updated[name], bound.tolerance(1, l, part), dtype)
            assert cmp.ok, f"updated {name}: {cmp.describe()}; {context}"


# --------------------------------------------------------------------------- document 003


@pytest.mark.torch
@pytest.mark.parametrize("dtype", DTYPES)
@given(case_name=st.sampled_from(("neuron", "output", "hidden")), seed=seeds, batch=st.integers(1, 6))
def test_preset_003_neuron_and_recursion_match_torch(case_name, seed, batch, dtype) -> None:
    preset = preset_003(case_name)
    case = nst.Case(preset.net, batch, seed, 1.0, "real")
    params = case.params(dtype)
    x, t = case.data(dtype)
    tape, grads, tol = _reference(preset.net, params, x, t)
    theirs = na.torch_value_and_grad(preset.net, params, x, t)
    nc.assert_agrees(preset.net, tape, grads, theirs, tol, "torch", str(case))
    if case_name == "neuron":
        named = preset.gradients(params, x, t)
        dw1, dw2, db = na.torch_logistic_neuron(params[0][0], params[0][1], x, t)
        for mine, other, quantity, idx in ((named["dl/dw"][0, 0], dw1, "dW", (0, 0)),
                                           (named["dl/dw"][1, 0], dw2, "dW", (1, 0)),
                                           (named["dl/db"][0], db, "db", (0,))):
            cmp = nc.check(np.asarray(other), np.asarray(mine), tol(quantity, 0)[idx], dtype)
            assert cmp.ok, f"{case}: {cmp.describe()}"
    else:
        # dl/dz = sigma'(z) (w3 dl/dz' + w4 dl/dz''), from the output back.
        dz = recursion_003(preset.net, params, x, t)
        for l in range(preset.net.depth):
            cmp = nc.check(theirs.dZ[l], dz[l], tol("dZ", l), dtype)
            assert cmp.ok, f"recursion, layer {l + 1}: {cmp.describe()}; {case}"


# --------------------------------------------------------------------------- document 004


@pytest.mark.torch
@pytest.mark.parametrize("dtype", DTYPES)
@given(seed=seeds, scale=st.sampled_from(nst.SCALES))
def test_preset_004_matches_torch(seed, scale, dtype) -> None:
    # JAX sees the same network in test_graph_paths' five-way test.
    preset = preset_004()
    assert preset.net.sizes == (2, 3, 1) and preset.net.activations == ("sigmoid", "sigmoid")
    assert preset.net.cost == "mse" and preset.net.reduction == "half_sum"
    case = nst.Case(preset.net, 1, seed, scale, "real")
    params = case.params(dtype)
    x, t = case.data(dtype)
    tape, grads, tol = _reference(preset.net, params, x, t)
    # J = 1/2 (y - yhat)^2 for one example: its gradient at yhat is the bare residual.
    residual = np.asarray(tape.output, np.float64) - t
    cmp = nc.check(grads.d_output, residual.astype(dtype), tol("d_output", None), dtype)
    assert cmp.ok, cmp.describe()
    nc.assert_agrees(preset.net, tape, grads, na.torch_value_and_grad(preset.net, params, x, t), tol, "torch",
                     str(case))
