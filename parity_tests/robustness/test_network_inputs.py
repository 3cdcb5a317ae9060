"""Bad input to the networks, the gate graph, the path sum, gradient descent
and the chain-rule examples: a clear error that names the argument."""

from __future__ import annotations

import re

import numpy as np
import pytest

from reference_impl.accuracy import networks as network_tolerances
from reference_impl.examples import composite_p_jacobian, composite_p_vjp, g, g_partials
from reference_impl.graph import Graph, mlp_graph
from reference_impl.networks import MLP, preset_000, preset_002, preset_003, recursion_003
from reference_impl.optim import sgd_step, train
from reference_impl.paths import PATH_LIMIT, enumerate_paths, path_gradients

pytestmark = pytest.mark.numpy_only

NET = MLP((2, 4, 3), ("relu", "identity"), softmax=True, cost="cross_entropy")
PARAMS = NET.init_params(0)
X = np.array([[0.2, 0.1], [0.3, -0.4]])
T = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def raises(exc, argument):
    """The message starts by naming the argument."""
    return pytest.raises(exc, match="^" + re.escape(argument))


# --------------------------------------------------------------------------- architecture


@pytest.mark.parametrize(("sizes", "exc", "argument"), [
    ((3,), ValueError, "sizes"),
    ((), ValueError, "sizes"),
    ((3, 0), ValueError, "sizes[1]"),
    ((3, -2), ValueError, "sizes[1]"),
    ((3, 2.5), TypeError, "sizes[1]"),
    ((True, 2), TypeError, "sizes[0]"),
    ("32", TypeError, "sizes"),
    (5, TypeError, "sizes"),
])
def test_bad_sizes(sizes, exc, argument) -> None:
    with raises(exc, argument):
        MLP(sizes, ("relu",))


def test_mismatched_number_of_activations() -> None:
    with raises(ValueError, "activations") as info:
        MLP((2, 4, 3), ("relu",))
    assert "1 name(s) for 2 dense layer(s)" in str(info.value)


@pytest.mark.parametrize("name", ["gelu", "Relu", "softmax", "", None])
def test_unknown_activation_name(name) -> None:
    with raises(ValueError, "activations[1]"):
        MLP((2, 4, 3), ("relu", name))


def test_activations_given_as_one_string() -> None:
    with raises(TypeError, "activations"):
        MLP((2, 3), "relu")


@pytest.mark.parametrize("cost", ["hinge", "cross-entropy", "MSE", None])
def test_unknown_cost_name(cost) -> None:
    with raises(ValueError, "cost"):
        MLP((2, 3), ("identity",), cost=cost)


def test_unknown_reduction() -> None:
    with raises(ValueError, "reduction"):
        MLP((2, 3), ("identity",), cost="softmax_cross_entropy", reduction="half_sum")


def test_cross_entropy_needs_probabilities() -> None:
    with raises(ValueError, "cost"):
        MLP((2, 3), ("sigmoid",), cost="cross_entropy")


def test_softmax_twice() -> None:
    with raises(ValueError, "softmax"):
        MLP((2, 3), ("identity",), softmax=True, cost="softmax_cross_entropy")


def test_softmax_flag_must_be_a_bool() -> None:
    with raises(TypeError, "softmax"):
        MLP((2, 3), ("identity",), softmax="yes")


@pytest.mark.parametrize(("kwargs", "exc", "argument"), [
    ({"seed": -1}, ValueError, "seed"),
    ({"seed": 1.5}, TypeError, "seed"),
    ({"dtype": np.int32}, TypeError, "dtype"),
    ({"dtype": "float8_e4m3fn"}, TypeError, "dtype"),
    ({"dtype": np.complex64}, TypeError, "dtype"),
    ({"scale": 0.0}, ValueError, "scale"),
    ({"scale": float("nan")}, ValueError, "scale"),
])
def test_bad_init_params_arguments(kwargs, exc, argument) -> None:
    with raises(exc, argument):
        NET.init_params(**kwargs)


# --------------------------------------------------------------------------- parameters and data


def test_wrong_number_of_layers_in_params() -> None:
    with raises(ValueError, "params"):
        NET.forward(PARAMS[:1], X, T)


