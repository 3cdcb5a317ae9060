"""torch.autograd and jax.vjp of a function written against the array API
standard, as further opinions on a user's VJP.

A function that takes its namespace from its inputs
(``xp = array_api_compat.array_namespace(x)``) runs unchanged on torch tensors
and jax arrays; each framework's own autograd then differentiates that same
source. torch and jax are imported on first use; jax's float64 is switched on
before any jax array is made (float64 must stay float64).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib.util import find_spec
from typing import Any

import numpy as np

from .. import pytree
from .backends import available

__all__ = ["BACKENDS", "unavailable_reason", "framework_vjp"]

BACKENDS = ("torch", "jax")


def unavailable_reason(name: str) -> str:
    """Empty when ``name`` (torch or jax) can differentiate an array-API
    function here, else why not: the framework
    (:func:`reference_impl.frameworks.backends.available`) and array-api-compat."""
    for module, installed in ((name, available(name)), ("array_api_compat", find_spec("array_api_compat") is not None)):
        if not installed:
            return f"backends: {name!r} needs {module} (pip install 'reference-impl[frameworks,generic]')"
    return ""


def _torch_vjp(f: Callable[..., Any], args: Sequence[Any], wrt: Sequence[int],
               cotangent: Any) -> list[list[np.ndarray]]:
    import torch

    wrt_leaves: list[list[Any]] = []
    targs = []
    for i, a in enumerate(args):
        leaves, structure = pytree.flatten(a)
        tl = [torch.tensor(np.asarray(x), requires_grad=(i in wrt and np.asarray(x).dtype.kind == "f"))
              for x in leaves]
        if i in wrt:
            wrt_leaves.append(tl)
        targs.append(pytree.unflatten(structure, tl))
    out = f(*targs)
    out_leaves, _ = pytree.flatten(out)
    cot_leaves, _ = pytree.flatten(cotangent)
    flat_inputs = [t for group in wrt_leaves for t in group]
    grads = torch.autograd.grad(out_leaves, flat_inputs, grad_outputs=[torch.tensor(c) for c in cot_leaves],
                                allow_unused=True)
    result, k = [], 0
    for group in wrt_leaves:
        part = []
        for t in group:
            g = grads[k]
            part.append(np.zeros(tuple(t.shape), dtype=np.asarray(t.detach()).dtype) if g is None
                        else g.detach().numpy())
            k += 1
        result.append(part)
    return result


def _jax_vjp(f: Callable[..., Any], args: Sequence[Any], wrt: Sequence[int], cotangent: Any) -> list[list[np.ndarray]]:
    import jax

    jax.config.update("jax_enable_x64", True)  # type: ignore[no-untyped-call]
    import jax.numpy as jnp

    jargs = [pytree.tree_map(jnp.asarray, a) for a in args]

    def partial(*w: Any) -> Any:
        full = list(jargs)
        for i, wi in zip(wrt, w):
            full[i] = wi
        return f(*full)

    _, pullback = jax.vjp(partial, *[jargs[i] for i in wrt])
    grads = pullback(pytree.tree_map(jnp.asarray, cotangent))
    return [[np.asarray(g) for g in pytree.flatten(gi)[0]] for gi in grads]


def framework_vjp(name: str, f: Callable[..., Any], args: Sequence[Any], wrt: Sequence[int],
                  cotangent: Any) -> list[list[np.ndarray]]:
    """The gradient leaves of each ``wrt`` argument, by the framework's autograd."""
    if name == "torch":
        return _torch_vjp(f, args, wrt, cotangent)
    return _jax_vjp(f, args, wrt, cotangent)
