"""Every primitive of the documents: forward and VJP side by side, registered.

Each op is a forward ``f(*inputs, **params)`` and a VJP rule that receives the
upstream cotangent, the forward's own output (``ans``, reused where the rule
allows, as in ``tanh' = 1 - ans**2``) and the inputs, and returns one gradient
per input, each with that input's shape and dtype.

Conventions (also in the README):

* Dense layers are ``x @ W + b`` with ``W`` laid out ``(inputs, outputs)`` --
  "3 rows, 4 columns = 3 inputs, 4 nodes" (document 002). PyTorch's
  ``nn.Linear`` stores the transpose.
* ``relu'(0) = 0`` at both ``0.0`` and ``-0.0``, as ``torch.relu`` and
  ``jax.nn.relu``.
* Softmax and the classification losses act on the last axis; every leading
  axis is a batch axis ("row").
* ``reduction="mean"`` has PyTorch's meaning: the classification losses
  average over rows, ``mse`` over every element.
* Inputs are float32 or float64, finite, and share one dtype; outputs and
  gradients keep it.

How to add an op: write ``_<name>`` (forward) and ``_<name>_vjp`` (rule) next
to each other below, describe its inputs with a ``_check_<name>`` and add one
``_register(...)`` line; then add one row to ``frameworks/recipes.py`` and an
error model to ``tolerances.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from ._validate import (
    as_array,
    check_choice,
    check_class_axis,
    check_cotangent,
    check_distribution,
    check_same_dtype,
)

__all__ = ["Domain", "Op", "OPS", "unbroadcast"]

Arrays = tuple[np.ndarray, ...]
Params = dict[str, Any]


@dataclass(frozen=True)
class Domain:
    """Which inputs an op accepts, declared for input generators
    (``reference_impl.strategies``); the ``check`` functions enforce it.

    ``shapes`` is one of ``elementwise`` (any shape), ``broadcast_pair``,
    ``matmul``, ``dense``, ``rows`` (last axis = classes), ``row_pairs`` (two
    arrays of one shape, classes last) or ``same_pair``. ``values`` gives one
    kind per input: ``real``, ``kinked`` (real with exact zeros, for relu),
    ``logits``, ``distribution`` or ``positive_distribution``.
    """

    shapes: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Op:
    """A registered primitive.

    ``forward`` and ``vjp`` validate their arguments; ``vjp_from_output`` is
    the bare rule for callers (the networks) that already hold validated
    inputs and the forward output.
    """

    name: str
    arg_names: tuple[str, ...]
    """Positional inputs, in order; the VJP returns one gradient per name."""
    params: Mapping[str, tuple[str, ...]]
    """Keyword parameters and their allowed values; the first is the default."""
    impl: Callable[..., np.ndarray] = field(repr=False)
    rule: Callable[..., Arrays] = field(repr=False)
    check: Callable[[Arrays, Params], None] = field(repr=False)
    formula: str
    """Forward and VJP formulas, one line each."""
    sources: tuple[str, ...]
    """Keys into ``reference_impl.sources.SOURCES``."""
    domain: Domain

    def _prepare(self, inputs: tuple[Any, ...], params: Params) -> tuple[Arrays, Params]:
        if len(inputs) != len(self.arg_names):
            raise TypeError(
                f"{self.name}: expected {len(self.arg_names)} input(s) {list(self.arg_names)}, got {len(inputs)}"
            )
        unknown = set(params) - set(self.params)
        if unknown:
            raise TypeError(
                f"{self.name}: unexpected parameter(s) {sorted(unknown)}; accepted: {sorted(self.params)}"
            )
        full = {k: v[0] for k, v in self.params.items()}
        for k, v in params.items():
            full[k] = check_choice(v, k, self.params[k])
        arrays = tuple(as_array(x, n) for x, n in zip(inputs, self.arg_names))
        if len(arrays) > 1:
            check_same_dtype(**dict(zip(self.arg_names, arrays)))
        self.check(arrays, full)
        return arrays, full

    def forward(self, *inputs: Any, **params: Any) -> np.ndarray:
        arrays, full = self._prepare(inputs, params)
        return self.impl(*arrays, **full)

    def vjp(self, cotangent: Any, *inputs: Any, **params: Any) -> Arrays:
        arrays, full = self._prepare(inputs, params)
        ans = self.impl(*arrays, **full)
        g = check_cotangent(cotangent, ans.shape, ans.dtype)
        return self.rule(g, ans, *arrays, **full)

    def vjp_from_output(self, cotangent: np.ndarray, ans: np.ndarray, *inputs: np.ndarray, **params: Any) -> Arrays:
        full = {k: v[0] for k, v in self.params.items()}
        full.update(params)
        return self.rule(cotangent, ans, *inputs, **full)


_REGISTRY: dict[str, Op] = {}
OPS: Mapping[str, Op] = MappingProxyType(_REGISTRY)
"""Read-only mapping from op name to :class:`Op`."""


def _register(name: str, arg_names: tuple[str, ...], impl: Callable[..., np.ndarray], rule: Callable[..., Arrays],
              check: Callable[[Arrays, Params], None], formula: str, sources: tuple[str, ...],
              domain: Domain, params: Mapping[str, tuple[str, ...]] | None = None) -> Op:
    op = Op(name, arg_names, MappingProxyType(dict(params or {})), impl, rule, check, formula, sources, domain)
    _REGISTRY[name] = op
    return op


# --------------------------------------------------------------------------- helpers


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` over the axes that broadcasting added or stretched, so the
    result has ``shape``: the adjoint of ``np.broadcast_to(x, grad.shape)``."""
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad.reshape(shape)


