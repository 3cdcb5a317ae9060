"""torch and jax code as NumPy functions, for ``check_vjp``, ``check_grad`` and ``check_op``.

The checkers run NumPy functions on NumPy arrays. This module turns a
framework callable -- a function of torch tensors or jax arrays, a
``torch.autograd.Function``'s ``apply``, a ``jax.custom_vjp`` /
``custom_jvp`` function, a ``torch.compile``d or ``jax.jit``ted function, a
``torch.nn.Module`` -- into one: each drawn array becomes a tensor of the same
dtype on ``device`` and the results come back as NumPy arrays. When no VJP is
given, the framework's own reverse mode is the VJP under test:
``torch.autograd.grad`` through the user's code (so a custom ``backward`` is
what is judged) or ``jax.vjp`` (so a ``custom_vjp`` rule is); in forward
mode the same ``J^T v`` is built from the framework's JVPs,
``(J^T v)_k = <v, J e_k>`` (``torch.autograd.forward_ad``, ``jax.jvp``).
Nothing here computes a derivative itself.

Which framework: told from the callable (a ``torch.nn.Module``, an
``autograd.Function``, a compiled or jitted function, a ``custom_vjp``, or a
function or class whose module is torch's or jax's). A plain Python function
defined in the caller's own module cannot be told that way: its body's
``torch.sigmoid(x)`` and ``np.exp(x)`` are names looked up only when it runs,
so nothing on the function object names a framework. Its first call decides:
NumPy arrays in, and whichever framework's arrays come out; where it raises
on NumPy arrays, the tensors of each framework already imported are tried.
``framework=`` overrides all of this.

torch and jax are never imported to look: code of theirs can only exist once
the caller has imported them, so they are taken from ``sys.modules``.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .. import pytree
from .detection import device_of, leaf_framework, signature_of, subject_of, tree_frameworks

__all__ = ["Session", "Forward", "AutogradVJP", "UserVJP", "given_arrays"]


class _Refused(RuntimeError):
    """Raised inside the checkers' calls once a misuse is recorded: ends the search fast."""


# =========================================================================== arrays in and out


def _to_framework(framework: str, x: Any, dev: Any, grad: bool, session: Session) -> Any:
    if not isinstance(x, np.ndarray):
        return x
    if framework == "torch":
        torch = sys.modules["torch"]
        try:
            # CPU: the same memory, so a write into it is seen by the checkers' inputs-unchanged check
            t = torch.from_numpy(x) if dev.type == "cpu" and x.flags.writeable else torch.tensor(x, device=dev)
        except (ValueError, TypeError):  # negative strides, a byte order torch lacks
            t = torch.tensor(np.ascontiguousarray(x), device=dev)
        return t.requires_grad_(True) if grad and t.is_floating_point() else t
    jax = sys.modules["jax"]
    if x.dtype == np.float64 and not jax.config.jax_enable_x64:
        session.x64_off = True
    return jax.device_put(x, dev)


def _to_numpy(x: Any) -> Any:
    fw = leaf_framework(x)
    if fw == "torch":
        t = x.detach()
        if t.dtype == sys.modules["torch"].bfloat16:
            raise TypeError("returned a torch.bfloat16 tensor, which NumPy cannot hold; return the input's dtype")
        return t.cpu().resolve_conj().resolve_neg().numpy().copy()
    if fw == "jax":
        return np.array(x)
    return x


