"""Gradient descent: ``w <- w - lr dL/dw`` for every weight and bias.

Document 002: "in each iteration the current weight is updated ... we
multiply this fraction by the learning rate" (``w1 = w0 - lr dJ/dw``, lr 0.01);
document 000, step 4 ("update the weights"); document 004 ("the network learns
by updating its weights with the gradient of the error").

The learning rate is rounded to the parameters' dtype before it multiplies a
gradient, as ``torch.optim.SGD`` (``param.add_(grad, alpha=-lr)``) and
``optax.sgd`` (``-lr * g`` with a weakly typed ``lr``) do; a float64 ``lr``
would otherwise promote float32 parameters.

Mixed precision (:func:`master_weights_step`): the parameters are kept in a
wide *master* dtype (float32) and rounded to a half dtype (bfloat16) for the
forward and backward pass; the half-precision gradients are widened (exactly)
and the step is taken on the master weights, as ``torch.autocast`` with a
float32 model and ``torch.optim.SGD`` do.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._validate import as_array, check_dtype, max_elements
from .networks import MLP, NetworkGradients, Params, Tape, check_lr, step_pairs
from .sources import fill_citations

__all__ = ["check_lr", "check_steps", "sgd_step", "master_weights_step", "Trajectory", "train"]


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
    Returns new arrays; the inputs are not modified. An ``lr`` beyond the
    parameters' dtype, or a step that overflows it, is a ``ValueError``
    naming ``lr`` (see :func:`reference_impl.networks.step_pairs`). Sources: {002}; {000}.
    """
    check_lr(lr)
    if isinstance(grads, NetworkGradients):
        grads = grads.params
    return step_pairs(params, grads, lr)


def master_weights_step(net: MLP, master: Any, x: Any, target: Any, *, lr: Any, compute_dtype: Any = "bfloat16"
                        ) -> tuple[Params, NetworkGradients]:
    """One step of mixed-precision gradient descent: ``master`` (float32 or
    float64 ``(W, b)`` pairs) rounded once to ``compute_dtype``, the forward
    and backward pass there on ``x`` and ``target`` rounded to it too, the
    gradients widened to the master dtype (exactly: every half value is a
    float32 value) and :func:`sgd_step` taken on the master weights in the
    master dtype. Returns the new master weights and the half-precision
    gradients. Errors name ``master``, ``x``, ``target``, ``lr`` or
    ``compute_dtype``. Sources: {002}; {000}.
    """
    if not isinstance(net, MLP):
        raise TypeError(f"net: expected an MLP, got {type(net).__name__}")
    check_lr(lr)
    low = check_dtype(compute_dtype, "compute_dtype")
    wide_params = net.check_params(master)
    high = wide_params[0][0].dtype
    if high.itemsize <= low.itemsize:
        raise ValueError(f"compute_dtype: {low} is not narrower than the master weights' {high}; "
                         "the master weights carry the precision the steps need")
    with np.errstate(over="ignore"):
        half = tuple((w.astype(low), b.astype(low)) for w, b in wide_params)
    xa, ta = as_array(x, "x"), as_array(target, "target")
    grads = net.value_and_grad(half, xa.astype(low), ta.astype(low))
    widened = tuple((dw.astype(high), db.astype(high)) for dw, db in grads.params)
    return step_pairs(wide_params, widened, lr), grads


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
    for k in range(n + 1):
        try:
            tape = net.forward(current, x, target)
            if k == n:
                break
            g = net.backward(tape)
        except ValueError as e:
            if k == 0:
                raise  # the caller's own params, x and target
            # the caller's params were fine: the steps taken with this lr made them overflow
            raise ValueError(f"lr: after {k} step(s) with lr={lr!r} the parameters no longer give a finite "
                             f"forward and backward pass ({e})") from e
        if k == 0:
            _check_trajectory_size(n, tape, g)
        tapes.append(tape)
        grads.append(g)
        current = sgd_step(current, g, lr_f)
        path.append(current)
    tapes.append(tape)
    return Trajectory(net, lr_f, tuple(path), tuple(t.loss for t in tapes), tuple(tapes), tuple(grads))


def _check_trajectory_size(steps: int, tape: Tape, grads: NetworkGradients) -> None:
    """A :class:`Trajectory` keeps the parameters, the tape and the gradients
    of every step: all of them together are held to the size limit of one
    result (:func:`reference_impl.max_elements`), so that a huge ``steps`` is
    an error at once, not hours of work and then a ``MemoryError``."""
    arrays = [*(a for rec in tape.layers for a in (rec.x, rec.W, rec.b, rec.z, rec.a)), tape.output, tape.target,
              grads.d_output, grads.dx, *(a for lg in grads.layers for a in (lg.dA, lg.dZ, lg.dW, lg.db))]
    per_step = sum(int(a.size) for a in arrays) + 1
    total = (steps + 1) * per_step
    if total > max_elements():
        raise ValueError(f"steps: a trajectory of {steps} steps keeps {total} elements ({per_step} per step: "
                         f"parameters, tape and gradients), more than the limit of {max_elements()} "
                         "(reference_impl.set_max_elements or REFERENCE_IMPL_MAX_ELEMENTS change it)")


for _fn in (sgd_step, master_weights_step, train):
    fill_citations(_fn)
