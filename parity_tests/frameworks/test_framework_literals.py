"""Counterexamples of torch and jax code print their arrays as the code's
own literals (``torch.tensor(...)`` / ``jnp.array(...)``): pasted, they
give back the exact failing input, bit for bit and in its dtype, and the
check fails on it again (``reference_impl.engine.literals``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import reference_impl as ri
from parity_tests.checking.test_report_wording import pasted_arrays
from reference_impl.engine.literals import array_literal

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)
jnp = pytest.importorskip("jax.numpy")

pytestmark = [pytest.mark.torch, pytest.mark.jax]

X = ri.Inputs(x=ri.Arg("real", shape=(2, 3), scale=2.0))


class SigmoidWrongBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Any) -> Any:
        y = torch.sigmoid(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (y,) = ctx.saved_tensors
        return g * y * (1 + y)  # 1 + y for 1 - y


@jax.custom_vjp
def jax_sigmoid_wrong(x: Any) -> Any:
    return jax.nn.sigmoid(x)


jax_sigmoid_wrong.defvjp(lambda x: (jax.nn.sigmoid(x), jax.nn.sigmoid(x)), lambda y, g: (g * y,))  # forgets 1 - y


@pytest.mark.parametrize(("fn", "namespace", "make", "as_numpy"), [
    (SigmoidWrongBackward.apply, {"torch": torch}, "torch.tensor(", lambda t: t.numpy()),
    (jax_sigmoid_wrong, {"jnp": jnp}, "jnp.array(", np.asarray),
], ids=["torch", "jax"])
def test_framework_counterexamples_paste_back_as_the_failing_input(fn: Any, namespace: dict[str, Any], make: str,
                                                                    as_numpy: Any) -> None:
    result = ri.check_vjp(fn, inputs=X, max_examples=5, seed=0)
    assert len(result.counterexamples) == 2, result.report()
    for found in result.counterexamples:
        text = found.describe()
        assert f"x = {make}" in text and " np.array(" not in text, text
        pasted = pasted_arrays(text, namespace)
        for name, arr in found.arrays.items():
            back = as_numpy(pasted[name])
            assert back.dtype == arr.dtype and back.shape == arr.shape, name
            assert back.tobytes() == arr.tobytes(), name  # bit for bit
        again = ri.check_vjp(fn, inputs=[(pasted["x"],)], dtypes=(found.dtype,), seed=0)
        assert not again.ok and again.counterexamples[0].check.split("[")[0] in ("taylor", "adjoint"), again.report()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_literals_round_trip_awkward_values(dtype: str) -> None:
    values = np.array([[np.nextafter(np.float32(1), np.float32(2)), -0.0, 1e-45, 3.4028235e38],
                       [np.nan, -np.inf, 0.1, np.finfo(np.float32).tiny]], dtype=dtype)
    for framework, namespace, back in (("torch", {"torch": torch}, lambda t: t.numpy()),
                                       ("jax", {"jnp": jnp}, np.asarray)):
        text = array_literal("v", values, framework)
        got = back(eval(text.split(" = ", 1)[1], namespace))
        assert got.dtype == values.dtype and got.tobytes() == values.tobytes(), (framework, text)
    empty = array_literal("e", np.zeros((0, 3), dtype), "torch")
    assert tuple(eval(empty.split(" = ", 1)[1], {"torch": torch}).shape) == (0, 3)
