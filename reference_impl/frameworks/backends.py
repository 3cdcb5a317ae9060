"""Framework adapters: run an op through PyTorch or JAX and their autograd.

Each backend evaluates the op with the framework's *own* operations (the
recipes in ``spec.py``: ``torch.softmax``, ``jax.nn.softmax``,
``torch.nn.functional.cross_entropy``, ...) and differentiates with the
framework's own autograd (``torch.autograd.grad``, ``jax.vjp``). Nothing here
re-implements a formula of the reference.

JAX compiles a new executable for every input shape (0.2-0.5 s each under
``jit`` on a 2-core machine, 1.1-1.7 s eager). The adapter therefore keeps one
``jax.jit``-compiled function per (op, parameters) that returns the output
*and* the VJP together, so the forward test and the VJP test share one
compilation per shape; the JAX tests draw shapes from a palette
(``strategies.PALETTES``) so that the cache stays warm.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from types import SimpleNamespace
from typing import Any, Protocol

import numpy as np

from .conversion import to_numpy, to_torch
from .recipes import SPECS

__all__ = ["BACKEND_NAMES", "Backend", "BackendUnavailable", "get_backend", "available", "versions"]

BACKEND_NAMES = ("torch", "jax")
INSTALL_HINT = {
    "torch": "pip install torch==2.13.0  (the CPU build; see constraints.txt)",
    "jax": "pip install jax jaxlib  (see constraints.txt)",
}


class BackendUnavailable(RuntimeError):
    """A requested framework is not installed."""


class Backend(Protocol):
    name: str
    version: str

    def forward(self, op: str, inputs: tuple[np.ndarray, ...], params: dict[str, Any]) -> np.ndarray: ...

    def vjp(self, op: str, cotangent: np.ndarray, inputs: tuple[np.ndarray, ...],
            params: dict[str, Any]) -> tuple[np.ndarray, tuple[np.ndarray, ...]]: ...


def available(name: str) -> bool:
    module = {"torch": "torch", "jax": "jax"}[name]
    return importlib.util.find_spec(module) is not None


@dataclass(eq=False)
class TorchBackend:
    name: str = "torch"
    version: str = ""

    def __post_init__(self) -> None:
        import torch
        import torch.nn.functional as F

        self._torch = torch
        self._ns = SimpleNamespace(torch=torch, F=F)
        self.version = torch.__version__

    def _run(self, op: str, inputs: tuple[np.ndarray, ...], params: dict[str, Any],
             grad: bool) -> tuple[Any, list[Any]]:
        ts = [to_torch(x).requires_grad_(grad) for x in inputs]
        out = SPECS[op].torch(self._ns, *ts, **params)
        return out, ts

    def forward(self, op: str, inputs: tuple[np.ndarray, ...], params: dict[str, Any]) -> np.ndarray:
        with self._torch.no_grad():
            out, _ = self._run(op, inputs, params, grad=False)
        return to_numpy(out)

    def vjp(self, op: str, cotangent: np.ndarray, inputs: tuple[np.ndarray, ...],
            params: dict[str, Any]) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        torch = self._torch
        out, ts = self._run(op, inputs, params, grad=True)
        g = to_torch(cotangent)
        grads = torch.autograd.grad(out, ts, grad_outputs=g, allow_unused=True)
        result = tuple(
            np.zeros_like(x) if gr is None else to_numpy(gr) for x, gr in zip(inputs, grads)
        )
        return to_numpy(out), result


@dataclass(eq=False)
class JaxBackend:
    name: str = "jax"
    version: str = ""

    def __post_init__(self) -> None:
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        import jax

        # Without x64, jax silently computes float64 inputs in float32; the
        # comparison then fails on dtype, but enabling it is what we want.
        jax.config.update("jax_enable_x64", True)  # type: ignore[no-untyped-call]
        import jax.numpy as jnp
        import jax.scipy.special as jss
        import optax

        self._jax = jax
        self._ns = SimpleNamespace(jax=jax, jnp=jnp, nn=jax.nn, special=jss, optax=optax)
        self.version = jax.__version__

    @cache  # noqa: B019 -- one compiled function per (op, params) for the process lifetime is the point
    def _compiled(self, op: str, params_key: tuple[tuple[str, Any], ...]) -> Any:
        jax = self._jax
        params = dict(params_key)
        fn = SPECS[op].jax

        def fwd_and_vjp(inputs: tuple[Any, ...], g: Any) -> tuple[Any, Any]:
            out, pullback = jax.vjp(lambda *xs: fn(self._ns, *xs, **params), *inputs)
            return out, pullback(g)

        return jax.jit(fwd_and_vjp)

    def vjp(self, op: str, cotangent: np.ndarray, inputs: tuple[np.ndarray, ...],
            params: dict[str, Any]) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        f = self._compiled(op, tuple(sorted(params.items())))
        out, grads = f(tuple(inputs), cotangent)
        return np.asarray(out), tuple(np.asarray(gr) for gr in grads)

    def forward(self, op: str, inputs: tuple[np.ndarray, ...], params: dict[str, Any]) -> np.ndarray:
        # The primal output of jax.vjp is the forward value of jax's own ops;
        # reusing the compiled function avoids a second compilation per shape.
        # The cotangent's shape comes from jax's own shape inference.
        params_key = tuple(sorted(params.items()))
        shape, dtype = self._out_spec(op, params_key, tuple((x.shape, x.dtype) for x in inputs))
        return self.vjp(op, np.zeros(shape, dtype=dtype), inputs, params)[0]

    @cache  # noqa: B019 -- shape inference traces the recipe; once per signature is enough
    def _out_spec(self, op: str, params_key: tuple[tuple[str, Any], ...],
                  signature: tuple[tuple[tuple[int, ...], np.dtype], ...]) -> tuple[tuple[int, ...], np.dtype]:
        jax = self._jax
        structs = [jax.ShapeDtypeStruct(s, d) for s, d in signature]
        out = jax.eval_shape(lambda *xs: SPECS[op].jax(self._ns, *xs, **dict(params_key)), *structs)
        return tuple(out.shape), np.dtype(out.dtype)


@cache
def get_backend(name: str) -> Backend:
    """Return the adapter for ``name`` ("torch" or "jax").

    Raises ``BackendUnavailable`` naming the install command when the
    framework is missing, and ``ValueError`` for an unknown name."""
    if name not in BACKEND_NAMES:
        raise ValueError(f"backend: {name!r} is not one of {list(BACKEND_NAMES)}")
    if not available(name):
        raise BackendUnavailable(f"backend {name!r} is not installed; install it with: {INSTALL_HINT[name]}")
    return TorchBackend() if name == "torch" else JaxBackend()


def versions() -> dict[str, str | None]:
    """Installed framework versions (None where missing), without importing them."""
    out: dict[str, str | None] = {}
    for dist in ("torch", "jax", "jaxlib", "optax"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out


def relu_kink_probes(backends: Sequence[str]) -> dict[str, list[float]]:
    """The gradient each framework's relu-like functions give at ``[0.0, -0.0]``
    (``relu'(0)``, a convention), for those of ``backends`` that are torch or jax."""
    zeros = np.array([0.0, -0.0])
    probes: dict[str, list[float]] = {}
    if "torch" in backends:
        import torch

        def tgrad(f: Callable[[Any], Any]) -> list[float]:
            x = torch.tensor(zeros, requires_grad=True)
            (g,) = torch.autograd.grad(f(x).sum(), x)
            return [float(v) for v in g.tolist()]

        probes["torch.relu"] = tgrad(torch.relu)
        probes["torch.maximum(x, 0)"] = tgrad(lambda x: torch.maximum(x, torch.zeros_like(x)))
        probes["torch.clamp(x, min=0)"] = tgrad(lambda x: torch.clamp(x, min=0))
    if "jax" in backends:
        get_backend("jax")  # sets x64 before the first jax array exists
        import jax
        import jax.numpy as jnp

        def jgrad(f: Callable[[Any], Any]) -> list[float]:
            return [float(v) for v in np.asarray(jax.grad(lambda x: f(x).sum())(jnp.asarray(zeros))).tolist()]

        probes["jax.nn.relu"] = jgrad(jax.nn.relu)
        probes["jnp.maximum(x, 0)"] = jgrad(lambda x: jnp.maximum(x, 0.0))
    return probes
