"""The checkers' hooks for torch and jax code: ``check_vjp``, ``check_grad`` and ``check_op`` call
:func:`adapt_vjp`, :func:`adapt_grad` and :func:`adapt_op` first and pass their result through
:meth:`Adapter.finish`.

Each hook tells the framework (``framework=`` or :func:`~reference_impl.frameworks.detection.detect`),
turns tensors the caller gave into NumPy arrays (refusing what cannot be checked, naming the
argument), wraps the code as NumPy functions (:mod:`reference_impl.frameworks.user_code`) and,
with no VJP given, makes the framework's autograd through that code the VJP under test. NumPy
code passes through unchanged.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .. import pytree
from .detection import detect, device_of, import_framework, signature_of, subject_of, tree_frameworks
from .user_code import AutogradVJP, Forward, Session, UserVJP, _to_numpy, given_arrays

__all__ = ["FRAMEWORKS", "MODES", "FWD_MAX_ELEMENTS", "adapt_vjp", "adapt_grad", "adapt_op", "adapt_network",
           "check_modes", "Adapter"]

MODES = ("rev", "fwd")
FWD_MAX_ELEMENTS = 256
"""Forward mode builds ``J^T v`` from one JVP per input element: drawn inputs are capped at this many."""

FRAMEWORKS = ("torch", "jax", "numpy")
X64_NOTE = ("jax_enable_x64 is off, so jax turned the float64 inputs into float32: turn it on before any jax array "
            "is made (jax.config.update('jax_enable_x64', True), or JAX_ENABLE_X64=1 in the environment), or check "
            "float32 only (dtypes=('float32',))")


@dataclasses.dataclass
class Adapter:
    """What a hook changed, to be applied to the checker's result."""

    session: Session | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    vjp_unchecked: bool = False
    """``check_op`` with a plain forward and no VJP: say so if it was framework code."""

    def finish(self, result: Any) -> Any:
        """``result`` with the notes, or the recorded misuse raised."""
        s = self.session
        if s is None:
            return result
        if s.misuse is not None:
            raise s.misuse
        # the counterexamples' arrays as the code's own literals (torch.tensor / jnp.array)
        found = tuple(dataclasses.replace(c, framework=s.framework) if s.framework in ("torch", "jax") else c
                      for c in result.counterexamples)
        notes = list(self.notes)
        if s.x64_off:
            found = tuple(dataclasses.replace(c, message=f"{c.message} ({X64_NOTE})") if c.dtype == "float64" else c
                          for c in found)
            notes.append(f"float64: {X64_NOTE}")
        if self.vjp_unchecked and s.decided_by_call:
            notes.append(f"vjp: not checked: {s.subject} was told to be {s.framework} code only by what it returned; "
                         f"pass framework={s.framework!r} to check its autograd VJP too")
        return dataclasses.replace(result, counterexamples=found, cuts=(*result.cuts, *notes))


def _resolve_framework(framework: Any, *fns: Any) -> str | None:
    if framework is not None:
        if framework not in FRAMEWORKS:
            raise ValueError(f"framework: {framework!r} is not one of {', '.join(map(repr, FRAMEWORKS))}")
        if framework != "numpy":
            import_framework(framework, "framework")
        return str(framework)
    for fn in fns:
        found = detect(fn) if fn is not None else None
        if found:
            return found
    return None


def _dtype_names(dtypes: Any) -> Any:
    """torch dtypes by their NumPy names (``torch.float32`` -> ``"float32"``); the checker validates the rest."""
    def name(d: Any) -> Any:
        return str(d).removeprefix("torch.") if type(d).__module__.startswith("torch") else d
    if isinstance(dtypes, (str, np.dtype, type)) or type(dtypes).__module__.startswith("torch"):
        return name(dtypes)
    try:
        return tuple(name(d) for d in dtypes)
    except TypeError:
        return dtypes


