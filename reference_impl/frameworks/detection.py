"""Which framework a callable or a pytree belongs to, told without
importing one: torch and jax code can only exist once the caller has
imported them, so they are read from ``sys.modules``. Also each callable's
name and signature for the report, and the device the code under test runs on.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import sys
from typing import Any

from .. import pytree

__all__ = ["leaf_framework", "tree_frameworks", "detect", "subject_of", "signature_of", "import_framework", "device_of"]


def leaf_framework(x: Any) -> str | None:
    torch, jax = sys.modules.get("torch"), sys.modules.get("jax")
    if torch is not None and isinstance(x, torch.Tensor):
        return "torch"
    if jax is not None and isinstance(x, jax.Array):
        return "jax"
    return None


def tree_frameworks(tree: Any) -> dict[str, str]:
    """The frameworks whose arrays ``tree`` holds, each with the path of its first leaf."""
    leaves, s = pytree.flatten(tree)
    found: dict[str, str] = {}
    for path, leaf in zip(pytree.leaf_paths(s, ""), leaves):
        fw = leaf_framework(leaf)
        if fw is not None:
            found.setdefault(fw, path)
    return found


def _function_owner(obj: Any) -> type | None:
    owner = getattr(obj, "__self__", None)
    return owner if isinstance(owner, type) else None


def detect(fn: Any) -> str | None:
    """``"torch"`` / ``"jax"`` when the callable itself says so, else None
    (a plain function: only what it returns can tell)."""
    seen: set[int] = set()
    obj = fn
    while obj is not None and id(obj) not in seen:
        seen.add(id(obj))
        torch, jax = sys.modules.get("torch"), sys.modules.get("jax")
        owner = _function_owner(obj)
        if torch is not None and (isinstance(obj, torch.nn.Module) or hasattr(obj, "_torchdynamo_orig_callable")
                                  or (owner is not None and issubclass(owner, torch.autograd.Function))):
            return "torch"
        if jax is not None and isinstance(obj, (jax.custom_vjp, jax.custom_jvp)):
            return "jax"
        for module in (type(obj).__module__, getattr(obj, "__module__", None)):
            root = module.partition(".")[0] if isinstance(module, str) else ""
            if root == "torch":
                return "torch"
            if root in ("jax", "jaxlib"):
                return "jax"
        obj = obj.func if isinstance(obj, functools.partial) else getattr(obj, "__wrapped__", None)
    return None


def subject_of(fn: Any) -> str:
    owner = _function_owner(fn)
    if owner is not None:
        return f"{owner.__name__}.{getattr(fn, '__name__', 'apply')}"
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(fn, torch.nn.Module):
        return type(fn).__name__
    return str(getattr(fn, "__name__", type(fn).__name__))


def signature_of(fn: Any) -> inspect.Signature | None:
    """What the user's code accepts: an ``autograd.Function``'s ``forward``
    without ``ctx``, a Module's ``forward``, else the callable's own."""
    owner = _function_owner(fn)
    torch = sys.modules.get("torch")
    target = fn
    if torch is not None and owner is not None and issubclass(owner, torch.autograd.Function):
        target = getattr(owner, "forward")  # noqa: B009 (a Function subclass; mypy sees a plain type)
    elif torch is not None and isinstance(fn, torch.nn.Module):
        target = fn.forward
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return None
    params = list(sig.parameters.values())
    if target is not fn and params and params[0].name == "ctx":
        params = params[1:]
    return sig.replace(parameters=params)


def import_framework(name: str, arg: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise ValueError(f"{arg}: {name!r} is not installed ({e}); pip install 'reference-impl[frameworks]'") from None


def device_of(framework: str, device: Any) -> Any:
    """The framework's device object, or ValueError naming ``device``."""
    text = str(device)
    if framework == "torch":
        torch = import_framework("torch", "framework")
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError) as e:
            raise ValueError(f"device: {device!r} is not a torch device ({e}); use 'cpu' or 'cuda'") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device: {text!r} was asked for, but torch sees no CUDA device "
                             "(torch.cuda.is_available() is False); use device='cpu' (the default)")
        if dev.type == "cuda" and (dev.index or 0) >= torch.cuda.device_count():
            raise ValueError(f"device: {text!r}: torch sees {torch.cuda.device_count()} CUDA device(s)")
        if dev.type not in ("cpu", "cuda"):
            raise ValueError(f"device: {text!r}: the checks run on 'cpu' or 'cuda'")
        return dev
    jax = import_framework("jax", "framework")
    platform, _, index = text.partition(":")
    try:
        devices = jax.devices({"cuda": "gpu"}.get(platform, platform))
    except RuntimeError:
        have = sorted({d.platform for d in jax.devices()})
        raise ValueError(f"device: jax has no {text!r} device (it has: {', '.join(have)}); use device='cpu'") from None
    i = int(index) if index.isdigit() else 0
    if i >= len(devices):
        raise ValueError(f"device: {text!r}: jax has {len(devices)} {platform} device(s)")
    return devices[i]
