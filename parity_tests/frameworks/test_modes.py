"""The compiled and eager modes of the adapters (``frameworks/backends.py``):
``torch.compile``'d and ``jax.jit``'d backward passes against the reference
under the error model, and the answers for a mode or device that is not there."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference_impl.frameworks import backends
from reference_impl.strategies import examples

from ..harness import check_vjp


@pytest.mark.slow
@pytest.mark.torch
@pytest.mark.jax
@settings(max_examples=4, deadline=None)
@given(data=st.data())
def test_compiled_softmax_backward_agrees_with_the_reference(data: st.DataObject) -> None:
    import torch

    ex = data.draw(examples("softmax", np.float32, shapes="palette"), label="example")
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    for name, mode in (("torch", "compiled"), ("jax", "compiled"), ("jax", "eager")):
        backend = backends.get_backend(name, mode)
        assert (backend.name, backend.mode, backend.device) == (name, mode, "cpu")
        _, grads = backend.vjp("softmax", ex.cotangent, ex.inputs, ex.params)
        check_vjp(ex, f"{name} {mode}", grads)
    # the torch row ran a dynamo graph, not a silent fall-back to eager
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= max(graphs, 1)


def test_each_compiled_op_has_a_code_object_of_its_own() -> None:
    # torch.compile's graphs and its recompile limit are per code object: shared by every op of a process,
    # the 11 ops in 4 dtypes of one certify worker exhausted the limit (FailOnRecompileLimitHit)
    b = backends.get_backend("torch", "compiled")
    codes = [b._function(name, params)._torchdynamo_orig_callable.__code__
             for name, params in [("relu", {}), ("tanh", {}), ("mse", {"reduction": "sum"}), ("mse", {})]]
    assert len({id(c) for c in codes}) == 4
    assert b._function("relu", {}) is b._function("relu", {}), "one compiled function per (op, params)"


def test_default_modes_are_eager_torch_and_jitted_jax() -> None:
    assert backends.get_backend("torch") is backends.get_backend("torch", "eager", "cpu")
    assert backends.get_backend("jax") is backends.get_backend("jax", "compiled")
    assert backends.get_backend("jax", "eager") is not backends.get_backend("jax")


@pytest.mark.parametrize(("kwargs", "fragment"), [
    pytest.param({"mode": "jit"}, "mode: 'jit' is not one of ['eager', 'compiled']", id="mode"),
    pytest.param({"device": "tpu"}, "device: 'tpu' is not one of ['cpu', 'cuda']", id="device"),
])
def test_unknown_mode_or_device_is_a_value_error(kwargs: dict[str, str], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        backends.get_backend("torch", **kwargs)


@pytest.mark.torch
def test_cuda_without_a_gpu_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert backends.devices_present("torch") == ("cpu",)
    with pytest.raises(backends.DeviceUnavailable, match=r"device: 'cuda' is not present for torch"):
        backends.get_backend("torch", "compiled", "cuda")


@pytest.mark.jax
def test_jax_without_a_gpu_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends, "_jax_gpus", lambda jax: [])
    assert backends.devices_present("jax") == ("cpu",)
    with pytest.raises(backends.DeviceUnavailable, match=r"device: 'cuda' is not present for jax"):
        backends.get_backend("jax", "eager", "cuda")