def _backends(backends: Any, fw: str | None, own_vjp: bool, notes: list[str]) -> Any:
    """The opinions that can run the code: a framework's autograd of its own code when a VJP is given."""
    items = tuple(b for b in backends.split(",") if b) if isinstance(backends, str) else backends
    try:
        names = list(items or ())
    except TypeError:
        return backends
    kept = []
    for b in names:
        if b not in ("torch", "jax") or (fw is None and own_vjp) or (b == fw and own_vjp):
            kept.append(b)
        elif b == fw:
            notes.append(f"backends: {b!r} left out: with no VJP given, the framework's autograd is the VJP under "
                         "test and would be compared with itself")
        elif fw is None:
            notes.append(f"backends: {b!r} left out: with no VJP given, the autograd of the code's own framework is "
                         "the VJP under test, and no other framework can run that code")
        else:
            notes.append(f"backends: {b!r} left out: it cannot run {fw} code")
    return tuple(kept)


def _examples(inputs: Any, fw: str | None, device: Any) -> tuple[Any, str | None]:
    """A list of example tuples holding tensors, as NumPy arrays (and their framework)."""
    if not isinstance(inputs, (list, tuple)) or not tree_frameworks(list(inputs)):
        return inputs, None
    out, found = [], fw
    for k, example in enumerate(inputs):
        converted, got = given_arrays(example, f"inputs[{k}]", "inputs", found, device)
        found = found or got
        out.append(converted)
    return out, found


def _probing(fw: str | None) -> bool:
    """A plain function may be framework code only once a framework is loaded."""
    return fw is None and ("torch" in sys.modules or "jax" in sys.modules)


def adapt_vjp(f: Any, vjp: Any, *, framework: Any, device: Any, backends: Any, dtypes: Any, inputs: Any
              ) -> tuple[Any, Any, Any, Any, Any, Adapter]:
    """``check_vjp``'s hook: ``(f, vjp, backends, dtypes, inputs, adapter)`` for the NumPy checker."""
    fw = _resolve_framework(framework, f, vjp)
    inputs, given = _examples(inputs, None if fw == "numpy" else fw, device)
    fw = fw or given
    if fw == "numpy" or not callable(f) or (vjp is not None and not callable(vjp)) or (
            vjp is not None and fw is None and not _probing(fw)):
        if vjp is None and callable(f):
            raise TypeError(f"vjp: none given, and {subject_of(f)} is NumPy code (framework='numpy'), which has no "
                            "autograd to take one from; give vjp=...")
        return f, vjp, backends, _dtype_names(dtypes), inputs, Adapter()
    session = Session(subject_of(f), fw, ("numpy", "torch", "jax") if vjp is not None else ("torch", "jax"), device)
    if fw is not None:
        session.dev()  # an absent device is refused before anything runs
    adapter = Adapter(session)
    forward = Forward(f, session, dict)
    own = UserVJP(vjp, session, dict) if vjp is not None else AutogradVJP(forward)
    return forward, own, _backends(backends, fw, vjp is not None, adapter.notes), _dtype_names(dtypes), inputs, adapter


