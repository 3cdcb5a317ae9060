"""The check engine for whole networks: where two networks part first.

A network is compared value by value in the order the values are computed
(:func:`checks`): each layer's forward ``z``, the loss, then from the last
layer back ``dZ``, ``dW``, ``db`` and finally ``dx``. The first value beyond
its tolerance (:func:`reference_impl.accuracy.networks.network_bound`) names the
layer where the two sides part: an error that starts in layer 2's backward
rule makes every earlier layer's gradient wrong too, and is reported at
layer 2, not at layer 1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..accuracy import networks as network_tolerances
from ..networks import MLP, NetworkGradients, Tape
from .comparison import Comparison, compare

__all__ = ["checks", "check", "first_divergence", "assert_agrees", "network_tolerance", "gradient_order"]

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


def check(actual: Any, expected: Any, tolerance: Any, dtype: Any, model: str = "") -> Comparison:
    """:func:`reference_impl.engine.compare`, with a quick pass for the
    common case (same shape and dtype, every error within its tolerance)."""
    a = np.asarray(actual)
    e = np.asarray(expected)
    if a.shape == e.shape and a.dtype == np.dtype(dtype):
        with np.errstate(invalid="ignore"):
            if np.all(np.abs(a.astype(np.float64) - e) <= tolerance):
                return _PASSED
    return compare(actual, expected, tolerance, dtype, model)


_PASSED = compare(np.zeros(0), np.zeros(0), 0.0, np.float64, "quick pass: every error within tolerance")


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
    ``IMPLEMENTATIONS`` times :func:`reference_impl.accuracy.networks.network_bound`."""
    bound = network_tolerances.network_bound(tape, grads)
    return bound.tolerance


def gradient_order(depth: int) -> list[tuple[str, int | None]]:
    """The loss, then ``dW``, ``db`` from the last layer back: the order in
    which the backward pass computes what a ``value_and_grad`` returns, so
    the first disagreement names the layer where an error starts."""
    out: list[tuple[str, int | None]] = [("loss", None)]
    for l in range(depth - 1, -1, -1):
        out += [("dW", l), ("db", l)]
    return out
