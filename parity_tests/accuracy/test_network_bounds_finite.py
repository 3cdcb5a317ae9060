"""The network error model stays a number where the softmax's
probabilities underflow: a class with target 0 is absent from the
cross-entropy and from its derivatives, also where ``out * out`` underflows
(a 0/0 there made the bound NaN, and a NaN tolerance fails correct code: a
gradient-descent row of the thorough certify run did)."""

from __future__ import annotations

import numpy as np
import pytest

from reference_impl.accuracy import networks as network_tolerances
from reference_impl.networks import MLP
from reference_impl.optim import train

pytestmark = pytest.mark.numpy_only

NET = MLP((1, 3), ("identity",), softmax=True, cost="cross_entropy", reduction="sum")
# logits (0, 400, -400): probabilities 1e-174 (its square underflows) and 0 where the target is 0
PARAMS = ((np.array([[0.0, 400.0, -400.0]]), np.zeros(3)),)
X, TARGET = np.array([[1.0]]), np.array([[0.0, 1.0, 0.0]])


def test_underflowing_probabilities_keep_the_bound_finite() -> None:
    tape = NET.forward(PARAMS, X, TARGET)
    assert float(tape.output[0, 0]) > 0.0 and float(tape.output[0, 0]) ** 2 == 0.0  # the square underflows
    bound = network_tolerances.network_bound(tape, NET.backward(tape))
    for part in (*bound.dW, *bound.db, bound.loss):
        assert np.all(np.isfinite(part)), part


def test_a_descent_through_underflowing_probabilities_has_a_finite_bound() -> None:
    trajectory = train(NET, PARAMS, X, TARGET, lr=1.0, steps=3)
    tb = network_tolerances.trajectory_bound(trajectory)
    for step in tb.params[: tb.valid_steps + 1]:
        for ew, eb in step:
            assert np.all(np.isfinite(ew)) and np.all(np.isfinite(eb))