def given_arrays(tree: Any, name: str, role: str, framework: str | None, device: Any) -> tuple[Any, str | None]:
    """Tensors the caller gave (``params``, ``data``, examples in ``inputs``)
    as NumPy arrays, and their framework; TypeError/ValueError for what cannot be checked."""
    leaves, s = pytree.flatten(tree)
    found = tree_frameworks(tree)
    if len(found) > 1:
        raise TypeError(f"{name}: mixes torch tensors ({name}{found['torch']}) and jax arrays ({name}{found['jax']}) "
                        "in one pytree; give every array in one framework (or as NumPy arrays)")
    fw = next(iter(found), None)
    if fw is None:
        return tree, None
    if framework is not None and fw != framework:
        raise TypeError(f"{name}: holds {fw} arrays, but the code under test is {framework} code; give {framework} "
                        f"or NumPy arrays (or framework={fw!r} if the code is {fw} code)")
    dev = device_of(fw, device)
    out = []
    for path, x in zip(pytree.leaf_paths(s, name), leaves):
        if leaf_framework(x) is None:
            out.append(x)
            continue
        dtype = str(x.dtype).removeprefix("torch.")
        if "complex" in dtype:
            raise TypeError(f"{path}: {dtype} is not supported: the checks are for real floating values; pass the "
                            "real and imaginary parts as two real arrays")
        floating = "float" in dtype
        if role == "params" and not floating:
            raise TypeError(f"{path}: {dtype} has no gradient, and every leaf of params is differentiated; make it "
                            "floating or pass it in data")
        if fw == "torch":
            if x.grad_fn is not None:
                raise ValueError(f"{path}: a non-leaf tensor (made by {type(x.grad_fn).__name__}); the check takes "
                                 "its value and differentiates from there: pass it .detach()ed, or the leaf it was "
                                 "computed from")
            if role == "data" and x.requires_grad:
                raise ValueError(f"{path}: requires grad, but data is held fixed (only params are differentiated): "
                                 "pass it .detach()ed, or move it into params")
            if x.device != dev:
                raise ValueError(f"{path}: is on {x.device}, but device={str(device)!r}; move it there "
                                 f"(.to({str(device)!r})) or pass device={str(x.device)!r}")
        elif dev not in x.devices():
            raise ValueError(f"{path}: is on {sorted(map(str, x.devices()))}, but device={str(device)!r}; move it "
                             f"there (jax.device_put) or pass that device")
        out.append(_to_numpy(x.float() if fw == "torch" and dtype == "bfloat16" else x))
    return pytree.unflatten(s, out), fw


# =========================================================================== the user's code as NumPy functions


@dataclasses.dataclass
class Session:
    """What one check has learnt about the code under test."""

    subject: str
    framework: str | None
    """None until the first call decides (a plain function)."""
    candidates: tuple[str, ...]
    device: Any = "cpu"
    decided_by_call: bool = False
    needs: str = ""
    """Why the code must be torch or jax code, for the message when it cannot be told."""
    misuse: Exception | None = None
    x64_off: bool = False
    _devices: dict[str, Any] = dataclasses.field(default_factory=dict)

    def dev(self) -> Any:
        assert self.framework in ("torch", "jax")
        if self.framework not in self._devices:
            self._devices[self.framework] = device_of(self.framework, self.device)
        return self._devices[self.framework]

    def refuse(self, error: Exception) -> _Refused:
        if self.misuse is None:
            self.misuse = error
        return _Refused(str(self.misuse))

    def inputs(self, args: Sequence[Any], grad: Sequence[bool] = ()) -> list[Any]:
        assert self.framework is not None
        fw, dev = self.framework, self.dev()
        out = []
        for i, a in enumerate(args):
            g = i < len(grad) and grad[i]
            out.append(pytree.tree_map(functools.partial(self._convert, fw, dev, g), a))
        return out

    def _convert(self, fw: str, dev: Any, grad: bool, x: Any) -> Any:
        return _to_framework(fw, x, dev, grad, self)


def _undecidable(s: Session, fn: Any, tried: list[str]) -> ValueError:
    module = getattr(fn, "__module__", None) or "an unknown module"
    if s.needs:
        lead = f"{s.needs}; but {s.subject}"
    elif s.candidates == ("torch", "jax"):
        lead = ("vjp: none given, and NumPy has no autograd to take one from, so the code under test must be torch or "
                f"jax code; but {s.subject}")
    else:
        lead = f"framework: cannot tell which framework {s.subject} is written for:"
    return ValueError(f"{lead} is a plain function (of {module}), which names no framework -- only what it returns "
                      f"can tell, and {'; '.join(tried)}. Pass framework='torch' or framework='jax' (or give vjp=... "
                      "for NumPy code)")


