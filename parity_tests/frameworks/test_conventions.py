"""Pins the conventions the README states, against the frameworks themselves.

If a framework changes one of these, the README and ``spec.CONVENTIONS``
must change with it; these tests say so first.
"""

from __future__ import annotations

import numpy as np
import pytest

from reference_impl import OPS
from reference_impl.accuracy.ops import forward_bound
from reference_impl.engine.comparison import compare

ZEROS = np.array([0.0, -0.0])


def test_reference_relu_derivative_at_signed_zero() -> None:
    (dx,) = OPS["relu"].vjp(np.ones(2), ZEROS)
    assert dx.tolist() == [0.0, 0.0]


@pytest.mark.torch
def test_torch_kink_conventions() -> None:
    import torch

    def grad_at_zero(f):
        x = torch.tensor(ZEROS, requires_grad=True)
        (g,) = torch.autograd.grad(f(x).sum(), x)
        return g.tolist()

    assert grad_at_zero(torch.relu) == [0.0, 0.0]  # the reference's convention
    assert grad_at_zero(lambda x: torch.maximum(x, torch.zeros_like(x))) == [0.5, 0.5]
    assert grad_at_zero(lambda x: torch.clamp(x, min=0)) == [1.0, 1.0]


@pytest.mark.jax
def test_jax_kink_conventions() -> None:
    import jax
    import jax.numpy as jnp

    def grad_at_zero(f):
        return np.asarray(jax.grad(lambda x: f(x).sum())(jnp.asarray(ZEROS))).tolist()

    assert grad_at_zero(jax.nn.relu) == [0.0, 0.0]
    assert grad_at_zero(lambda x: jnp.maximum(x, 0.0)) == [0.5, 0.5]


@pytest.mark.torch
def test_torch_linear_stores_the_transpose() -> None:
    import torch

    layer = torch.nn.Linear(3, 4)  # 3 inputs, 4 outputs
    assert tuple(layer.weight.shape) == (4, 3), "torch.nn.Linear weight is (outputs, inputs)"
    x = np.random.default_rng(0).standard_normal((2, 3))
    w = layer.weight.detach().numpy().astype(np.float64).T  # the reference's (inputs, outputs)
    b = layer.bias.detach().numpy().astype(np.float64)
    with torch.no_grad():
        theirs = layer.double()(torch.from_numpy(x)).numpy()
    comp = compare(OPS["dense"].forward(x, w, b), theirs, forward_bound("dense", (x, w, b)).tolerance(np.float64),
                   np.float64)
    assert comp.ok, comp.describe()
