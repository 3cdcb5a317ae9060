"""The error model of whole computations: networks, gradient-descent
trajectories, the sum-over-paths oracle and the chain-rule composite of
document 002.

The per-op acceptance rule (:mod:`reference_impl.accuracy.ops`) gives each op's
own rounding; this module carries those errors through a network, first
order, on absolute values: an error already in an op's inputs reaches its
output multiplied by ``|derivative|``, and each op adds its own bound. Two
implementations are compared with ``IMPLEMENTATIONS`` times one
implementation's bound.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .acceptance import tiny as tiny_of
from .ops import (
    IMPLEMENTATIONS,
    Bound,
    _reduction_scale,
    _sigmoid64,
    _softmax_terms,
    forward_bound,
    unit_roundoff,
    vjp_bound,
)


def _own_forward(op: str, args: Sequence[np.ndarray], dtype: np.dtype,
                 params: Mapping[str, Any] | None = None) -> np.ndarray:
    """One implementation's own error for one op's forward: its
    :func:`forward_bound`, ``Bound.tolerance / IMPLEMENTATIONS``."""
    return forward_bound(op, args, params).tolerance(dtype)


def _own_vjp(op: str, cotangent: np.ndarray, args: Sequence[np.ndarray], dtype: np.dtype,
             params: Mapping[str, Any] | None = None) -> list[np.ndarray]:
    """One implementation's own error for each gradient of one op's VJP."""
    return [b.tolerance(dtype) for b in vjp_bound(op, cotangent, args, params)]


def _act_forward_error(kind: str, x: np.ndarray, y: np.ndarray, e_x: np.ndarray, dtype: Any) -> np.ndarray:
    """Error of ``y = act(x)`` given an error ``e_x`` in ``x``: ``|act'| e_x``
    plus the op's own rounding. relu is 1-Lipschitz and exact, so its output
    error is ``e_x`` wherever ``x`` may be positive and 0 where it cannot be."""
    if kind == "identity":
        return e_x
    own = _own_forward(kind, [x], dtype)
    if kind == "relu":
        return np.where(x > -IMPLEMENTATIONS * e_x, e_x, 0.0) + own
    slope = 1 - y * y if kind == "tanh" else y * (1 - y)
    return np.abs(slope) * e_x + own


def _act_backward_error(kind: str, g: np.ndarray, e_g: np.ndarray, x: np.ndarray, y: np.ndarray,
                        e_x: np.ndarray, e_y: np.ndarray, dtype: Any) -> np.ndarray:
    """Error of ``dx = g * act'(x)`` (the rule reads ``act'`` from the output
    ``y``): ``|act'| e_g + |g| |d act'/dy| e_y`` plus the rule's own rounding.
    relu's ``act'`` is a step: where ``|x|`` is within the two implementations'
    combined forward error of 0, either side may take either branch, and the
    gradient there is determined only up to ``|g| + e_g``."""
    if kind == "identity":
        return e_g
    own = _own_vjp(kind, g, [x], dtype)[0]
    if kind == "relu":
        ambiguous = np.abs(x) <= IMPLEMENTATIONS * e_x
        return np.where(x > 0, e_g, 0.0) + np.where(ambiguous, np.abs(g) + e_g, 0.0) + own
    if kind == "tanh":
        slope, curvature = 1 - y * y, 2 * np.abs(y)
    else:
        slope, curvature = y * (1 - y), np.abs(1 - 2 * y)
    return np.abs(slope) * e_g + np.abs(g) * curvature * e_y + own


def _softmax_forward_error(x: np.ndarray, s: np.ndarray, e_x: np.ndarray, dtype: Any) -> np.ndarray:
    """``|J| e_x`` with ``|J_ij| = s_i |delta_ij - s_j|``, bounded by
    ``s (e_x + sum s e_x)``, plus softmax's own (relative) rounding."""
    return s * (e_x + (s * e_x).sum(axis=-1, keepdims=True)) + _own_forward("softmax", [x], dtype)


