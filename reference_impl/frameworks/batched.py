"""``check_vjp(..., batched=True)``: the framework's ``vmap`` of the VJP against the per-example VJPs.

As ``gradcheck``'s ``check_batched_grad`` asks: the VJP under test is ``J^T
v`` taken as one row of the framework's batched reverse mode over a stack of
cotangents ``[a, v, b]`` (``a`` and ``b`` fixed per output shape; ``v`` in
the middle, so a rule mixing rows shows): ``torch.func.vmap`` of
``torch.autograd.grad`` through the user's graph (so the ``vmap``
staticmethod of a Function called inside a ``backward`` is used; the legacy
vmap of ``is_grads_batched=True`` and of ``gradcheck``'s
``check_batched_grad`` bypasses it) or ``jax.vmap`` of ``jax.vjp``'s
pullback (so a ``custom_vmap`` rule inside a ``bwd`` is used). It is
judged by the Taylor-order and adjoint verdicts, and against the
framework's per-example autograd under the error model (the row ``vmap vs
per-example``, the comparison engine's opinion check). Code that cannot be
vmapped gets a finding naming why, not a crash. Nothing here computes a
derivative itself.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import pytree
from .detection import subject_of
from .user_code import Forward, Session, _detached, _floating, _to_numpy, of_wrt

__all__ = ["check_batched", "BATCH"]

BATCH = 3
"""Cotangents in the stack: the drawn one between two fixed ones."""


def _stack(v: np.ndarray) -> np.ndarray:
    """``[a, v, b]``: ``a``, ``b`` standard normal draws seeded by ``v``'s shape only."""
    shape = np.shape(v)
    a, b = (np.random.default_rng([21, k, len(shape), *shape]).standard_normal(shape) for k in (0, 1))
    return np.stack([a.astype(v.dtype), v, b.astype(v.dtype)])


class BatchedVJP:
    """``vjp(v, *inputs)``: the middle row of the framework's batched VJP (every input's gradient, None for
    integer ones)."""

    def __init__(self, forward: Forward) -> None:
        self.forward = forward
        self.__name__ = f"{forward.session.subject} (vmap)"

    def __call__(self, cot: Any, *args: Any) -> Any:
        s = self.forward.session
        if s.framework is None:
            self.forward(*args)  # decides the framework
        wrt = tuple(i for i, a in enumerate(args) if _floating(a))
        cots = [_stack(np.asarray(c)) for c in pytree.flatten(cot)[0]]
        try:
            grads = (_torch if s.framework == "torch" else _jax)(s, self.forward, args, cots, wrt)
        except Exception as e:  # the framework refusing to vmap the user's backward: a finding, named
            if type(e).__module__.startswith("hypothesis") or s.misuse is not None:
                raise
            raise RuntimeError(f"cannot be vmapped: the framework's vmap of the VJP of {s.subject} raised "
                               f"{type(e).__name__}: {e}") from None
        by_index = dict(zip(wrt, grads))
        return tuple(by_index.get(i) for i in range(len(args)))


def _torch(s: Session, fw: Forward, args: Any, cots: list[np.ndarray], wrt: tuple[int, ...]) -> list[Any]:
    torch = sys.modules["torch"]
    with torch.enable_grad():
        targs = s.inputs(args, [i in wrt for i in range(len(args))])
        outs = pytree.flatten(fw.raw(targs, {}))[0]
    if len(outs) != len(cots):
        raise ValueError(f"returned {len(outs)} array(s) where the forward returned {len(cots)}")
    pairs = [(o, torch.as_tensor(c).to(o.device, o.dtype)) for o, c in zip(outs, cots)
             if isinstance(o, torch.Tensor) and o.requires_grad]
    leaves = [targs[i] for i in wrt]
    if not pairs:
        raise s.refuse(_detached(s, "f"))
    outputs = [o for o, _ in pairs]

    def pullback(*vs: Any) -> Any:
        got = torch.autograd.grad(outputs, leaves, list(vs), allow_unused=True, retain_graph=True)
        return tuple(torch.zeros_like(t) if g is None else g for g, t in zip(got, leaves))

    # torch.func.vmap (functorch), not is_grads_batched's legacy vmap: a Function with its own vmap rule called in
    # a backward is batched by that rule only under torch.func.vmap
    got = torch.func.vmap(pullback)(*[c for _, c in pairs])
    return [_to_numpy(g[1]) for g in got]