class Forward:
    """The user's ``fn`` as a NumPy function (``check_vjp``'s ``f``, ``check_op``'s ``forward``)."""

    def __init__(self, fn: Callable[..., Any], session: Session, keep: Callable[[dict[str, Any]], dict[str, Any]]
                 ) -> None:
        self.fn, self.session, self.keep = fn, session, keep
        self.__name__ = session.subject
        sig = signature_of(fn)
        if sig is not None:
            self.__signature__ = sig

    def raw(self, args: Sequence[Any], kw: Mapping[str, Any]) -> Any:
        return self.fn(*args, **self.keep(dict(kw)))

    def __call__(self, *args: Any, **kw: Any) -> Any:
        s = self.session
        if s.misuse is not None:
            raise s.refuse(s.misuse)
        if tree_frameworks(args):  # an opinion's own tensors (backends=): the user's code as it is
            return self.raw(args, kw)
        if s.framework is None:
            return self.decide(args, kw)
        if s.framework == "numpy":
            return self.raw(args, kw)
        return pytree.tree_map(_to_numpy, self.raw(s.inputs(args), kw))

    def decide(self, args: Sequence[Any], kw: Mapping[str, Any]) -> Any:
        """The first call of a plain function: the framework of what it returns."""
        s = self.session
        tried = []
        error: Exception | None = None
        try:
            out = self.raw(args, kw)
            found = [fw for fw in tree_frameworks(out) if fw in s.candidates]
            if found:
                s.framework, s.decided_by_call = found[0], True
                return self(*args, **kw)
            if "numpy" in s.candidates:
                s.framework = "numpy"
                return out
            tried.append("called on NumPy arrays it returned NumPy arrays")
        except Exception as e:  # the user's code failing on NumPy input: try the frameworks' tensors
            if type(e).__module__.startswith("hypothesis"):
                raise  # assume()/reject(): this input is skipped, and the next call decides
            error = e
            tried.append(f"called on NumPy arrays it raised {type(e).__name__}: {e}")
        for fw in ("torch", "jax"):
            if fw not in s.candidates or fw not in sys.modules:
                continue
            s.framework = fw
            try:
                out = self.raw(s.inputs(args), kw)
            except Exception as e:  # not this framework's code either
                if type(e).__module__.startswith("hypothesis"):
                    s.framework = None
                    raise
                tried.append(f"on {fw} arrays it raised {type(e).__name__}: {e}")
                continue
            if fw in tree_frameworks(out):
                s.decided_by_call = True
                return pytree.tree_map(_to_numpy, out)
            tried.append(f"on {fw} arrays it returned no {fw} array")
        s.framework = None
        if "numpy" in s.candidates and error is not None:
            s.framework = "numpy"  # NumPy code with a bug: report its own error as the checks always have
            raise error
        raise s.refuse(_undecidable(s, self.fn, tried))


def _detached(s: Session, what: str) -> ValueError:
    hint = ("it was detached (.detach(), .numpy(), .item(), torch.tensor(...) of a tensor), computed under "
            "torch.no_grad() / torch.inference_mode() inside, or does not depend on the inputs")
    return ValueError(f"{what}: {s.subject} returned a result that does not require grad although its inputs do: "
                      f"{hint}; torch.autograd.grad has nothing to differentiate. Compute it with torch operations "
                      "on the tensors it receives, with grad enabled, or give vjp=... to check your own VJP")


def _torch_pullback(s: Session, fw: Forward, args: Sequence[Any], kw: Mapping[str, Any], cot: Any,
                    wrt: Sequence[int], what: str) -> list[Any]:
    torch = sys.modules["torch"]
    with torch.enable_grad():
        targs = s.inputs(args, [i in wrt for i in range(len(args))])
        out = fw.raw(targs, kw)
    outs = pytree.flatten(out)[0]
    cots = pytree.flatten(cot)[0]
    if len(cots) != len(outs):
        raise ValueError(f"returned {len(outs)} array(s) where the forward returned {len(cots)}")
    pairs = [(o, c) for o, c in zip(outs, cots) if isinstance(o, torch.Tensor) and o.requires_grad]
    if not pairs:
        raise s.refuse(_detached(s, what))
    leaves = [t for i in wrt for t in pytree.flatten(targs[i])[0] if isinstance(t, torch.Tensor) and t.requires_grad]
    grads = torch.autograd.grad([o for o, _ in pairs], leaves, allow_unused=True,
                                grad_outputs=[torch.as_tensor(np.asarray(c)).to(o.device, o.dtype) for o, c in pairs])
    it = iter(grads)
    result = []
    for i in wrt:
        part, st = pytree.flatten(targs[i])
        result.append(pytree.unflatten(st, [(lambda g, t: torch.zeros_like(t) if g is None else g)(next(it), t)
                                            for t in part]))
    return [pytree.tree_map(_to_numpy, r) for r in result]


