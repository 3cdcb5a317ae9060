"""Gradient descent against ``torch.optim.SGD`` and ``optax.sgd``.

Same initial weights and data; after every step the parameters and the loss
agree within :func:`reference_impl.accuracy.networks.trajectory_bound`, which
carries each step's gradient error and the parameters' accumulated deviation
into the next step. The loss decreases on a problem whose curvature is known.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import assume, given, reject
from hypothesis import strategies as st

from reference_impl.accuracy import networks as network_tolerances
from reference_impl.accuracy import ops as tolerances
from reference_impl.engine import divergence as nc
from reference_impl.frameworks import networks as na
from reference_impl.networks import MLP, preset_002
from reference_impl.optim import sgd_step, train
from reference_impl.strategies import networks as nst

DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]
BASE_LR = (0.01, 0.05, 0.1)


def _lr(case: nst.Case, base: float) -> float:
    # A summed cost's curvature grows with what it sums (rows; for the squared
    # error also outputs): scale the step as a mean would.
    if case.net.reduction == "mean":
        return base
    return base / (case.batch * (case.net.sizes[-1] if case.net.cost == "mse" else 1))


def _train_or_reject(case: nst.Case, params, x, t, lr: float, steps: int):
    """The reference trajectory, or the example rejected where gradient
    descent leaves the problem's domain: a learning rate beyond the
    curvature's stability limit overflows, and a softmax driven to underflow
    leaves the cross-entropy on probabilities undefined (the reference
    refuses it). There is then no trajectory to compare."""
    try:
        with np.errstate(over="raise", invalid="raise"):
            return train(case.net, params, x, t, lr=lr, steps=steps)
    except FloatingPointError:
        reject()
    except ValueError as e:
        if not str(e).startswith("probs:"):
            raise
        reject()
    raise AssertionError("unreachable")  # reject() raises


def _assert_trajectories_agree(backends: tuple[str, ...], case: nst.Case, dtype, base_lr: float, steps: int) -> None:
    params = case.params(dtype)
    x, t = case.data(dtype)
    lr = _lr(case, base_lr)
    ours = _train_or_reject(case, params, x, t, lr, steps)
    bound = network_tolerances.trajectory_bound(ours)
    # An unstable run (the bound outgrows the first-order model before the
    # last step) has no bound to compare under: see TRAJECTORY_MODEL_LIMIT.
    assume(bound.valid_steps == steps)
    for backend in backends:
        run = na.torch_sgd if backend == "torch" else na.jax_sgd
        path, losses = run(case.net, params, x, t, lr, steps)
        assert len(path) == len(ours.params) == steps + 1
        for n in range(steps + 1):
            cmp = nc.check(losses[n], ours.losses[n], tolerances.IMPLEMENTATIONS * bound.losses[n], dtype)
            assert cmp.ok, f"{backend}, loss at step {n}: {cmp.describe()}; {case}, lr={lr}"
            for l in range(case.net.depth):
                for i, part in enumerate(("W", "b")):
                    tol = bound.tolerance(n, l, part)
                    cmp = nc.check(path[n][l][i], ours.params[n][l][i], tol, dtype)
                    assert cmp.ok, (f"{backend} and the reference part after step {n}, layer {l + 1} of "
                                    f"{case.net.depth}, {part}: {cmp.describe()}; {case}, lr={lr}")


@pytest.mark.torch
@pytest.mark.parametrize("dtype", DTYPES)
@given(case=nst.cases(nst.architectures(max_width=16), max_batch=16), base_lr=st.sampled_from(BASE_LR))
def test_sgd_trajectory_matches_torch_on_random_architectures(case: nst.Case, base_lr, dtype) -> None:
    assume(case.in_domain(dtype))
    _assert_trajectories_agree(("torch",), case, dtype, base_lr, steps=10)


@pytest.mark.jax
@pytest.mark.parametrize("dtype", DTYPES)
@given(case=nst.palette_cases(), base_lr=st.sampled_from(BASE_LR))
def test_sgd_trajectory_matches_optax_on_palette_architectures(case: nst.Case, base_lr, dtype) -> None:
    assume(case.in_domain(dtype))
    _assert_trajectories_agree(("jax",), case, dtype, base_lr, steps=10)


def _regression_problem(dtype):
    """Palette network 0 (3 inputs -> 5 linear outputs, mean squared error
    over all 20 elements) on 4 rows whose design ``[X, 1]`` has
    ``A^T A = 4 I``: every direction of every output's parameters has
    curvature ``lambda = 2 * 4 / 20``, and the 4 x 4 system is solved exactly
    (minimum loss 0)."""
    net, rows = nst.PALETTE[0]
    assert net.sizes == (3, 5) and net.cost == "mse" and net.reduction == "mean" and rows == 4
    rng = np.random.default_rng(11)
    g = rng.normal(size=(rows, 3))
    q, _ = np.linalg.qr(g - g.mean(axis=0))
    x = (q * np.sqrt(rows)).astype(dtype)
    t = rng.normal(size=(rows, 5)).astype(dtype)
    params = net.init_params(5, dtype)
    curvature = 2.0 * rows / (rows * 5)
    return net, params, x, t, curvature


@pytest.mark.torch
@pytest.mark.jax
@pytest.mark.parametrize("dtype", DTYPES)
def test_loss_decreases_on_a_well_conditioned_problem(dtype) -> None:
    net, params, x, t, curvature = _regression_problem(dtype)
    lr, steps = 0.1 / curvature, 12
    ours = train(net, params, x, t, lr=lr, steps=steps)
    torch_losses = na.torch_sgd(net, params, x, t, lr, steps)[1]
    jax_losses = na.jax_sgd(net, params, x, t, lr, steps)[1]
    for name, losses in (("reference", ours.losses), ("torch", torch_losses), ("jax", jax_losses)):
        values = [float(v) for v in losses]
        assert all(b < a for a, b in itertools.pairwise(values)), f"{name}: {values}"
    if dtype is np.float64:
        # Each step multiplies the parameter error by (1 - lr lambda) = 0.9, so
        # the loss (minimum 0) by 0.81.
        bound = network_tolerances.trajectory_bound(ours)
        for n, loss in enumerate(ours.losses):
            expected = float(ours.losses[0]) * 0.81**n
            allowed = tolerances.IMPLEMENTATIONS * (float(bound.losses[n]) + float(bound.losses[0]) * 0.81**n)
            assert abs(float(loss) - expected) <= allowed, (n, float(loss), expected, allowed)


@pytest.mark.torch
@pytest.mark.jax
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_preset_002_loss_decreases_with_the_documents_learning_rate(seed) -> None:
    preset = preset_002()
    params = preset.init_params(seed)
    x, t = preset.x, preset.target
    ours = train(preset.net, params, x, t, lr=preset.lr, steps=10)
    for name, losses in (("reference", ours.losses),
                         ("torch", na.torch_sgd(preset.net, params, x, t, preset.lr, 10)[1]),
                         ("jax", na.jax_sgd(preset.net, params, x, t, preset.lr, 10)[1])):
        values = [float(v) for v in losses]
        assert all(b < a for a, b in itertools.pairwise(values)), f"{name}: {values}"


@pytest.mark.numpy_only
def test_sgd_step_accepts_gradients_or_their_parameter_layout() -> None:
    net = MLP((2, 3, 1), ("tanh", "identity"))
    params = net.init_params(1)
    grads = net.value_and_grad(params, np.ones((2, 2)), np.zeros((2, 1)))
    stepped = sgd_step(params, grads, 0.5)
    same = sgd_step(params, grads.params, 0.5)
    for (w, _), (w1, b1), (w2, b2), (dw, _) in zip(params, stepped, same, grads.params, strict=True):
        np.testing.assert_array_equal(w1, w2)
        np.testing.assert_array_equal(b1, b2)
        assert np.all(np.sign(w1 - w) == -np.sign(dw)), "a step goes against the gradient"
    assert stepped[0][0] is not params[0][0], "the step returns new arrays"


@pytest.mark.numpy_only
def test_float32_parameters_stay_float32_with_a_python_or_numpy_lr() -> None:
    net = MLP((2, 2), ("identity",))
    params = net.init_params(0, np.float32)
    grads = net.value_and_grad(params, np.ones((1, 2), np.float32), np.zeros((1, 2), np.float32))
    for lr in (0.1, np.float64(0.1)):
        for w, b in sgd_step(params, grads, lr):
            assert w.dtype == np.float32 and b.dtype == np.float32
