"""Mixed precision as frameworks do it, judged in the dtype each op ran in.

``torch.autocast(device_type="cpu", dtype=torch.bfloat16)`` runs ``nn.Linear``
in bfloat16 (its float32 input, weight and bias rounded once), ``tanh`` and
``softmax`` in the dtype of their input (bfloat16 after a linear layer), and
``cross_entropy``/``mse_loss`` in float32 (their bfloat16 input widened
exactly). Each stage is compared with the reference op in that dtype, on the
inputs torch's stage received, under the acceptance rule of that dtype; a
float32 gradient that reaches a bfloat16 stage through autocast's cast is
rounded once to bfloat16, which the comparison allows as one rounding
(``u_bf16 |y|``) on top of the float32 rule.

The optimiser step: float32 master weights, a bfloat16 forward and backward,
the step in float32 (:func:`reference_impl.optim.master_weights_step`)
against ``torch.optim.SGD`` on a float32 model under autocast.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from reference_impl import OPS
from reference_impl.accuracy.acceptance import unit_roundoff
from reference_impl.accuracy.ops import forward_bound, vjp_bound
from reference_impl.dtypes import resolve
from reference_impl.engine import divergence as nc
from reference_impl.engine.comparison import compare
from reference_impl.frameworks.conversion import to_numpy
from reference_impl.networks import MLP
from reference_impl.optim import master_weights_step

pytestmark = pytest.mark.torch

BF16 = resolve("bfloat16")
F32 = np.dtype(np.float32)


def _assert(what: str, actual: np.ndarray, expected: np.ndarray, tol: np.ndarray, dtype: np.dtype) -> None:
    comp = compare(actual, expected, tol, dtype, what)
    assert comp.ok, f"{what}: {comp.describe()}"


def _layer(seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((6, 5)).astype(np.float32)
    w = (rng.standard_normal((5, 4)) / 2).astype(np.float32)
    b = (rng.standard_normal(4) / 4).astype(np.float32)
    t = rng.dirichlet(np.ones(4), size=6).astype(np.float32)
    return x, w, b, t


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_autocast_dense_tanh_cross_entropy_stage_by_stage(seed: int) -> None:
    x, w, b, t = _layer(seed)
    lin = torch.nn.Linear(5, 4)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(w.T.copy()))
        lin.bias.copy_(torch.from_numpy(b))
    xt = torch.from_numpy(x).requires_grad_(True)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        z = lin(xt)
        a = torch.tanh(z)
        loss = F.cross_entropy(a, torch.from_numpy(t))
    assert (z.dtype, a.dtype, loss.dtype) == (torch.bfloat16, torch.bfloat16, torch.float32)
    z.retain_grad()
    a.retain_grad()
    loss.backward()

    xb, wb, bb = (v.astype(BF16) for v in (x, w, b))  # autocast rounds each once
    zt, at = to_numpy(z), to_numpy(a)
    # forward: each stage in its own dtype, on the input that stage received
    _assert("linear (bf16)", zt, OPS["dense"].forward(xb, wb, bb), forward_bound("dense", (xb, wb, bb)).tolerance(BF16),
            BF16)
    _assert("tanh (bf16)", at, OPS["tanh"].forward(zt), forward_bound("tanh", (zt,)).tolerance(BF16), BF16)
    a32 = at.astype(np.float32)  # exact
    ref_loss = OPS["softmax_cross_entropy"].forward(a32, t)
    _assert("cross_entropy (float32)", to_numpy(loss), ref_loss,
            forward_bound("softmax_cross_entropy", (a32, t)).tolerance(F32), F32)
    # backward: the float32 loss gradient, rounded once to bf16 by the cast's backward
    one = np.ones((), np.float32)
    d_a32 = OPS["softmax_cross_entropy"].vjp(one, a32, t)[0]
    tol = vjp_bound("softmax_cross_entropy", one, (a32, t))[0].tolerance(F32) + unit_roundoff(BF16) * np.abs(d_a32)
    da = to_numpy(a.grad)
    assert da.dtype == BF16
    _assert("d cross_entropy / d a (float32, rounded to bf16)", da.astype(np.float64), d_a32.astype(np.float64),
            tol, np.float64)
    dz_ref = OPS["tanh"].vjp(da, zt)[0]
    _assert("tanh' (bf16)", to_numpy(z.grad), dz_ref, vjp_bound("tanh", da, (zt,))[0].tolerance(BF16), BF16)
    dzt = to_numpy(z.grad)
    ref = OPS["dense"].vjp(dzt, xb, wb, bb)
    bounds = vjp_bound("dense", dzt, (xb, wb, bb))
    # the float32 leaves receive the bf16 gradients widened: every value is a bf16 number
    for name, got, exp, bound in zip(("dx", "dW", "db"), (xt.grad, lin.weight.grad.T, lin.bias.grad), ref, bounds):
        g32 = to_numpy(got)
        assert g32.dtype == F32 and np.array_equal(g32.astype(BF16).astype(np.float32), g32), name
        _assert(f"linear's {name} (bf16)", g32.astype(BF16), exp, bound.tolerance(BF16), BF16)


def test_autocast_output_fails_the_float32_rule() -> None:
    """The dtype actually used is what the rule must take: autocast's linear
    output, judged as if the layer had run in float32, is rejected."""
    x, w, b, _ = _layer(3)
    lin = torch.nn.Linear(5, 4)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(w.T.copy()))
        lin.bias.copy_(torch.from_numpy(b))
    with torch.no_grad(), torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        z = to_numpy(lin(torch.from_numpy(x)))
    exact32 = OPS["dense"].forward(x, w, b)
    comp = compare(z.astype(np.float32), exact32, forward_bound("dense", (x, w, b)).tolerance(F32), F32, "dense")
    assert not comp.ok


def _torch_master_step(net: MLP, master, x, t, lr: float):
    model = torch.nn.ModuleList(torch.nn.Linear(w.shape[0], w.shape[1]) for w, _ in master)
    with torch.no_grad():
        for lin, (w, b) in zip(model, master, strict=True):
            lin.weight.copy_(torch.from_numpy(w.T.copy()))
            lin.bias.copy_(torch.from_numpy(b.copy()))
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        a = torch.from_numpy(x)
        for lin, act in zip(model, net.activations, strict=True):
            a = lin(a)
            a = torch.tanh(a) if act == "tanh" else a
        loss = F.cross_entropy(a, torch.from_numpy(t))
    loss.backward()
    opt.step()
    return tuple((to_numpy(lin.weight).T.copy(), to_numpy(lin.bias)) for lin in model)


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), lr=st.sampled_from([0.01, 0.1]))
def test_master_weights_step_matches_torch_autocast_sgd(seed: int, lr: float) -> None:
    net = MLP((5, 6, 3), ("tanh", "identity"), cost="softmax_cross_entropy")
    master = net.init_params(seed=seed % 1000, dtype=np.float32)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((4, 5)).astype(np.float32)
    t = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 4)]
    new, grads = master_weights_step(net, master, x, t, lr=lr)
    theirs = _torch_master_step(net, master, x, t, lr)
    half = tuple((w.astype(BF16), b.astype(BF16)) for w, b in master)
    tape = net.forward(half, x.astype(BF16), t.astype(BF16))
    tol = nc.network_tolerance(tape, grads)
    u32 = unit_roundoff(F32)
    for layer, ((w_ref, b_ref), (w_t, b_t)) in enumerate(zip(new, theirs, strict=True)):
        assert w_ref.dtype == F32 and b_ref.dtype == F32
        for name, ref, got, q in (("W", w_ref, w_t, "dW"), ("b", b_ref, b_t, "db")):
            # the gradient's allowance in bf16, times lr, and the float32 step's own rounding on both sides
            allowed = lr * np.asarray(tol(q, layer)) + 4 * u32 * np.abs(ref.astype(np.float64)) + 1e-30
            _assert(f"master {name}[{layer}] after one step", got, ref, allowed, F32)
        assert not np.array_equal(w_ref, master[layer][0])  # a step was taken


def test_master_weights_step_refuses_a_master_no_wider_than_the_compute_dtype() -> None:
    net = MLP((2, 2), ("identity",), cost="mse")
    master = net.init_params(seed=0, dtype="bfloat16")
    x, t = np.zeros((1, 2), BF16), np.zeros((1, 2), BF16)
    with pytest.raises(ValueError, match=r"^compute_dtype: bfloat16 is not narrower"):
        master_weights_step(net, master, x, t, lr=0.1)
    with pytest.raises(TypeError, match=r"^compute_dtype:"):
        master_weights_step(net, net.init_params(dtype=np.float32), x, t, lr=0.1, compute_dtype="float8_e4m3fn")
