"""Framework adapters: run an op through PyTorch or JAX and their autograd.

Each backend evaluates the op with the framework's *own* operations (the
recipes in ``spec.py``: ``torch.softmax``, ``jax.nn.softmax``,
``torch.nn.functional.cross_entropy``, ...) and differentiates with the
framework's own autograd (``torch.autograd.grad``, ``jax.vjp``). Nothing here
re-implements a formula of the reference.

A backend is a (framework, mode, device):

* ``mode="eager"``: torch runs each op as it is called; jax runs ``jax.vjp``
  outside any ``jit`` and under ``jax.disable_jit()``, so that every primitive
  dispatches on its own, also inside jax's library functions that carry their
  own ``jit`` (``jax.nn.softmax``, ...).
* ``mode="compiled"``: ``torch.compile`` (inductor; ``dynamic=True``) of the
  recipe, whose backward AOTAutograd compiles too; ``jax.jit`` of the output
  and its VJP together.
* ``device``: ``"cpu"``, or ``"cuda"`` where the framework sees a GPU
  (:func:`devices_present`; jax looks for one only where ``JAX_PLATFORMS``
  allows it, and this module defaults that to ``cpu``).

Each compiled function is kept per (op, parameters) for the life of the
process: jax compiles once per input shape and dtype (0.2-0.5 s each under
``jit`` on a 2-core machine, 1-2 s eager, where every primitive compiles
once per shape), torch.compile once per dtype and rank (the first 30-50 s,
then seconds); the tests that use them draw shapes from a palette
(``strategies.PALETTES``) so that the caches stay warm. ``get_backend("torch")``
is eager torch and ``get_backend("jax")`` jitted jax (:data:`DEFAULT_MODE`).
"""

from __future__ import annotations

import importlib.util
import os
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from types import SimpleNamespace
from typing import Any, Protocol

import numpy as np

from .conversion import to_numpy, to_torch
from .recipes import SPECS

__all__ = ["BACKEND_NAMES", "MODES", "DEVICES", "DEFAULT_MODE", "Backend", "BackendUnavailable",
           "DeviceUnavailable", "get_backend", "available", "devices_present", "versions"]

BACKEND_NAMES = ("torch", "jax")
MODES = ("eager", "compiled")
DEVICES = ("cpu", "cuda")
DEFAULT_MODE = {"torch": "eager", "jax": "compiled"}
"""Each framework's usual mode, what ``get_backend(name)`` gives."""
TORCH_RECOMPILE_LIMIT = 64
"""Graphs torch.compile may keep per function (dtypes x ranks x size-1
specialisations of a palette); past it torch fails instead of falling back
to eager silently."""
INSTALL_HINT = {
    "torch": "pip install torch==2.13.0  (the CPU build; see constraints.txt)",
    "jax": "pip install jax jaxlib  (see constraints.txt)",
}


class BackendUnavailable(RuntimeError):
    """A requested framework is not installed."""


class DeviceUnavailable(RuntimeError):
    """A requested device is not present for a framework."""


class Backend(Protocol):
    name: str
    version: str
    mode: str
    device: str

    def forward(self, op: str, inputs: tuple[np.ndarray, ...], params: dict[str, Any]) -> np.ndarray: ...

    def vjp(self, op: str, cotangent: np.ndarray, inputs: tuple[np.ndarray, ...],
            params: dict[str, Any]) -> tuple[np.ndarray, tuple[np.ndarray, ...]]: ...


def available(name: str) -> bool:
    module = {"torch": "torch", "jax": "jax"}[name]
    return importlib.util.find_spec(module) is not None


