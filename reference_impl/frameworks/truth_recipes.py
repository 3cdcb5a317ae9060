"""The truth recipes that take more than a line: each op's exact forward
and VJP in ball arithmetic, as :mod:`.recipes`' table names them.

Ball arithmetic (python-flint arb) on object arrays of balls. ``ns`` is
built by reference_impl.frameworks.truth: ``ns.arb``, ``ns.map(fn, balls)``,
``ns.exp(ball)`` (0 for hopelessly negative arguments), ``ns.zeros(shape)``,
``ns.mid(balls)`` (float64 midpoints, exact for the exact inputs) and
``ns.unbroadcast(g, shape)``. The formulas are the textbook definitions,
rearranged only by identities that remove a cancellation arb would
otherwise resolve with thousands of bits; never the reference's code.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "truth_row_count", "truth_row_scale", "truth_softmax", "truth_softmax_vjp", "truth_nll", "truth_sce",
    "truth_sce_vjp", "truth_cross_entropy", "truth_cross_entropy_vjp", "mse_divisor", "truth_mse",
    "truth_mse_vjp", "truth_matmul_vjp", "truth_dense_vjp", "truth_sigmoid_derivative",
]


def truth_row_count(x: np.ndarray) -> int:
    return int(np.prod(x.shape[:-1], dtype=np.int64))


def truth_row_scale(g: Any, x: np.ndarray, reduction: str) -> Any:
    return g / truth_row_count(x) if reduction == "mean" else g


def truth_softmax(ns: Any, x: np.ndarray) -> np.ndarray:
    e = ns.map(ns.exp, x - x.max(axis=-1, keepdims=True))
    return np.asarray(e / e.sum(axis=-1, keepdims=True))


def truth_softmax_vjp(ns: Any, g: np.ndarray, x: np.ndarray) -> tuple[np.ndarray]:
    # J^T g = s * (g - <s, g>) written as s_i sum_j s_j (g_i - g_j): no cancellation
    s = truth_softmax(ns, x)
    diff = g[..., :, None] - g[..., None, :]
    return (np.asarray(s * (diff * s[..., None, :]).sum(axis=-1)),)


def truth_nll(ns: Any, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(-log softmax, softmax, argmax k): with the dominant class k,
    -log s_i = z_k - z_i + log1p(sum_{j != k} exp(z_j - z_k))."""
    k = np.argmax(ns.mid(z), axis=-1)[..., None]
    zk = np.take_along_axis(z, k, axis=-1)
    e = ns.map(ns.exp, z - zk)
    np.put_along_axis(e, k, ns.arb(0), axis=-1)
    others = e.sum(axis=-1, keepdims=True)
    nll = (zk - z) + ns.map(lambda v: v.log1p(), others)
    s = e / (1 + others)
    np.put_along_axis(s, k, 1 / (1 + others), axis=-1)
    return np.asarray(nll), np.asarray(s), k


def truth_sce(ns: Any, z: np.ndarray, t: np.ndarray, reduction: str = "mean") -> Any:
    return truth_row_scale((t * truth_nll(ns, z)[0]).sum(), z, reduction)


def truth_sce_vjp(ns: Any, g: Any, z: np.ndarray, t: np.ndarray, reduction: str = "mean") -> tuple[Any, ...]:
    # dz = s sum(t) - t; the dominant class's entry as minus the sum of the others
    nll, s, k = truth_nll(ns, z)
    dz = s * t.sum(axis=-1, keepdims=True) - t
    np.put_along_axis(dz, k, ns.arb(0), axis=-1)
    np.put_along_axis(dz, k, -dz.sum(axis=-1, keepdims=True), axis=-1)
    scale = truth_row_scale(g, z, reduction)
    return dz * scale, nll * scale


def truth_cross_entropy(ns: Any, p: np.ndarray, t: np.ndarray, reduction: str = "mean") -> Any:
    return truth_row_scale(-(t * ns.map(lambda v: v.log(), p)).sum(), p, reduction)


def truth_cross_entropy_vjp(ns: Any, g: Any, p: np.ndarray, t: np.ndarray,
                             reduction: str = "mean") -> tuple[Any, ...]:
    scale = truth_row_scale(g, p, reduction)
    return -(t / p) * scale, -ns.map(lambda v: v.log(), p) * scale


def mse_divisor(p: np.ndarray, reduction: str) -> int:
    return {"sum": 1, "half_sum": 2, "mean": p.size}[reduction]


def truth_mse(ns: Any, p: np.ndarray, t: np.ndarray, reduction: str = "mean") -> Any:
    d = p - t
    return (d * d).sum() / mse_divisor(p, reduction)


def truth_mse_vjp(ns: Any, g: Any, p: np.ndarray, t: np.ndarray, reduction: str = "mean") -> tuple[Any, ...]:
    dp = 2 * (p - t) * g / mse_divisor(p, reduction)
    return dp, -dp


def truth_matmul_vjp(ns: Any, g: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # a vector operand is a one-row (a) or one-column (b) matrix whose axis the product dropped
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    g2 = g
    if a.ndim == 1 and b.ndim == 1:
        g2 = np.asarray(g).reshape(1, 1)
    elif a.ndim == 1:
        g2 = np.expand_dims(g, -2)
    elif b.ndim == 1:
        g2 = np.expand_dims(g, -1)
    da = ns.unbroadcast(np.matmul(g2, np.swapaxes(b2, -1, -2)), a2.shape).reshape(a.shape)
    db = ns.unbroadcast(np.matmul(np.swapaxes(a2, -1, -2), g2), b2.shape).reshape(b.shape)
    return da, db


def truth_dense_vjp(ns: Any, g: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[Any, ...]:
    gf, xf = g.reshape(-1, g.shape[-1]), x.reshape(-1, x.shape[-1])
    return np.matmul(g, w.T), np.matmul(xf.T, gf), gf.sum(axis=0)


def truth_sigmoid_derivative(ns: Any, v: Any) -> Any:
    # sigma' = e^{-|x|} / (1 + e^{-|x|})^2, symmetric, never exp of a large positive
    e = ns.exp(-abs(v))
    return e / ((1 + e) ** 2)
