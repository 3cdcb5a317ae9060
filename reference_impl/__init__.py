"""reference_impl: a NumPy reference for every forward pass and gradient in
five tutorial documents on backpropagation, and an oracle that checks other
people's gradient code against it.

``import reference_impl`` needs NumPy only. :data:`OPS` maps an op's name to
an :class:`~reference_impl.ops.Op` with ``forward(*inputs, **params)`` and
``vjp(cotangent, *inputs, **params)``; the same ops are plain functions here
(``softmax``, ``softmax_vjp``, ...): inputs by position or name, parameters by
name; bad input is a ``TypeError`` / ``ValueError`` naming the argument, and a
result beyond the dtype's range is refused, never inf. The checkers
(``check_op``, ``check_network``, ``check_sgd_step``, ``check_vjp``,
``check_grad``, ``Arg``, ``Inputs``) load hypothesis on first use.

The package, from the ground up (imports run down this list only):

* top-level modules -- the reference: ``ops`` (forward and VJP side by side),
  ``op_registry``, ``wide`` (the wider format), ``broadcasting``, ``graph``,
  ``paths``, ``optim``, ``examples``, ``sources``; ``networks/`` (the MLP and
  the documents' presets);
* ``accuracy/`` -- the error model: every tolerance, written down once;
* ``frameworks/`` -- torch, jax and the ball-arithmetic truth: every optional
  import, and the per-op recipes;
* ``strategies/`` -- drawing inputs; ``engine/`` -- the one check engine
  (comparison, calls, search, finite differences, adjoint test, results);
* ``golden/`` -- the documents' worked numbers as fixtures, replayed;
* ``oracle/`` -- the checkers; ``certify/`` -- ``python -m reference_impl certify``;
* ``cli``, ``pytest_plugin`` -- the command line and the pytest plugin.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from ._validate import max_elements, overflow_remedy, set_max_elements
from .ops import OPS, Op, unbroadcast
from .sources import SOURCES, cite

__version__ = "0.1.0"


def _checked_result(result: Any, inputs: tuple[Any, ...], name: str, arg_names: tuple[str, ...]) -> Any:
    """Every result finite (a true value beyond the dtype's range is an error
    naming the inputs, never an inf or a NaN), and a copy of any result array
    that shares memory with an input or an earlier result."""
    seen = [x for x in inputs if isinstance(x, np.ndarray)]
    parts = result if isinstance(result, tuple) else (result,)
    out = []
    for k, part in enumerate(parts):
        if isinstance(part, np.ndarray):
            if not np.all(np.isfinite(part)):
                what = "the result" if len(parts) == 1 else f"the gradient w.r.t. {arg_names[k + 1]}"
                remedy = overflow_remedy(part.dtype, "pass inputs of smaller magnitude")
                raise ValueError(
                    f"{', '.join(arg_names)}: {what} of {name} is not representable in {part.dtype} "
                    f"(its true value is beyond the dtype's range); {remedy}"
                )
            if any(np.may_share_memory(part, other) for other in seen) or not part.flags.writeable:
                part = part.copy()
            seen.append(part)
        out.append(part)
    return tuple(out) if isinstance(result, tuple) else out[0]


def _plain(op: Op, kind: str) -> Callable[..., Any]:
    """``op.forward`` or ``op.vjp`` as a function with a real signature:
    inputs by position or by name, parameters by name only."""
    name = op.name if kind == "forward" else op.name + "_vjp"
    arg_names = tuple(op.arg_names) if kind == "forward" else ("cotangent", *op.arg_names)
    params = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in arg_names]
    params += [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v[0]) for k, v in op.params.items()]
    signature = inspect.Signature(params)
    call = op.forward if kind == "forward" else op.vjp

    def fn(*args: Any, **kwargs: Any) -> Any:
        unknown = sorted(set(kwargs) - set(signature.parameters))
        if unknown:  # reported before a missing input, which bind() would name first
            raise TypeError(f"{unknown[0]}: {name}() has no argument {unknown[0]!r}; signature: {name}{signature}")
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as e:
            # "missing a required argument: 'x'", "got an unexpected keyword argument 'y'", ...
            raise TypeError(f"{name}(): {e}; signature: {name}{signature}") from None
        inputs = tuple(bound.arguments[n] for n in arg_names)
        chosen = {k: v for k, v in bound.arguments.items() if k in op.params}
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            result = call(*inputs, **chosen)
        return _checked_result(result, inputs, name, arg_names)

    if kind == "forward":
        doc = op.impl.__doc__
    else:
        doc = inspect.cleandoc(op.rule.__doc__ or "")
        doc += f"\n\nReturns one gradient per input: {', '.join(op.arg_names)}."
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"{inspect.cleandoc(doc or '')}\n\nFormula: {op.formula}\nSources: " + ", ".join(
        cite(k) for k in op.sources
    )
    fn.__signature__ = signature  # type: ignore[attr-defined]
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
    "OPS", "Op", "SOURCES", "cite", "unbroadcast", "__version__", "max_elements", "set_max_elements",
    "add", "add_vjp", "multiply", "multiply_vjp", "matmul", "matmul_vjp", "dense", "dense_vjp",
    "relu", "relu_vjp", "tanh", "tanh_vjp", "sigmoid", "sigmoid_vjp", "softmax", "softmax_vjp",
    "cross_entropy", "cross_entropy_vjp", "softmax_cross_entropy", "softmax_cross_entropy_vjp",
    "mse", "mse_vjp",
]


# The user-facing oracle imports hypothesis, so it is loaded on first use:
# ``import reference_impl`` stays NumPy-only.
_ORACLE_NAMES = frozenset({"check_op", "check_network", "check_sgd_step", "check_vjp", "check_grad", "Oracle",
                           "OracleResult", "GradcheckResult", "Arg", "Inputs"})


def __getattr__(name: str) -> Any:
    if name in _ORACLE_NAMES:
        # through sys.modules, not the package attribute: where sys.modules was
        # restored (pytester, a reload), the attribute may be a stale copy whose
        # classes (Arg, Inputs) are not the ones the checkers test against
        return getattr(importlib.import_module(".oracle", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
