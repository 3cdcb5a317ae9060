"""The adjoint of broadcasting, shared by the ops' VJPs, the error model and
the ball-arithmetic truth (NumPy only; it imports nothing of the package)."""

from __future__ import annotations

import numpy as np

__all__ = ["unbroadcast"]


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` over the axes that broadcasting added or stretched, so the
    result has ``shape``: the adjoint of ``np.broadcast_to(x, grad.shape)``.
    Raises ``ValueError`` when ``shape`` does not broadcast to ``grad``'s."""
    grad = np.asarray(grad)
    shape = tuple(int(n) for n in shape)
    extra = grad.ndim - len(shape)
    if extra < 0 or any(n not in (1, m) for n, m in zip(shape, grad.shape[extra:])):
        raise ValueError(f"shape: {shape} does not broadcast to grad's shape {grad.shape}")
    if extra > 0:
        grad = np.asarray(grad.sum(axis=tuple(range(extra))))  # an object array's full sum is a bare element
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = np.asarray(grad.sum(axis=stretched, keepdims=True))
    return np.array(grad.reshape(shape), copy=True)
