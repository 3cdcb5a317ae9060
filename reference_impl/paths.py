"""The sum-over-paths oracle (document 001): a third way to the gradients.

Document 001 follows a change ``dw`` forward: it changes the activation it
feeds, which changes every activation of the next layer, and so on to the
cost, so that::

    dC/dw = sum over every path w -> a_m -> a_n -> ... -> C of the product
            of the local derivatives da_m/dw . da_n/da_m . ... . dC/da

This module evaluates that sum literally: it enumerates every path from a
weight, a bias, an input or a pre-activation ``z`` to the cost, multiplies
the local derivatives along it, and adds the products up. The edges of a
path and their local derivatives, in document 001's order:

* ``w_ij -> z_j``: ``a_i`` (the weight's input); ``b_j -> z_j``: 1;
  ``x_i -> z_j``: ``w_ij``;
* ``z_j -> a_j``: ``act'(z_j)`` (relu: ``[z > 0]``; tanh: ``1 - tanh^2``;
  sigmoid: ``s (1 - s)``; identity: 1);
* ``a_j -> z_k`` of the next layer: ``w_jk``;
* the output couples the units: with a softmax output ``a_j -> p_m`` has
  local derivative ``p_m (delta_mj - p_j)`` for *every* output ``m``, and
  ``p_m -> C`` the cost's partial derivative (cross-entropy ``-y_m / p_m``,
  squared error ``c (p_m - y_m)``); without one, ``a_j -> C`` is the cost's
  partial derivative with respect to that output (for
  ``softmax_cross_entropy``, ``softmax(a)_j sum(y) - y_j``).

The forward values and local derivatives are computed here from their
formulas, not from the registry's rules, so the result is independent of
:mod:`reference_impl.networks` and :mod:`reference_impl.graph`. Every row
of a batch is its own copy of the graph; a parameter's gradient adds the
paths of every row.

The number of paths is the product of the widths after the parameter's
layer, so the work is exponential in depth: :func:`path_gradients` refuses a
network and batch whose sum has more than :data:`PATH_LIMIT` terms.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _validate
from .networks import MLP
from .sources import fill_citations

__all__ = ["PATH_LIMIT", "count_paths", "PathGradients", "path_gradients", "enumerate_paths"]

PATH_LIMIT = 200_000
"""Most terms (path products, one per row) :func:`path_gradients` will add up.
At this size the sum takes about a second; a 4-layer network of width 32
has about 10^8 paths per row."""


def _paths_per_unit(net: MLP) -> list[int]:
    """``P_l``: the number of paths from one pre-activation of layer ``l``
    (0-based) to the cost."""
    coupled = net.sizes[-1] if net.softmax else 1
    # Python ints: the count of a deep net exceeds int64 (2^64 paths at 66 layers of width 2)
    return [math.prod(net.sizes[l + 2:]) * coupled for l in range(net.depth)]


def count_paths(net: MLP, rows: int = 1) -> int:
    """Number of terms of the sum over paths for every ``dZ``, ``dW``, ``db``
    and ``dx`` of ``net`` on a batch of ``rows``: with ``m_l`` inputs,
    ``n_l`` units and ``P_l`` paths per unit in dense layer ``l``,
    ``rows * sum_l n_l (m_l + 2) P_l`` (``dZ``, then ``dW`` and ``db``)
    ``+ rows * m_1 n_1 P_1`` (``dx``), where ``P_l`` is the product of the
    widths after layer ``l``, times the output width with a softmax output."""
    if not isinstance(net, MLP):
        raise TypeError(f"net: expected an MLP, got {type(net).__name__}")
    if isinstance(rows, bool) or not isinstance(rows, (int, np.integer)):
        raise TypeError(f"rows: expected an int >= 1, got {type(rows).__name__} {rows!r}")
    if rows < 1:
        raise ValueError(f"rows: expected an int >= 1, got {rows!r}")
    p = _paths_per_unit(net)
    s = net.sizes
    total = sum(s[l + 1] * (s[l] + 2) * p[l] for l in range(net.depth)) + s[0] * s[1] * p[0]
    return int(rows) * int(total)


@dataclass(frozen=True)
class _Forward:
    """Forward values and local derivatives, each ``(rows, width)``."""

    dtype: np.dtype
    x: np.ndarray
    x_shape: tuple[int, ...]
    """The caller's ``x`` shape (``(inputs,)`` or ``(rows, inputs)``)."""
    weights: tuple[np.ndarray, ...]
    a: tuple[np.ndarray, ...]
    """Layer inputs: ``a[0] = x``, ``a[l]`` the input of layer ``l``."""
    slope: tuple[np.ndarray, ...]
    """``act'(z_l)`` per layer."""
    jacobian: np.ndarray | None
    """``dp_m/da_j`` as ``[row, j, m]`` with a softmax output, else None."""
    dcost: np.ndarray
    """``dC/dp_m`` (softmax output) or ``dC/da_m`` (none)."""
    loss: np.ndarray