def test_weight_that_does_not_fit_the_previous_layer() -> None:
    bad = (PARAMS[0], (np.zeros((5, 3)), PARAMS[1][1]))
    with raises(ValueError, "params[1].W") as info:
        NET.forward(bad, X, T)
    assert "layer 0 has 4 output(s)" in str(info.value)


def test_mismatched_layer_sizes_between_consecutive_weights() -> None:
    # Layer 0 outputs 4 units, but the next weight expects 2 inputs.
    bad = ((np.zeros((2, 4)), np.zeros(4)), (np.zeros((2, 3)), np.zeros(3)))
    with raises(ValueError, "params[1].W"):
        NET.forward(bad, X, T)


def test_transposed_weight_is_named_as_such() -> None:
    bad = ((PARAMS[0][0].T.copy(), PARAMS[0][1]), PARAMS[1])
    with raises(ValueError, "params[0].W") as info:
        NET.forward(bad, X, T)
    assert "transposed" in str(info.value)


def test_bias_of_the_wrong_length() -> None:
    bad = ((PARAMS[0][0], np.zeros(3)), PARAMS[1])
    with raises(ValueError, "params[0].b"):
        NET.forward(bad, X, T)


def test_mixed_precision_parameters() -> None:
    bad = (PARAMS[0], (PARAMS[1][0].astype(np.float32), PARAMS[1][1]))
    with raises(TypeError, "params[1].W"):
        NET.forward(bad, X, T)


def test_non_finite_weight() -> None:
    w = PARAMS[0][0].copy()
    w[1, 2] = np.nan
    with raises(ValueError, "params[0].W"):
        NET.forward(((w, PARAMS[0][1]), PARAMS[1]), X, T)


@pytest.mark.parametrize(("x", "exc"), [
    (np.zeros((2, 3)), ValueError),
    (np.zeros((2, 2, 2)), ValueError),
    (np.zeros((0, 2)), ValueError),
    (np.zeros((2, 2), np.float32), TypeError),
    (np.zeros((2, 2), np.int64), TypeError),
])
def test_bad_x(x, exc) -> None:
    with raises(exc, "x"):
        NET.forward(PARAMS, x, T[: max(len(x), 1)])


@pytest.mark.parametrize("target", [np.zeros((2, 2)), np.full((2, 3), 0.5), np.array([[2.0, -1.0, 0.0]] * 2)])
def test_bad_target(target) -> None:
    with raises(ValueError, "target"):
        NET.forward(PARAMS, X, target)


def test_tape_from_another_network() -> None:
    other = MLP((2, 4, 3), ("tanh", "identity"), softmax=True, cost="cross_entropy")
    with raises(ValueError, "tape"):
        other.backward(NET.forward(PARAMS, X, T))


# --------------------------------------------------------------------------- presets


@pytest.mark.parametrize(("call", "exc", "argument"), [
    (lambda: preset_000(outputs=0), ValueError, "outputs"),
    (lambda: preset_000("gelu"), ValueError, "activation"),
    (lambda: preset_003("middle"), ValueError, "case"),
    (lambda: preset_000().gradients(preset_000().init_params()), ValueError, "x"),
    (lambda: preset_002().update(preset_002().init_params(), lr=0.0), ValueError, "lr"),
    (lambda: recursion_003(NET, PARAMS, X, T), ValueError, "net"),
])
def test_bad_preset_arguments(call, exc, argument) -> None:
    with raises(exc, argument):
        call()


# --------------------------------------------------------------------------- gradient descent


@pytest.mark.parametrize(("lr", "exc"), [
    (0.0, ValueError),
    (-0.01, ValueError),
    (float("nan"), ValueError),
    (float("inf"), ValueError),
    (-float("inf"), ValueError),
    ("0.01", TypeError),
    (True, TypeError),
    (None, TypeError),
])
def test_bad_learning_rate(lr, exc) -> None:
    with raises(exc, "lr"):
        train(NET, PARAMS, X, T, lr=lr, steps=3)
    with raises(exc, "lr"):
        sgd_step(PARAMS, NET.value_and_grad(PARAMS, X, T), lr)


@pytest.mark.parametrize(("steps", "exc"), [(0, ValueError), (-3, ValueError), (2.0, TypeError), (True, TypeError)])
def test_bad_number_of_steps(steps, exc) -> None:
    with raises(exc, "steps"):
        train(NET, PARAMS, X, T, lr=0.1, steps=steps)


