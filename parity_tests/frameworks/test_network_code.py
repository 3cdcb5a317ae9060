"""``check_network`` on torch and jax code as it is: a ``torch.nn.Module`` (``model=``) whose
``nn.Linear`` layers are the network's, and ``value_and_grad`` functions of tensors or jax
arrays. A right module passes; one with a custom autograd.Function activation whose
backward is wrong is caught; bad models are refused naming the argument."""

from __future__ import annotations

from typing import Any

import pytest

import reference_impl as ri

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

pytestmark = [pytest.mark.torch, pytest.mark.jax]

FAST = {"max_examples": 5, "seed": 0}


class _Tanh(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, z: Any) -> Any:
        y = torch.tanh(z)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (y,) = ctx.saved_tensors
        return g * (1 - y * y)


class _WrongTanh(_Tanh):
    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (y,) = ctx.saved_tensors
        return g * (1 - y)  # 1 - y for 1 - y^2


class _Act(torch.nn.Module):
    def __init__(self, fn: Any) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, z: Any) -> Any:
        return self.fn(z)


def _net_002(tanh: torch.nn.Module) -> torch.nn.Module:
    # preset 002: 2 -> relu 4 -> tanh 4 -> 3 -> softmax, cross-entropy on probabilities
    return torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 4), tanh,
                               torch.nn.Linear(4, 3), torch.nn.Softmax(dim=-1))


def test_a_right_module_passes() -> None:
    for tanh in (torch.nn.Tanh(), _Act(_Tanh.apply)):
        result = ri.check_network("002", model=_net_002(tanh), **FAST)
        assert result.ok, result.report()
        assert {"dW", "db", "loss"} <= {r.check for r in result.rows}


def test_a_wrong_custom_backward_inside_a_module_is_caught() -> None:
    result = ri.check_network("002", model=_net_002(_Act(_WrongTanh.apply)), **FAST)
    assert not result.ok
    found = result.counterexamples[0]
    assert found.check in ("dW", "db") and found.against == "reference", result.report()


def test_a_module_for_an_mse_preset() -> None:
    # preset 004: 2 -> sigmoid 3 -> sigmoid 1, half the summed squared error
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Sigmoid(), torch.nn.Linear(3, 1), torch.nn.Sigmoid())
    result = ri.check_network("004", model=model, **FAST)
    assert result.ok, result.report()


def _torch_vag(params: Any, x: Any, t: Any) -> Any:
    a = x
    for w, b in params:
        a = torch.sigmoid(a @ w + b)
    loss = 0.5 * ((a - t) ** 2).sum()
    leaves = [p for pair in params for p in pair]
    grads = torch.autograd.grad(loss, leaves)
    return loss, tuple((grads[2 * l], grads[2 * l + 1]) for l in range(len(params)))


def _jax_loss(params: Any, x: Any, t: Any) -> Any:
    a = x
    for w, b in params:
        a = jax.nn.sigmoid(a @ w + b)
    return 0.5 * jnp.sum((a - t) ** 2)


def test_value_and_grad_of_tensors_and_of_jax_arrays() -> None:
    torch_result = ri.check_network("004", value_and_grad=_torch_vag, framework="torch", **FAST)
    jax_result = ri.check_network("004", value_and_grad=jax.value_and_grad(_jax_loss), **FAST)
    assert torch_result.ok, torch_result.report()
    assert jax_result.ok, jax_result.report()


def test_a_wrong_jax_value_and_grad_is_caught() -> None:
    def wrong(params: Any, x: Any, t: Any) -> Any:
        loss, grads = jax.value_and_grad(_jax_loss)(params, x, t)
        return loss, tuple((2 * gw, gb) for gw, gb in grads)  # dW doubled

    result = ri.check_network("004", value_and_grad=wrong, framework="jax", **FAST)
    assert not result.ok and result.counterexamples[0].check == "dW", result.report()


BAD = [
    ("too few layers", lambda: ri.check_network("002", model=torch.nn.Sequential(torch.nn.Linear(2, 3))),
     ValueError, r"^model: Sequential has 1 nn.Linear layer\(s\), but .* has 3 dense layer\(s\)"),
    ("wrong widths", lambda: ri.check_network("004", model=torch.nn.Sequential(
        torch.nn.Linear(2, 5), torch.nn.Sigmoid(), torch.nn.Linear(5, 1))),
     ValueError, r"^model: nn.Linear layer 1 maps 2 -> 5, but layer 1 of .* maps 2 -> 3"),
    ("no bias", lambda: ri.check_network("003", model=torch.nn.Sequential(torch.nn.Linear(2, 1, bias=False))),
     ValueError, r"^model: nn.Linear layer 1 has no bias"),
    ("not a module", lambda: ri.check_network("003", model=lambda x: x),
     TypeError, r"^model: expected a torch.nn.Module"),
    ("both", lambda: ri.check_network("003", model=torch.nn.Linear(2, 1), value_and_grad=_torch_vag),
     ValueError, r"^value_and_grad: given beside model="),
    ("on another device", lambda: ri.check_network("003", model=torch.nn.Linear(2, 1, device="meta")),
     ValueError, r"^model: its 'weight' is on meta, but device='cpu'"),
    ("a detached output", lambda: ri.check_network(
        "003", model=torch.nn.Sequential(torch.nn.Linear(2, 1), _Act(lambda z: torch.sigmoid(z).detach())), **FAST),
     ValueError, r"^model: Sequential\(x\) returned a result that does not require grad"),
    ("the wrong output", lambda: ri.check_network("003", model=torch.nn.Sequential(torch.nn.Linear(2, 1),
                                                                                   torch.nn.Flatten(0))),
     ValueError, r"^model: Sequential\(x\) returned shape \(1,\) for x of shape \(1, 2\)"),
]


@pytest.mark.parametrize(("name", "call", "error", "pattern"), BAD, ids=[b[0] for b in BAD])
def test_bad_models_are_refused_naming_the_argument(name: str, call: Any, error: type[Exception],
                                                   pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        call()


def test_numpy_value_and_grad_is_unchanged() -> None:
    from reference_impl.networks import PRESETS

    mlp = PRESETS["004"]().net
    result = ri.check_network("004", value_and_grad=lambda p, x, t: (mlp.loss(p, x, t), mlp.value_and_grad(
        p, x, t).params), framework="numpy", **FAST)
    assert result.ok, result.report()
