"""The gradient-descent step on a network's ``(W, b)`` pairs, which the
presets take and :mod:`reference_impl.optim` runs.

Policy for a step whose true result is beyond the parameters' dtype: the
learning rate is rounded to that dtype (as ``torch.optim.SGD`` and ``optax.sgd`` do), so an ``lr`` above
the dtype's largest finite number is a ``ValueError`` naming ``lr``; a step
``w - lr dL/dw`` that overflows is a ``ValueError`` naming ``lr`` and the
parameter, never ``inf`` or ``NaN`` weights.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._validate import as_array
from ..dtypes import info
from .mlp import Params

__all__ = ["check_lr", "step_pairs"]




def check_lr(lr: Any) -> float:
    """A learning rate is a finite real number > 0; errors name ``lr``."""
    if isinstance(lr, (bool, np.bool_)) or not isinstance(lr, numbers.Real):
        raise TypeError(f"lr: expected a real number, got {type(lr).__name__} {lr!r}")
    try:
        v = float(lr)
    except OverflowError:  # an int beyond float64
        raise ValueError(f"lr: must be finite, got {type(lr).__name__} beyond the range of float64") from None
    if not np.isfinite(v):
        raise ValueError(f"lr: must be finite, got {lr!r}")
    if v <= 0:
        raise ValueError(f"lr: must be > 0 (a step against the gradient), got {lr!r}")
    return v


def step_pairs(params: Any, grads: Any, lr: Any) -> Params:
    """``W - lr dW``, ``b - lr db`` for every pair, in the parameters' dtype,
    as new arrays. Errors name ``params[l].W``, ``grads[l].dW`` or ``lr``."""
    lr_f = check_lr(lr)
    for name, obj in (("params", params), ("grads", grads)):
        if isinstance(obj, (str, bytes)) or not isinstance(obj, Sequence):
            raise TypeError(f"{name}: expected a sequence of (W, b) pairs, got {type(obj).__name__}")
    if len(params) != len(grads):
        raise ValueError(f"grads, params: {len(grads)} (dW, db) pair(s) in grads for {len(params)} (W, b) "
                         "pair(s) in params")
    out = []
    for l, (pair, gpair) in enumerate(zip(params, grads, strict=True)):
        for name, obj in ((f"params[{l}]", pair), (f"grads[{l}]", gpair)):
            if isinstance(obj, (str, bytes)) or not isinstance(obj, Sequence) or len(obj) != 2:
                raise ValueError(f"{name}: expected a pair of arrays ((W, b) or (dW, db))")
        new = []
        for part, p, g in (("W", pair[0], gpair[0]), ("b", pair[1], gpair[1])):
            pa = as_array(p, f"params[{l}].{part}")
            ga = as_array(g, f"grads[{l}].d{part}")
            if pa.shape != ga.shape:
                raise ValueError(f"grads[{l}].d{part}: shape {ga.shape} differs from params[{l}].{part}'s {pa.shape}")
            if pa.dtype != ga.dtype:
                raise TypeError(f"grads[{l}].d{part}: dtype {ga.dtype} differs from params[{l}].{part}'s {pa.dtype}")
            biggest = info(pa.dtype).max
            if lr_f > biggest:
                raise ValueError(f"lr: {lr!r} exceeds the largest {pa.dtype} ({biggest:.4g}); the step is taken in "
                                 "the parameters' dtype, so lr must be representable there")
            step = np.asarray(lr_f, dtype=pa.dtype)
            with np.errstate(over="ignore", invalid="ignore"):
                updated = pa - step * ga
            if not np.all(np.isfinite(updated)):
                raise ValueError(
                    f"lr: the step params[{l}].{part} - lr * grads[{l}].d{part} overflows {pa.dtype} "
                    f"(lr {lr_f:.4g}, largest |grads[{l}].d{part}| {float(np.max(np.abs(ga))):.4g}); "
                    "use a smaller lr or float64 parameters"
                )
            new.append(updated)
        out.append((new[0], new[1]))
    return tuple(out)