def of_wrt(fw: Forward, args: Sequence[Any], wrt: Sequence[int], kw: Mapping[str, Any]) -> Callable[..., Any]:
    """``fw`` as a function of the inputs at ``wrt`` alone (what ``jax.vjp`` and ``jax.jvp`` differentiate),
    the others held at ``args``."""
    def partial(*w: Any) -> Any:
        full = list(args)
        for i, wi in zip(wrt, w):
            full[i] = wi
        return fw.raw(full, kw)
    return partial


def _jax_pullback(s: Session, fw: Forward, args: Sequence[Any], kw: Mapping[str, Any], cot: Any,
                  wrt: Sequence[int], what: str) -> list[Any]:
    jax = sys.modules["jax"]
    jargs = s.inputs(args)

    partial = of_wrt(fw, jargs, wrt, kw)

    try:
        out, pullback = jax.vjp(partial, *[jargs[i] for i in wrt])
    except jax.errors.TracerArrayConversionError:
        raise s.refuse(ValueError(f"{what}: {s.subject} turns a jax value into a NumPy array (np.asarray, "
                                  "float(), .item()) inside, where jax.vjp cannot follow it; use jax.numpy "
                                  "throughout, or give vjp=... to check your own VJP")) from None
    outs, tree = jax.tree_util.tree_flatten(out)
    cots = pytree.flatten(cot)[0]
    if len(cots) != len(outs):
        raise ValueError(f"returned {len(outs)} array(s) where the forward returned {len(cots)}")
    grads = pullback(jax.tree_util.tree_unflatten(tree, [np.asarray(c).astype(o.dtype) for o, c in zip(outs, cots)]))
    return [pytree.tree_map(_to_numpy, g) for g in grads]


def _torch_pushforward(s: Session, fw: Forward, args: Sequence[Any], kw: Mapping[str, Any], cot: Any,
                       wrt: Sequence[int], what: str) -> list[Any]:
    """``J^T v`` from forward mode: ``(J^T v)_k = <v, J e_k>``, one dual-number pass per input element."""
    torch = sys.modules["torch"]
    dual_ad = torch.autograd.forward_ad
    targs = s.inputs(args)
    cots = [torch.as_tensor(np.asarray(c)) for c in pytree.flatten(cot)[0]]
    result = []
    carried = False
    for i in wrt:
        leaves, st = pytree.flatten(targs[i])
        grads = []
        for j, x in enumerate(leaves):
            g = torch.zeros(x.numel(), dtype=x.dtype)
            for k in range(x.numel()):
                with dual_ad.dual_level(), warnings.catch_warnings():
                    # forward AD's first use loads a torch module that calls the deprecated torch.jit.script
                    warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated",
                                            category=DeprecationWarning)
                    e = torch.zeros(x.numel(), dtype=x.dtype)
                    e[k] = 1
                    call = list(targs)
                    call[i] = pytree.unflatten(st, [dual_ad.make_dual(x, e.reshape(x.shape)) if m == j else leaf
                                                    for m, leaf in enumerate(leaves)])
                    outs = pytree.flatten(fw.raw(call, kw))[0]
                    tangents = [dual_ad.unpack_dual(o).tangent if isinstance(o, torch.Tensor) else None for o in outs]
                    carried = carried or any(t is not None for t in tangents)
                g[k] = sum(((t * c.to(t.dtype)).sum() for t, c in zip(tangents, cots) if t is not None),
                           torch.zeros((), dtype=x.dtype))
            grads.append(g.reshape(x.shape))
        result.append(pytree.unflatten(st, grads))
    if not carried:  # no output carries a tangent: detached, or not computed from the inputs
        raise s.refuse(_detached(s, what))
    return [pytree.tree_map(_to_numpy, r) for r in result]


