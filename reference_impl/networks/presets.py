"""The documents' networks as named presets, in each document's notation.

:func:`preset_000`, :func:`preset_002`, :func:`preset_003` and
:func:`preset_004` build an :class:`~reference_impl.networks.mlp.MLP` with the
document's layer sizes, activations, cost and names; where a document's
weights were images that did not survive, the weights are parameters
(``Preset.init_params`` draws them at random). :func:`recursion_003` is
document 003's unit-by-unit recursion for ``dl/dz``, a second way to the
gradients the MLP's backward pass computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _validate
from .._validate import check_choice
from ..ops import OPS
from ..sources import fill_citations
from .mlp import ACTIVATIONS, MLP, Params
from .step import step_pairs

__all__ = ["Preset", "preset_000", "preset_002", "preset_003", "preset_004", "PRESETS", "recursion_003"]

@dataclass(frozen=True)
class Preset:
    """A document's network in the document's notation."""

    key: str
    """The document (``reference_impl.sources`` key)."""
    net: MLP
    names: tuple[tuple[str, str], ...]
    """The document's names of each layer's ``(W, b)``."""
    loss_name: str
    """The document's letter for the cost (``L``, ``J``, ``l``)."""
    x: np.ndarray | None = None
    """The document's input, where it gives one (float64, one row)."""
    target: np.ndarray | None = None
    lr: float | None = None
    """The document's learning rate, where it gives one."""
    note: str = ""

    def init_params(self, seed: int = 0, dtype: Any = np.float64, scale: float = 1.0) -> Params:
        """Random weights (the documents' weights were images): ``MLP.init_params``."""
        return self.net.init_params(seed, dtype, scale)

    def named(self, params: Any) -> dict[str, np.ndarray]:
        """``{name: array}`` for every weight and bias, in the document's names."""
        ps = self.net.check_params(params)
        out = {}
        for (wn, bn), (w, b) in zip(self.names, ps, strict=True):
            out[wn], out[bn] = w, b
        return out

    def _inputs(self, params: Params, x: Any, target: Any) -> tuple[np.ndarray, np.ndarray]:
        dtype = params[0][0].dtype
        if x is None:
            if self.x is None:
                raise ValueError(f"x: document {self.key} gives no input; pass x")
            x = self.x.astype(dtype)
        if target is None:
            if self.target is None:
                raise ValueError(f"target: document {self.key} gives no target; pass target")
            target = self.target.astype(dtype)
        return x, target

    def gradients(self, params: Any, x: Any = None, target: Any = None) -> dict[str, np.ndarray]:
        """``{"d<loss>/d<name>": gradient}`` for every weight and bias, plus
        ``"<loss>"`` itself. ``x`` and ``target`` default to the document's
        (cast to the parameters' dtype)."""
        ps = self.net.check_params(params)
        xs, ts = self._inputs(ps, x, target)
        grads = self.net.value_and_grad(ps, xs, ts)
        out = {self.loss_name: grads.loss}
        for (wn, bn), g in zip(self.names, grads.layers, strict=True):
            out[f"d{self.loss_name}/d{wn}"] = g.dW
            out[f"d{self.loss_name}/d{bn}"] = g.db
        return out

    def update(self, params: Any, lr: Any = None, x: Any = None, target: Any = None) -> dict[str, np.ndarray]:
        """One gradient-descent step ``w <- w - lr dL/dw`` on every weight and
        bias, returned in the document's names (``lr`` defaults to the
        document's)."""
        ps = self.net.check_params(params)
        if lr is None:
            if self.lr is None:
                raise ValueError(f"lr: document {self.key} gives no learning rate; pass lr")
            lr = self.lr
        xs, ts = self._inputs(ps, x, target)
        grads = self.net.value_and_grad(ps, xs, ts)
        return self.named(step_pairs(ps, grads.params, lr))


def preset_000(activation: str = "sigmoid", outputs: int = 2) -> Preset:
    """Document 000's network: input ``x`` -> one hidden unit ``h = x w + b``,
    ``H = A1(h)`` -> output ``y = H v + c``, ``Y = A2(y) = softmax(y)`` ->
    cross-entropy ``L = -sum target log Y``; its four gradients are
    ``dL/dv``, ``dL/dc``, ``dL/dw``, ``dL/db``.

    The document leaves ``A1`` and the output width open; both are
    parameters here. With ``outputs=1`` the softmax of a single unit is the
    constant 1, so ``L = 0`` and every gradient is exactly zero: a
    classifier needs at least two outputs. Source: {000}.
    """
    check_choice(activation, "activation", ACTIVATIONS)
    outputs = _validate.check_int(outputs, "outputs", minimum=1)
    net = MLP((1, 1, outputs), (activation, "identity"), softmax=True, cost="cross_entropy")
    return Preset("000", net, (("w", "b"), ("v", "c")), "L",
                  note="one hidden unit; softmax output; cross-entropy")


def preset_002() -> Preset:
    """Document 002's 2-4-4-3 network: layers ``i`` (2 inputs) -> ``j`` (4,
    relu) -> ``k`` (4, tanh) -> ``o`` (3, softmax), cross-entropy ``J``;
    inputs ``[0.2, 0.1]``, target ``[1.0, 0.0, 0.0]``, learning rate 0.01;
    weights ``wij`` (2x4), ``wjk`` (4x4), ``wko`` (4x3), biases ``bj``,
    ``bk``, ``bo``. ``update`` gives the document's new ``wij``, ``wjk``,
    ``wko`` and biases. The document's weights were images, so they are
    parameters here. Source: {002}.
    """
    net = MLP((2, 4, 4, 3), ("relu", "tanh", "identity"), softmax=True, cost="cross_entropy")
    return Preset("002", net, (("wij", "bj"), ("wjk", "bk"), ("wko", "bo")), "J",
                  x=np.array([[0.2, 0.1]]), target=np.array([[1.0, 0.0, 0.0]]), lr=0.01,
                  note="relu, tanh, softmax; cross-entropy; lr 0.01")


