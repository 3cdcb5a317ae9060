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
* Shared by the tests: hypothesis strategies for architectures and cases,
  the fixed palette the JAX tests draw from, and :func:`first_divergence`,
  which says where two networks' values part first.

Only this module imports torch and jax.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch
import torch.nn.functional as F
from hypothesis import strategies as st

from reference_impl import tolerances
from reference_impl.networks import ACTIVATIONS, MLP, NetworkGradients, Tape

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

_TORCH_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}
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
        dtype = _TORCH_DTYPES[np.dtype(params[0][0].dtype)]
        self.linears = torch.nn.ModuleList()
        for w, b in params:
            lin = torch.nn.Linear(w.shape[0], w.shape[1], dtype=dtype)
            with torch.no_grad():
                # nn.Linear computes x @ weight.T + bias with weight (outputs, inputs).
                lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T)))
                lin.bias.copy_(torch.from_numpy(np.ascontiguousarray(b)))
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
    return tuple(lin.weight.detach().numpy().copy() for lin in model.linears)


def torch_params(model: TorchMLP) -> Params:
    """The model's parameters in the reference's layout (``W = weight.T``)."""
    return tuple((lin.weight.detach().numpy().T.copy(), lin.bias.detach().numpy().copy()) for lin in model.linears)


def torch_predict(net: MLP, params: Params, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch_model(net, params)(torch.from_numpy(x))[1].numpy()


def torch_value_and_grad(net: MLP, params: Params, x: np.ndarray, t: np.ndarray) -> FrameworkResult:
    model = torch_model(net, params)
    xt = torch.from_numpy(x).requires_grad_(True)
    zs, loss = model.loss(xt, torch.from_numpy(t))
    ws = [lin.weight for lin in model.linears]
    bs = [lin.bias for lin in model.linears]
    grads = torch.autograd.grad(loss, [*zs, *ws, *bs, xt])
    n = net.depth
    g = [gi.detach().numpy() for gi in grads]
    return FrameworkResult(
        "torch",
        loss.detach().numpy(),
        tuple(z.detach().numpy() for z in zs),
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
    xt, tt = torch.from_numpy(x), torch.from_numpy(t)
    path, losses = [torch_params(model)], []
    for _ in range(steps):
        opt.zero_grad()
        _, loss = model.loss(xt, tt)
        loss.backward()
        opt.step()
        losses.append(loss.detach().numpy().copy())
        path.append(torch_params(model))
    with torch.no_grad():
        losses.append(model.loss(xt, tt)[1].numpy().copy())
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


JAX_SHAPES = ((), (1,), (5,), (3, 4))
"""Shapes the JAX side of the element-wise examples draws from (each new
shape is a compilation); the torch side draws any shape."""


# --------------------------------------------------------------------------- strategies

OUTPUTS = (
    (True, "cross_entropy", "mean"),
    (True, "cross_entropy", "sum"),
    (False, "softmax_cross_entropy", "mean"),
    (False, "softmax_cross_entropy", "sum"),
    (False, "mse", "mean"),
    (False, "mse", "sum"),
    (False, "mse", "half_sum"),
    (True, "mse", "mean"),
)
"""(softmax output, cost, reduction): every combination the networks accept."""

SCALES = (0.5, 1.0, 1.5)
"""Weight scales: z of order 0.5 to 1.5 per layer -- saturating sigmoid and
tanh now and then, never absurdly."""

SMALLEST_PROBABILITY = 1e-30
"""The cross-entropy on probabilities (``-t / p`` in its gradient) is used
only where every probability is at least this: near float32's underflow
threshold (1e-38) ``1 / p`` overflows, and a softmax that underflows to 0
leaves the cost undefined (the reference refuses it)."""


@dataclass(frozen=True)
class Case:
    """A network with everything needed to run it: parameters from
    ``net.init_params(seed, dtype, scale)``, data from ``seed``."""

    net: MLP
    batch: int
    seed: int
    scale: float
    target: str
    """``one_hot`` or ``soft`` (a distribution per row) or ``real``."""

    def params(self, dtype: Any) -> Params:
        return self.net.init_params(self.seed, dtype, self.scale)

    def data(self, dtype: Any) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, 1])
        x = rng.normal(size=(self.batch, self.net.sizes[0]))
        k = self.net.sizes[-1]
        if self.target == "one_hot":
            t = np.eye(k)[rng.integers(0, k, size=self.batch)]
        elif self.target == "soft":
            t = rng.dirichlet(np.ones(k), size=self.batch)
        else:
            t = rng.normal(size=(self.batch, k))
        return x.astype(dtype), t.astype(dtype)

    def in_domain(self, dtype: Any) -> bool:
        """False where the cost is undefined or overflows for this case
        (:data:`SMALLEST_PROBABILITY`); tests ``assume`` it."""
        if self.net.cost != "cross_entropy":
            return True
        x, _ = self.data(dtype)
        return bool(np.min(self.net.predict(self.params(dtype), x)) >= SMALLEST_PROBABILITY)

    def __str__(self) -> str:
        return (f"Case(net={self.net!r}, batch={self.batch}, seed={self.seed}, scale={self.scale}, "
                f"target={self.target!r})")


