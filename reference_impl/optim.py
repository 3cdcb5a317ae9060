"""Gradient descent: ``w <- w - lr dL/dw`` for every weight and bias.

Document 002: "in each iteration the current weight is updated ... we
multiply this fraction by the learning rate" (``w1 = w0 - lr dJ/dw``, lr 0.01);
document 000, step 4 ("update the weights"); document 004 ("the network learns
by updating its weights with the gradient of the error").

The learning rate is rounded to the parameters' dtype before it multiplies a
gradient, as ``torch.optim.SGD`` (``param.add_(grad, alpha=-lr)``) and
``optax.sgd`` (``-lr * g`` with a weakly typed ``lr``) do; a float64 ``lr``
would otherwise promote float32 parameters.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._validate import as_array
from .networks import MLP, NetworkGradients, Params, Tape, _fill_citations

__all__ = ["check_lr", "check_steps", "sgd_step", "Trajectory", "train"]


def check_lr(lr: Any) -> float:
    """A learning rate is a finite real number > 0; errors name ``lr``."""
    if isinstance(lr, (bool, np.bool_)) or not isinstance(lr, numbers.Real):
        raise TypeError(f"lr: expected a real number, got {type(lr).__name__} {lr!r}")
    v = float(lr)
    if not np.isfinite(v):
        raise ValueError(f"lr: must be finite, got {lr!r}")
    if v <= 0:
        raise ValueError(f"lr: must be > 0 (a step against the gradient), got {lr!r}")
    return v


def check_steps(steps: Any) -> int:
    """A number of steps is an int >= 1; errors name ``steps``."""
    if isinstance(steps, (bool, np.bool_)) or not isinstance(steps, numbers.Integral):
        raise TypeError(f"steps: expected an int, got {type(steps).__name__} {steps!r}")
    if steps < 1:
        raise ValueError(f"steps: must be >= 1 (a training loop of {steps} steps does nothing), got {steps}")
    return int(steps)


def sgd_step(params: Any, grads: Any, lr: Any) -> Params:
    """One step ``W <- W - lr dL/dW``, ``b <- b - lr dL/db`` for every layer.

    ``params``: ``((W_1, b_1), ...)``; ``grads``: the same structure or the
    :class:`~reference_impl.networks.NetworkGradients` of those parameters.
    Returns new arrays; the inputs are not modified. Sources: {002}; {000}.
    """
    lr_f = check_lr(lr)
    if isinstance(grads, NetworkGradients):
        grads = grads.params
    for name, obj in (("params", params), ("grads", grads)):
        if isinstance(obj, (str, bytes)) or not isinstance(obj, Sequence):
            raise TypeError(f"{name}: expected a sequence of (W, b) pairs, got {type(obj).__name__}")
    if len(params) != len(grads):
        raise ValueError(f"grads: {len(grads)} (dW, db) pair(s) for {len(params)} (W, b) pair(s) in params")
    out = []
    for l, (pair, gpair) in enumerate(zip(params, grads, strict=True)):
        if len(pair) != 2 or len(gpair) != 2:
            raise ValueError(f"params[{l}], grads[{l}]: expected (W, b) and (dW, db) pairs")
        new = []
        for part, p, g in (("W", pair[0], gpair[0]), ("b", pair[1], gpair[1])):
            pa = as_array(p, f"params[{l}].{part}")
            ga = as_array(g, f"grads[{l}].d{part}")
            if pa.shape != ga.shape:
                raise ValueError(f"grads[{l}].d{part}: shape {ga.shape} differs from params[{l}].{part}'s {pa.shape}")
            if pa.dtype != ga.dtype:
                raise TypeError(f"grads[{l}].d{part}: dtype {ga.dtype} differs from params[{l}].{part}'s {pa.dtype}")
            step = np.asarray(lr_f, dtype=pa.dtype)
            new.append(pa - step * ga)
        out.append((new[0], new[1]))
    return tuple(out)


@dataclass(frozen=True)
class Trajectory:
    """Parameters and losses along a run of gradient descent.

    ``params[n]`` are the parameters after ``n`` steps (``params[0]`` the
    initial ones), ``losses[n]`` the loss at ``params[n]`` (``n = 0 .. steps``),
    ``tapes[n]`` the forward pass at ``params[n]``, ``gradients[n]`` the
    gradients at ``params[n]`` that made step ``n + 1``.
    """

    net: MLP
    lr: float
    params: tuple[Params, ...]
    losses: tuple[np.ndarray, ...]
    tapes: tuple[Tape, ...]
    gradients: tuple[NetworkGradients, ...]

    @property
    def steps(self) -> int:
        return len(self.gradients)


def train(net: MLP, params: Any, x: Any, target: Any, *, lr: Any, steps: Any) -> Trajectory:
    """Full-batch gradient descent: ``steps`` times, evaluate ``L`` and its
    gradients at the current parameters and take :func:`sgd_step`; then
    evaluate ``L`` once more at the final parameters. Returns the
    :class:`Trajectory`. Sources: {002}; {000}.
    """
    if not isinstance(net, MLP):
        raise TypeError(f"net: expected an MLP, got {type(net).__name__}")
    lr_f = check_lr(lr)
    n = check_steps(steps)
    current = net.check_params(params)
    path = [current]
    tapes = []
    grads = []
    for _ in range(n):
        tape = net.forward(current, x, target)
        g = net.backward(tape)
        tapes.append(tape)
        grads.append(g)
        current = sgd_step(current, g, lr_f)
        path.append(current)
    tapes.append(net.forward(current, x, target))
    return Trajectory(net, lr_f, tuple(path), tuple(t.loss for t in tapes), tuple(tapes), tuple(grads))


for _fn in (sgd_step, train):
    _fill_citations(_fn)