_CASES_003 = ("neuron", "output", "hidden")


def preset_003(case: str = "neuron") -> Preset:
    """Document 003's logistic neurons, all with ``sigma(z) = 1/(1 + e^-z)``.

    * ``"neuron"``: ``z = w1 x1 + w2 x2 + b``, ``y = sigma(z)``; ``W`` is the
      column ``[w1, w2]^T``, so ``dl/dw1 = x1 dl/dz`` and ``dl/dw2 = x2 dl/dz``.
    * ``"output"``: that neuron's output feeds ``z'`` and ``z''`` through
      ``w3`` and ``w4`` (the columns of ``w'``); ``z'``, ``z''`` are the
      output layer (the document's first case).
    * ``"hidden"``: ``z'`` and ``z''`` feed one more sigmoid layer of two
      outputs (the second case: compute to the output, then come back).

    The document's cost ``l`` is unspecified; the presets use the squared
    error ``1/2 sum (y - target)^2``. :func:`recursion_003` evaluates the
    document's ``dl/dz = sigma'(z) (w3 dl/dz' + w4 dl/dz'')``. Source: {003}.
    """
    check_choice(case, "case", _CASES_003)
    sizes = {"neuron": (2, 1), "output": (2, 1, 2), "hidden": (2, 1, 2, 2)}[case]
    names = (("w", "b"), ("w'", "b'"), ("w''", "b''"))[: len(sizes) - 1]
    net = MLP(sizes, ("sigmoid",) * (len(sizes) - 1), cost="mse", reduction="half_sum")
    return Preset("003", net, names, "l", note=f"logistic neurons, case {case!r}")


def preset_004(output_activation: str = "sigmoid") -> Preset:
    """Document 004's [2, 3, 1] network: ``z2 = X W1 + b1``, ``a2 = sigma(z2)``,
    ``z3 = a2 W2 + b2``, ``yhat = sigma(z3)``, squared error
    ``J = 1/2 sum (y - yhat)^2`` (the document's form, ``n = 1``; whose
    gradient is the bare residual ``yhat - y``). The document's text feeds
    ``z3`` to the cost in one figure; ``output_activation="identity"`` gives
    that reading. :func:`reference_impl.graph.mlp_graph` builds it gate by
    gate. Source: {004}.
    """
    check_choice(output_activation, "output_activation", ACTIVATIONS)
    net = MLP((2, 3, 1), ("sigmoid", output_activation), cost="mse", reduction="half_sum")
    return Preset("004", net, (("W1", "b1"), ("W2", "b2")), "J", note="[2, 3, 1] sigmoid; 1/2 squared error")


PRESETS = {"000": preset_000, "002": preset_002, "003": preset_003, "004": preset_004}
"""Document key -> preset constructor."""

for _fn in PRESETS.values():
    fill_citations(_fn)


def recursion_003(net: MLP, params: Any, x: Any, target: Any) -> tuple[np.ndarray, ...]:
    """``dl/dz`` of every unit by document 003's recursion, one array per layer.

    Output layer (the document's first case): ``dl/dz_k = sigma'(z_k) dl/dy_k``.
    Any other layer (second case, computed from the output back):
    ``dl/dz_j = sigma'(z_j) sum_k w_jk dl/dz_k`` -- for the neuron feeding
    ``z'`` and ``z''``, ``sigma'(z) (w3 dl/dz' + w4 dl/dz'')`` -- with
    ``sigma'(z) = sigma(z) (1 - sigma(z))``. Written unit by unit as in the
    document; the forward values come from :meth:`MLP.forward` (003: "z is
    already known from the forward pass") and ``dl/dy`` from the cost's VJP.
    Every layer must be sigmoid and the net must have no softmax output.
    Source: {003}.
    """
    if not isinstance(net, MLP):
        raise TypeError(f"net: expected an MLP, got {type(net).__name__}")
    if any(a != "sigmoid" for a in net.activations) or net.softmax:
        raise ValueError(f"net: document 003's recursion is for sigmoid layers without a softmax output, got {net}")
    tape = net.forward(params, x, target)
    one = np.ones((), dtype=tape.loss.dtype)
    dl_dy = OPS[net.cost].vjp_from_output(one, tape.loss, tape.output, tape.target, reduction=net.reduction)[0]
    dl_dy = np.atleast_2d(dl_dy)
    layers = tape.layers
    out: list[np.ndarray] = []
    for l in range(net.depth - 1, -1, -1):
        s = np.atleast_2d(layers[l].a)
        sigma_prime = s * (1 - s)
        dz = np.empty_like(s)
        for j in range(s.shape[1]):
            if l == net.depth - 1:
                upstream = dl_dy[:, j]
            else:
                w_next, dz_next = layers[l + 1].W, out[-1]
                upstream = np.zeros_like(s[:, j])
                for k in range(w_next.shape[1]):
                    upstream = upstream + w_next[j, k] * dz_next[:, k]
            dz[:, j] = sigma_prime[:, j] * upstream
        out.append(dz)
    shape = tape.x.shape[:-1]
    return tuple(d.reshape(shape + d.shape[-1:]) for d in reversed(out))


fill_citations(recursion_003)
