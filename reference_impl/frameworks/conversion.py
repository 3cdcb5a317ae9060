"""NumPy arrays to torch tensors and back, bfloat16 included.

``torch.from_numpy`` and ``Tensor.numpy`` do not know ``ml_dtypes.bfloat16``
(NumPy has no bfloat16 of its own): a bfloat16 array travels as its 16-bit
patterns, ``int16`` on both sides, reinterpreted, never converted -- the same
bits, no rounding. Every other dtype goes through ``from_numpy``/``numpy``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..dtypes import is_bfloat16, resolve

__all__ = ["to_torch", "to_numpy", "torch_dtype"]


def to_torch(x: Any) -> Any:
    """A new tensor with ``x``'s values and dtype (bfloat16 by its bits)."""
    import torch

    a = np.array(x, copy=True)
    if is_bfloat16(a.dtype):
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def to_numpy(t: Any) -> np.ndarray:
    """A new array with the (detached, CPU) tensor ``t``'s values and dtype;
    a torch bfloat16 tensor becomes an ``ml_dtypes.bfloat16`` array."""
    import torch

    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        return np.array(t.view(torch.int16).numpy().view(resolve("bfloat16")), copy=True)
    return np.array(t.numpy(), copy=True)


def torch_dtype(dtype: Any) -> Any:
    """The torch dtype of a supported NumPy dtype (``torch.bfloat16`` for bfloat16)."""
    import torch

    dt = resolve(dtype)
    return torch.bfloat16 if is_bfloat16(dt) else getattr(torch, dt.name)
