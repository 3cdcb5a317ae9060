"""Three ways to the same gradients -- layer-wise backward, the gate graph
(document 004) and the sum over paths (document 001) -- against each other
and against PyTorch and JAX; and document 002's chain-rule examples.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from reference_impl.accuracy import networks as network_tolerances
from reference_impl.accuracy import ops as tolerances
from reference_impl.engine import divergence as nc
from reference_impl.examples import composite_p, composite_p_jacobian, composite_p_vjp, g, g_partials
from reference_impl.frameworks import networks as na
from reference_impl.graph import Graph, graph_gradients, mlp_graph
from reference_impl.networks import preset_000, preset_002, preset_004
from reference_impl.paths import PATH_LIMIT, count_paths, enumerate_paths, path_gradients
from reference_impl.strategies import networks as nst

DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]
seeds = st.integers(0, 2**32 - 1)


def _path_tolerance(tape, grads, paths):
    """The path sum is a second implementation of the network (its forward
    values and local derivatives obey :func:`network_bound`) that adds its
    products in its own order (:func:`path_sum_bound`)."""
    bound = network_tolerances.network_bound(tape, grads)
    dtype = tape.loss.dtype

    def tolerance(quantity, layer):
        base = bound.tolerance(quantity, layer)
        if quantity in ("dZ", "dW", "db", "dx"):
            terms = paths.terms[quantity] if layer is None else paths.terms[quantity][layer]
            mag = paths.magnitude[quantity] if layer is None else paths.magnitude[quantity][layer]
            own = network_tolerances.path_sum_bound(terms, paths.factors, mag).tolerance(dtype)
            return base + own / tolerances.IMPLEMENTATIONS
        return base

    return tolerance


# --------------------------------------------------------------------------- gate graph


@pytest.mark.numpy_only
@pytest.mark.parametrize("dtype", DTYPES)
@given(case=nst.cases(nst.architectures()))
def test_gate_graph_equals_layerwise_backward(case: nst.Case, dtype) -> None:
    assume(case.in_domain(dtype))
    params = case.params(dtype)
    x, t = case.data(dtype)
    tape = case.net.forward(params, x, t)
    grads = case.net.backward(tape)
    theirs = graph_gradients(case.net, params, x, t)
    nc.assert_agrees(case.net, tape, grads, theirs, nc.network_tolerance(tape, grads), "gate graph", str(case))


@pytest.mark.numpy_only
def test_gates_distribute_and_switch() -> None:
    # f = a * b + a at a = 3, b = -2: the add gate passes df/df = 1 to both
    # inputs, the multiply gate sends b to a and a to b, and a's two uses add.
    gr = Graph()
    a = gr.variable("a", np.array(3.0))
    b = gr.variable("b", np.array(-2.0))
    ab = gr.multiply(a, b, name="ab")
    f = gr.add(ab, a, name="f")
    grads = gr.backward(f)
    assert float(f.value) == -3.0
    assert float(grads["ab"]) == 1.0, "add distributes the upstream gradient unchanged"
    assert float(grads["b"]) == 3.0, "multiply switches: db = a"
    assert float(grads["a"]) == -1.0, "da = b (through the switch) + 1 (through the distributor)"
    assert [n.name for n in gr.topological_order(f)][-1] == "f"


@pytest.mark.torch
@pytest.mark.parametrize("dtype", DTYPES)
def test_graph_of_document_004_in_its_notation(dtype) -> None:
    preset = preset_004()
    case = nst.Case(preset.net, 1, 2024, 1.0, "real")
    params = case.params(dtype)
    x, t = case.data(dtype)
    mg = mlp_graph(preset.net, params, x, t)
    assert [n.name for n in mg.graph.nodes] == ["X", "W1", "b1", "XW1", "z2", "a2", "W2", "b2", "a2W2", "z3",
                                                "yhat", "y", "J"]
    assert [n.op for n in mg.graph.nodes if n.op] == ["matmul", "add", "sigmoid", "matmul", "add", "sigmoid", "mse"]
    grads = mg.graph.backward(mg.loss)
    theirs = na.torch_value_and_grad(preset.net, params, x, t)
    tape = preset.net.forward(params, x, t)
    tol = nc.network_tolerance(tape, preset.net.backward(tape))
    for name, other, quantity, layer in (("W1", theirs.dW[0], "dW", 0), ("b1", theirs.db[0], "db", 0),
                                         ("W2", theirs.dW[1], "dW", 1), ("b2", theirs.db[1], "db", 1),
                                         ("z2", theirs.dZ[0], "dZ", 0), ("z3", theirs.dZ[1], "dZ", 1),
                                         ("X", theirs.dx, "dx", None)):
        cmp = nc.check(other, grads[name], tol(quantity, layer), dtype)
        assert cmp.ok, f"dJ/d{name}: {cmp.describe()}"


# --------------------------------------------------------------------------- sum over paths


@pytest.mark.numpy_only
@pytest.mark.parametrize("dtype", DTYPES)
@given(case=nst.cases(nst.architectures(max_depth=3, max_width=4), max_batch=4))
def test_sum_over_paths_equals_layerwise_backward(case: nst.Case, dtype) -> None:
    assume(case.in_domain(dtype))
    assert count_paths(case.net, case.batch) <= PATH_LIMIT
    params = case.params(dtype)
    x, t = case.data(dtype)
    tape = case.net.forward(params, x, t)
    grads = case.net.backward(tape)
    paths = path_gradients(case.net, params, x, t)
    assert paths.paths == count_paths(case.net, case.batch)
    nc.assert_agrees(case.net, tape, grads, paths, _path_tolerance(tape, grads, paths), "sum over paths", str(case))


@pytest.mark.torch
@pytest.mark.parametrize("dtype", DTYPES)
def test_paths_from_one_unit_are_every_route_to_the_cost(dtype) -> None:
    # 2-4-4-3 with a softmax output: from z of a first-layer unit, 4 units of
    # the next layer, 3 of the output, then 3 softmax outputs: 36 paths.
    preset = preset_002()
    params = preset.init_params(3, dtype)
    x, t = preset.x.astype(dtype), preset.target.astype(dtype)
    found = list(enumerate_paths(preset.net, params, x, t, layer=0, unit=1))
    assert len(found) == 4 * 3 * 3
    assert len({labels for labels, _ in found}) == len(found)
    assert all(labels[0] == "z0[1]" and labels[-1] == "C" for labels, _ in found)
    total = sum(prod for _, prod in found)
    theirs = na.torch_value_and_grad(preset.net, params, x, t)
    tape = preset.net.forward(params, x, t)
    grads = preset.net.backward(tape)
    paths = path_gradients(preset.net, params, x, t)
    tol = _path_tolerance(tape, grads, paths)("dZ", 0)[:, 1]
    cmp = nc.check(theirs.dZ[0][:, 1], np.asarray(total, dtype=dtype), tol, dtype)
    assert cmp.ok, cmp.describe()


DOCUMENTED = {
    "000": (preset_000("sigmoid", 2), 3, "one_hot"),
    "002": (preset_002(), 1, "one_hot"),
    "004": (preset_004(), 1, "real"),
}


@pytest.mark.torch
@pytest.mark.jax
@pytest.mark.parametrize("dtype", DTYPES)
@given(key=st.sampled_from(sorted(DOCUMENTED)), seed=seeds)
def test_five_ways_agree_on_the_documents_networks(key, seed, dtype) -> None:
    preset, batch, target = DOCUMENTED[key]
    case = nst.Case(preset.net, batch, seed, 1.0, target)
    params = case.params(dtype)
    x, t = case.data(dtype)
    if key == "002":
        x, t = preset.x.astype(dtype), preset.target.astype(dtype)
    tape = preset.net.forward(params, x, t)
    grads = preset.net.backward(tape)
    tol = nc.network_tolerance(tape, grads)
    paths = path_gradients(preset.net, params, x, t)
    others = [
        ("gate graph", graph_gradients(preset.net, params, x, t), tol),
        ("sum over paths", paths, _path_tolerance(tape, grads, paths)),
        ("torch", na.torch_value_and_grad(preset.net, params, x, t), tol),
        ("jax", na.jax_value_and_grad(preset.net, params, x, t), tol),
    ]
    for backend, theirs, tolerance in others:
        nc.assert_agrees(preset.net, tape, grads, theirs, tolerance, backend, f"preset {key}, {case}")


# --------------------------------------------------------------------------- document 002's chain-rule examples


@pytest.mark.torch
@pytest.mark.jax
def test_g_at_the_documents_point() -> None:
    # g(1, -5, 7) = (2 - 5) 7 = -21 (document 002); its partials 2z, z, 2x + y.
    x, y, z = np.array(1.0), np.array(-5.0), np.array(7.0)
    assert float(g(x, y, z)) == -21.0
    expected = (14.0, 7.0, -3.0)
    assert tuple(float(v) for v in g_partials(x, y, z)) == expected
    assert tuple(float(v) for v in na.torch_g_partials(x, y, z)) == expected
    assert tuple(float(v) for v in na.jax_g_partials(x, y, z)) == expected
    gr = Graph()
    xs, ys, zs = gr.variable("x", x), gr.variable("y", y), gr.variable("z", z)
    out = gr.multiply(gr.add(gr.multiply(gr.variable("two", np.array(2.0)), xs), ys), zs)
    grads = gr.backward(out)
    assert float(out.value) == -21.0
    assert (float(grads["x"]), float(grads["y"]), float(grads["z"])) == expected


def _floats(dtype):
    return st.floats(-10, 10, allow_subnormal=False, width=32 if dtype is np.float32 else 64)


def _shapes(min_dims):
    # torch takes any shape; jax compiles per shape, so both see a fixed few.
    return st.sampled_from([s for s in nst.JAX_SHAPES if len(s) >= min_dims])


@pytest.mark.torch
@pytest.mark.jax
@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data())
def test_g_partials_match_torch_and_jax(data, dtype) -> None:
    shape = data.draw(_shapes(0))
    x, y, z = (data.draw(hnp.arrays(dtype, shape, elements=_floats(dtype))) for _ in range(3))
    ours = g_partials(x, y, z)
    # g = (2x + y) z against exact arithmetic: the wide evaluation (float64 for float32, longdouble or
    # decimal for float64) rounds at most twice below the dtype and once to it, within 2 u |g| + tiny
    exact = np.array([float((2 * Fraction(float(a)) + Fraction(float(b))) * Fraction(float(c)))
                      for a, b, c in zip(x.ravel(), y.ravel(), z.ravel(), strict=True)]).reshape(shape)
    got = g(x, y, z)
    assert got.dtype == dtype
    bound = 2 * tolerances.unit_roundoff(dtype) * np.abs(exact) + float(np.finfo(dtype).smallest_subnormal)
    assert np.all(np.abs(got.astype(np.float64) - exact) <= bound), (got, exact)
    # dg/dx = 2z and dg/dy = z are exact; dg/dz = 2x + y is one rounded add.
    tol = (np.zeros(shape), np.zeros(shape), tolerances.forward_bound("add", [2 * x, y]).tolerance(dtype))
    for backend, theirs in (("torch", na.torch_g_partials(x, y, z)), ("jax", na.jax_g_partials(x, y, z))):
        for name, mine, other, budget in zip(("dg/dx", "dg/dy", "dg/dz"), ours, theirs, tol, strict=True):
            cmp = nc.check(other, mine, budget, dtype)
            assert cmp.ok, f"{backend} {name}: {cmp.describe()}"


@pytest.mark.torch
@pytest.mark.jax
@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data())
def test_composite_p_its_vjp_and_jacobian_match_torch_and_jax(data, dtype) -> None:
    shape = data.draw(_shapes(1))
    x = data.draw(hnp.arrays(dtype, shape, elements=_floats(dtype)))
    ct = data.draw(hnp.arrays(dtype, shape, elements=_floats(dtype)))
    p, dx = composite_p(x), composite_p_vjp(ct, x)
    e_p, e_dx = network_tolerances.activation_chain_bound(x, ct, ("relu", "tanh"), softmax=True)
    for backend, (tp, tdx) in (("torch", na.torch_composite(ct, x)), ("jax", na.jax_composite(ct, x))):
        cmp = nc.check(tp, p, tolerances.IMPLEMENTATIONS * e_p, dtype)
        assert cmp.ok, f"{backend} p(X): {cmp.describe()}"
        cmp = nc.check(tdx, dx, tolerances.IMPLEMENTATIONS * e_dx, dtype)
        assert cmp.ok, f"{backend} VJP of p: {cmp.describe()}"
    if x.ndim == 1:
        # dp/dX = h'(g) g'(f) f'(X): row i of the Jacobian is the VJP of the i-th unit vector.
        ours = composite_p_jacobian(x)
        theirs = na.torch_composite_jacobian(x)
        for i in range(x.shape[0]):
            unit = np.eye(x.shape[0], dtype=dtype)[i]
            _, e_row = network_tolerances.activation_chain_bound(x, unit, ("relu", "tanh"), softmax=True)
            cmp = nc.check(theirs[i], ours[i], tolerances.IMPLEMENTATIONS * e_row, dtype)
            assert cmp.ok, f"Jacobian row {i}: {cmp.describe()}"
