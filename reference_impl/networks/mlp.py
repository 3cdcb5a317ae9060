"""Multilayer perceptrons composed from the registry's ops.

A network of ``L`` dense layers computes, for ``l = 1 .. L``::

    z_l = a_{l-1} @ W_l + b_l        (OPS["dense"], W_l laid out (inputs, outputs))
    a_l = act_l(z_l)                 (OPS["relu" | "tanh" | "sigmoid"], or identity)
    output = softmax(a_L) or a_L     (OPS["softmax"] when ``softmax=True``)
    loss = cost(output, target)      (OPS["cross_entropy" | "softmax_cross_entropy" | "mse"])

with ``a_0 = x``. :meth:`MLP.forward` keeps every intermediate value on a
:class:`Tape`; :meth:`MLP.backward` walks the tape from the cost to the input
and chains the registry's VJP rules (``Op.vjp_from_output``), so no gradient
formula is written twice. The chain is the one of document 002
(``dJ/dwko = k_output^T . dJ/do_input``) and of document 004 (each step
multiplies the gradient arriving from the end by a local gradient).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import _validate
from .._validate import as_array, check_choice
from ..ops import OPS, cross_entropy_of_softmax_grad
from ..sources import fill_citations

__all__ = [
    "ACTIVATIONS",
    "COSTS",
    "MLP",
    "LayerRecord",
    "Tape",
    "LayerGradients",
    "NetworkGradients",
    "Params",
]

Params = tuple[tuple[np.ndarray, np.ndarray], ...]
"""One ``(W, b)`` pair per dense layer, ``W`` of shape ``(inputs, outputs)``."""


def _remedy(dtype: np.dtype) -> str:
    return _validate.overflow_remedy(dtype, "scale x or the weights down")


ACTIVATIONS = ("relu", "tanh", "sigmoid", "identity")
"""Per-layer activations; every name but ``identity`` is an op in ``OPS``."""

COSTS = ("cross_entropy", "softmax_cross_entropy", "mse")
"""Costs, each an op in ``OPS``."""

# --------------------------------------------------------------------------- tape and gradients


@dataclass(frozen=True)
class LayerRecord:
    """What the backward pass of one dense layer and its activation needs."""

    x: np.ndarray
    """The layer's input ``a_{l-1}`` (``x`` itself for the first layer)."""
    W: np.ndarray
    b: np.ndarray
    z: np.ndarray
    """Pre-activation ``z_l = a_{l-1} @ W_l + b_l``."""
    a: np.ndarray
    """Activation output ``a_l = act_l(z_l)`` (``z_l`` itself for identity)."""


@dataclass(frozen=True)
class Tape:
    """Every value of one forward pass, in order."""

    net: MLP
    layers: tuple[LayerRecord, ...]
    output: np.ndarray
    """What the cost sees: ``softmax(a_L)`` when the net has a softmax output, else ``a_L``."""
    target: np.ndarray
    loss: np.ndarray
    """0-d array in the network's dtype."""
    recorded: bool = field(default=False, init=False, repr=False, compare=False)
    """True for a tape :meth:`MLP.forward` made: only such a tape holds values
    that follow from one another (a hand-made one, or one edited with
    ``dataclasses.replace``, is refused by :meth:`MLP.backward`)."""

    @property
    def x(self) -> np.ndarray:
        return self.layers[0].x


@dataclass(frozen=True)
class LayerGradients:
    """Gradients of the loss at one layer, in backward order of computation."""

    dA: np.ndarray
    """``dL/da_l``: the cotangent arriving at the activation output."""
    dZ: np.ndarray
    """``dL/dz_l``: the pre-activation gradient (document 003's ``dl/dz``)."""
    dW: np.ndarray
    """``dL/dW_l = a_{l-1}^T @ dZ_l``, shape ``(inputs, outputs)``."""
    db: np.ndarray
    """``dL/db_l = sum over rows of dZ_l``."""