def _check_mode_device(mode: str, device: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode: {mode!r} is not one of {list(MODES)}")
    if device not in DEVICES:
        raise ValueError(f"device: {device!r} is not one of {list(DEVICES)}")


def _params_key(params: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(params.items()))


@dataclass(eq=False)
class TorchBackend:
    name: str = "torch"
    version: str = ""
    mode: str = "eager"
    device: str = "cpu"

    def __post_init__(self) -> None:
        _check_mode_device(self.mode, self.device)
        import torch
        import torch.nn.functional as F

        if self.device == "cuda" and not torch.cuda.is_available():
            raise DeviceUnavailable("device: 'cuda' is not present for torch (torch.cuda.is_available() is False)")
        self._torch = torch
        self._ns = SimpleNamespace(torch=torch, F=F)
        self._functions: dict[tuple[str, tuple[tuple[str, Any], ...]], Callable[..., Any]] = {}
        self.version = torch.__version__

    def _function(self, op: str, params: dict[str, Any]) -> Callable[..., Any]:
        """The recipe as a function of the tensors; ``torch.compile``'d once
        per (op, params) in compiled mode."""
        key = (op, _params_key(params))
        if key not in self._functions:
            recipe, ns = SPECS[op].torch, self._ns

            def fn(*ts: Any) -> Any:
                return recipe(ns, *ts, **params)

            if self.mode == "compiled":
                # dynamo keeps its graphs, and counts them against the limit, per code object: a code
                # object of its own for each (op, params), or every op of a process would share one count
                name = f"torch_{op}_{len(self._functions)}"
                fn = types.FunctionType(fn.__code__.replace(co_name=name), fn.__globals__, name, None,
                                        fn.__closure__)
                import torch._dynamo.config as dynamo_config

                dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, TORCH_RECOMPILE_LIMIT)
                dynamo_config.fail_on_recompile_limit_hit = True
                fn = self._torch.compile(fn, dynamic=True)
            self._functions[key] = fn
        return self._functions[key]

    def _tensor(self, x: np.ndarray, grad: bool = False) -> Any:
        t = to_torch(x)
        return (t if self.device == "cpu" else t.to(self.device)).requires_grad_(grad)

    @staticmethod
    def _array(t: Any) -> np.ndarray:
        return to_numpy(t)

    def _run(self, op: str, inputs: tuple[np.ndarray, ...], params: dict[str, Any],
             grad: bool) -> tuple[Any, list[Any]]:
        ts = [self._tensor(x, grad) for x in inputs]
        out = self._function(op, params)(*ts)
        return out, ts

    def forward(self, op: str, inputs: tuple[np.ndarray, ...], params: dict[str, Any]) -> np.ndarray:
        with self._torch.no_grad():
            out, _ = self._run(op, inputs, params, grad=False)
        return self._array(out)

    def vjp(self, op: str, cotangent: np.ndarray, inputs: tuple[np.ndarray, ...],
            params: dict[str, Any]) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        torch = self._torch
        out, ts = self._run(op, inputs, params, grad=True)
        grads = torch.autograd.grad(out, ts, grad_outputs=self._tensor(cotangent), allow_unused=True)
        result = tuple(np.zeros_like(x) if gr is None else self._array(gr) for x, gr in zip(inputs, grads))
        return self._array(out), result


