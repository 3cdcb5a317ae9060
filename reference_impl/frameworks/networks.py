"""Framework side of the network parity tests, and what those tests share.

* PyTorch: the network as a ``torch.nn.Module`` of ``torch.nn.Linear``
  layers with torch's own activations (``torch.relu``, ``torch.tanh``,
  ``torch.sigmoid``), ``F.softmax`` and losses (``F.cross_entropy`` with
  probability targets, ``F.mse_loss``; cross-entropy on probabilities, which
  torch has no function for, as ``-sum xlogy(target, p)`` with
  ``torch.special.xlogy``), differentiated by ``torch.autograd.grad``, trained
  by ``torch.optim.SGD``. ``nn.Linear`` stores its weight as
  ``(outputs, inputs)``, the transpose of the reference's layout: the adapter
  transposes on the way in and out.
* JAX: the same network written with ``jax.nn`` functions and optax's
  losses, differentiated by ``jax.grad``, trained by ``optax.sgd``; one
  ``jax.jit`` per architecture (and, inside it, per shape and dtype).
* The pre-activation gradients ``dZ`` come from the frameworks too: torch
  differentiates with respect to its intermediate tensors, JAX with respect
  to a zero added to each ``z``.
Part of the optional ``frameworks`` subpackage: it imports torch and jax,
and is loaded only when a network is compared with them. The strategies
that draw networks are in :mod:`reference_impl.strategies.networks`; locating
where two networks part is :mod:`reference_impl.engine.divergence`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch
import torch.nn.functional as F

from ..networks import MLP
from .conversion import to_numpy, to_torch, torch_dtype

# Without x64, jax silently computes float64 inputs in float32.
jax.config.update("jax_enable_x64", True)

Params = tuple[tuple[np.ndarray, np.ndarray], ...]

# The networks here are tiny: handing each op to torch's OpenMP pool costs far
# more than the op (on a 2-core machine a 32x32 backward takes 30 ms with two
# threads, 0.2 ms with one). Results do not depend on it beyond rounding order,
# which the error model allows.
torch.set_num_threads(1)

# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class FrameworkResult:
    """A framework's loss, forward pre-activations and gradients, as NumPy."""

    backend: str
    loss: np.ndarray
    z: tuple[np.ndarray, ...] | None
    dZ: tuple[np.ndarray, ...]
    dW: tuple[np.ndarray, ...]
    db: tuple[np.ndarray, ...]
    dx: np.ndarray


# --------------------------------------------------------------------------- torch

_TORCH_ACT: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "identity": lambda z: z,
}