def _model_loss(model: Any, loss_fn: Any, device: Any) -> tuple[Callable[..., Any], dict[str, np.ndarray]]:
    """A Module as ``loss(params, data)``: ``loss_fn(model(*inputs), target)``
    for ``data = (*inputs, target)``, or the model's own output (a scalar)
    for ``model(*data)`` without ``loss_fn``; the parameters that require grad
    are ``params``, run through ``torch.func.functional_call``."""
    torch = sys.modules["torch"]
    if loss_fn is not None and not callable(loss_fn):
        raise TypeError(f"loss_fn: expected a callable loss_fn(model_output, target) -> scalar, "
                        f"got {type(loss_fn).__name__}")
    dev = device_of("torch", device)
    trained = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if not trained:
        raise ValueError("loss: the model has no parameter that requires grad; there is nothing to check")
    for n, t in [*model.named_parameters(), *model.named_buffers()]:
        if t.device != dev:
            raise ValueError(f"loss: the model's {n!r} is on {t.device}, but device={str(device)!r}; move the model "
                             f"(model.to({str(device)!r})) or pass device={str(t.device)!r}")
    for n, p in trained.items():
        if not p.is_floating_point():
            raise TypeError(f"loss: the model's parameter {n!r} is {p.dtype}: one checked must be real floating")
    fixed = {**dict(model.named_buffers()),
             **{n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}}

    def model_loss(params: dict[str, Any], data: Any = None) -> Any:
        dtype = next(iter(params.values())).dtype
        state = {**{n: b.to(dtype) if b.is_floating_point() else b for n, b in fixed.items()}, **params}
        split = loss_fn is not None and isinstance(data, (tuple, list)) and len(data) >= 2
        args = tuple(data[:-1]) if split else tuple(data) if isinstance(data, (tuple, list)) else (
            () if data is None else (data,))
        out = torch.func.functional_call(model, state, args)
        if loss_fn is None:
            return out
        return loss_fn(out, data[-1]) if split else loss_fn(out)

    params = {n: p.detach().cpu().numpy().copy() for n, p in trained.items()}
    return model_loss, params


def adapt_grad(loss: Any, grad: Any, *, params: Any, data: Any, loss_fn: Any, framework: Any, device: Any,
               backends: Any, dtypes: Any) -> tuple[Any, Any, Any, Any, Any, Any, Adapter]:
    """``check_grad``'s hook: ``(loss, grad, params, data, backends, dtypes, adapter)``."""
    fw = _resolve_framework(framework, loss, grad)
    torch = sys.modules.get("torch")
    subject = subject_of(loss)
    if torch is not None and isinstance(loss, torch.nn.Module) and fw == "torch":
        if params is not None:
            raise ValueError("params: a Module's parameters are the params; leave params out (a parameter with "
                             "requires_grad=False is held fixed)")
        loss, params = _model_loss(loss, loss_fn, device)
    elif loss_fn is not None:
        raise ValueError("loss_fn: only with a torch.nn.Module as loss (the model); otherwise compute the loss in loss")
    if params is None:
        raise TypeError("params: required (a pytree of arrays, Args or a strategy), unless loss is a torch.nn.Module")
    given: dict[str, str | None] = {}
    for name in ("params", "data"):
        value = params if name == "params" else data
        converted, given[name] = given_arrays(value, name, name, None if fw == "numpy" else fw, device)
        if name == "params":
            params = converted
        else:
            data = converted
    fw = fw or given["params"] or given["data"]
    if fw == "numpy" or not callable(loss) or (grad is not None and not callable(grad)) or (
            grad is not None and fw is None and not _probing(fw)):
        if grad is None and callable(loss):
            raise TypeError(f"grad: none given, and {subject} is NumPy code (framework='numpy'), which has no "
                            "autograd to take one from; give grad=...")
        return loss, grad, params, data, backends, _dtype_names(dtypes), Adapter()
    session = Session(subject, fw, ("numpy", "torch", "jax") if grad is not None else ("torch", "jax"), device)
    if fw is not None:
        session.dev()
    adapter = Adapter(session)
    forward = Forward(loss, session, dict)
    own = UserVJP(grad, session, dict) if grad is not None else AutogradVJP(forward, gradient_only=True)
    return (forward, own, params, data, _backends(backends, fw, grad is not None, adapter.notes),
            _dtype_names(dtypes), adapter)


def _keeper(fn: Any, role: str, op: str, op_params: Mapping[str, Sequence[str]], fixed: Mapping[str, Any]
            ) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
    """Which of the op's keyword parameters ``fn`` is passed: all, when its
    signature takes them (or cannot be read); those fixed in ``params`` that it
    does not take are left out; a drawn one it does not take is refused."""
    sig = signature_of(fn)
    if sig is None or any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    missing = [k for k in op_params if k not in sig.parameters]
    drawn = [k for k in missing if k not in fixed]
    if drawn:
        k = drawn[0]
        raise ValueError(f"params: your {role} ({subject_of(fn)}) takes no {k!r} argument, so check_op cannot pass the "
                         f"{k} it draws for {op}; fix it: params={{{k!r}: {next(iter(op_params[k]))!r}}} "
                         f"(one of {list(op_params[k])})")
    if not missing:
        return None
    return lambda kw: {k: v for k, v in kw.items() if k not in missing}


