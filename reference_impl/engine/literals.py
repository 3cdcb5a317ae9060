"""Arrays as pasteable source text, for counterexamples: ``np.array(...)``
for NumPy code, ``torch.tensor(...)`` / ``jnp.array(...)`` for torch and jax
code. NumPy only (the text names the frameworks; nothing imports them).

Every value round-trips exactly: NumPy's arrays print each value's shortest
unique repr in its own dtype; the framework literals print the exact value
as a Python float (``repr(float(v))``, 17 significant digits at most), so
parsing it to a double and rounding to the dtype gives the value back
(a float32 is a double exactly; no second rounding can move it).
Non-finite values print as ``float('nan')`` / ``float('inf')``; an empty
array keeps its shape with ``.reshape(...)``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["LITERALS", "array_literal"]

LITERALS = {"numpy": ("np.array", "np."), "torch": ("torch.tensor", "torch."), "jax": ("jnp.array", "jnp.")}
"""Per framework: the constructor and the prefix of its dtype names."""


def _python_float(v: float) -> str:
    f = float(v)
    if math.isnan(f):
        return "float('nan')"
    if math.isinf(f):
        return "float('inf')" if f > 0 else "-float('inf')"
    return repr(f)


def array_literal(name: str, arr: np.ndarray, framework: str = "numpy", max_elements: int = 64) -> str:
    """``name = <constructor>(<values>, dtype=<dtype>)``, or a line naming
    the shape where ``arr`` has more than ``max_elements`` elements."""
    if arr.size > max_elements:
        return f"{name}: {arr.dtype.name} array of shape {arr.shape} (see 'input' for its seed)"
    make, prefix = LITERALS.get(framework, LITERALS["numpy"])
    head = f"{name} = {make}("
    if framework not in ("torch", "jax"):
        with np.printoptions(floatmode="unique", threshold=max_elements, linewidth=110):
            text = np.array2string(arr, separator=", ", prefix="    " + head)
    else:
        formatter = {"float_kind": _python_float, "int_kind": str, "bool": str}
        text = np.array2string(arr, separator=", ", prefix="    " + head, threshold=max_elements, max_line_width=110,
                               formatter=formatter)  # type: ignore[arg-type]
    shape = f".reshape({arr.shape})" if arr.size == 0 and arr.ndim > 1 else ""
    return f"{head}{text}, dtype={prefix}{arr.dtype.name}){shape}"