def test_gradients_that_do_not_fit_the_parameters() -> None:
    grads = NET.value_and_grad(PARAMS, X, T).params
    with raises(ValueError, "grads[1].dW"):
        sgd_step(PARAMS, (grads[0], (grads[1][0].T, grads[1][1])), 0.1)
    with raises(ValueError, "grads"):
        sgd_step(PARAMS, grads[:1], 0.1)


def test_train_needs_a_network() -> None:
    with raises(TypeError, "net"):
        train("002", PARAMS, X, T, lr=0.1, steps=1)


def test_trajectory_bound_for_other_data() -> None:
    traj = train(NET, PARAMS, X, T, lr=0.1, steps=1)
    with raises(ValueError, "x"):
        network_tolerances.trajectory_bound(traj, X + 1, T)


def test_network_bound_with_misshapen_parameter_errors() -> None:
    tape = NET.forward(PARAMS, X, T)
    with raises(ValueError, "param_errors"):
        network_tolerances.network_bound(tape, NET.backward(tape), param_errors=[(0.0, 0.0)])


# --------------------------------------------------------------------------- gate graph and paths


def test_graph_bad_arguments() -> None:
    gr = Graph()
    a = gr.variable("a", np.ones((2, 3)))
    b = gr.variable("b", np.ones((2, 3)))
    with raises(ValueError, "kind"):
        gr.activation("gelu", a)
    with raises(ValueError, "a, b"):
        gr.matmul(a, b)
    with raises(ValueError, "name"):
        gr.variable("a", np.ones(2))
    with raises(TypeError, "b"):
        gr.add(a, np.ones((2, 3)))
    with raises(ValueError, "b"):
        gr.add(a, Graph().variable("c", np.ones((2, 3))))
    with raises(ValueError, "cotangent"):
        gr.backward(gr.add(a, b))
    with raises(ValueError, "reduction"):
        gr.loss("mse", a, b, reduction="avg")


def test_graph_of_a_network_checks_its_arguments() -> None:
    with raises(ValueError, "params[0].W"):
        mlp_graph(NET, ((np.zeros((3, 4)), np.zeros(4)), PARAMS[1]), X, T)


def test_path_sum_refuses_a_network_with_too_many_paths() -> None:
    big = MLP((8, 16, 16, 16, 4), ("tanh", "tanh", "tanh", "identity"), softmax=True, cost="cross_entropy")
    params = big.init_params(0)
    x = np.zeros((2, 8))
    t = np.full((2, 4), 0.25)
    with raises(ValueError, "net") as info:
        path_gradients(big, params, x, t)
    assert f"PATH_LIMIT = {PATH_LIMIT}" in str(info.value)


@pytest.mark.parametrize(("layer", "unit", "exc", "argument"), [
    (2, 0, ValueError, "layer"), (-1, 0, ValueError, "layer"), (0, 4, ValueError, "unit"),
    (1, -1, ValueError, "unit"), (0.0, 0, TypeError, "layer"), (0, None, TypeError, "unit"),
])
def test_enumerate_paths_bad_position(layer, unit, exc, argument) -> None:
    with raises(exc, argument):
        next(enumerate_paths(NET, PARAMS, X, T, layer, unit))


def test_enumerate_paths_takes_numpy_ints() -> None:
    by_numpy = [labels for labels, _ in enumerate_paths(NET, PARAMS, X, T, np.int64(0), np.int32(1))]
    assert by_numpy == [labels for labels, _ in enumerate_paths(NET, PARAMS, X, T, 0, 1)]


# --------------------------------------------------------------------------- chain-rule examples


def test_examples_bad_arguments() -> None:
    with raises(ValueError, "x, y, z"):
        g(np.ones(2), np.ones(3), np.ones(2))
    with raises(ValueError, "y"):
        g_partials(1.0, float("inf"), 2.0)
    with raises(TypeError, "z"):
        g_partials(np.ones(2), np.ones(2), np.ones(2, np.float32))
    with raises(ValueError, "x"):
        composite_p_jacobian(np.ones((2, 2)))
    with raises(ValueError, "cotangent"):
        composite_p_vjp(np.ones(3), np.ones(4))