def _sigmoid(z: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def _softmax(a: np.ndarray) -> np.ndarray:
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _forward(net: MLP, params: Any, x: Any, target: Any) -> _Forward:
    tape = net.forward(params, x, target)  # only to validate the arguments with the network's messages
    dtype = np.dtype(tape.loss.dtype)
    xs = np.atleast_2d(tape.x)
    t = np.atleast_2d(tape.target)
    rows = xs.shape[0]
    a = xs
    inputs, slopes, weights = [], [], []
    for rec, kind in zip(tape.layers, net.activations, strict=True):
        z = a @ rec.W + rec.b
        inputs.append(a)
        weights.append(rec.W)
        if kind == "relu":
            a = np.maximum(z, 0)
            slope = (z > 0).astype(dtype)
        elif kind == "tanh":
            a = np.tanh(z)
            slope = 1 - a * a
        elif kind == "sigmoid":
            a = _sigmoid(z)
            slope = a * (1 - a)
        else:
            a = z
            slope = np.ones_like(z)
        slopes.append(slope)
    scale = dtype.type(1.0 / rows if net.reduction == "mean" else 1.0)
    jac = None
    if net.softmax:
        p = _softmax(a)
        eye = np.eye(p.shape[-1], dtype=dtype)
        jac = p[:, None, :] * (eye[None, :, :] - p[:, :, None])
        out = p
    else:
        out = a
    if net.cost == "mse":
        c = {"mean": 2.0 / out.size, "sum": 2.0, "half_sum": 1.0}[net.reduction]
        d = out - t
        dcost = dtype.type(c) * d
        loss = (d * d).sum() * dtype.type({"mean": 1.0 / out.size, "sum": 1.0, "half_sum": 0.5}[net.reduction])
    elif net.cost == "cross_entropy":
        if np.any((out <= 0) & (t > 0)):
            where = tuple(int(i) for i in np.argwhere((out <= 0) & (t > 0))[0])
            raise ValueError(
                f"params, x, target: the softmax output underflows to 0 at {where} in {dtype} where the target is "
                "positive, so the local derivative -y / p of every path through it is not finite; the layer-wise "
                "backward (MLP.value_and_grad) evaluates the pair through the logits"
            )
        with np.errstate(divide="ignore", invalid="ignore"):  # y = 0: the term and its derivative are 0, any p
            dcost = np.where(t > 0, -scale * t / out, 0 * t)
            loss = -np.where(t > 0, t * np.log(out), 0 * t).sum() * scale
    else:
        s = _softmax(out)
        dcost = scale * (s * t.sum(axis=-1, keepdims=True) - t)
        m = out.max(axis=-1, keepdims=True)
        log_s = out - m - np.log(np.exp(out - m).sum(axis=-1, keepdims=True))
        loss = -(t * log_s).sum() * scale
    return _Forward(dtype, xs, tuple(tape.x.shape), tuple(weights), tuple(inputs), tuple(slopes), jac, dcost,
                    np.asarray(loss, dtype=dtype))


def _suffixes(net: MLP, fw: _Forward, layer: int, unit: int) -> Iterator[tuple[tuple[int, ...], np.ndarray]]:
    """Every path from ``z`` of ``unit`` in ``layer`` to the cost: the units
    it visits in each later layer (and the softmax output ``m``), and the
    product of its local derivatives (one value per row)."""
    later = [range(n) for n in net.sizes[layer + 2:]]
    if net.softmax:
        later.append(range(net.sizes[-1]))
    for units in itertools.product(*later):
        prod = fw.slope[layer][:, unit]
        prev = unit
        for q, k in enumerate(units[: net.depth - 1 - layer], start=layer + 1):
            prod = prod * fw.weights[q][prev, k] * fw.slope[q][:, k]
            prev = k
        if fw.jacobian is not None:
            m = units[-1]
            prod = prod * fw.jacobian[:, prev, m] * fw.dcost[:, m]
        else:
            prod = prod * fw.dcost[:, prev]
        yield (unit, *units), prod


def enumerate_paths(net: MLP, params: Any, x: Any, target: Any, layer: int, unit: int
                    ) -> Iterator[tuple[tuple[str, ...], np.ndarray]]:
    """Every path from the pre-activation ``z`` of ``unit`` in ``layer``
    (both 0-based) to the cost, as (node labels, product of local
    derivatives per row). ``sum`` of the products is ``dC/dz`` of that unit.
    Source: {001}."""
    if not isinstance(net, MLP):
        raise TypeError(f"net: expected an MLP, got {type(net).__name__}")
    layer = _validate.check_int(layer, "layer", minimum=0)  # NumPy ints too, as everywhere
    if layer >= net.depth:
        raise ValueError(f"layer: expected an int in [0, {net.depth}), got {layer!r}")
    width = net.sizes[layer + 1]
    unit = _validate.check_int(unit, "unit", minimum=0)
    if unit >= width:
        raise ValueError(f"unit: expected an int in [0, {width}) for layer {layer}, got {unit!r}")
    fw = _forward(net, params, x, target)
    for units, prod in _suffixes(net, fw, layer, unit):
        labels = []
        for q, k in enumerate(units[: net.depth - layer], start=layer):
            labels += [f"z{q}[{k}]", f"a{q}[{k}]"]
        if net.softmax:
            labels.append(f"p[{units[-1]}]")
        labels.append("C")
        yield tuple(labels), prod


@dataclass(frozen=True)
class PathGradients:
    """Gradients as sums over paths, with what their error model needs:
    per element the number of ``terms`` added and their ``magnitude``
    ``sum |term|``; ``factors`` is the most local derivatives in one term."""

    loss: np.ndarray
    dZ: tuple[np.ndarray, ...]
    dW: tuple[np.ndarray, ...]
    db: tuple[np.ndarray, ...]
    dx: np.ndarray
    terms: dict[str, Any]
    magnitude: dict[str, Any]
    factors: int
    paths: int
    """Total number of terms added."""


def path_gradients(net: MLP, params: Any, x: Any, target: Any) -> PathGradients:
    """Every ``dZ``, ``dW``, ``db`` and ``dx`` of ``net`` as document 001's
    explicit sum over paths of products of local derivatives:

    * ``dC/dz_j`` (per row) = sum over the paths from ``z_j``;
    * ``dC/dw_ij`` = sum over rows and over those paths of ``a_i`` times the
      path's product; ``dC/db_j`` the same with 1 in place of ``a_i``;
    * ``dC/dx_i`` (per row) = sum over ``j`` and the paths from ``z_j`` of
      the first layer of ``w_ij`` times the path's product.

    Refuses (``ValueError`` naming ``net``) a network and batch whose sum has
    more than :data:`PATH_LIMIT` terms (:func:`count_paths`). Source: {001}.
    """
    if not isinstance(net, MLP):
        raise TypeError(f"net: expected an MLP, got {type(net).__name__}")
    # refuse a network too deep or wide for even one row before any work
    total = count_paths(net, 1)
    rows = 1
    if total <= PATH_LIMIT:
        fw = _forward(net, params, x, target)
        rows = fw.x.shape[0]
        total = count_paths(net, rows)
    if total > PATH_LIMIT:
        raise ValueError(
            f"net: the sum over paths of {net} on {rows} row(s) has {total} terms, more than "
            f"PATH_LIMIT = {PATH_LIMIT}; the count is the product of the widths after each layer, so use "
            "fewer or narrower layers or fewer rows (the layer-wise backward has no such limit)"
        )
    dt = fw.dtype
    zero = dt.type(0)
    dZ, dW, db = [], [], []
    terms: dict[str, Any] = {"dZ": [], "dW": [], "db": []}
    mag: dict[str, Any] = {"dZ": [], "dW": [], "db": []}
    per_unit = _paths_per_unit(net)
    dx = np.zeros_like(fw.x)
    dx_mag = np.zeros(fw.x.shape)
    for l in range(net.depth):
        n_in, n_out = net.sizes[l], net.sizes[l + 1]
        a_in = fw.a[l]
        dz = np.zeros((rows, n_out), dtype=dt)
        dw = np.zeros((n_in, n_out), dtype=dt)
        dbl = np.zeros(n_out, dtype=dt)
        mz, mw, mb = np.zeros(dz.shape), np.zeros(dw.shape), np.zeros(dbl.shape)
        for j in range(n_out):
            for _, prod in _suffixes(net, fw, l, j):
                dz[:, j] += prod
                mz[:, j] += np.abs(prod)
                dbl[j] += prod.sum(dtype=dt)
                mb[j] += np.abs(prod).sum()
                for i in range(n_in):
                    term = a_in[:, i] * prod
                    dw[i, j] += term.sum(dtype=dt) if term.size else zero
                    mw[i, j] += np.abs(term).sum()
                    if l == 0:
                        xterm = fw.weights[0][i, j] * prod
                        dx[:, i] += xterm
                        dx_mag[:, i] += np.abs(xterm)
        dZ.append(dz)
        dW.append(dw)
        db.append(dbl)
        mag["dZ"].append(mz)
        mag["dW"].append(mw)
        mag["db"].append(mb)
        terms["dZ"].append(np.full(dz.shape, per_unit[l]))
        terms["dW"].append(np.full(dw.shape, rows * per_unit[l]))
        terms["db"].append(np.full(dbl.shape, rows * per_unit[l]))
    terms["dx"] = np.full(dx.shape, net.sizes[1] * per_unit[0])
    mag["dx"] = dx_mag
    shape = tuple(fw.x_shape[:-1])
    factors = 2 * net.depth + (2 if net.softmax else 1)

    def reshape(arr: np.ndarray) -> np.ndarray:
        return arr.reshape(shape + arr.shape[-1:])

    mag["dZ"] = [reshape(m) for m in mag["dZ"]]
    terms["dZ"] = [reshape(t) for t in terms["dZ"]]
    mag["dx"], terms["dx"] = reshape(mag["dx"]), reshape(terms["dx"])
    for name, values in (("loss", [fw.loss]), ("dZ", dZ), ("dW", dW), ("db", db), ("dx", [dx])):
        for arr in values:
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"params, x, target: the sum over paths for {name} overflows {dt} (a path product "
                                 "or a partial sum beyond the dtype's range); scale x or the weights down")
    return PathGradients(fw.loss, tuple(reshape(d) for d in dZ), tuple(dW), tuple(db), reshape(dx),
                         terms, mag, factors, total)


for _fn in (enumerate_paths, path_gradients):
    fill_citations(_fn)