def _jax_pushforward(s: Session, fw: Forward, args: Sequence[Any], kw: Mapping[str, Any], cot: Any,
                     wrt: Sequence[int], what: str) -> list[Any]:
    """``J^T v`` from ``jax.jvp``: one JVP per input element (batched by ``jax.vmap``)."""
    jax = sys.modules["jax"]
    jnp = sys.modules["jax.numpy"]
    jargs = s.inputs(args)
    primals = tuple(jargs[i] for i in wrt)

    partial = of_wrt(fw, jargs, wrt, kw)

    cots = [np.asarray(c) for c in pytree.flatten(cot)[0]]
    result = []
    for a, primal in enumerate(primals):
        leaves, tree = jax.tree_util.tree_flatten(primal)
        grads = []
        for j, x in enumerate(leaves):
            def push(t: Any, a: int = a, j: int = j, leaves: list[Any] = leaves, tree: Any = tree) -> Any:
                tangents = [jax.tree_util.tree_map(jnp.zeros_like, p) for p in primals]
                tangents[a] = jax.tree_util.tree_unflatten(tree, [t if m == j else jnp.zeros_like(leaf)
                                                                  for m, leaf in enumerate(leaves)])
                return jax.jvp(partial, primals, tuple(tangents))[1]

            outs = jax.tree_util.tree_leaves(jax.vmap(push)(jnp.eye(x.size, dtype=x.dtype).reshape(x.size, *x.shape)))
            g = sum(jnp.tensordot(o.reshape(x.size, -1), jnp.asarray(c, o.dtype).reshape(-1), axes=1)
                    for o, c in zip(outs, cots))
            grads.append(np.asarray(g).astype(x.dtype).reshape(x.shape))
        result.append(jax.tree_util.tree_unflatten(tree, grads))
    return [pytree.tree_map(_to_numpy, r) for r in result]


def _floating(a: Any) -> bool:
    leaves = pytree.flatten(a)[0]
    return bool(leaves) and all(isinstance(x, np.ndarray) and x.dtype.kind == "f" for x in leaves)


class AutogradVJP:
    """The framework's reverse mode through the user's code, as ``vjp(cotangent,
    *inputs, **params)`` (every input's gradient, None for integer ones), or as
    ``grad(params, data)`` of a scalar loss; with ``mode="fwd"`` the same
    ``J^T v`` built from the framework's forward mode (JVPs)."""

    def __init__(self, forward: Forward, gradient_only: bool = False, mode: str = "rev") -> None:
        self.forward, self.gradient_only, self.mode = forward, gradient_only, mode
        self.__name__ = f"{forward.session.subject} ({'autograd' if mode == 'rev' else 'forward mode'})"

    def __call__(self, *args: Any, **kw: Any) -> Any:
        s = self.forward.session
        if s.misuse is not None:
            raise s.refuse(s.misuse)
        cot: Any = np.ones((), np.float64) if self.gradient_only else args[0]
        inputs = args if self.gradient_only else args[1:]
        if s.framework is None:
            self.forward(*inputs, **kw)  # decides the framework
        wrt = (0,) if self.gradient_only else tuple(i for i, a in enumerate(inputs) if _floating(a))
        what = "loss" if self.gradient_only else "f"
        pull = {("torch", "rev"): _torch_pullback, ("jax", "rev"): _jax_pullback, ("torch", "fwd"): _torch_pushforward,
                ("jax", "fwd"): _jax_pushforward}[(str(s.framework), self.mode)]
        grads = pull(s, self.forward, inputs, kw, cot, wrt, what)
        if self.gradient_only:
            return grads[0]
        by_index = dict(zip(wrt, grads))
        return tuple(by_index.get(i) for i in range(len(inputs)))


class UserVJP:
    """The user's own VJP (or gradient) of framework code: tensors in, NumPy out."""

    def __init__(self, fn: Callable[..., Any], session: Session, keep: Callable[[dict[str, Any]], dict[str, Any]]
                 ) -> None:
        self.fn, self.session, self.keep = fn, session, keep
        self.__name__ = subject_of(fn)

    def __call__(self, *args: Any, **kw: Any) -> Any:
        s = self.session
        if s.misuse is not None:
            raise s.refuse(s.misuse)
        if tree_frameworks(args) or s.framework in (None, "numpy"):
            return self.fn(*args, **self.keep(kw))
        return pytree.tree_map(_to_numpy, self.fn(*s.inputs(args), **self.keep(kw)))