@dataclass(eq=False)
class JaxBackend:
    name: str = "jax"
    version: str = ""
    mode: str = "compiled"
    device: str = "cpu"

    def __post_init__(self) -> None:
        _check_mode_device(self.mode, self.device)
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
        self._place: Any = None
        if self.device == "cuda":
            gpus = _jax_gpus(jax)
            if not gpus:
                raise DeviceUnavailable(f"device: 'cuda' is not present for jax (jax.devices() is {jax.devices()}; "
                                        f"JAX_PLATFORMS={os.environ.get('JAX_PLATFORMS')!r})")
            self._place = gpus[0]
        self.version = jax.__version__

    @cache  # noqa: B019 -- one compiled function per (op, params) for the process lifetime is the point
    def _compiled(self, op: str, params_key: tuple[tuple[str, Any], ...]) -> Any:
        jax = self._jax
        params = dict(params_key)
        fn = SPECS[op].jax

        def fwd_and_vjp(inputs: tuple[Any, ...], g: Any) -> tuple[Any, Any]:
            out, pullback = jax.vjp(lambda *xs: fn(self._ns, *xs, **params), *inputs)
            return out, pullback(g)

        if self.mode == "compiled":
            return jax.jit(fwd_and_vjp)

        def eager(inputs: tuple[Any, ...], g: Any) -> tuple[Any, Any]:
            with jax.disable_jit():
                return fwd_and_vjp(inputs, g)

        return eager

    def vjp(self, op: str, cotangent: np.ndarray, inputs: tuple[np.ndarray, ...],
            params: dict[str, Any]) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        f = self._compiled(op, _params_key(params))
        args: Any = (tuple(inputs), cotangent)
        if self._place is not None:
            args = self._jax.device_put(args, self._place)
        out, grads = f(*args)
        return np.asarray(out), tuple(np.asarray(gr) for gr in grads)

    def forward(self, op: str, inputs: tuple[np.ndarray, ...], params: dict[str, Any]) -> np.ndarray:
        # The primal output of jax.vjp is the forward value of jax's own ops;
        # reusing the compiled function avoids a second compilation per shape.
        # The cotangent's shape comes from jax's own shape inference.
        params_key = _params_key(params)
        shape, dtype = self._out_spec(op, params_key, tuple((x.shape, x.dtype) for x in inputs))
        return self.vjp(op, np.zeros(shape, dtype=dtype), inputs, params)[0]

    @cache  # noqa: B019 -- shape inference traces the recipe; once per signature is enough
    def _out_spec(self, op: str, params_key: tuple[tuple[str, Any], ...],
                  signature: tuple[tuple[tuple[int, ...], np.dtype], ...]) -> tuple[tuple[int, ...], np.dtype]:
        jax = self._jax
        structs = [jax.ShapeDtypeStruct(s, d) for s, d in signature]
        out = jax.eval_shape(lambda *xs: SPECS[op].jax(self._ns, *xs, **dict(params_key)), *structs)
        return tuple(out.shape), np.dtype(out.dtype)


def _jax_gpus(jax: Any) -> list[Any]:
    try:
        return list(jax.devices("gpu"))
    except RuntimeError:  # jax's answer when no backend of that platform exists
        return []


def get_backend(name: str, mode: str | None = None, device: str = "cpu") -> Backend:
    """Return the adapter for ``name`` ("torch" or "jax") in ``mode``
    ("eager" or "compiled"; default :data:`DEFAULT_MODE`) on ``device``
    ("cpu" or "cuda"), one per process for each triple.

    Raises ``BackendUnavailable`` naming the install command when the
    framework is missing, ``DeviceUnavailable`` when the device is not
    present, and ``ValueError`` for an unknown name, mode or device."""
    if name not in BACKEND_NAMES:
        raise ValueError(f"backend: {name!r} is not one of {list(BACKEND_NAMES)}")
    mode = DEFAULT_MODE[name] if mode is None else mode
    _check_mode_device(mode, device)
    return _backend(name, mode, device)


@cache
def _backend(name: str, mode: str, device: str) -> Backend:
    if not available(name):
        raise BackendUnavailable(f"backend {name!r} is not installed; install it with: {INSTALL_HINT[name]}")
    return TorchBackend(mode=mode, device=device) if name == "torch" else JaxBackend(mode=mode, device=device)


def devices_present(name: str) -> tuple[str, ...]:
    """The :data:`DEVICES` framework ``name`` can run on here: ``"cpu"``, and
    ``"cuda"`` where ``torch.cuda.is_available()`` or jax has a GPU device;
    ``()`` when the framework is not installed. Imports the framework."""
    if name not in BACKEND_NAMES:
        raise ValueError(f"name: {name!r} is not one of {list(BACKEND_NAMES)}")
    if not available(name):
        return ()
    if name == "torch":
        import torch

        return ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)
    get_backend("jax")  # sets x64 and the platform default before jax starts
    import jax

    return ("cpu", "cuda") if _jax_gpus(jax) else ("cpu",)


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