@dataclass(frozen=True)
class NetworkGradients:
    """The loss and the gradient of every weight, every bias and the input."""

    loss: np.ndarray
    d_output: np.ndarray
    """``dL/d(output)``, the cost's VJP (before the softmax, if any)."""
    layers: tuple[LayerGradients, ...]
    dx: np.ndarray

    @property
    def dZ(self) -> tuple[np.ndarray, ...]:
        return tuple(g.dZ for g in self.layers)

    @property
    def dW(self) -> tuple[np.ndarray, ...]:
        return tuple(g.dW for g in self.layers)

    @property
    def db(self) -> tuple[np.ndarray, ...]:
        return tuple(g.db for g in self.layers)

    @property
    def params(self) -> Params:
        """``((dW_1, db_1), ..., (dW_L, db_L))``, shaped like the parameters."""
        return tuple((g.dW, g.db) for g in self.layers)


# --------------------------------------------------------------------------- the network


@dataclass(frozen=True)
class MLP:
    """A multilayer perceptron: ``len(sizes) - 1`` dense layers.

    ``sizes``: widths ``(inputs, hidden..., outputs)``, each >= 1.
    ``activations``: one name per dense layer from :data:`ACTIVATIONS`,
    applied to that layer's ``z``; the last one usually ``"identity"`` when a
    softmax or ``softmax_cross_entropy`` follows.
    ``softmax``: apply a softmax to the last activation (document 002's
    output layer, 000's ``A2``); required by ``cost="cross_entropy"``, which
    acts on probabilities, and refused with ``softmax_cross_entropy``, which
    applies its own.
    ``cost``, ``reduction``: one of :data:`COSTS` and one of that op's
    reductions (``"mean"`` as in PyTorch; ``mse`` also has ``"half_sum"``,
    the documents' ``1/2 sum (y - yhat)^2``).

    Frozen and hashable, so a network's architecture can key a cache.
    Sources: {002}; {004}.
    """

    sizes: tuple[int, ...]
    activations: tuple[str, ...]
    softmax: bool = False
    cost: str = "mse"
    reduction: str = "mean"
    _ops: tuple[str | None, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        sizes: Any = self.sizes  # validated here: the annotation is what it will be
        if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence):
            raise TypeError(f"sizes: expected a sequence of widths (inputs, ..., outputs), got {sizes!r}")
        sizes = tuple(_validate.check_int(n, f"sizes[{i}]", minimum=1) for i, n in enumerate(sizes))
        if len(sizes) < 2:
            raise ValueError(f"sizes: expected at least 2 widths (inputs, outputs), got {sizes}")
        acts: Any = self.activations
        if isinstance(acts, str):
            raise TypeError(f"activations: expected one name per layer (a sequence), got the string {acts!r}")
        if not isinstance(acts, Sequence):
            raise TypeError(f"activations: expected a sequence of names, got {type(acts).__name__}")
        acts = tuple(acts)
        if len(acts) != len(sizes) - 1:
            raise ValueError(
                f"activations: {len(acts)} name(s) for {len(sizes) - 1} dense layer(s) "
                f"(sizes {sizes} has one layer between each pair of widths)"
            )
        for i, a in enumerate(acts):
            check_choice(a, f"activations[{i}]", ACTIVATIONS)
        _validate.check_bool(self.softmax, "softmax")
        check_choice(self.cost, "cost", COSTS)
        check_choice(self.reduction, "reduction", OPS[self.cost].params["reduction"])
        if self.cost == "cross_entropy" and not self.softmax:
            raise ValueError(
                "cost: 'cross_entropy' acts on probabilities; set softmax=True so that the output is a "
                "distribution, or use 'softmax_cross_entropy' on logits"
            )
        if self.cost == "softmax_cross_entropy" and self.softmax:
            raise ValueError(
                "softmax: 'softmax_cross_entropy' applies the softmax itself; softmax=True would apply it twice"
            )
        object.__setattr__(self, "sizes", sizes)
        object.__setattr__(self, "activations", acts)
        object.__setattr__(self, "softmax", bool(self.softmax))
        object.__setattr__(self, "_ops", tuple(None if a == "identity" else a for a in acts))

    @property
    def depth(self) -> int:
        """Number of dense layers."""
        return len(self.sizes) - 1

    def __str__(self) -> str:
        out = " -> softmax" if self.softmax else ""
        layers = ", ".join(f"{n}:{a}" for n, a in zip(self.sizes[1:], self.activations, strict=True))
        return f"MLP({self.sizes[0]} -> [{layers}]{out} -> {self.cost}/{self.reduction})"

    # ------------------------------------------------------------------ parameters

    def init_params(self, seed: int = 0, dtype: Any = np.float64, scale: float = 1.0) -> Params:
        """Random parameters: ``W_l ~ N(0, scale^2 / inputs_l)`` (so that
        ``z`` stays of order ``scale`` whatever the width) and
        ``b_l ~ N(0, (scale / 4)^2)``, drawn in float64 from
        ``np.random.default_rng(seed)`` and rounded to ``dtype``."""
        seed = _validate.check_int(seed, "seed", minimum=0)
        dt = _validate.check_dtype(dtype)
        s = _validate.check_positive_scale(scale, "scale")
        layers = tuple(zip(self.sizes[:-1], self.sizes[1:], strict=True))
        for l, (n_in, n_out) in enumerate(layers):  # every layer before any is drawn
            _validate.check_size((n_in, n_out), f"sizes: the W of layer {l}")
        rng = np.random.default_rng(seed)
        params = []
        for l, (n_in, n_out) in enumerate(layers):
            pair = []
            for part, spread, shape in (("W", s / np.sqrt(n_in), (n_in, n_out)), ("b", s / 4, (n_out,))):
                with _validate.quiet_overflow():
                    value = rng.normal(0.0, spread, size=shape).astype(dt)
                if not np.all(np.isfinite(value)):
                    raise ValueError(
                        f"scale: {scale!r} draws {part} of layer {l} beyond the range of {dt}; "
                        f"{_validate.overflow_remedy(dt, 'use a smaller scale')}"
                    )
                pair.append(value)
            params.append((pair[0], pair[1]))
        return tuple(params)

    def check_params(self, params: Any) -> Params:
        """Validate ``params`` against the architecture and return them as a
        tuple of ``(W, b)`` ndarray pairs; errors name ``params[l].W`` or
        ``params[l].b`` (``l`` counts from 0) and the widths they should fit."""
        if isinstance(params, (str, bytes, Mapping)) or not isinstance(params, Sequence):
            raise TypeError(f"params: expected a sequence of (W, b) pairs, got {type(params).__name__}")
        if len(params) != self.depth:
            raise ValueError(f"params: {len(params)} (W, b) pair(s) for a network of {self.depth} dense layer(s)")
        out = []
        dtype = None
        for l, pair in enumerate(params):
            if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
                raise TypeError(f"params[{l}]: expected a (W, b) pair, got {type(pair).__name__}")
            w = as_array(pair[0], f"params[{l}].W")
            b = as_array(pair[1], f"params[{l}].b")
            n_in, n_out = self.sizes[l], self.sizes[l + 1]
            if w.shape != (n_in, n_out):
                prev = "the input" if l == 0 else f"layer {l - 1}"
                hint = " (it looks transposed: W is laid out (inputs, outputs))" if w.shape == (n_out, n_in) else ""
                raise ValueError(
                    f"params[{l}].W: shape {w.shape} does not fit: {prev} has {n_in} output(s) and layer {l} "
                    f"has {n_out} unit(s), so W must be ({n_in}, {n_out}){hint}"
                )
            if b.shape != (n_out,):
                raise ValueError(f"params[{l}].b: shape {b.shape}, expected ({n_out},) for layer {l}'s {n_out} unit(s)")
            for name, arr in ((f"params[{l}].W", w), (f"params[{l}].b", b)):
                if dtype is None:
                    dtype = arr.dtype
                elif arr.dtype != dtype:
                    raise TypeError(
                        f"{name}: dtype {arr.dtype} differs from params[0].W's {dtype}; "
                        "mixed precision is not promoted silently"
                    )
            out.append((w, b))
        return tuple(out)

    def _check_x(self, x: Any, dtype: np.dtype) -> np.ndarray:
        xa = as_array(x, "x")
        if xa.ndim not in (1, 2):
            raise ValueError(f"x: expected shape (inputs,) or (batch, inputs), got {xa.shape}")
        if xa.shape[-1] != self.sizes[0]:
            raise ValueError(f"x: has {xa.shape[-1]} feature(s) on its last axis but the network takes {self.sizes[0]}")
        if xa.ndim == 2 and xa.shape[0] == 0:
            raise ValueError("x: empty batch, the loss is undefined")
        if xa.dtype != dtype:
            raise TypeError(f"x: dtype {xa.dtype} differs from the parameters' {dtype}; cast explicitly")
        return xa

    def _check_target(self, target: Any, x: np.ndarray) -> np.ndarray:
        t = as_array(target, "target")
        want = (*x.shape[:-1], self.sizes[-1])
        if t.shape != want:
            raise ValueError(
                f"target: shape {t.shape}, expected {want} (one row per row of x, {self.sizes[-1]} outputs)"
            )
        if t.dtype != x.dtype:
            raise TypeError(f"target: dtype {t.dtype} differs from x's {x.dtype}; cast explicitly")
        return t

    # ------------------------------------------------------------------ forward / backward

    def _activate(self, params: Params, x: np.ndarray) -> tuple[list[LayerRecord], np.ndarray]:
        records = []
        a = x
        for l, ((w, b), op) in enumerate(zip(params, self._ops, strict=True)):
            z = _validate.frozen(OPS["dense"].evaluate(a, w, b))
            self._check_finite_value(z, f"z of layer {l} (a @ params[{l}].W + params[{l}].b)")
            out = z if op is None else _validate.frozen(OPS[op].forward(z))
            records.append(LayerRecord(a, w, b, z, out))
            a = out
        output = _validate.frozen(OPS["softmax"].forward(a)) if self.softmax else a
        return records, output

    @staticmethod
    def _check_finite_value(value: np.ndarray, what: str, names: str = "params, x") -> None:
        """An intermediate value beyond the dtype's range: the error names
        what the caller passed that it depends on (``params, x``; the loss
        also on ``target``), not the op's own inputs."""
        if not np.all(np.isfinite(value)):
            raise ValueError(
                f"{names}: the forward pass overflows {value.dtype}: {what} is not finite at "
                f"{_validate.where_not_finite(value)}; {_remedy(value.dtype)}"
            )

    def _underflowed(self, output: np.ndarray) -> bool:
        """Whether the softmax output feeding the cross-entropy rounded to 0
        somewhere: its true value is positive, and the pair is then evaluated
        as the truth does, through the logits (:meth:`forward`)."""
        return self.cost == "cross_entropy" and bool(np.any(output <= 0))

    def predict(self, params: Any, x: Any) -> np.ndarray:
        """The network's output for ``x`` (``softmax(a_L)`` or ``a_L``), without a cost."""
        ps = self.check_params(params)
        xa = self._check_x(x, ps[0][0].dtype)
        return self._activate(ps, xa)[1]

    def forward(self, params: Any, x: Any, target: Any) -> Tape:
        """Run the network and its cost, keeping every value backward needs.

        ``x``: ``(batch, inputs)`` or ``(inputs,)``; ``target``: the same
        leading shape with ``outputs`` columns (a distribution per row for the
        classification costs). All arrays share one dtype."""
        ps = tuple((_validate.frozen(w), _validate.frozen(b)) for w, b in self.check_params(params))
        xa = _validate.frozen(self._check_x(x, ps[0][0].dtype))
        t = _validate.frozen(self._check_target(target, xa))
        with _validate.quiet_overflow():  # an overflow is reported below, naming what the caller passed
            records, output = self._activate(ps, xa)
            if self._underflowed(output):
                # -sum t log softmax(a_L) is the cross-entropy's true value; of the rounded output (a 0 where
                # the true probability is below the dtype's smallest) it would be inf or undefined
                loss = OPS["softmax_cross_entropy"].evaluate(records[-1].a, t, reduction=self.reduction)
            else:
                loss = OPS[self.cost].evaluate(output, t, reduction=self.reduction)
        self._check_finite_value(_validate.frozen(loss), f"the loss ({self.cost})", "params, x, target")
        tape = Tape(self, tuple(records), output, t, _validate.frozen(loss))
        object.__setattr__(tape, "recorded", True)
        return tape

    def backward(self, tape: Tape) -> NetworkGradients:
        """Chain the registry's VJPs from the cost back to the input.

        ``dL/d(output) = cost_vjp(1)``; ``dL/da_L = softmax_vjp(dL/d(output))``
        with a softmax output; then for ``l = L .. 1``:
        ``dZ_l = act_vjp(dA_l)`` and ``(dA_{l-1}, dW_l, db_l) = dense_vjp(dZ_l)``
        (document 002: ``dJ/dwko = k_output^T . dJ/do_input``, the bias
        gradient the row sum; document 003's ``dl/dz = sigma'(z) sum w dl/dz'``
        is the ``dense_vjp`` / ``act_vjp`` pair). Returns the loss and every
        gradient."""
        if not isinstance(tape, Tape):
            raise TypeError(f"tape: expected the Tape returned by MLP.forward, got {type(tape).__name__}")
        if not tape.recorded:
            raise ValueError("tape: not recorded by MLP.forward (a Tape made by hand or with dataclasses.replace "
                             "holds values that need not follow from one another); use net.forward(params, x, "
                             "target)")
        if tape.net != self:
            raise ValueError(f"tape: recorded by {tape.net}, not by this network {self}")
        one = np.ones((), dtype=tape.loss.dtype)
        last = tape.layers[-1]
        with _validate.quiet_overflow():
            if self._underflowed(tape.output):
                # as the loss in forward: the pair through the logits, never a division by a rounded 0
                d_output = cross_entropy_of_softmax_grad(last.a, tape.target, self.reduction)
                g = OPS["softmax_cross_entropy"].vjp_from_output(one, tape.loss, last.a, tape.target,
                                                                 reduction=self.reduction)[0]
            else:
                d_output = OPS[self.cost].vjp_from_output(one, tape.loss, tape.output, tape.target,
                                                          reduction=self.reduction)[0]
                g = OPS["softmax"].vjp_from_output(d_output, tape.output, last.a)[0] if self.softmax else d_output
        self._check_gradient(d_output, "dL/d(output)", (
            ", where the softmax output underflows (-target / output of its true value, below the dtype's "
            "smallest; cost='softmax_cross_entropy' on the logits has representable gradients)"
            if self._underflowed(tape.output) else ""))
        g = np.array(g, copy=True)
        grads: list[LayerGradients] = []
        for l in reversed(range(self.depth)):
            rec, op = tape.layers[l], self._ops[l]
            with _validate.quiet_overflow():
                dz = g.copy() if op is None else OPS[op].vjp_from_output(g, rec.a, rec.z)[0]
                dx, dw, db = OPS["dense"].vjp_from_output(dz, rec.z, rec.x, rec.W, rec.b)
            for name, value in (("dZ", dz), ("dW", dw), ("db", db), ("dx" if l == 0 else "dA", dx)):
                self._check_gradient(value, f"{name} of layer {l}")
            grads.append(LayerGradients(g, dz, dw, db))
            g = dx
        return NetworkGradients(tape.loss, d_output, tuple(reversed(grads)), g)

    @staticmethod
    def _check_gradient(value: np.ndarray, what: str, why: str = "") -> None:
        """A gradient beyond the dtype's range: the error names what the
        caller passed (every gradient depends on ``params``, ``x`` and, through
        the cost, ``target``)."""
        if not np.all(np.isfinite(value)):
            raise ValueError(
                f"params, x, target: the gradient {what} overflows {value.dtype} at "
                f"{_validate.where_not_finite(value)}{why}; {_remedy(value.dtype)}"
            )

    def value_and_grad(self, params: Any, x: Any, target: Any) -> NetworkGradients:
        """``backward(forward(params, x, target))``."""
        return self.backward(self.forward(params, x, target))

    def loss(self, params: Any, x: Any, target: Any) -> np.ndarray:
        """The cost of the network's output against ``target`` (0-d array)."""
        return self.forward(params, x, target).loss


for _method in (MLP.forward, MLP.backward):
    _method.__doc__ = f"{_method.__doc__}\n\n        Sources: {{002}}; {{004}}."
    fill_citations(_method)
fill_citations(MLP)
