"""Every primitive of the documents: forward and VJP side by side.

Each op is a forward ``f(*inputs, **params)`` registered by the :func:`op` decorator, with its
VJP rule attached right below it by ``@f.defvjp``. A rule receives the upstream cotangent, the
forward's output (``ans``) and the inputs, and returns one gradient per input, each with that
input's shape and dtype.

The reference is the truth, rounded once. Every formula is evaluated in a wider format
(``reference_impl.wide``: float64 for float16, bfloat16 and float32 inputs, double-double with
its own exponent for float64; the sums of products of ``matmul`` and ``dense`` by ``wide.matmul``:
float64 BLAS for the narrower dtypes, Ozaki's error-free splitting on float64 BLAS for float64)
and rounded to the working dtype at the end; where a textbook formula cancels or overflows even
there, the accurate formula is the formula, with a comment saying why. Results are within 1 ulp
of the exact value (float64: a few).

Conventions (also in the README):

* Dense layers are ``x @ W + b`` with ``W`` laid out ``(inputs, outputs)`` -- "3 rows, 4
  columns = 3 inputs, 4 nodes" (document 002). PyTorch's ``nn.Linear`` stores the transpose.
* ``relu'(0) = 0`` at both ``0.0`` and ``-0.0``, as ``torch.relu`` and ``jax.nn.relu``.
* Softmax and the classification losses act on the last axis; every leading axis is a batch
  axis ("row").
* ``reduction="mean"`` has PyTorch's meaning: the classification losses average over rows,
  ``mse`` over every element.
* Inputs are float16, bfloat16, float32 or float64, finite, of one dtype; outputs and
  gradients keep it and never alias an input or each other.

How to add an op: decorate its forward with ``@op(...)`` (name, inputs, domain, formula,
sources, an optional input check) and its VJP rule with ``@<forward>.defvjp`` right below; then
add its error model to ``tolerances.py`` and its framework recipes row in ``frameworks/recipes.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._validate import as_array, check_class_axis, check_distribution, check_shape, overflow_remedy
from .op_registry import _REGISTRY, OPS, Arrays, Domain, Op, Params, op
from .wide import DD, blocked, column_sums, exp, log, log1p, neg, precision, round_to, rounded, sum_to, wide
from .wide import matmul as wide_matmul
from .wide import tanh as wide_tanh

__all__ = ["Domain", "Op", "OPS", "op", "unbroadcast", "cross_entropy_of_softmax_grad", "_REGISTRY"]


def unbroadcast(grad: Any, shape: Any) -> np.ndarray:
    """Sum ``grad`` over the axes that broadcasting added or stretched, so the result has
    ``shape``: the adjoint of ``np.broadcast_to(x, grad.shape)`` (the add gate's gradient of a
    broadcast bias, document 004). The sum is taken in the wide format and rounded once, like
    every gradient here.

    ``grad``: a floating-point array, checked as every input is; ``shape``: a tuple of ints that
    broadcasts to ``grad.shape``. A sum beyond the dtype's range is a ``ValueError`` naming ``grad``."""
    g = as_array(grad, "grad")
    dims = check_shape(shape, "shape")
    with precision():
        (gw,) = wide(g)
        out = round_to(sum_to(gw, dims), g)
    if not np.all(np.isfinite(out)):
        raise ValueError(f"grad: its sum over the broadcast axes is not representable in {g.dtype} (the true "
                         f"value is beyond the dtype's range); {overflow_remedy(g.dtype, 'scale grad down')}")
    return out


# --------------------------------------------------------------------------- helpers