def adapt_op(op: str, forward: Any, vjp: Any, *, op_params: Mapping[str, Sequence[str]], params: Any,
             framework: Any, device: Any, dtypes: Any) -> tuple[Any, Any, Any, Adapter]:
    """``check_op``'s hook: ``(forward, vjp, dtypes, adapter)``. With framework
    code and no ``vjp``, the framework's autograd through ``forward`` is the VJP
    checked beside it. Keyword parameters the code does not take are passed
    only when drawn (and then refused: fix them in ``params``)."""
    fixed = params if isinstance(params, Mapping) else {}
    fw = _resolve_framework(framework, forward, vjp)
    keep = {role: _keeper(fn, role, op, op_params, fixed) if callable(fn) else None
            for role, fn in (("forward", forward), ("vjp", vjp))}
    user = forward if forward is not None else vjp
    if not callable(user) or (vjp is not None and not callable(vjp)) or fw == "numpy" or (
            fw is None and (forward is None or not _probing(fw))):
        wrapped = []
        for role, fn in (("forward", forward), ("vjp", vjp)):
            k = keep[role]
            wrapped.append(fn if k is None else Forward(fn, Session(subject_of(fn), "numpy", ("numpy",)), k))
        return wrapped[0], wrapped[1], _dtype_names(dtypes), Adapter()
    session = Session(subject_of(user), fw, ("numpy", "torch", "jax"), device)
    if fw is not None:
        session.dev()
    adapter = Adapter(session)
    fwd = Forward(forward, session, keep["forward"] or dict) if forward is not None else None
    if vjp is not None:
        own: Any = UserVJP(vjp, session, keep["vjp"] or dict)
    elif fw is not None and fwd is not None:
        own = AutogradVJP(fwd)
    else:
        own, adapter.vjp_unchecked = None, True
    return fwd, own, _dtype_names(dtypes), adapter


class _NetworkCode:
    """A torch or jax ``value_and_grad(params, x, target)`` as a NumPy function: the parameters arrive as tensors
    that require grad (jax arrays), ``x`` and ``target`` as tensors that do not; the results come back as NumPy."""

    def __init__(self, fn: Callable[..., Any], session: Session) -> None:
        self.forward = Forward(fn, session, dict)
        self.__name__ = session.subject

    def __call__(self, params: Any, x: Any, target: Any) -> Any:
        s = self.forward.session
        if s.framework is None:
            self.forward(params, x, target)  # decides the framework by what it returns
        if s.framework == "numpy":
            return self.forward.raw((params, x, target), {})
        torch = sys.modules.get("torch")
        args = s.inputs((params, x, target), (True, False, False))
        if s.framework == "torch" and torch is not None:
            with torch.enable_grad():
                out = self.forward.raw(args, {})
        else:
            out = self.forward.raw(args, {})
        return pytree.tree_map(_to_numpy, out)


def adapt_network(value_and_grad: Any, model: Any, mlp: Any, *, framework: Any, device: Any) -> Any:
    """``check_network``'s hook: the ``value_and_grad`` to check, NumPy in and out: a ``torch.nn.Module`` given as
    ``model`` (:func:`reference_impl.frameworks.networks.module_value_and_grad`), or torch or jax code given as
    ``value_and_grad``; NumPy code unchanged. Misuse raises naming the argument."""
    if model is not None:
        if value_and_grad is not None:
            raise ValueError("value_and_grad: given beside model=; the model's autograd is the value_and_grad checked, "
                             "so leave one of them out")
        torch = sys.modules.get("torch")
        if torch is None or not isinstance(model, torch.nn.Module):
            raise TypeError(f"model: expected a torch.nn.Module whose nn.Linear layers are the network's, got "
                            f"{type(model).__name__}")
        if framework not in (None, "torch"):
            raise ValueError(f"framework: {framework!r}, but model is a torch.nn.Module")
        if mlp is None:
            return None
        from .networks import module_value_and_grad

        return module_value_and_grad(mlp, model, device)
    fw = _resolve_framework(framework, value_and_grad)
    if not callable(value_and_grad) or fw == "numpy" or (fw is None and not _probing(fw)):
        return value_and_grad
    session = Session(subject_of(value_and_grad), fw, ("numpy", "torch", "jax"), device)
    if fw is not None:
        session.dev()
    return _NetworkCode(value_and_grad, session)


