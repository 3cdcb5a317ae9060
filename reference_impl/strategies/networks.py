"""Hypothesis strategies that draw networks, their parameters and data.

Two kinds of draw, for two uses:

* :class:`Case` (with :func:`architectures`, :func:`cases`,
  :func:`palette_cases`) records a seed from which parameters and data are
  rebuilt in either dtype -- the parity suite draws these;
* :class:`NetCase` (:func:`network_cases`) holds the arrays themselves and
  how they were drawn -- the oracle and ``certify`` draw these and print
  them as a counterexample.

Scales keep pre-activations of order 0.5 to 1.5 per layer, so tanh and
sigmoid saturate now and then, never absurdly. Imports hypothesis; not
imported by ``import reference_impl``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from ..networks import ACTIVATIONS, COSTS, MLP
from ..ops import OPS

__all__ = ["Case", "NetCase", "architectures", "any_architectures", "cases", "palette_cases", "network_cases",
           "PALETTE", "OUTPUTS", "SCALES", "SMALLEST_PROBABILITY", "JAX_SHAPES"]

Params = tuple[tuple[np.ndarray, np.ndarray], ...]

JAX_SHAPES = ((), (1,), (5,), (3, 4))
"""Shapes the JAX side of the element-wise examples draws from (each new
shape is a compilation); the torch side draws any shape."""



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


@st.composite
def any_architectures(draw: st.DrawFn) -> MLP:
    """Random MLPs for ``certify``: depth 1-4, widths 1-32, any activation,
    output, cost and reduction the networks accept."""
    depth = draw(st.integers(1, 4))
    sizes = tuple(draw(st.integers(1, 32)) for _ in range(depth + 1))
    acts = tuple(draw(st.sampled_from(ACTIVATIONS)) for _ in range(depth))
    cost = draw(st.sampled_from(COSTS))
    reduction = draw(st.sampled_from(OPS[cost].params["reduction"]))
    # cross_entropy acts on probabilities (needs the softmax output);
    # softmax_cross_entropy applies its own; mse takes either
    softmax = draw(st.booleans()) if cost == "mse" else cost == "cross_entropy"
    return MLP(sizes, acts, softmax=softmax, cost=cost, reduction=reduction)


@dataclass(frozen=True)
class NetCase:
    """A drawn network input: parameters, data and how they were drawn."""

    params: tuple[tuple[np.ndarray, np.ndarray], ...]
    x: np.ndarray
    target: np.ndarray
    recipe: dict[str, Any]

    @property
    def batch(self) -> int:
        return int(self.x.shape[0])

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"x": self.x, "target": self.target}
        for l, (w, b) in enumerate(self.params):
            out[f"W{l + 1}"], out[f"b{l + 1}"] = w, b
        return out

    def describe(self, net: Any) -> str:
        return f"{net}, batch {self.batch}, {self.x.dtype.name}, recipe {self.recipe}"


@st.composite
def network_cases(draw: st.DrawFn, net: Any, dtype: Any, max_batch: int = 16,
                  batches: Sequence[int] | None = None) -> NetCase:
    """Parameters from ``net.init_params(seed, dtype, scale)``, ``x`` normal,
    a target of the cost's kind (one-hot or a distribution per row for the
    classification costs, normal for ``mse``). The batch is 1..``max_batch``
    rows, or one of ``batches`` (a JIT-compiling framework compiles once per
    shape)."""
    dtype = np.dtype(dtype)
    batch = draw(st.sampled_from(tuple(batches)) if batches else st.integers(1, max_batch), label="batch")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    scale = draw(st.sampled_from(SCALES), label="scale")
    kind = "real" if net.cost == "mse" else draw(st.sampled_from(("one_hot", "soft")), label="target")
    params = net.init_params(seed, dtype, scale)
    rng = np.random.default_rng([seed, 1])
    x = rng.normal(size=(batch, net.sizes[0]))
    k = net.sizes[-1]
    if kind == "one_hot":
        t = np.eye(k)[rng.integers(0, k, size=batch)]
    elif kind == "soft":
        t = rng.dirichlet(np.ones(k), size=batch)
    else:
        t = rng.normal(size=(batch, k))
    x, t = x.astype(dtype), t.astype(dtype)
    if net.cost == "cross_entropy":
        assume(float(np.min(net.predict(params, x))) >= SMALLEST_PROBABILITY)
    return NetCase(params, x, t, {"batch": batch, "seed": seed, "scale": scale, "target": kind})
