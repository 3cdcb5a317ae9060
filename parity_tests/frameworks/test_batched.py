"""``check_vjp(..., batched=True)``: the framework's vmap of the VJP over a stack of cotangents
against the per-example VJPs (``gradcheck``'s ``check_batched_grad``).

A right Function passes; a rule wrong only under vmap (a ``custom_vmap`` rule inside a
``bwd`` that mixes the batch) is caught while the per-example check passes; a backward that
cannot be vmapped gets a finding naming why; bad ``batched`` is refused by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import reference_impl as ri

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
custom_batching = pytest.importorskip("jax.custom_batching")

from .framework_catalog import Sin  # noqa: E402  (imports torch and jax: after the skips)

pytestmark = [pytest.mark.torch, pytest.mark.jax]

X = ri.Inputs(x=ri.Arg("real", shape=(3, 4)))
SMALL = {"max_examples": 3, "seed": 0}



class SinThroughAList(Sin):
    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (x,) = ctx.saved_tensors
        return torch.tensor(g.tolist(), dtype=g.dtype) * torch.cos(x)  # right per example, no vmap of .tolist()


@custom_batching.custom_vmap
def _mul(a: Any, b: Any) -> Any:
    return a * b


@_mul.def_vmap
def _mul_vmap(axis_size: int, in_batched: Any, a: Any, b: Any) -> Any:
    out = a * b
    batched = any(in_batched)
    return (jnp.broadcast_to(out.mean(0), out.shape) if batched else out), batched  # mixes the batch's rows


@jax.custom_vjp
def jax_sin_batch_mixing(x: Any) -> Any:
    return jnp.sin(x)


jax_sin_batch_mixing.defvjp(lambda x: (jnp.sin(x), x), lambda x, g: (_mul(g, jnp.cos(x)),))


@pytest.mark.parametrize("fn", [Sin.apply, torch.tanh, jnp.sin], ids=["Function", "torch.tanh", "jnp.sin"])
def test_a_right_vjp_passes_under_vmap(fn: Callable[..., Any]) -> None:
    result = ri.check_vjp(fn, inputs=X, batched=True, **SMALL)
    assert result.ok and result.functions == ("f", "vmap vjp"), result.report()
    assert {"vmap vs per-example[x]", "taylor[x] (vmap)"} <= {r.check for r in result.rows}


def test_a_rule_wrong_only_under_vmap_is_caught() -> None:
    per_example = ri.check_vjp(jax_sin_batch_mixing, inputs=X, **SMALL)
    batched = ri.check_vjp(jax_sin_batch_mixing, inputs=X, batched=True, **SMALL)
    assert per_example.ok, per_example.report()
    assert not batched.ok
    assert {c.check for c in batched.counterexamples} <= {"taylor[x] (vmap)", "adjoint[x] (vmap)",
                                                          "vmap vs per-example[x]"}, batched.report()


def test_a_backward_that_cannot_be_vmapped_gets_a_finding() -> None:
    assert ri.check_vjp(SinThroughAList.apply, inputs=X, **SMALL).ok
    result = ri.check_vjp(SinThroughAList.apply, inputs=X, batched=True, **SMALL)
    assert not result.ok
    assert all("cannot be vmapped" in c.message and "RuntimeError" in c.message for c in result.counterexamples)


def test_batched_is_validated() -> None:
    with pytest.raises(TypeError, match=r"^batched: expected True or False"):
        ri.check_vjp(torch.sin, inputs=X, batched="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^batched: True checks the framework's vmap"):
        ri.check_vjp(np.sin, lambda g, x: g * np.cos(x), inputs=X, batched=True, framework="numpy")
    with pytest.raises(ValueError, match=r"^batched: True checks the reverse mode's vmap only"):
        ri.check_vjp(torch.sin, inputs=X, batched=True, order=2)
    with pytest.raises(ValueError, match=r"^vjp: batched=True"):
        ri.check_vjp(torch.sin, lambda g, x: g * torch.cos(x), inputs=X, batched=True)


def test_backends_are_honoured_under_vmap() -> None:
    result = ri.check_vjp(Sin.apply, inputs=X, batched=True, backends=("torch", "jax"), **SMALL)
    assert result.ok and result.backends == ("torch",), result.report()
    assert any("'torch' is the per-example autograd" in c for c in result.cuts), result.cuts
    assert any("'jax' left out: it cannot run torch code" in c for c in result.cuts), result.cuts
    with pytest.raises(ValueError, match=r"^backends: unknown backend 'mxnet'"):
        ri.check_vjp(Sin.apply, inputs=X, batched=True, backends=("mxnet",))