def check_modes(check_vjp: Callable[..., Any], f: Any, vjp: Any, modes: Any, kwargs: dict[str, Any]) -> Any:
    """``check_vjp`` per mode, merged: ``rev`` as asked, ``fwd`` with the
    VJP under test ``J^T v`` built from the framework's JVPs of ``f``
    (``torch.autograd.forward_ad`` / ``jax.jvp``, ``(J^T v)_k = <v, J e_k>``)
    and judged by the same Taylor-order and adjoint verdicts, and against the
    reverse mode's ``J^T v`` under the error model (``fwd vs rev``: the
    consistency ``<J u, v> = <u, J^T v>``); its rows and findings carry `` (fwd)``."""
    items = (modes,) if isinstance(modes, str) else modes
    try:
        items = tuple(items)
    except TypeError:
        raise TypeError(f"modes: expected a sequence such as ('rev', 'fwd'), got {type(modes).__name__}") from None
    bad = [m for m in items if m not in MODES]
    if bad or not items:
        raise ValueError(f"modes: {bad[0] if bad else items!r} is not a mode; use 'rev' and/or 'fwd'")
    results = [check_vjp(f, vjp, **kwargs)] if "rev" in items else []
    if "fwd" in items:
        fw = _resolve_framework(kwargs["framework"], f)
        if fw == "numpy" or not callable(f):
            raise ValueError("modes: 'fwd' checks the framework's forward mode, which NumPy code has none of; pass "
                             "torch or jax code, or modes=('rev',)")
        session = Session(subject_of(f), fw, ("torch", "jax"), kwargs["device"],
                          needs="modes: 'fwd' checks the framework's forward mode, so f must be torch or jax code")
        if fw is not None:
            session.dev()
        forward = Forward(f, session, dict)
        cap = min(kwargs["max_elements"], FWD_MAX_ELEMENTS)
        # the framework's reverse mode of the same code as the opinion: J^T v from both modes agree
        # elementwise under the error model, i.e. <J u, v> = <u, J^T v> for every u (jax's opinion
        # switches 64-bit mode on, so it is asked only where it is on already)
        jax = sys.modules.get("jax")
        rev = (fw,) if fw == "torch" or (fw == "jax" and jax is not None and jax.config.jax_enable_x64) else ()
        fwd = check_vjp(forward, AutogradVJP(forward, mode="fwd"),
                        **{**kwargs, "framework": "numpy", "backends": rev, "max_elements": cap})
        fwd = Adapter(session).finish(fwd)

        def named(check: str, against: str) -> str:
            return f"fwd vs rev{check.removeprefix('autograd')}" if against in rev else f"{check} (fwd)"

        results.append(dataclasses.replace(
            fwd, functions=("f", "jvp"),
            rows=tuple(dataclasses.replace(r, check=named(r.check, r.against)) for r in fwd.rows),
            counterexamples=tuple(dataclasses.replace(c, check=named(c.check, c.against))
                                  for c in fwd.counterexamples)))
    first = results[0]
    return dataclasses.replace(first, functions=tuple(dict.fromkeys(n for r in results for n in r.functions)),
                               **{k: tuple(x for r in results for x in getattr(r, k))
                                  for k in ("rows", "counterexamples", "problems", "cuts")})