def _torch_cost(net: MLP, out: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    if net.cost == "cross_entropy":
        rows = -torch.special.xlogy(t, out).sum(dim=-1)
        return rows.mean() if net.reduction == "mean" else rows.sum()
    if net.cost == "softmax_cross_entropy":
        return F.cross_entropy(out, t, reduction=net.reduction)
    if net.reduction == "half_sum":
        return 0.5 * F.mse_loss(out, t, reduction="sum")
    return F.mse_loss(out, t, reduction=net.reduction)


class TorchMLP(torch.nn.Module):
    """``net`` as ``torch.nn.Linear`` layers holding ``params``."""

    def __init__(self, net: MLP, params: Params) -> None:
        super().__init__()
        self.net = net
        dtype = torch_dtype(params[0][0].dtype)
        self.linears = torch.nn.ModuleList()
        for w, b in params:
            lin = torch.nn.Linear(w.shape[0], w.shape[1], dtype=dtype)
            with torch.no_grad():
                # nn.Linear computes x @ weight.T + bias with weight (outputs, inputs).
                lin.weight.copy_(to_torch(np.ascontiguousarray(w.T)))
                lin.bias.copy_(to_torch(np.ascontiguousarray(b)))
            self.linears.append(lin)

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        zs = []
        a = x
        for lin, act in zip(self.linears, self.net.activations, strict=True):
            z = lin(a)
            zs.append(z)
            a = _TORCH_ACT[act](z)
        if self.net.softmax:
            a = F.softmax(a, dim=-1)
        return zs, a

    def loss(self, x: torch.Tensor, t: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        zs, out = self.forward(x)
        return zs, _torch_cost(self.net, out, t)


def torch_model(net: MLP, params: Params) -> TorchMLP:
    return TorchMLP(net, params)


def torch_linear_weights(model: TorchMLP) -> tuple[np.ndarray, ...]:
    """Each ``nn.Linear``'s raw ``weight``, as torch stores it: ``(outputs, inputs)``."""
    return tuple(to_numpy(lin.weight) for lin in model.linears)


def torch_params(model: TorchMLP) -> Params:
    """The model's parameters in the reference's layout (``W = weight.T``)."""
    return tuple((to_numpy(lin.weight).T.copy(), to_numpy(lin.bias)) for lin in model.linears)


def torch_predict(net: MLP, params: Params, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return to_numpy(torch_model(net, params)(to_torch(x))[1])


def torch_value_and_grad(net: MLP, params: Params, x: np.ndarray, t: np.ndarray) -> FrameworkResult:
    model = torch_model(net, params)
    xt = to_torch(x).requires_grad_(True)
    zs, loss = model.loss(xt, to_torch(t))
    ws = [lin.weight for lin in model.linears]
    bs = [lin.bias for lin in model.linears]
    grads = torch.autograd.grad(loss, [*zs, *ws, *bs, xt])
    n = net.depth
    g = [to_numpy(gi) for gi in grads]
    return FrameworkResult(
        "torch",
        to_numpy(loss),
        tuple(to_numpy(z) for z in zs),
        tuple(g[:n]),
        tuple(gw.T.copy() for gw in g[n: 2 * n]),
        tuple(g[2 * n: 3 * n]),
        g[3 * n],
    )


def torch_sgd(net: MLP, params: Params, x: np.ndarray, t: np.ndarray, lr: float, steps: int
              ) -> tuple[list[Params], list[np.ndarray]]:
    """``steps`` steps of ``torch.optim.SGD``: parameters after each step
    (index 0: initial) and the loss at each (the last after the final step)."""
    model = torch_model(net, params)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    xt, tt = to_torch(x), to_torch(t)
    path, losses = [torch_params(model)], []
    for _ in range(steps):
        opt.zero_grad()
        _, loss = model.loss(xt, tt)
        loss.backward()
        opt.step()
        losses.append(to_numpy(loss))
        path.append(torch_params(model))
    with torch.no_grad():
        losses.append(to_numpy(model.loss(xt, tt)[1]))
    return path, losses


# --------------------------------------------------------------------------- jax

_JAX_ACT: dict[str, Callable[[Any], Any]] = {
    "relu": jax.nn.relu,
    "tanh": jax.nn.tanh,
    "sigmoid": jax.nn.sigmoid,
    "identity": lambda z: z,
}


def _jax_cost(net: MLP, out: Any, t: Any) -> Any:
    if net.cost == "cross_entropy":
        rows = -jnp.sum(jax.scipy.special.xlogy(t, out), axis=-1)
    elif net.cost == "softmax_cross_entropy":
        rows = optax.losses.softmax_cross_entropy(out, t)
    else:
        se = optax.losses.squared_error(out, t)
        if net.reduction == "half_sum":
            return 0.5 * jnp.sum(se)
        return jnp.mean(se) if net.reduction == "mean" else jnp.sum(se)
    return jnp.mean(rows) if net.reduction == "mean" else jnp.sum(rows)


def _jax_loss(net: MLP) -> Callable[..., Any]:
    def loss(params: Any, x: Any, t: Any, eps: Any = None) -> Any:
        a = x
        zs = []
        for l, ((w, b), act) in enumerate(zip(params, net.activations, strict=True)):
            z = jnp.matmul(a, w) + b
            if eps is not None:
                z = z + eps[l]  # a zero: d loss / d eps is d loss / d z
            zs.append(z)
            a = _JAX_ACT[act](z)
        if net.softmax:
            a = jax.nn.softmax(a, axis=-1)
        return _jax_cost(net, a, t), tuple(zs)

    return loss


_XLA_OPTIONS = {"xla_backend_optimization_level": 0}
"""XLA's LLVM backend at optimisation level 0 compiles these small networks
several times faster (about 0.4 s instead of 1-3 s each on a 2-core
machine). The program is the same HLO, built by JAX's own VJP rules; only
the backend's code generation differs (instruction selection, contraction
of multiply-adds), i.e. at most the rounding, which the error model
allows."""


@functools.cache
def _jax_grad_fn(net: MLP) -> Callable[..., Any]:
    """``(loss, z), (d params, dx, dZ)`` of ``net``, compiled once per
    architecture (and by jit once per shape and dtype)."""
    return jax.jit(jax.value_and_grad(_jax_loss(net), argnums=(0, 1, 3), has_aux=True),
                   compiler_options=_XLA_OPTIONS)


def _jax_run(net: MLP, params: Any, x: np.ndarray, t: np.ndarray) -> Any:
    # NumPy zeros: jnp.zeros would compile a fill for every new shape.
    eps = tuple(np.zeros((*x.shape[:-1], n), dtype=x.dtype) for n in net.sizes[1:])
    return _jax_grad_fn(net)(params, x, t, eps)


def jax_value_and_grad(net: MLP, params: Params, x: np.ndarray, t: np.ndarray) -> FrameworkResult:
    (loss, zs), (gp, gx, geps) = _jax_run(net, params, x, t)
    return FrameworkResult(
        "jax",
        np.asarray(loss),
        tuple(np.asarray(z) for z in zs),
        tuple(np.asarray(e) for e in geps),
        tuple(np.asarray(w) for w, _ in gp),
        tuple(np.asarray(b) for _, b in gp),
        np.asarray(gx),
    )


def _sgd_update(params: Any, grads: Any, lr: Any) -> Any:
    tx = optax.sgd(lr)
    updates, _ = tx.update(grads, tx.init(params), params)
    return optax.apply_updates(params, updates)


_jax_sgd_update = jax.jit(_sgd_update, compiler_options=_XLA_OPTIONS)


def jax_sgd(net: MLP, params: Params, x: np.ndarray, t: np.ndarray, lr: float, steps: int
            ) -> tuple[list[Params], list[np.ndarray]]:
    """``steps`` steps of ``optax.sgd``: gradients from the same compiled
    ``jax.grad`` as :func:`jax_value_and_grad`, updates by optax (``-lr g``,
    then ``optax.apply_updates``), compiled once per parameter shapes. The
    learning rate is passed in the parameters' dtype, as a weakly typed
    Python float would be."""
    p: Any = params
    lr_arr = np.asarray(lr, dtype=x.dtype)
    path = [tuple((np.asarray(w), np.asarray(b)) for w, b in p)]
    losses = []
    for _ in range(steps):
        (value, _), (grads, _, _) = _jax_run(net, p, x, t)
        p = _jax_sgd_update(p, grads, lr_arr)
        losses.append(np.asarray(value))
        path.append(tuple((np.asarray(w), np.asarray(b)) for w, b in p))
    losses.append(np.asarray(_jax_run(net, p, x, t)[0][0]))
    return path, losses


# --------------------------------------------------------------------------- document 003's neuron


def torch_logistic_neuron(w: np.ndarray, b: np.ndarray, x: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, ...]:
    """``(dl/dw1, dl/dw2, dl/db)`` of document 003's neuron written with
    scalars, as the document writes it: ``z = w1 x1 + w2 x2 + b``,
    ``y = sigma(z)``, ``l = 1/2 sum (y - t)^2`` over the rows."""
    w1, w2, bt = (torch.tensor(v, requires_grad=True) for v in (w[0, 0], w[1, 0], b[0]))
    z = w1 * torch.from_numpy(x[:, 0]) + w2 * torch.from_numpy(x[:, 1]) + bt
    loss = 0.5 * ((torch.sigmoid(z) - torch.from_numpy(t[:, 0])) ** 2).sum()
    return tuple(g.numpy() for g in torch.autograd.grad(loss, [w1, w2, bt]))


# --------------------------------------------------------------------------- chain-rule examples (002)


def torch_g_partials(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, ...]:
    xs, ys, zs = (torch.from_numpy(np.asarray(v)).requires_grad_(True) for v in (x, y, z))
    out = (2 * xs + ys) * zs
    return tuple(g.numpy() for g in torch.autograd.grad(out.sum(), [xs, ys, zs]))


_jax_g_grad = jax.jit(jax.grad(lambda a, b, c: jnp.sum((2 * a + b) * c), argnums=(0, 1, 2)),
                      compiler_options=_XLA_OPTIONS)


def jax_g_partials(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, ...]:
    grads = _jax_g_grad(x, y, z)
    return tuple(np.asarray(g) for g in grads)


def _torch_p(x: torch.Tensor) -> torch.Tensor:
    return torch.softmax(torch.tanh(torch.relu(x)), dim=-1)


def torch_composite(cotangent: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(``p(X)``, its VJP) with torch's relu, tanh, softmax and autograd."""
    xt = torch.from_numpy(x).requires_grad_(True)
    p = _torch_p(xt)
    (dx,) = torch.autograd.grad(p, xt, torch.from_numpy(cotangent))
    return p.detach().numpy(), dx.numpy()


def torch_composite_jacobian(x: np.ndarray) -> np.ndarray:
    return torch.autograd.functional.jacobian(_torch_p, torch.from_numpy(x)).numpy()


def _jax_p_and_vjp(x: Any, cotangent: Any) -> Any:
    p, vjp = jax.vjp(lambda v: jax.nn.softmax(jax.nn.tanh(jax.nn.relu(v)), axis=-1), x)
    return p, vjp(cotangent)[0]


_jax_composite = jax.jit(_jax_p_and_vjp, compiler_options=_XLA_OPTIONS)


def jax_composite(cotangent: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(``p(X)``, its VJP) with ``jax.nn`` and ``jax.vjp``."""
    p, dx = _jax_composite(x, cotangent)
    return np.asarray(p), np.asarray(dx)


# --------------------------------------------------------------------------- a user's Module as value_and_grad


def module_value_and_grad(net: MLP, model: torch.nn.Module, device: Any) -> Callable[..., Any]:
    """``value_and_grad(params, x, target)`` of a user's ``torch.nn.Module``:
    its ``nn.Linear`` layers, in order, are ``net``'s dense layers (``weight =
    W.T``, ``bias = b``), ``model(x)`` the network's output (activations and
    softmax included), and the cost ``net``'s, by torch's losses; the
    gradients by ``torch.autograd.grad`` through the model (so a custom
    ``backward`` inside is what is judged), run with
    ``torch.func.functional_call``. A ``ValueError`` naming ``model`` where the
    layers do not match ``net``."""
    from .detection import device_of

    dev = device_of("torch", device)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    if len(linears) != net.depth:
        raise ValueError(f"model: {type(model).__name__} has {len(linears)} nn.Linear layer(s), but {net} has "
                         f"{net.depth} dense layer(s); its nn.Linear layers, in order, are the network's layers")
    by_id = {id(p): n for n, p in model.named_parameters()}
    names = []
    for l, (lin, n_in, n_out) in enumerate(zip(linears, net.sizes[:-1], net.sizes[1:])):
        if (lin.in_features, lin.out_features) != (n_in, n_out):
            raise ValueError(f"model: nn.Linear layer {l + 1} maps {lin.in_features} -> {lin.out_features}, but "
                             f"layer {l + 1} of {net} maps {n_in} -> {n_out}")
        if lin.bias is None:
            raise ValueError(f"model: nn.Linear layer {l + 1} has no bias (bias=False), but {net}'s layers have b")
        names.append((by_id[id(lin.weight)], by_id[id(lin.bias)]))
    for n, t in [*model.named_parameters(), *model.named_buffers()]:
        if t.device != dev:
            raise ValueError(f"model: its {n!r} is on {t.device}, but device={str(device)!r}; move the model "
                             f"(model.to({str(device)!r})) or pass device={str(t.device)!r}")
    layer_names = {n for pair in names for n in pair}
    fixed = {**dict(model.named_buffers()),
             **{n: p.detach() for n, p in model.named_parameters() if n not in layer_names}}

    def value_and_grad(params: Any, x: np.ndarray, target: np.ndarray) -> Any:
        dtype = torch_dtype(x.dtype)
        leaves = []
        state = {n: b.to(dtype) if b.is_floating_point() else b for n, b in fixed.items()}
        for (w, b), (wn, bn) in zip(params, names):
            tw = to_torch(np.ascontiguousarray(np.asarray(w).T)).to(dev).requires_grad_(True)
            tb = to_torch(np.asarray(b)).to(dev).requires_grad_(True)
            state[wn], state[bn] = tw, tb
            leaves += [tw, tb]
        with torch.enable_grad():
            out = torch.func.functional_call(model, state, (to_torch(x).to(dev),))
            t = to_torch(target).to(dev)
            loss = _torch_cost(net, out, t)
            grads = torch.autograd.grad(loss, leaves, allow_unused=True)
        done = [np.zeros(tuple(p.shape), x.dtype) if g is None else to_numpy(g) for g, p in
                zip(grads, leaves)]
        return loss.detach().cpu().numpy(), tuple((done[2 * l].T.copy(), done[2 * l + 1]) for l in range(net.depth))

    probe = tuple((np.zeros((a, b)), np.zeros(b)) for a, b in zip(net.sizes[:-1], net.sizes[1:]))
    with torch.enable_grad():
        state = {**fixed, **{n: torch.tensor(v.T.copy() if v.ndim == 2 else v, device=dev, dtype=torch.float32,
                                             requires_grad=True)
                             for pair, (w, b) in zip(names, probe) for n, v in zip(pair, (w, b))}}
        out = torch.func.functional_call(model, state, (torch.zeros(1, net.sizes[0], device=dev),))
    if not isinstance(out, torch.Tensor) or not out.requires_grad or tuple(out.shape) != (1, net.sizes[-1]):
        what = (f"a {type(out).__name__}" if not isinstance(out, torch.Tensor) else
                f"shape {tuple(out.shape)} for x of shape (1, {net.sizes[0]})" if out.requires_grad else
                "a result that does not require grad (detached, or computed under torch.no_grad() inside)")
        raise ValueError(f"model: {type(model).__name__}(x) returned {what}; it must return the network's output "
                         f"(batch, {net.sizes[-1]}) computed from its layers")
    value_and_grad.__name__ = type(model).__name__
    return value_and_grad