def _no_check(arrays: Arrays, params: Params) -> None:
    return None


def _check_broadcast(arrays: Arrays, params: Params) -> None:
    a, b = arrays
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"a, b: shapes {a.shape} and {b.shape} do not broadcast together") from None


def _rows(x: np.ndarray) -> int:
    """Number of rows: the product of every axis but the last (1 for 1-D)."""
    return int(np.prod(x.shape[:-1], dtype=np.int64))


# --------------------------------------------------------------------------- add (002, 004)


def _add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a + b`` with NumPy broadcasting (the add gate of document 004)."""
    return np.add(a, b)


def _add_vjp(g: np.ndarray, ans: np.ndarray, a: np.ndarray, b: np.ndarray) -> Arrays:
    """Local gradient 1 for both inputs -- the add gate is a *distributor*
    (004): ``da = unbroadcast(g)``, ``db = unbroadcast(g)``."""
    return unbroadcast(g, a.shape), unbroadcast(g, b.shape)


_register("add", ("a", "b"), _add, _add_vjp, _check_broadcast,
          "a + b | da = sum_broadcast(g), db = sum_broadcast(g)", ("004", "002"),
          Domain("broadcast_pair", ("real", "real")))


# --------------------------------------------------------------------------- multiply (002, 004)


def _multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise ``a * b`` with broadcasting (the multiply gate of 004)."""
    return np.multiply(a, b)


def _multiply_vjp(g: np.ndarray, ans: np.ndarray, a: np.ndarray, b: np.ndarray) -> Arrays:
    """Each input's local gradient is the *other* input -- the multiply gate
    is a *switch* (004): ``da = unbroadcast(g * b)``, ``db = unbroadcast(g * a)``."""
    return unbroadcast(g * b, a.shape), unbroadcast(g * a, b.shape)


_register("multiply", ("a", "b"), _multiply, _multiply_vjp, _check_broadcast,
          "a * b | da = sum_broadcast(g * b), db = sum_broadcast(g * a)", ("004", "002"),
          Domain("broadcast_pair", ("real", "real")))


# --------------------------------------------------------------------------- matmul (002, 004)


