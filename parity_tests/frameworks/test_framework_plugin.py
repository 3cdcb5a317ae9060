"""torch and jax code through the pytest plugin's ``gradient_oracle`` fixture,
with the frameworks as global opinions (correct torch-backed tests must not
fail under ``--gradient-oracle-backends=torch,jax``)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("jax")

pytest_plugins = ["pytester"]
pytestmark = [pytest.mark.torch, pytest.mark.jax]

CODE = '''
import numpy as np
import torch


class MySigmoid(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        y = torch.sigmoid(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * y * (1 - y)


class Wrong(MySigmoid):
    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * y


EXAMPLES = [(np.linspace(-3.0, 3.0, 12).reshape(3, 4),), (np.array([[0.5, -40.0, 40.0]]),)]


def test_function(gradient_oracle):
    gradient_oracle.check_vjp(MySigmoid.apply, inputs=EXAMPLES).raise_if_failed()


def test_function_with_its_own_vjp(gradient_oracle):
    gradient_oracle.check_vjp(torch.sin, lambda g, x: g * torch.cos(x), inputs=EXAMPLES).raise_if_failed()


def test_op(gradient_oracle):
    gradient_oracle.check_op("sigmoid", forward=MySigmoid.apply).raise_if_failed()


def test_wrong(gradient_oracle):
    gradient_oracle.check_vjp(Wrong.apply, inputs=EXAMPLES).raise_if_failed()
'''


def test_framework_code_under_the_global_backends_option(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_torch_user=CODE)
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:benchmark", "--gradient-oracle-backends=torch,jax",
                                "--gradient-oracle-examples=3", "--gradient-oracle-seed=0")
    result.assert_outcomes(passed=3, failed=1)
    out = result.stdout.str()
    assert "FAIL f/vjp of Wrong.apply" in out
    assert "PASS forward/vjp of op 'sigmoid'" in out
