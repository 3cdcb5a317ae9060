"""The network adjoint test (certify's finite-difference rows) read below a
relu kink: a pre-activation a step's width from 0 makes the central
difference a chord across the kink, which the first reading calls wrong;
read below the kink the reference's gradient passes, and a wrong one fails."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from reference_impl.engine import kinks
from reference_impl.engine.adjoint import STEP, network_adjoint
from reference_impl.networks import MLP

pytestmark = pytest.mark.numpy_only

NET = MLP((1, 2, 2), ("relu", "identity"), softmax=True, cost="cross_entropy", reduction="mean")
X, TARGET = np.array([[1.0]]), np.array([[1.0, 0.0]])
U = 2.0**-53


def _params(z0: float) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    # the first unit's pre-activation is z0 (a kink of the loss at z0 = 0); the second's 0.7
    return ((np.array([[0.5, 0.3]]), np.array([z0 - 0.5, 0.4])),
            (np.array([[1.5, -0.5], [0.25, 0.75]]), np.array([0.1, -0.2])))


def _crossing() -> tuple[tuple[tuple[np.ndarray, np.ndarray], ...], int]:
    """Parameters and a direction seed whose first reading fails at the kink."""
    for seed in range(40):
        params = _params(0.3 * STEP)
        if not network_adjoint(NET, params, X, TARGET, seed).ok:
            return params, seed
    raise AssertionError("no direction of 40 crossed the kink: the fixture no longer tests anything")


def test_a_step_across_a_relu_kink_is_read_below_it() -> None:
    params, seed = _crossing()
    first = network_adjoint(NET, params, X, TARGET, seed)
    again = kinks.reread(first, U)
    assert again.ok, again.describe()
    assert abs(again.differences - first.ours) <= again.tolerance


def test_a_wrong_gradient_at_the_kink_stays_wrong() -> None:
    params, seed = _crossing()
    first = network_adjoint(NET, params, X, TARGET, seed)
    wrong = dataclasses.replace(first, ours=first.ours * 1.01 + 1e-3)
    assert not kinks.reread(wrong, U).ok


def test_far_from_a_kink_the_first_reading_stands() -> None:
    smooth = network_adjoint(NET, _params(0.2), X, TARGET, 0)
    assert smooth.ok and kinks.reread(smooth, U) is smooth