@st.composite
def architectures(draw: Any, max_depth: int = 4, max_width: int = 32) -> MLP:
    """Depth 1..max_depth, every width 1..max_width, any activations, any
    output and cost."""
    depth = draw(st.integers(1, max_depth))
    sizes = draw(st.lists(st.integers(1, max_width), min_size=depth + 1, max_size=depth + 1))
    acts = draw(st.lists(st.sampled_from(ACTIVATIONS), min_size=depth, max_size=depth))
    softmax, cost, reduction = draw(st.sampled_from(OUTPUTS))
    return MLP(tuple(sizes), tuple(acts), softmax=softmax, cost=cost, reduction=reduction)


def _target_kinds(net: MLP) -> st.SearchStrategy[str]:
    if net.cost == "mse":
        return st.just("real")
    return st.sampled_from(("one_hot", "soft"))


@st.composite
def cases(draw: Any, nets: st.SearchStrategy[MLP], max_batch: int = 32) -> Case:
    net = draw(nets)
    return Case(net, draw(st.integers(1, max_batch)), draw(st.integers(0, 2**32 - 1)),
                draw(st.sampled_from(SCALES)), draw(_target_kinds(net)))


PALETTE: tuple[tuple[MLP, int], ...] = (
    (MLP((3, 5), ("identity",), cost="mse"), 4),
    (MLP((1, 1, 2), ("sigmoid", "identity"), softmax=True, cost="cross_entropy"), 3),  # document 000
    (MLP((2, 4, 4, 3), ("relu", "tanh", "identity"), softmax=True, cost="cross_entropy"), 1),  # document 002
    (MLP((2, 3, 1), ("sigmoid", "sigmoid"), cost="mse", reduction="half_sum"), 1),  # document 004
    (MLP((8, 32, 16, 4), ("tanh", "relu", "sigmoid"), softmax=True, cost="mse", reduction="sum"), 32),
    (MLP((32, 7, 1, 9, 5), ("sigmoid", "relu", "tanh", "identity"), cost="softmax_cross_entropy"), 17),
)
"""(network, batch) pairs the JAX tests draw from: depths 1-4, widths 1-32,
batches 1-32, every activation, each cost (with and without a softmax
output), each reduction. A fixed list, because each new shape costs JAX a
fresh compilation; the torch tests draw architectures freely."""


@st.composite
def palette_cases(draw: Any) -> Case:
    net, batch = draw(st.sampled_from(PALETTE))
    return Case(net, batch, draw(st.integers(0, 2**32 - 1)), draw(st.sampled_from(SCALES)), draw(_target_kinds(net)))


# --------------------------------------------------------------------------- locating a divergence

Tolerance = Callable[[str, "int | None"], np.ndarray]

_MEANING = {
    "z": "forward pre-activation z = a_prev @ W + b",
    "loss": "the cost",
    "dZ": "dL/dz, the pre-activation gradient",
    "dW": "dL/dW",
    "db": "dL/db",
    "dx": "dL/dx, the input gradient",
}