def _jax(s: Session, fw: Forward, args: Any, cots: list[np.ndarray], wrt: tuple[int, ...]) -> list[Any]:
    jax = sys.modules["jax"]
    jargs = s.inputs(args)

    partial = of_wrt(fw, jargs, wrt, {})

    out, pull = jax.vjp(partial, *[jargs[i] for i in wrt])
    leaves, tree = jax.tree_util.tree_flatten(out)
    stacked = jax.tree_util.tree_unflatten(tree, [c.astype(o.dtype) for o, c in zip(leaves, cots)])
    return [_to_numpy(g[1]) for g in jax.vmap(pull)(stacked)]


def check_batched(check_vjp: Callable[..., Any], f: Any, vjp: Any, kwargs: dict[str, Any]) -> Any:
    """``check_vjp`` of the batched VJP (the module's docstring); rows and findings carry `` (vmap)``."""
    from .callables import Adapter, _resolve_framework

    fw = _resolve_framework(kwargs["framework"], f)
    if fw == "numpy" or not callable(f):
        raise ValueError("batched: True checks the framework's vmap of its VJP, which NumPy code has none of; pass "
                         "torch or jax code, or batched=False")
    if vjp is not None:
        raise ValueError("vjp: batched=True checks the framework's autograd of f under vmap; leave vjp out")
    session = Session(subject_of(f), fw, ("torch", "jax"), kwargs["device"],
                      needs="batched: True checks the framework's vmap, so f must be torch or jax code")
    if fw is not None:
        session.dev()
    forward = Forward(f, session, dict)
    jax = sys.modules.get("jax")
    rev = (fw,) if fw == "torch" or (fw == "jax" and jax is not None and jax.config.jax_enable_x64) else ()
    inner = {k: v for k, v in kwargs.items() if k not in ("modes", "backends")}
    notes = _backend_notes(kwargs.get("backends", ()), fw, rev)
    result = Adapter(session, notes).finish(check_vjp(forward, BatchedVJP(forward),
                                                      **{**inner, "framework": "numpy", "backends": rev}))

    def named(check: str, against: str) -> str:
        return f"vmap vs per-example{check.removeprefix('autograd')}" if against in rev else f"{check} (vmap)"

    return dataclasses.replace(
        result, functions=("f", "vmap vjp"),
        rows=tuple(dataclasses.replace(r, check=named(r.check, r.against)) for r in result.rows),
        counterexamples=tuple(dataclasses.replace(c, check=named(c.check, c.against))
                              for c in result.counterexamples))


def _backend_notes(backends: Any, fw: str | None, rev: tuple[str, ...]) -> list[str]:
    """``backends=`` under ``batched=True``: the code's own framework is the per-example opinion already (the
    row ``vmap vs per-example``); another framework cannot run the code. Unknown names are refused."""
    from .array_api import BACKENDS

    items = tuple(b for b in backends.split(",") if b) if isinstance(backends, str) else tuple(backends or ())
    notes = []
    for b in items:
        if b not in BACKENDS:
            raise ValueError(f"backends: unknown backend {b!r}; valid: {', '.join(BACKENDS)}")
        if b in rev:
            notes.append(f"backends: {b!r} is the per-example autograd each vmapped row is compared with "
                         "(vmap vs per-example)")
        elif b == fw:
            notes.append(f"backends: {b!r} left out: jax_enable_x64 is off, so jax's per-example VJP is not "
                         "compared (turn it on for the vmap vs per-example row)")
        else:
            notes.append(f"backends: {b!r} left out: it cannot run {fw or 'this'} code")
    return notes