def _check_matmul(arrays: Arrays, params: Params) -> None:
    a, b = arrays
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"a, b: matmul needs at least 1 dimension each, got shapes {a.shape} and {b.shape}")
    ka = a.shape[-1]
    kb = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if ka != kb:
        raise ValueError(
            f"a, b: inner dimensions differ: a's last axis has {ka}, b's "
            f"{'only' if b.ndim == 1 else 'second-to-last'} axis has {kb} (shapes {a.shape} @ {b.shape})"
        )
    try:
        np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(f"a, b: batch axes {a.shape[:-2]} and {b.shape[:-2]} do not broadcast") from None


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` with ``np.matmul`` semantics (1-D operands promoted, batch
    axes broadcast). Document 002 writes each layer as such a product."""
    return np.asarray(np.matmul(a, b))


def _matmul_vjp(g: np.ndarray, ans: np.ndarray, a: np.ndarray, b: np.ndarray) -> Arrays:
    """``da = g @ b^T``, ``db = a^T @ g`` (transposes of the last two axes),
    reduced over broadcast batch axes; 1-D operands are promoted to matrices
    and the promoted axis removed again."""
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    g2 = g
    if a.ndim == 1 and b.ndim == 1:
        g2 = g.reshape(1, 1)
    elif a.ndim == 1:
        g2 = np.expand_dims(g, -2)
    elif b.ndim == 1:
        g2 = np.expand_dims(g, -1)
    da = unbroadcast(np.matmul(g2, np.swapaxes(b2, -1, -2)), a2.shape).reshape(a.shape)
    db = unbroadcast(np.matmul(np.swapaxes(a2, -1, -2), g2), b2.shape).reshape(b.shape)
    return da, db


_register("matmul", ("a", "b"), _matmul, _matmul_vjp, _check_matmul,
          "a @ b | da = g @ b^T, db = a^T @ g", ("002", "004"),
          Domain("matmul", ("real", "real")))


# --------------------------------------------------------------------------- dense (002, 004)


def _check_dense(arrays: Arrays, params: Params) -> None:
    x, w, b = arrays
    if x.ndim < 1:
        raise ValueError(f"x: expected at least 1 dimension (features last), got shape {x.shape}")
    if w.ndim != 2:
        raise ValueError(f"W: expected a 2-D (inputs, outputs) matrix, got shape {w.shape}")
    if b.ndim != 1:
        raise ValueError(f"b: expected a 1-D bias of length outputs, got shape {b.shape}")
    if x.shape[-1] != w.shape[0]:
        raise ValueError(
            f"W: has {w.shape[0]} rows (inputs) but x has {x.shape[-1]} features; "
            "W is laid out (inputs, outputs) -- a torch.nn.Linear weight must be transposed"
        )
    if b.shape[0] != w.shape[1]:
        raise ValueError(f"b: has {b.shape[0]} entries but W has {w.shape[1]} columns (outputs)")


def _dense(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``x @ W + b``, ``W`` of shape ``(inputs, outputs)`` as in document 002
    (``o_input = k_output * wko + bo``)."""
    return np.asarray(np.matmul(x, w) + b)


def _dense_vjp(g: np.ndarray, ans: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> Arrays:
    """``dx = g @ W^T``; ``dW = x^T @ g`` and ``db = sum(g)`` summed over every
    batch row (document 002: ``dJ/dwko = k_output^T . dJ/do_input``)."""
    xf = x.reshape(-1, x.shape[-1])
    gf = g.reshape(-1, g.shape[-1])
    return np.matmul(g, w.T), np.matmul(xf.T, gf), gf.sum(axis=0)


_register("dense", ("x", "W", "b"), _dense, _dense_vjp, _check_dense,
          "x @ W + b | dx = g @ W^T, dW = x^T @ g, db = sum_rows(g)", ("002", "004"),
          Domain("dense", ("real", "real", "real")))


# --------------------------------------------------------------------------- relu (002)


def _relu(x: np.ndarray) -> np.ndarray:
    """``relu(x) = max(x, 0)`` (002); ``relu(-0.0)`` is ``+0.0``."""
    return np.where(x > 0, x, np.zeros((), dtype=x.dtype))


def _relu_vjp(g: np.ndarray, ans: np.ndarray, x: np.ndarray) -> Arrays:
    """``relu'(x) = 1 if x > 0 else 0`` (002); ``relu'(0) = relu'(-0.0) = 0``."""
    return (np.where(x > 0, g, np.zeros((), dtype=g.dtype)),)


_register("relu", ("x",), _relu, _relu_vjp, _no_check,
          "max(x, 0) | dx = g * [x > 0]", ("002",),
          Domain("elementwise", ("kinked",)))


# --------------------------------------------------------------------------- tanh (002, 004)


def _tanh(x: np.ndarray) -> np.ndarray:
    """``tanh(x) = (e^x - e^-x) / (e^x + e^-x)`` (002)."""
    return np.tanh(x)


def _tanh_vjp(g: np.ndarray, ans: np.ndarray, x: np.ndarray) -> Arrays:
    """``tanh'(x) = 1 - tanh(x)^2`` (002), from the forward output."""
    return (g * (1 - ans * ans),)


_register("tanh", ("x",), _tanh, _tanh_vjp, _no_check,
          "tanh(x) | dx = g * (1 - tanh(x)^2)", ("002", "004"),
          Domain("elementwise", ("real",)))


# --------------------------------------------------------------------------- sigmoid (003, 004)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """``sigma(x) = 1 / (1 + e^-x)`` (003, 004), evaluated as
    ``e^x / (1 + e^x)`` for ``x < 0`` so that no ``exp`` overflows."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _sigmoid_vjp(g: np.ndarray, ans: np.ndarray, x: np.ndarray) -> Arrays:
    """``sigma'(x) = sigma(x) (1 - sigma(x))`` (003, 004), from the output."""
    return (g * ans * (1 - ans),)


_register("sigmoid", ("x",), _sigmoid, _sigmoid_vjp, _no_check,
          "1 / (1 + exp(-x)) | dx = g * s * (1 - s)", ("003", "004"),
          Domain("elementwise", ("real",)))


# --------------------------------------------------------------------------- softmax (000, 002)


def _check_softmax(arrays: Arrays, params: Params) -> None:
    check_class_axis(arrays[0], "x")


def _softmax(x: np.ndarray) -> np.ndarray:
    """``softmax(x)_i = e^{x_i} / sum_j e^{x_j}`` over the last axis (002),
    shifted by the row maximum so that no ``exp`` overflows."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return np.asarray(e / e.sum(axis=-1, keepdims=True))


def _softmax_vjp(g: np.ndarray, ans: np.ndarray, x: np.ndarray) -> Arrays:
    """Jacobian ``ds_i/dx_j = s_i (delta_ij - s_j)`` (000, 002), applied
    without forming it: ``dx = s * (g - <g, s>)``."""
    return (ans * (g - (g * ans).sum(axis=-1, keepdims=True)),)


_register("softmax", ("x",), _softmax, _softmax_vjp, _check_softmax,
          "exp(x) / sum(exp(x)) | dx = s * (g - sum(g * s))", ("002", "000"),
          Domain("rows", ("logits",)))


# --------------------------------------------------------------------------- losses (000, 002, 004)

_REDUCTIONS = ("mean", "sum")


def _check_pair(arrays: Arrays, first: str, second: str) -> None:
    p, t = arrays
    check_class_axis(p, first)
    if p.shape != t.shape:
        raise ValueError(f"{second}: shape {t.shape} does not match {first}'s shape {p.shape}")
    if p.size == 0:
        raise ValueError(f"{first}: empty batch, the loss is undefined")


def _reduce_rows(rows: np.ndarray, reduction: str) -> np.ndarray:
    return np.asarray(rows.mean() if reduction == "mean" else rows.sum(), dtype=rows.dtype)


def _row_scale(g: np.ndarray, x: np.ndarray, reduction: str) -> np.ndarray:
    """``dL/d(row loss)``: ``g`` for ``sum``, ``g / rows`` for ``mean``."""
    return g / _rows(x) if reduction == "mean" else g


def _check_cross_entropy(arrays: Arrays, params: Params) -> None:
    _check_pair(arrays, "probs", "target")
    check_distribution(arrays[0], "probs", strictly_positive=True)
    check_distribution(arrays[1], "target")


def _cross_entropy(p: np.ndarray, t: np.ndarray, reduction: str = "mean") -> np.ndarray:
    """``J = -sum_i y_i log(yhat_i)`` per row (000, 002), reduced over rows.

    ``probs`` (yhat) are predicted probabilities, ``target`` (y) a target
    distribution; both on the last axis."""
    return _reduce_rows(-(t * np.log(p)).sum(axis=-1), reduction)


def _cross_entropy_vjp(g: np.ndarray, ans: np.ndarray, p: np.ndarray, t: np.ndarray,
                       reduction: str = "mean") -> Arrays:
    """``dJ/dyhat_i = -y_i / yhat_i`` (002) and ``dJ/dy_i = -log(yhat_i)``,
    scaled by the reduction. This is the unconstrained partial derivative,
    not its projection onto the probability simplex."""
    s = _row_scale(g, p, reduction)
    return -(t / p) * s, -np.log(p) * s


_register("cross_entropy", ("probs", "target"), _cross_entropy, _cross_entropy_vjp, _check_cross_entropy,
          "-sum(y * log(yhat)) | dyhat = -y / yhat, dy = -log(yhat)", ("002", "000"),
          Domain("row_pairs", ("positive_distribution", "distribution")),
          params={"reduction": _REDUCTIONS})


def _check_softmax_cross_entropy(arrays: Arrays, params: Params) -> None:
    _check_pair(arrays, "logits", "target")
    check_distribution(arrays[1], "target")


def _log_softmax(z: np.ndarray) -> np.ndarray:
    s = z - z.max(axis=-1, keepdims=True)
    return np.asarray(s - np.log(np.exp(s).sum(axis=-1, keepdims=True)))


def _softmax_cross_entropy(z: np.ndarray, t: np.ndarray, reduction: str = "mean") -> np.ndarray:
    """``J = -sum_i y_i log softmax(z)_i`` per row, fused through a stable
    log-softmax (``z - max - log sum exp(z - max)``) so that logits of any
    magnitude give a finite loss (000, 002)."""
    return _reduce_rows(-(t * _log_softmax(z)).sum(axis=-1), reduction)


def _softmax_cross_entropy_vjp(g: np.ndarray, ans: np.ndarray, z: np.ndarray, t: np.ndarray,
                               reduction: str = "mean") -> Arrays:
    """``dJ/dz = softmax(z) * sum(y) - y``, i.e. ``yhat - y`` for a target
    distribution (002: the output-layer error), and ``dJ/dy = -log softmax(z)``;
    both scaled by the reduction."""
    s = _row_scale(g, z, reduction)
    logp = _log_softmax(z)
    return (np.exp(logp) * t.sum(axis=-1, keepdims=True) - t) * s, -logp * s


_register("softmax_cross_entropy", ("logits", "target"), _softmax_cross_entropy, _softmax_cross_entropy_vjp,
          _check_softmax_cross_entropy,
          "-sum(y * log_softmax(z)) | dz = softmax(z) - y, dy = -log_softmax(z)", ("002", "000"),
          Domain("row_pairs", ("logits", "distribution")),
          params={"reduction": _REDUCTIONS})


_MSE_REDUCTIONS = ("mean", "sum", "half_sum")


def _check_mse(arrays: Arrays, params: Params) -> None:
    p, t = arrays
    if p.shape != t.shape:
        raise ValueError(f"target: shape {t.shape} does not match prediction's shape {p.shape}")
    if p.size == 0:
        raise ValueError("prediction: empty, the loss is undefined")


def _mse(p: np.ndarray, t: np.ndarray, reduction: str = "mean") -> np.ndarray:
    """Squared-error cost. ``mean``: ``sum((yhat - y)^2) / N`` over all ``N``
    elements (torch's ``mse_loss``); ``sum``: ``sum((yhat - y)^2)``;
    ``half_sum``: ``1/2 sum((yhat - y)^2)``, the documents' form (004, with
    ``n = 1``), whose gradient is the bare residual ``yhat - y``."""
    d = p - t
    sq = d * d
    if reduction == "mean":
        return np.asarray(sq.mean(), dtype=p.dtype)
    total = np.asarray(sq.sum(), dtype=p.dtype)
    return np.asarray(total * 0.5, dtype=p.dtype) if reduction == "half_sum" else total


def _mse_vjp(g: np.ndarray, ans: np.ndarray, p: np.ndarray, t: np.ndarray, reduction: str = "mean") -> Arrays:
    """``dJ/dyhat = c (yhat - y) g`` with ``c = 2/N`` (mean), ``2`` (sum) or
    ``1`` (half_sum, 004); ``dJ/dy = -dJ/dyhat``."""
    c = {"mean": 2.0 / p.size, "sum": 2.0, "half_sum": 1.0}[reduction]
    dp = (p - t) * (g * c)
    return dp, -dp


_register("mse", ("prediction", "target"), _mse, _mse_vjp, _check_mse,
          "reduce((yhat - y)^2) | dyhat = c (yhat - y), dy = -c (yhat - y)", ("004",),
          Domain("same_pair", ("real", "real")),
          params={"reduction": _MSE_REDUCTIONS})