def _op_of(net: MLP, quantity: str, layer: int | None) -> str:
    if quantity == "z":
        return "dense"
    if quantity == "loss":
        return net.cost + (" after softmax" if net.softmax else "")
    if quantity == "dZ":
        assert layer is not None
        act = net.activations[layer]
        rule = f"{act} VJP" if act != "identity" else "identity"
        if layer == net.depth - 1:
            rule += f" after the {net.cost} VJP" + (" and the softmax VJP" if net.softmax else "")
        else:
            rule += f" after layer {layer + 2}'s dense VJP"
        return rule
    return "dense VJP"


def checks(net: MLP) -> list[tuple[str, int | None]]:
    """What is compared, in the order values are computed: each layer's
    forward ``z``, the loss, then from the last layer back ``dZ``, ``dW``,
    ``db``, and finally ``dx``."""
    out: list[tuple[str, int | None]] = [("z", l) for l in range(net.depth)]
    out.append(("loss", None))
    for l in range(net.depth - 1, -1, -1):
        out += [("dZ", l), ("dW", l), ("db", l)]
    out.append(("dx", None))
    return out


def _value(obj: Any, quantity: str, layer: int | None) -> np.ndarray | None:
    if isinstance(obj, Tape):
        return obj.layers[layer].z if quantity == "z" and layer is not None else None
    value = getattr(obj, quantity, None)
    if value is None:
        return None
    return np.asarray(value[layer] if layer is not None else value)


def check(actual: Any, expected: Any, tolerance: Any, dtype: Any, model: str = "") -> tolerances.Comparison:
    """:func:`reference_impl.tolerances.compare`, with a quick pass for the
    common case (same shape and dtype, every error within its tolerance)."""
    a = np.asarray(actual)
    e = np.asarray(expected)
    if a.shape == e.shape and a.dtype == np.dtype(dtype):
        with np.errstate(invalid="ignore"):
            if np.all(np.abs(a.astype(np.float64) - e) <= tolerance):
                return _PASSED
    return tolerances.compare(actual, expected, tolerance, dtype, model)


_PASSED = tolerances.compare(np.zeros(0), np.zeros(0), 0.0, np.float64, "quick pass: every error within tolerance")


def first_divergence(net: MLP, tape: Tape, ours: NetworkGradients | Any, theirs: Any, tolerance: Tolerance,
                     backend: str, context: str = "") -> str | None:
    """``None`` if ``theirs`` agrees with the reference (``tape``, ``ours``)
    on every check of :func:`checks` within ``tolerance(quantity, layer)``;
    otherwise a message naming the first check that failed: layer, quantity
    (z, loss, dZ, dW, db, dx), op, backend, dtype, shapes and the comparison
    (worst element, abs / rel / ulp error, tolerance)."""
    dtype = np.dtype(tape.loss.dtype)
    for quantity, layer in checks(net):
        mine = _value(tape, quantity, layer) if quantity == "z" else _value(ours, quantity, layer)
        if quantity == "loss":
            mine = np.asarray(tape.loss)
        other = _value(theirs, quantity, layer)
        if mine is None or other is None:
            continue
        cmp = check(other, mine, tolerance(quantity, layer), dtype, model=f"{quantity}: network error model")
        if cmp.ok:
            continue
        where = f"layer {layer + 1} of {net.depth}" if layer is not None else ("the cost" if quantity == "loss"
                                                                                else "the input")
        shapes = f"x {tape.x.shape}"
        if layer is not None:
            shapes += f", W {tape.layers[layer].W.shape}, z {tape.layers[layer].z.shape}"
        return (
            f"{backend} and the reference part first at {where}, {quantity} ({_MEANING[quantity]}); "
            f"op: {_op_of(net, quantity, layer)}; backend {backend}; dtype {dtype}; network {net}; shapes {shapes}; "
            f"{cmp.describe()}" + (f"; reproduce with {context}" if context else "")
        )
    return None


def assert_agrees(net: MLP, tape: Tape, ours: Any, theirs: Any, tolerance: Tolerance, backend: str,
                  context: str = "") -> None:
    message = first_divergence(net, tape, ours, theirs, tolerance, backend, context)
    if message is not None:
        raise AssertionError(message)


def network_tolerance(tape: Tape, grads: NetworkGradients) -> Tolerance:
    """Budget for comparing two implementations of the whole network:
    ``IMPLEMENTATIONS`` times :func:`reference_impl.tolerances.network_bound`."""
    bound = tolerances.network_bound(tape, grads)
    return bound.tolerance