def _softmax_backward_error(g: np.ndarray, e_g: np.ndarray, x: np.ndarray, s: np.ndarray, e_s: np.ndarray,
                            dtype: Any) -> np.ndarray:
    """Error of ``dx = s (g - <g, s>)`` with errors ``e_g`` in ``g`` and
    ``e_s`` in the forward output ``s`` the rule reuses."""
    gs = (g * s).sum(axis=-1, keepdims=True)
    return (
        s * (e_g + (s * e_g).sum(axis=-1, keepdims=True))
        + np.abs(g - gs) * e_s
        + s * (np.abs(g) * e_s).sum(axis=-1, keepdims=True)
        + _own_vjp("softmax", g, [x], dtype)[0]
    )


def _cost_errors(cost: str, out: np.ndarray, t: np.ndarray, reduction: str, e_out: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """An error ``e_out`` in the cost's input, carried into the loss
    (``sum |dC/d out| e_out``) and into the cost's gradient
    (``|d^2 C / d out^2| e_out``).

    The squared error keeps its second-order term: ``(d + e)^2 - d^2 =
    2 d e + e^2`` with ``|d|`` at most the computed residual plus ``e``, so
    ``2 |d| e + 3 e^2``; where the residual vanishes (a fitted target) the
    second-order term is all there is."""
    if cost == "mse":
        c = {"mean": 2.0 / out.size, "sum": 2.0, "half_sum": 1.0}[reduction]
        return (c * (np.abs(out - t) * e_out + 1.5 * e_out * e_out)).sum(), c * e_out
    scale = _reduction_scale(out, reduction)
    if cost == "cross_entropy":
        # a class with t = 0 is absent from C = -sum t log(out) and from its derivatives: its terms are 0,
        # also where out * out underflows (0 / 0 would make the bound NaN, and a NaN tolerance fails anything)
        shape = np.broadcast(t, out).shape
        ratio = np.divide(np.abs(t), out, out=np.zeros(shape), where=(t != 0))
        curvature = np.divide(ratio, out, out=np.zeros(shape), where=(t != 0))
        return (scale * ratio * e_out).sum(), scale * curvature * e_out
    # softmax_cross_entropy: dC/dz = scale (softmax(z) sum(t) - t), whose
    # derivative is scale sum(t) times the softmax Jacobian.
    s, _ = _softmax_terms(out)
    mass = np.abs(t).sum(axis=-1, keepdims=True)
    to_loss = (scale * (s * mass + np.abs(t)) * e_out).sum()
    return to_loss, scale * mass * s * (e_out + (s * e_out).sum(axis=-1, keepdims=True))


@dataclass(frozen=True)
class NetworkBound:
    """Per-implementation absolute error bounds of every value a network
    computes (see :func:`network_bound`); ``tolerance`` turns one into the
    budget of a comparison between two implementations."""

    dtype: np.dtype
    z: tuple[np.ndarray, ...]
    a: tuple[np.ndarray, ...]
    output: np.ndarray
    loss: np.ndarray
    d_output: np.ndarray | None
    dA: tuple[np.ndarray, ...] | None
    dZ: tuple[np.ndarray, ...] | None
    dW: tuple[np.ndarray, ...] | None
    db: tuple[np.ndarray, ...] | None
    dx: np.ndarray | None
    model: str = "network first-order bound: per-op bounds carried through |W|, |act'|, |softmax Jacobian|"

    def error(self, quantity: str, layer: int | None = None) -> np.ndarray:
        """One implementation's bound for ``quantity`` (a field name), at
        ``layer`` (0-based) for the per-layer fields."""
        value = getattr(self, quantity)
        if value is None:
            raise ValueError(f"quantity: {quantity!r} was not bounded (network_bound was given no gradients)")
        if isinstance(value, tuple):
            if layer is None:
                raise ValueError(f"layer: {quantity!r} is per layer; pass a layer index")
            value = value[layer]
        return _saturated(value)

    def tolerance(self, quantity: str, layer: int | None = None) -> np.ndarray:
        """Budget for ``|ours - theirs|``: ``IMPLEMENTATIONS`` times the bound
        (capped as in :meth:`error`)."""
        with np.errstate(over="ignore"):
            return _saturated(IMPLEMENTATIONS * self.error(quantity, layer))


def _saturated(value: Any) -> np.ndarray:
    """A bound beyond float64's range -- the squared error ``e^2`` of a
    cost whose input is near the dtype's largest value, a product of such
    errors -- capped at float64's largest value. Such a bound says the
    computed value is not determined by the inputs to within any
    representable margin; the cap keeps the tolerance finite so that a
    comparison (a NaN, an inf where the truth is finite) can still fail."""
    with np.errstate(over="ignore", invalid="ignore"):
        v = np.asarray(value, dtype=np.float64)
    return np.nan_to_num(v, nan=_F64_MAX, posinf=_F64_MAX)


_F64_MAX = float(np.finfo(np.float64).max)


def network_bound(tape: Any, grads: Any = None, *,
                  param_errors: Sequence[tuple[np.ndarray, np.ndarray]] | None = None) -> NetworkBound:
    """First-order error bound of a network's forward and backward pass.

    Model: every op contributes its own rounding (``forward_bound`` /
    ``vjp_bound``: ``k u M``), and an error ``e`` already present in an op's
    inputs reaches its output multiplied by the absolute value of the op's
    derivative -- ``e_z = e_a @ |W| + |a| @ e_W + e_b`` for a dense layer,
    ``|act'(z)| e_z`` for an activation, ``|J_softmax| e`` for the softmax,
    ``|dC/d output| e`` for the cost -- i.e. the network run on absolute
    values. The backward pass is bounded the same way, each VJP rule being a
    function of the cotangent *and* of the forward values it reads (``dZ``
    from ``dA`` and ``a``; ``dW = a^T dZ`` from ``a`` and ``dZ``;
    ``dA_prev = dZ W^T``). The bilinear ops keep their products of two
    errors (``(|a| + e_a)(|W| + e_W) - |a||W|``) and the squared error its
    ``e^2``; the smooth activations' second-order terms are dropped, being
    far below their own rounding. At a relu kink -- ``|z|`` within the
    combined forward error of 0 -- the two sides may take different branches
    and the gradient there is bounded by ``|dA|`` itself.

    ``tape`` is :class:`reference_impl.networks.Tape` (magnitudes are taken
    from the reference's own values, in float64); ``grads`` the
    :class:`~reference_impl.networks.NetworkGradients` of that tape (or
    ``None`` to bound the forward pass only). ``param_errors``: per-layer
    ``(e_W, e_b)`` already in the parameters (used for gradient-descent
    trajectories), zero by default; the input ``x`` is exact. A bound beyond
    float64's range is capped when read (:meth:`NetworkBound.error`).
    """
    with np.errstate(over="ignore", invalid="ignore"):  # capped when read
        return _network_bound(tape, grads, param_errors)


def _network_bound(tape: Any, grads: Any, param_errors: Sequence[tuple[np.ndarray, np.ndarray]] | None
                   ) -> NetworkBound:
    net = tape.net
    dtype = np.dtype(tape.loss.dtype)
    layers = tape.layers
    def f(arr: Any) -> np.ndarray:
        return np.asarray(arr, dtype=np.float64)

    if param_errors is None:
        perr = [(np.zeros(r.W.shape), np.zeros(r.b.shape)) for r in layers]
    else:
        if len(param_errors) != len(layers):
            raise ValueError(f"param_errors: {len(param_errors)} pair(s) for {len(layers)} layer(s)")
        perr = [(f(ew), f(eb)) for ew, eb in param_errors]

    # forward
    e_in = np.zeros(f(tape.x).shape)
    e_inputs, ez, ea = [], [], []
    for rec, act, (ew, eb) in zip(layers, net.activations, perr, strict=True):
        x, w, b, z, a = f(rec.x), f(rec.W), f(rec.b), f(rec.z), f(rec.a)
        e_z = e_in @ (np.abs(w) + ew) + np.abs(x) @ ew + eb + _own_forward("dense", [x, w, b], dtype)
        e_a = _act_forward_error(act, z, a, e_z, dtype)
        e_inputs.append(e_in)
        ez.append(e_z)
        ea.append(e_a)
        e_in = e_a
    a_last, out, t = f(layers[-1].a), f(tape.output), f(tape.target)
    params = {"reduction": net.reduction}
    own_cost = _own_forward(net.cost, [out, t], dtype, params)
    # softmax then cross-entropy on its probabilities: the pair is the smooth
    # function a -> C(softmax(a)) with gradient scale (s sum(t) - t), so an
    # error already in a_L is carried by that gradient -- through the two ops
    # separately it would be |t| / s^2 times s, unbounded as s -> 0. What the
    # pair adds itself (softmax's rounding, then the cost's) goes through the
    # ops separately, as they are evaluated.
    fused = net.softmax and net.cost == "cross_entropy"
    if fused:
        own_out = _own_forward("softmax", [a_last], dtype)
        e_out = _softmax_forward_error(a_last, out, ea[-1], dtype)
        scale = _reduction_scale(out, net.reduction)
        mass = np.abs(t).sum(axis=-1, keepdims=True)
        through_pair = scale * (out * mass + np.abs(t))
        own_to_loss, own_to_grad = _cost_errors(net.cost, out, t, net.reduction, own_out)
        e_loss = (through_pair * ea[-1]).sum() + own_to_loss + own_cost
    else:
        e_out = _softmax_forward_error(a_last, out, ea[-1], dtype) if net.softmax else ea[-1]
        to_loss, to_grad = _cost_errors(net.cost, out, t, net.reduction, e_out)
        e_loss = to_loss + own_cost
    if grads is None:
        return NetworkBound(dtype, tuple(ez), tuple(ea), e_out, np.asarray(e_loss), None, None, None, None, None, None)

    # backward
    one = np.ones(())
    d_out = f(grads.d_output)
    own_dout = _own_vjp(net.cost, one, [out, t], dtype, params)[0]
    if fused:
        e_dout = _cost_errors(net.cost, out, t, net.reduction, e_out)[1] + own_dout
        e_pair = scale * mass * out * (ea[-1] + (out * ea[-1]).sum(axis=-1, keepdims=True))
        e_g = e_pair + _softmax_backward_error(d_out, own_to_grad + own_dout, a_last, out, own_out, dtype)
    else:
        e_dout = to_grad + own_dout
        e_g = _softmax_backward_error(d_out, e_dout, a_last, out, e_out, dtype) if net.softmax else e_dout
    n = len(layers)
    e_dA: list[np.ndarray] = [np.empty(0)] * n
    e_dZ, e_dW, e_db = list(e_dA), list(e_dA), list(e_dA)
    for l in range(n - 1, -1, -1):
        rec, lg, (ew, _) = layers[l], grads.layers[l], perr[l]
        x, w, b, z, a = f(rec.x), f(rec.W), f(rec.b), f(rec.z), f(rec.a)
        da, dz = f(lg.dA), f(lg.dZ)
        e_dA[l] = e_g
        e_dZ[l] = _act_backward_error(net.activations[l], da, e_g, z, a, ez[l], ea[l], dtype)
        own_dx, own_dw, own_db = _own_vjp("dense", dz, [x, w, b], dtype)
        dz2, edz2 = dz.reshape(-1, dz.shape[-1]), e_dZ[l].reshape(-1, dz.shape[-1])
        x2, ex2 = np.abs(x).reshape(-1, x.shape[-1]), e_inputs[l].reshape(-1, x.shape[-1])
        e_dW[l] = (x2 + ex2).T @ edz2 + ex2.T @ np.abs(dz2) + own_dw
        e_db[l] = edz2.sum(axis=0) + own_db
        e_g = e_dZ[l] @ (np.abs(w) + ew).T + np.abs(dz) @ ew.T + own_dx
    return NetworkBound(dtype, tuple(ez), tuple(ea), e_out, np.asarray(e_loss), e_dout, tuple(e_dA), tuple(e_dZ),
                        tuple(e_dW), tuple(e_db), e_g)


TRAJECTORY_MODEL_LIMIT = 1e-2
"""The first-order trajectory model holds while, in every layer, the bound
on the parameters' deviation stays below this fraction of the parameters'
largest magnitude. The terms it drops are of relative size
``Delta / |w|``; past a percent the linearisation no longer describes the
run, and where gradient descent is unstable (a step beyond the curvature's
limit, relu units switching from step to step) two correct implementations
may part for good. :func:`trajectory_bound` stops there."""


@dataclass(frozen=True)
class TrajectoryBound:
    """Per-implementation bounds along a gradient-descent run:
    ``params[n]`` holds ``(e_W, e_b)`` per layer after ``n`` steps,
    ``losses[n]`` the bound of the loss at step ``n``, for
    ``n <= valid_steps``; later entries are ``inf`` (the model no longer
    holds, see :data:`TRAJECTORY_MODEL_LIMIT`)."""

    dtype: np.dtype
    params: tuple[tuple[tuple[np.ndarray, np.ndarray], ...], ...]
    losses: tuple[np.ndarray, ...]
    valid_steps: int
    model: str = "gradient descent: Delta_(n+1) = Delta_n + lr e_grad(Delta_n) + u (2 |lr g| + |w_(n+1)|)"

    def tolerance(self, step: int, layer: int, part: str) -> np.ndarray:
        """Budget for ``|ours - theirs|`` of ``W`` or ``b`` (``part``) after ``step`` steps."""
        return IMPLEMENTATIONS * self.params[step][layer][{"W": 0, "b": 1}[part]]


def trajectory_bound(trajectory: Any, x: Any = None, target: Any = None) -> TrajectoryBound:
    """Error bound of each step of :func:`reference_impl.optim.train`.

    Model: each implementation's parameters deviate from the exact
    trajectory by ``Delta_n`` (``Delta_0 = 0``: the same initial weights).
    Step ``n + 1`` computes ``w - lr g(w)`` from parameters that are already
    off by ``Delta_n``, so its gradient error is :func:`network_bound` with
    ``param_errors = Delta_n`` (the deviation carried forward and backward
    through the network, plus that step's roundings), and::

        Delta_(n+1) = Delta_n + lr e_g + u (2 |lr g| + |w_(n+1)|) + 2 tiny

    -- the product ``lr g`` is rounded once, and ``lr`` itself once more
    because an implementation may or may not round ``lr`` to the parameters'
    dtype first; the subtraction is rounded once. The loss at step ``n`` is
    bounded by ``network_bound`` with ``Delta_n``. Errors grow with the
    steps at the rate the network's sensitivity dictates; nothing is reset.
    The bound is given for the steps ``0 .. valid_steps`` over which the
    model holds (:data:`TRAJECTORY_MODEL_LIMIT`); later steps get ``inf``.

    ``trajectory``: a :class:`reference_impl.optim.Trajectory` (its tapes
    hold every forward pass). ``x``, ``target``: optional; when given they
    must be the data the trajectory was trained on.
    """
    for name, given, recorded in (("x", x, trajectory.tapes[0].x), ("target", target, trajectory.tapes[0].target)):
        if given is not None and not np.array_equal(np.asarray(given), recorded):
            raise ValueError(f"{name}: differs from the data the trajectory was trained on")
    lr = float(trajectory.lr)
    dtype = np.dtype(trajectory.losses[0].dtype)
    u, tiny = unit_roundoff(dtype), tiny_of(dtype)
    delta = tuple((np.zeros(w.shape), np.zeros(b.shape)) for w, b in trajectory.params[0])
    deltas, losses = [delta], []
    steps = len(trajectory.gradients)
    valid = steps
    for step, grads in enumerate(trajectory.gradients):
        nb = network_bound(trajectory.tapes[step], grads, param_errors=delta)
        assert nb.dW is not None and nb.db is not None  # bounded: gradients were given
        losses.append(nb.loss)
        new = []
        for l, ((ew, eb), (w1, b1), (dw, db)) in enumerate(
            zip(delta, trajectory.params[step + 1], grads.params, strict=True)
        ):
            parts = []
            for e, p1, g, eg in ((ew, w1, dw, nb.dW[l]), (eb, b1, db, nb.db[l])):
                g64, p64 = np.asarray(g, np.float64), np.asarray(p1, np.float64)
                parts.append(e + lr * eg + u * (2 * lr * np.abs(g64) + np.abs(p64)) + 2 * tiny)
            new.append((parts[0], parts[1]))
        delta = tuple(new)
        deltas.append(delta)
        scale = [max(float(np.abs(w).max()), float(np.abs(b).max())) for w, b in trajectory.params[step + 1]]
        if any(max(float(ew.max()), float(eb.max())) > TRAJECTORY_MODEL_LIMIT * sc
               for (ew, eb), sc in zip(delta, scale, strict=True)):
            valid = step  # the deviation after this step is past the model's reach
            break
    if valid == steps:
        losses.append(network_bound(trajectory.tapes[-1], None, param_errors=delta).loss)
    else:
        inf = tuple((np.full(w.shape, np.inf), np.full(b.shape, np.inf)) for w, b in trajectory.params[0])
        deltas = deltas[: valid + 1] + [inf] * (steps - valid)
        losses = losses[: valid + 1] + [np.asarray(np.inf)] * (steps - valid)
    return TrajectoryBound(dtype, tuple(deltas), tuple(losses), valid)


def path_sum_bound(terms: np.ndarray, factors: int, magnitude: np.ndarray) -> Bound:
    """Own rounding of a sum over paths: ``terms`` products of ``factors``
    local derivatives each, summed: ``gamma_(terms + factors) sum |product|``
    (Higham's bound for a sum of products). The errors of the factors
    themselves -- the forward values and local derivatives, which the path
    sum computes as the layer-wise pass does -- are those of
    :func:`network_bound`; a comparison with the layer-wise backward allows
    both."""
    t = np.asarray(terms, dtype=np.float64)
    return Bound(t + factors, np.asarray(magnitude, dtype=np.float64),
                 f"sum over paths: gamma_(terms + {factors}) sum |product of local derivatives|")


def activation_chain_bound(x: Any, cotangent: Any, activations: Sequence[str], softmax: bool
                           ) -> tuple[np.ndarray, np.ndarray]:
    """(forward, VJP) per-implementation bounds of
    ``softmax?(act_n(... act_1(x)))`` -- document 002's
    ``p(X) = softmax(tanh(relu(X)))`` -- by the same first-order model as
    :func:`network_bound`, with no dense layers: the input is exact, each
    stage adds its rounding to the error it receives times ``|stage'|``."""
    xs = np.asarray(x)
    dtype = xs.dtype
    values = [np.asarray(xs, dtype=np.float64)]
    for kind in activations:
        values.append(_FORWARD_ACT[kind](values[-1]))
    errors = [np.zeros(values[0].shape)]
    for i, kind in enumerate(activations):
        errors.append(_act_forward_error(kind, values[i], values[i + 1], errors[i], dtype))
    e_out = errors[-1]
    g = np.asarray(cotangent, dtype=np.float64)
    e_g = np.zeros(g.shape)
    if softmax:
        s, _ = _softmax_terms(values[-1])
        e_s = _softmax_forward_error(values[-1], s, errors[-1], dtype)
        e_out = e_s
        gs = (g * s).sum(axis=-1, keepdims=True)
        e_g = _softmax_backward_error(g, e_g, values[-1], s, e_s, dtype)
        g = s * (g - gs)
    for i in range(len(activations) - 1, -1, -1):
        kind, xin, yout = activations[i], values[i], values[i + 1]
        e_g = _act_backward_error(kind, g, e_g, xin, yout, errors[i], errors[i + 1], dtype)
        g = g * _SLOPE_ACT[kind](xin, yout)
    return e_out, e_g


_FORWARD_ACT: Mapping[str, Callable[[np.ndarray], np.ndarray]] = {
    "relu": lambda x: np.maximum(x, 0.0),
    "tanh": np.tanh,
    "sigmoid": _sigmoid64,
    "identity": lambda x: x,
}

_SLOPE_ACT: Mapping[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "relu": lambda x, y: (x > 0).astype(np.float64),
    "tanh": lambda x, y: 1 - y * y,
    "sigmoid": lambda x, y: y * (1 - y),
    "identity": lambda x, y: np.ones_like(x),
}


__all__ = [
    "NetworkBound",
    "network_bound",
    "TrajectoryBound",
    "trajectory_bound",
    "TRAJECTORY_MODEL_LIMIT",
    "path_sum_bound",
    "activation_chain_bound",
]
