"""reference_impl: a NumPy reference for every forward pass and gradient in
five tutorial documents on backpropagation (see :mod:`reference_impl.sources`).

``import reference_impl`` needs NumPy only. The registry :data:`OPS` maps op
name to an :class:`~reference_impl.ops.Op` with ``forward(*inputs, **params)``
and ``vjp(cotangent, *inputs, **params)``; the same ops are also plain
functions here (``softmax``, ``softmax_vjp``, ...).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from .ops import OPS, Op, unbroadcast
from .sources import SOURCES, cite

__version__ = "0.1.0"


def _plain(op: Op, kind: str) -> Callable[..., Any]:
    params = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in op.arg_names]
    params += [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v[0]) for k, v in op.params.items()]
    if kind == "forward":
        def fn(*args: Any, **kwargs: Any) -> np.ndarray:
            return op.forward(*args, **kwargs)
        fn.__name__ = op.name
        doc = op.impl.__doc__
    else:
        def fn(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
            return op.vjp(*args, **kwargs)
        fn.__name__ = op.name + "_vjp"
        params.insert(0, inspect.Parameter("cotangent", inspect.Parameter.POSITIONAL_OR_KEYWORD))
        doc = inspect.cleandoc(op.rule.__doc__ or "")
        doc += f"\n\nReturns one gradient per input: {', '.join(op.arg_names)}."
    fn.__qualname__ = fn.__name__
    fn.__doc__ = f"{inspect.cleandoc(doc or '')}\n\nFormula: {op.formula}\nSources: " + ", ".join(
        cite(k) for k in op.sources
    )
    fn.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    fn.__module__ = __name__
    return fn


add = _plain(OPS["add"], "forward")
add_vjp = _plain(OPS["add"], "vjp")
multiply = _plain(OPS["multiply"], "forward")
multiply_vjp = _plain(OPS["multiply"], "vjp")
matmul = _plain(OPS["matmul"], "forward")
matmul_vjp = _plain(OPS["matmul"], "vjp")
dense = _plain(OPS["dense"], "forward")
dense_vjp = _plain(OPS["dense"], "vjp")
relu = _plain(OPS["relu"], "forward")
relu_vjp = _plain(OPS["relu"], "vjp")
tanh = _plain(OPS["tanh"], "forward")
tanh_vjp = _plain(OPS["tanh"], "vjp")
sigmoid = _plain(OPS["sigmoid"], "forward")
sigmoid_vjp = _plain(OPS["sigmoid"], "vjp")
softmax = _plain(OPS["softmax"], "forward")
softmax_vjp = _plain(OPS["softmax"], "vjp")
cross_entropy = _plain(OPS["cross_entropy"], "forward")
cross_entropy_vjp = _plain(OPS["cross_entropy"], "vjp")
softmax_cross_entropy = _plain(OPS["softmax_cross_entropy"], "forward")
softmax_cross_entropy_vjp = _plain(OPS["softmax_cross_entropy"], "vjp")
mse = _plain(OPS["mse"], "forward")
mse_vjp = _plain(OPS["mse"], "vjp")

__all__ = [
    "OPS", "Op", "SOURCES", "cite", "unbroadcast", "__version__",
    "add", "add_vjp", "multiply", "multiply_vjp", "matmul", "matmul_vjp", "dense", "dense_vjp",
    "relu", "relu_vjp", "tanh", "tanh_vjp", "sigmoid", "sigmoid_vjp", "softmax", "softmax_vjp",
    "cross_entropy", "cross_entropy_vjp", "softmax_cross_entropy", "softmax_cross_entropy_vjp",
    "mse", "mse_vjp",
]


# The user-facing oracle imports hypothesis, so it is loaded on first use:
# ``import reference_impl`` stays NumPy-only.
_ORACLE_NAMES = frozenset({"check_op", "check_network", "check_sgd_step", "Oracle", "OracleResult"})
_GRADCHECK_NAMES = frozenset({"check_vjp", "check_grad", "Arg", "Inputs", "GradcheckResult"})


def __getattr__(name: str) -> Any:
    if name in _ORACLE_NAMES:
        from . import oracle

        return getattr(oracle, name)
    if name in _GRADCHECK_NAMES:
        from . import gradcheck

        return getattr(gradcheck, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