def _exp_shifted(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``exp(x - m)`` with the shift two-summed: the rounding of ``x - m`` would otherwise become a
    relative error ``|x - m| u`` in the exp."""
    d = x - m
    if isinstance(d, DD):
        return exp(d)  # a double-double difference of float64 values is exact
    with np.errstate(invalid="ignore"):  # TwoSum's error term; NaN only where d overflowed, then unused
        virtual = d - x
        lo = (x - (d - virtual)) + (-m - virtual)
    lo = np.where(np.isfinite(lo), lo, 0)
    return np.asarray(np.exp(d) * (1 + lo))


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


@op("add", inputs=("a", "b"), domain=Domain("broadcast_pair", ("real", "real")), sources=("004", "002"),
    formula="a + b | da = sum_broadcast(g), db = sum_broadcast(g)", check=_check_broadcast)
def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a + b`` with NumPy broadcasting (the add gate of document 004)."""
    return np.add(a, b)


@add.defvjp
def add_vjp(g: np.ndarray, ans: np.ndarray, a: np.ndarray, b: np.ndarray) -> Arrays:
    """Local gradient 1 for both inputs -- the add gate is a *distributor*
    (004): ``da = unbroadcast(g)``, ``db = unbroadcast(g)``, each summed in the
    wide format and a new array."""
    (gw,) = wide(g)
    return round_to(sum_to(gw, a.shape), a), round_to(sum_to(gw, b.shape), b)


# --------------------------------------------------------------------------- multiply (002, 004)


@op("multiply", inputs=("a", "b"), domain=Domain("broadcast_pair", ("real", "real")), sources=("004", "002"),
    formula="a * b | da = sum_broadcast(g * b), db = sum_broadcast(g * a)", check=_check_broadcast)
def multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise ``a * b`` with broadcasting (the multiply gate of 004)."""
    return np.multiply(a, b)


@multiply.defvjp
def multiply_vjp(g: np.ndarray, ans: np.ndarray, a: np.ndarray, b: np.ndarray) -> Arrays:
    """Each input's local gradient is the *other* input -- the multiply gate
    is a *switch* (004): ``da = unbroadcast(g * b)``, ``db = unbroadcast(g * a)``."""
    gw, aw, bw = wide(g, a, b)
    return round_to(sum_to(gw * bw, a.shape), a), round_to(sum_to(gw * aw, b.shape), b)


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


@op("matmul", inputs=("a", "b"), domain=Domain("matmul", ("real", "real")), sources=("002", "004"),
    formula="a @ b | da = g @ b^T, db = a^T @ g", check=_check_matmul)
def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` with ``np.matmul`` semantics (1-D operands promoted, batch
    axes broadcast). Document 002 writes each layer as such a product; the
    dot products accumulate in the wide format and round once."""
    return round_to(wide_matmul(a, b), a)


def matmul_vjp_wide(g: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(g @ b^T, a^T @ g)`` in the wide format (``wide.matmul``), reduced
    over broadcast batch axes inside the accurate sum, with 1-D operands
    promoted and the promoted axis removed."""
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    g2 = g
    if a.ndim == 1 and b.ndim == 1:
        g2 = g.reshape(1, 1)
    elif a.ndim == 1:
        g2 = np.expand_dims(g, -2)
    elif b.ndim == 1:
        g2 = np.expand_dims(g, -1)
    da = wide_matmul(g2, np.swapaxes(b2, -1, -2), shape=a2.shape).reshape(a.shape)
    db = wide_matmul(np.swapaxes(a2, -1, -2), g2, shape=b2.shape).reshape(b.shape)
    return da, db


@matmul.defvjp
def matmul_vjp(g: np.ndarray, ans: np.ndarray, a: np.ndarray, b: np.ndarray) -> Arrays:
    """``da = g @ b^T``, ``db = a^T @ g`` (transposes of the last two axes),
    reduced over broadcast batch axes; accumulated wide, rounded once."""
    da, db = matmul_vjp_wide(g, a, b)
    return round_to(da, a), round_to(db, b)


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


@op("dense", inputs=("x", "W", "b"), domain=Domain("dense", ("real", "real", "real")), sources=("002", "004"),
    formula="x @ W + b | dx = g @ W^T, dW = x^T @ g, db = sum_rows(g)", check=_check_dense)
def dense(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``x @ W + b``, ``W`` of shape ``(inputs, outputs)`` as in document 002
    (``o_input = k_output * wko + bo``); the bias joins the wide sum."""
    return round_to(wide_matmul(x, w, bias=b), x)


@dense.defvjp
def dense_vjp(g: np.ndarray, ans: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> Arrays:
    """``dx = g @ W^T``; ``dW = x^T @ g`` and ``db = sum(g)`` summed over every
    batch row (document 002: ``dJ/dwko = k_output^T . dJ/do_input``)."""
    xf = x.reshape(-1, x.shape[-1])
    gf = g.reshape(-1, g.shape[-1])
    return round_to(wide_matmul(g, w.T), x), round_to(wide_matmul(xf.T, gf), w), round_to(column_sums(gf), b)


# --------------------------------------------------------------------------- relu (002)


@op("relu", inputs=("x",), domain=Domain("elementwise", ("kinked",)), sources=("002",),
    formula="max(x, 0) | dx = g * [x > 0]")
def relu(x: np.ndarray) -> np.ndarray:
    """``relu(x) = max(x, 0)`` (002); ``relu(-0.0)`` is ``+0.0``. Exact."""
    return np.where(x > 0, x, np.zeros((), dtype=x.dtype))


@relu.defvjp
def relu_vjp(g: np.ndarray, ans: np.ndarray, x: np.ndarray) -> Arrays:
    """``relu'(x) = 1 if x > 0 else 0`` (002); ``relu'(0) = relu'(-0.0) = 0``."""
    return (np.where(x > 0, g, np.zeros((), dtype=g.dtype)),)


# --------------------------------------------------------------------------- tanh (002, 004)


@op("tanh", inputs=("x",), domain=Domain("elementwise", ("real",)), sources=("002", "004"),
    formula="tanh(x) | dx = g * (1 - tanh(x)^2) = g * 4e / (1 + e)^2, e = exp(-2|x|)")
@blocked()
def tanh(x: np.ndarray) -> np.ndarray:
    """``tanh(x) = (e^x - e^-x) / (e^x + e^-x)`` (002)."""
    return rounded("tanh", wide_tanh, x)


@tanh.defvjp
@blocked()
def tanh_vjp(g: np.ndarray, ans: np.ndarray, x: np.ndarray) -> Arrays:
    """``tanh'(x) = 1 - tanh(x)^2`` (002). Near saturation ``1 - t^2`` cancels to 0 long before the
    true slope underflows, so beyond ``|x| = 0.55`` it is the equal ``4e / (1 + e)^2``, ``e = exp(-2|x|)``."""
    return (rounded("tanh_vjp", _tanh_vjp, g, x),)


def _tanh_vjp(gw: Any, xw: Any) -> Any:
    ax, t = np.abs(xw), wide_tanh(xw)
    e = exp(-2 * ax)
    return gw * np.where(ax < 0.55, 1 - t * t, 4 * e / ((1 + e) * (1 + e)))


# --------------------------------------------------------------------------- sigmoid (003, 004)


@op("sigmoid", inputs=("x",), domain=Domain("elementwise", ("real",)), sources=("003", "004"),
    formula="1 / (1 + exp(-x)) | dx = g * s * (1 - s) = g * e / (1 + e)^2, e = exp(-|x|)")
@blocked()
def sigmoid(x: np.ndarray) -> np.ndarray:
    """``sigma(x) = 1 / (1 + e^-x)`` (003, 004), as ``e^x / (1 + e^x)`` for ``x < 0``: no ``exp`` overflows."""
    return rounded("sigmoid", _sigmoid, x)


def _sigmoid(xw: Any) -> Any:
    e = exp(-np.abs(xw))
    return np.where(xw >= 0, 1 / (1 + e), e / (1 + e))


@sigmoid.defvjp
@blocked()
def sigmoid_vjp(g: np.ndarray, ans: np.ndarray, x: np.ndarray) -> Arrays:
    """``sigma'(x) = sigma(x) (1 - sigma(x))`` (003, 004), as the equal ``e / (1 + e)^2``, ``e = exp(-|x|)``:
    ``1 - s`` from a rounded ``s`` is 0 beyond x ~ 17 (float32), though the slope is representable to ~103."""
    return (rounded("sigmoid_vjp", _sigmoid_vjp, g, x),)


def _sigmoid_vjp(gw: Any, xw: Any) -> Any:
    e = exp(-np.abs(xw))
    return gw * (e / ((1 + e) * (1 + e)))


# --------------------------------------------------------------------------- softmax (000, 002)


def _check_softmax(arrays: Arrays, params: Params) -> None:
    check_class_axis(arrays[0], "x")


def _softmax_wide(x: Any) -> Any:
    """Row-wise softmax of a wide array, shifted by the row maximum (no exp overflows) with the shift two-summed."""
    e = _exp_shifted(x, x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _weighted_median(g: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Per row, the value of ``g`` at which the cumulative weight ``w`` (in order of ``g``) first
    reaches half of the row's weight (keepdims)."""
    order = np.argsort(g, axis=-1, kind="stable")
    cw = np.cumsum(np.take_along_axis(w, order, axis=-1), axis=-1)
    k = np.argmax(cw >= cw[..., -1:] / 2, axis=-1)[..., None]
    return np.take_along_axis(g, np.take_along_axis(order, k, axis=-1), axis=-1)


@op("softmax", inputs=("x",), domain=Domain("rows", ("logits",)), sources=("002", "000"),
    formula="exp(x) / sum(exp(x)) | dx = s * (g - sum(g * s))", check=_check_softmax)
@blocked(rows=True)
def softmax(x: np.ndarray) -> np.ndarray:
    """``softmax(x)_i = e^{x_i} / sum_j e^{x_j}`` over the last axis (002), shifted by the row maximum."""
    return round_to(_softmax_wide(*wide(x)), x)


@softmax.defvjp
@blocked(rows=True)
def softmax_vjp(g: np.ndarray, ans: np.ndarray, x: np.ndarray) -> Arrays:
    """Jacobian ``ds_i/dx_j = s_i (delta_ij - s_j)`` (000, 002), applied without forming it:
    ``dx = s * (g - <g, s>)``, which is unchanged when a constant ``c`` is taken from ``g``. With
    ``c`` the s-weighted median of ``g``, ``g_k - c = 0`` for a dominant class and ``g_k - <g, s>``
    no longer cancels."""
    gw, xw = wide(g, x)
    s = _softmax_wide(xw)
    gc = gw - _weighted_median(gw, s)
    return (round_to(s * (gc - (gc * s).sum(axis=-1, keepdims=True)), x),)


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
    return rows.mean() if reduction == "mean" else rows.sum()


def _row_scale(g: np.ndarray, rows: int, reduction: str) -> np.ndarray:
    """``dL/d(row loss)``: ``g`` for ``sum``, ``g / rows`` for ``mean``."""
    return g / rows if reduction == "mean" else g


def _check_cross_entropy(arrays: Arrays, params: Params) -> None:
    _check_pair(arrays, "probs", "target")
    check_distribution(arrays[0], "probs", strictly_positive=True)
    check_distribution(arrays[1], "target")


@op("cross_entropy", inputs=("probs", "target"), sources=("002", "000"),
    domain=Domain("row_pairs", ("positive_distribution", "distribution")),
    formula="-sum(y * log(yhat)) | dyhat = -y / yhat, dy = -log(yhat)",
    check=_check_cross_entropy, params={"reduction": _REDUCTIONS})
def cross_entropy(p: np.ndarray, t: np.ndarray, reduction: str = "mean") -> np.ndarray:
    """``J = -sum_i y_i log(yhat_i)`` per row (000, 002), reduced over rows.

    ``probs`` (yhat) are predicted probabilities, ``target`` (y) a target
    distribution; both on the last axis. Every term is >= 0: no cancellation."""
    return round_to(_reduce_rows(_cross_entropy_rows(p, t), reduction), p)


@blocked(rows=True)
def _cross_entropy_rows(p: np.ndarray, t: np.ndarray) -> Any:
    """The wide loss of each row, ``-sum_i y_i log(yhat_i)``."""
    pw, tw = wide(p, t)
    return -(tw * log(pw)).sum(axis=-1)


@cross_entropy.defvjp
def cross_entropy_vjp(g: np.ndarray, ans: np.ndarray, p: np.ndarray, t: np.ndarray,
                      reduction: str = "mean") -> Arrays:
    """``dJ/dyhat_i = -y_i / yhat_i`` (002) and ``dJ/dy_i = -log(yhat_i)``, scaled by the
    reduction. This is the unconstrained partial derivative, not its projection onto the simplex."""
    return _cross_entropy_vjp(g, _rows(p), p, t, reduction=reduction)


@blocked()
def _cross_entropy_vjp(g: np.ndarray, rows: int, p: np.ndarray, t: np.ndarray, reduction: str) -> Arrays:
    """The VJP on a block of ``p`` and ``t`` (of ``rows`` rows in all)."""
    gw, pw, tw = wide(g, p, t)
    s = _row_scale(gw, rows, reduction)
    return round_to(neg(tw / pw) * s, p), round_to(neg(log(pw)) * s, t)


def _check_softmax_cross_entropy(arrays: Arrays, params: Params) -> None:
    _check_pair(arrays, "logits", "target")
    check_distribution(arrays[1], "target")


def _log_softmax_parts(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(-log softmax(z), softmax(z), k)`` of a wide array with ``k`` the row
    argmax: ``-log s_i = (z_k - z_i) + log1p(S')``, ``S' = sum_{j != k}
    e^{z_j - z_k}``. ``log1p`` keeps an ``S'`` below ``u`` that ``log(1 + S')``
    loses; every term is >= 0, and ``s`` comes directly, not as exp(log s)."""
    k = np.argmax(z, axis=-1)[..., None]
    zk = np.take_along_axis(z, k, axis=-1)
    e = _exp_shifted(z, zk)
    np.put_along_axis(e, k, zk - zk, axis=-1)  # a zero of the wide format
    others = e.sum(axis=-1, keepdims=True)
    nll = (zk - z) + log1p(others)
    s = e / (1 + others)
    np.put_along_axis(s, k, 1 / (1 + others), axis=-1)
    return nll, s, k


@op("softmax_cross_entropy", inputs=("logits", "target"), sources=("002", "000"),
    domain=Domain("row_pairs", ("logits", "distribution")),
    formula="-sum(y * log_softmax(z)) | dz = softmax(z) - y, dy = -log_softmax(z)",
    check=_check_softmax_cross_entropy, params={"reduction": _REDUCTIONS})
def softmax_cross_entropy(z: np.ndarray, t: np.ndarray, reduction: str = "mean") -> np.ndarray:
    """``J = -sum_i y_i log softmax(z)_i`` per row (000, 002), fused through
    the log-softmax above, finite for logits of any magnitude."""
    zw, tw = wide(z, t)
    nll, _, _ = _log_softmax_parts(zw)
    return round_to(_reduce_rows((tw * nll).sum(axis=-1), reduction), z)


@softmax_cross_entropy.defvjp
def softmax_cross_entropy_vjp(g: np.ndarray, ans: np.ndarray, z: np.ndarray, t: np.ndarray,
                              reduction: str = "mean") -> Arrays:
    """``dJ/dz = softmax(z) * sum(y) - y``, i.e. ``yhat - y`` for a target
    distribution (002: the output-layer error), and ``dJ/dy = -log softmax(z)``;
    both scaled by the reduction. The entries of ``dJ/dz`` sum to 0, so the
    dominant class's is minus the sum of the others: ``s_k - y_k`` cancels."""
    gw, zw, tw = wide(g, z, t)
    nll, s, k = _log_softmax_parts(zw)
    dz = s * tw.sum(axis=-1, keepdims=True) - tw
    np.put_along_axis(dz, k, 0, axis=-1)
    np.put_along_axis(dz, k, neg(dz.sum(axis=-1, keepdims=True)), axis=-1)
    return round_to(dz * (scale := _row_scale(gw, _rows(z), reduction)), z), round_to(nll * scale, t)


def cross_entropy_of_softmax_grad(z: np.ndarray, t: np.ndarray, reduction: str = "mean") -> np.ndarray:
    """``dJ/dyhat = -y / yhat`` of ``J = cross_entropy(softmax(z), y)`` with ``yhat = softmax(z)``
    kept in the wide format (000, 002): where the rounded softmax underflows to 0 the
    cross-entropy's own rule would divide by that 0, though the true ``yhat`` is positive. 0
    where ``y = 0`` (the true value, whatever ``yhat``); ``+-inf`` where ``y / yhat`` is beyond
    the dtype's range. For validated ``z`` (logits) and ``t`` (a distribution)."""
    zw, tw, one = wide(z, t, np.ones((), z.dtype))
    with precision(), np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        s = _softmax_wide(zw)
        positive = tw > 0
        # a wide softmax is 0 only beyond the wide format's own range: y / 0 is then +inf, as the true value is
        ratio = np.where(positive, tw / np.where(s > 0, s, 1), 0 * tw)
        ratio = np.where(positive & (s == 0), np.inf, ratio)
        return round_to(neg(ratio) * _row_scale(one, _rows(z), reduction), z)


_MSE_REDUCTIONS = ("mean", "sum", "half_sum")


def _check_mse(arrays: Arrays, params: Params) -> None:
    p, t = arrays
    if p.shape != t.shape:
        raise ValueError(f"target: shape {t.shape} does not match prediction's shape {p.shape}")
    if p.size == 0:
        raise ValueError("prediction: empty, the loss is undefined")


@op("mse", inputs=("prediction", "target"), domain=Domain("same_pair", ("real", "real")), sources=("004",),
    formula="reduce((yhat - y)^2) | dyhat = c (yhat - y), dy = -c (yhat - y)",
    check=_check_mse, params={"reduction": _MSE_REDUCTIONS})
def mse(p: np.ndarray, t: np.ndarray, reduction: str = "mean") -> np.ndarray:
    """Squared-error cost. ``mean``: ``sum((yhat - y)^2) / N`` over all ``N``
    elements (torch's ``mse_loss``); ``sum``: ``sum((yhat - y)^2)``;
    ``half_sum``: ``1/2 sum((yhat - y)^2)``, the documents' form (004, with
    ``n = 1``), whose gradient is the bare residual ``yhat - y``."""
    pw, tw = wide(p, t)
    d = pw - tw
    total = (d * d).sum()
    return round_to({"mean": total / p.size, "sum": total, "half_sum": total / 2}[reduction], p)


@mse.defvjp
def mse_vjp(g: np.ndarray, ans: np.ndarray, p: np.ndarray, t: np.ndarray, reduction: str = "mean") -> Arrays:
    """``dJ/dyhat = c (yhat - y) g`` with ``c = 2/N`` (mean), ``2`` (sum) or
    ``1`` (half_sum, 004); ``dJ/dy = -dJ/dyhat``. The residual multiplies the
    cotangent before any scaling, so a zero residual gives 0 for any ``g``."""
    gw, pw, tw = wide(g, p, t)
    r = (pw - tw) * gw
    dp = {"mean": 2 * r / p.size, "sum": 2 * r, "half_sum": r}[reduction]
    return round_to(dp, p), round_to(neg(dp), t)
