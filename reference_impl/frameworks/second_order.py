"""``check_vjp(..., order=2)``: the gradient's own derivative, the Hessian-vector product.

For a fixed cotangent ``v`` (drawn once per output shape, so it is the same
at every perturbed input) the gradient ``g(x) = J(x)^T v`` of the scalar
``phi(x) = <v, f(x)>`` is itself a function of ``x``, and its VJP with
cotangent ``u`` is ``H u`` (``H``, the Hessian of ``phi``, is symmetric).
``check_vjp`` judges the pair ``(g, H u)`` as it judges ``(f, J^T v)``: the
Taylor remainder ``|<w, g(x + h d)> - <w, g(x)> - h <H w, d>|`` shrinks like
``h^2`` when the HVP is right and like ``h`` when not, and the adjoint test
holds ``<H w, d>`` against central differences of ``g``.

``g`` and ``H u`` are the framework's: ``torch.autograd.grad(...,
create_graph=True)`` twice, or ``jax.vjp`` of ``jax.vjp`` (reverse over
reverse, so a ``custom_vjp``'s ``bwd`` is differentiated); a custom
``backward`` that is not itself differentiated correctly (a ``.detach()``
on a saved tensor, ``jax.lax.stop_gradient`` in a rule) gives a wrong ``H u``
beside a right ``g``. NumPy code gives its own ``vjp`` and ``hvp(v, u,
*inputs) -> H u`` (one per ``wrt`` input, as ``vjp`` returns them);
``backends=`` then compares that ``H u`` with torch's and jax's double
backward of the same ``f`` (written against the array API).
Nothing here computes a derivative itself.

Rounding floor of ``g``: beside its inputs, ``g`` reads values computed in the
forward (tanh's ``1 - y^2`` from ``y``). Each such ``t_j``, rounded by
``u |t_j|``, moves ``<w, g>`` by ``u |t_j| |d<|w|, g>/dt_j|``; near
saturation that is ``u``, not ``u (1 - y^2)``, and ``g`` is a staircase whose
treads ``H u`` does not see. A ``t_j`` the framework differentiates to exactly
zero (``sigmoid(x)`` rounded to 1) is a constant to it: a fixed offset of
``g`` that ``g(x + h d) - g(x)`` cancels, beside a zero term in ``H u``, so it
is left out. torch: the forward outputs (``intermediate_magnitude``); jax:
every top-level value of ``g``'s jaxpr (its residuals hold ``1 - y^2``
already computed). ``check_vjp`` adds the sum to the magnitude behind its
floor and its float32-vs-float64 tolerance.
"""

from __future__ import annotations

import dataclasses
import numbers
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import pytree
from .detection import signature_of, subject_of, tree_frameworks
from .user_code import Forward, Session, _detached, _to_numpy, of_wrt

__all__ = ["check_order2", "fixed_cotangent"]


def fixed_cotangent(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """The cotangent ``v`` of ``phi = <v, f>``: a standard normal draw seeded by the output's shape only."""
    rng = np.random.default_rng([17, len(shape), *shape])
    return rng.standard_normal(shape).astype(dtype)


def _floating_index(args: tuple[Any, ...]) -> tuple[int, ...]:
    return tuple(i for i, a in enumerate(args) if isinstance(a, np.ndarray) and a.dtype.kind == "f")


class _Named:
    def __init__(self, name: str, like: Any) -> None:
        self.__name__ = name
        sig = signature_of(like)
        if sig is not None:
            self.__signature__ = sig


class _TorchGradient(_Named):
    """``g(x) = J^T v`` by ``torch.autograd.grad``; ``hvp`` differentiates it again (``create_graph=True``)."""

    def __init__(self, forward: Forward, like: Any) -> None:
        super().__init__(f"{forward.session.subject} (gradient)", like)
        self.forward = forward

    def grads(self, args: tuple[Any, ...], create_graph: bool) -> tuple[list[Any], list[Any]]:
        torch = sys.modules["torch"]
        s = self.forward.session
        idx = _floating_index(args)
        targs = s.inputs(args, [i in idx for i in range(len(args))])
        outs = pytree.flatten(self.forward.raw(targs, {}))[0]
        pairs = [(o, torch.as_tensor(fixed_cotangent(tuple(o.shape), np.float64)).to(o.device, o.dtype))
                 for o in outs if isinstance(o, torch.Tensor) and o.requires_grad]
        leaves = [targs[i] for i in idx]
        if not pairs:
            raise s.refuse(_detached(s, "f"))
        got = torch.autograd.grad([o for o, _ in pairs], leaves, [c for _, c in pairs], allow_unused=True,
                                  create_graph=create_graph)
        return leaves, [torch.zeros_like(t) if g is None else g for g, t in zip(got, leaves)]

    def __call__(self, *args: Any) -> Any:
        torch = sys.modules["torch"]
        with torch.enable_grad():
            return tuple(_to_numpy(g) for g in self.grads(args, create_graph=False)[1])

    def intermediate_magnitude(self, args: tuple[Any, ...], w: list[np.ndarray]) -> float:
        """``sum_j |y_j| |d<|w|, g>/dy_j|`` over the forward outputs ``y`` the
        backward reads (``1 - y^2`` for tanh): how far ``g`` moves when each
        ``y`` is rounded, the cancellation ``|g|`` alone does not show (``y``
        near 1 rounds ``1 - y^2`` by ``u``, not by ``u (1 - y^2)``)."""
        torch = sys.modules["torch"]
        s = self.forward.session
        idx = _floating_index(args)
        with torch.enable_grad():
            targs = s.inputs(args, [i in idx for i in range(len(args))])
            outs = [o for o in pytree.flatten(self.forward.raw(targs, {}))[0]
                    if isinstance(o, torch.Tensor) and o.requires_grad]
            if not outs:
                return 0.0
            leaves = [targs[i] for i in idx]
            cots = [torch.as_tensor(fixed_cotangent(tuple(o.shape), np.float64)).to(o.device, o.dtype) for o in outs]
            grads = torch.autograd.grad(outs, leaves, cots, allow_unused=True, create_graph=True)
            weighted = [(g * torch.as_tensor(np.abs(c)).to(g.device, g.dtype)).sum()
                        for g, c in zip(grads, w) if g is not None and g.requires_grad]
            if not weighted:
                return 0.0
            dy = torch.autograd.grad(sum(weighted), outs, allow_unused=True, retain_graph=True)
            moving = self.moving(outs, leaves)
        return float(sum((d.abs() * o.detach().abs() * m).sum().item()
                         for d, o, m in zip(dy, outs, moving) if d is not None))

    @staticmethod
    def moving(outs: list[Any], leaves: list[Any]) -> list[Any]:
        """1 where torch's own derivative of ``y_j`` along a random direction ``r`` is nonzero, else 0.

        A ``y_j`` that torch differentiates to exactly zero (``sigmoid`` rounded to 1, whose backward is
        ``y (1 - y) = 0``) is constant to the framework near ``x``: its rounding is one fixed offset of ``g``
        that ``g(x + h d) - g(x)`` cancels, with no first-order term beside it in ``H u``. Only a ``y_j``
        that moves makes the staircase (``g`` constant between roundings while ``H u`` is not). ``J r`` is
        ``d<J^T c, r>/dc`` (reverse over reverse); where torch cannot differentiate the backward, every
        ``y_j`` counts."""
        torch = sys.modules["torch"]
        rng = np.random.default_rng(23)
        cs = [torch.ones_like(o, requires_grad=True) for o in outs]
        back = torch.autograd.grad(outs, leaves, cs, allow_unused=True, create_graph=True)
        terms = [(b * torch.as_tensor(rng.standard_normal(tuple(b.shape))).to(b.device, b.dtype)).sum()
                 for b in back if b is not None and b.requires_grad]
        if not terms:
            return [torch.ones_like(o) for o in outs]
        jr = torch.autograd.grad(sum(terms), cs, allow_unused=True)
        return [torch.zeros_like(o) if d is None else (d != 0).to(o.dtype) for d, o in zip(jr, outs)]

    def hvp(self, u: Any, *args: Any) -> Any:
        torch = sys.modules["torch"]
        with torch.enable_grad():
            leaves, grads = self.grads(args, create_graph=True)
            us = [np.asarray(c) for c in pytree.flatten(u)[0]]
            pairs = [(g, torch.as_tensor(c).to(g.device, g.dtype)) for g, c in zip(grads, us) if g.requires_grad]
            # a gradient that does not require grad has no second derivative in torch's view: H u = 0
            got = torch.autograd.grad([g for g, _ in pairs], leaves, [c for _, c in pairs],
                                      allow_unused=True) if pairs else [None] * len(leaves)
        by_index = dict(zip(_floating_index(args), (_to_numpy(torch.zeros_like(t) if h is None else h)
                                                    for h, t in zip(got, leaves))))
        return tuple(by_index.get(i) for i in range(len(args)))


class _JaxGradient(_Named):
    """``g(x) = J^T v`` by ``jax.vjp``; ``hvp`` is ``jax.vjp`` of it (reverse over reverse)."""

    def __init__(self, forward: Forward, like: Any) -> None:
        super().__init__(f"{forward.session.subject} (gradient)", like)
        self.forward = forward

    def function(self, args: tuple[Any, ...]) -> tuple[Callable[..., Any], list[Any], tuple[int, ...]]:
        jax = sys.modules["jax"]
        s = self.forward.session
        idx = _floating_index(args)
        jargs = s.inputs(args)

        def gradient(*w: Any) -> Any:
            out, pull = jax.vjp(of_wrt(self.forward, jargs, idx, {}), *w)
            leaves, tree = jax.tree_util.tree_flatten(out)
            return pull(jax.tree_util.tree_unflatten(
                tree, [fixed_cotangent(tuple(o.shape), np.float64).astype(o.dtype) for o in leaves]))

        return gradient, [jargs[i] for i in idx], idx

    def __call__(self, *args: Any) -> Any:
        gradient, primals, _ = self.function(args)
        return tuple(_to_numpy(g) for g in gradient(*primals))

    def intermediate_magnitude(self, args: tuple[Any, ...], w: list[np.ndarray]) -> float:
        """``sum_k |t_k| |d<|w|, g>/dt_k|`` over the values ``t_k`` of the top-level equations of ``g``'s
        jaxpr that jax differentiates to nonzero along a random direction: each rounded once by ``u``, the
        torch term (``_TorchGradient.intermediate_magnitude``) for every intermediate, since jax's residuals
        hold ``1 - y^2`` already computed and the rounded ``y`` it came from is only seen in the jaxpr."""
        jax = sys.modules["jax"]
        jnp = sys.modules["jax.numpy"]
        gradient, primals, _ = self.function(args)
        closed = jax.make_jaxpr(gradient)(*primals)

        def run(eps: list[Any] | None, *xs: Any) -> tuple[list[Any], list[Any]]:
            env = dict(zip(closed.jaxpr.constvars, closed.consts))
            env.update(zip(closed.jaxpr.invars, xs))

            def read(var: Any) -> Any:
                return var.val if hasattr(var, "val") else env[var]

            ts: list[Any] = []
            for eqn in closed.jaxpr.eqns:
                outs = eqn.primitive.bind(*[read(var) for var in eqn.invars], **eqn.params)
                for var, o in zip(eqn.outvars, outs if eqn.primitive.multiple_results else [outs]):
                    if eps is not None and eps[len(ts)] is not None:
                        o = o + eps[len(ts)]
                    env[var] = o
                    ts.append(o)
            return [read(var) for var in closed.jaxpr.outvars], ts

        _, ts = run(None, *primals)
        weights = [np.abs(np.asarray(c, np.float64)) for c in w]

        def weighted(eps: list[Any]) -> Any:
            return sum(jnp.sum(c.astype(o.dtype) * o) for c, o in zip(weights, run(eps, *primals)[0]))

        sens = jax.grad(weighted)([jnp.zeros_like(t) if jnp.issubdtype(t.dtype, jnp.floating) else None for t in ts])
        rng = np.random.default_rng(23)
        r = [rng.standard_normal(tuple(p.shape)).astype(p.dtype) for p in primals]
        _, moves = jax.jvp(lambda *xs: run(None, *xs)[1], tuple(primals), tuple(r))
        return float(sum(float(jnp.sum(jnp.abs(t) * jnp.abs(d) * (m != 0))) for t, d, m in zip(ts, sens, moves)
                         if d is not None))

    def hvp(self, u: Any, *args: Any) -> Any:
        jax = sys.modules["jax"]
        gradient, primals, idx = self.function(args)
        grads, pull = jax.vjp(gradient, *primals)
        us = [np.asarray(c).astype(g.dtype) for g, c in zip(grads, pytree.flatten(u)[0])]
        by_index = dict(zip(idx, (_to_numpy(h) for h in pull(tuple(us)))))
        return tuple(by_index.get(i) for i in range(len(args)))


class _GivenHVP(_Named):
    """The caller's ``vjp`` and ``hvp`` at the fixed ``v``: ``g(x) = vjp(v, *x)``, ``H u = hvp(v, u, *x)``."""

    def __init__(self, f: Any, vjp: Any, hvp: Any) -> None:
        super().__init__(f"{subject_of(f)} (gradient)", f)
        self.f, self.vjp, self.user_hvp = f, vjp, hvp

    def cotangent(self, args: tuple[Any, ...]) -> Any:
        out = self.f(*args)
        leaves, tree = pytree.flatten(out)
        vs = [fixed_cotangent(np.shape(o), np.asarray(o).dtype) for o in leaves]
        return pytree.unflatten(tree, vs)

    def __call__(self, *args: Any) -> Any:
        fws = tree_frameworks(args)
        if fws:  # an opinion (backends=): the framework's own gradient of f, so its VJP is the framework's H u
            return self.framework_gradient(next(iter(fws)), args)
        return self.vjp(self.cotangent(args), *args)

    def framework_gradient(self, fw: str, args: tuple[Any, ...]) -> Any:
        """``g(x) = J^T v`` of ``f`` (written against the array API) by the framework's reverse mode, kept
        differentiable: ``torch.autograd.grad(..., create_graph=True)`` or ``jax.vjp``; a bare gradient for one
        floating input, else a tuple over them."""
        idx = tuple(i for i, a in enumerate(args) if getattr(a, "dtype", None) is not None
                    and "float" in str(a.dtype))
        if fw == "torch":
            torch = sys.modules["torch"]
            outs = pytree.flatten(self.f(*args))[0]
            cots = [torch.as_tensor(fixed_cotangent(tuple(o.shape), np.float64)).to(o.device, o.dtype) for o in outs]
            got = torch.autograd.grad(outs, [args[i] for i in idx], cots, create_graph=True, allow_unused=True)
            grads = [torch.zeros_like(args[i]) if g is None else g for g, i in zip(got, idx)]
        else:
            jax = sys.modules["jax"]

            def partial(*w: Any) -> Any:
                full = list(args)
                for i, wi in zip(idx, w):
                    full[i] = wi
                return self.f(*full)

            out, pull = jax.vjp(partial, *[args[i] for i in idx])
            leaves, tree = jax.tree_util.tree_flatten(out)
            grads = list(pull(jax.tree_util.tree_unflatten(
                tree, [fixed_cotangent(tuple(o.shape), np.float64).astype(o.dtype) for o in leaves])))
        return grads[0] if len(grads) == 1 else tuple(grads)

    def hvp(self, u: Any, *args: Any) -> Any:
        return self.user_hvp(self.cotangent(args), u, *args)


def _order(order: Any, hvp: Any, modes: Any) -> int:
    if isinstance(order, bool) or not isinstance(order, numbers.Integral) or order not in (1, 2):
        raise ValueError(f"order: expected 1 (the VJP) or 2 (the Hessian-vector product), got {order!r}")
    if hvp is not None and not callable(hvp):
        raise TypeError(f"hvp: expected a callable hvp(v, u, *inputs) -> H u, got {type(hvp).__name__}")
    if hvp is not None and order != 2:
        raise ValueError("hvp: given with order=1, where only the VJP is checked; pass order=2 to check it")
    if order == 2 and (isinstance(modes, str) or tuple(modes) != ("rev",)):
        raise ValueError("modes: order=2 checks the framework's reverse over reverse only; leave modes=('rev',)")
    return int(order)


def check_order2(check_vjp: Callable[..., Any], f: Any, vjp: Any, hvp: Any, order: Any,
                 kwargs: dict[str, Any]) -> Any:
    """``check_vjp`` of ``(g, H u)`` (the module's docstring); rows and findings carry `` (order 2)``."""
    from .callables import Adapter, _backends, _resolve_framework

    _order(order, hvp, kwargs.get("modes", ("rev",)))
    if not callable(f):
        raise TypeError(f"f: expected a callable f(*inputs) -> array or pytree, got {type(f).__name__}")
    fw = _resolve_framework(kwargs["framework"], f)
    session: Session | None = None
    pair: Any
    if hvp is not None:
        if vjp is None:
            raise TypeError("vjp: none given with hvp=...; the gradient g(x) = vjp(v, *x) whose derivative hvp "
                            "gives is needed too")
        if fw not in (None, "numpy"):
            raise ValueError(f"hvp: given for {fw} code; order=2 of {fw} code checks the framework's own double "
                             "backward, so leave hvp out (or pass NumPy code)")
        pair = _GivenHVP(f, vjp, hvp)
    else:
        if fw == "numpy" or (fw is None and "torch" not in sys.modules and "jax" not in sys.modules):
            raise TypeError(f"hvp: none given, and {subject_of(f)} is NumPy code, which has no autograd to take "
                            "a Hessian-vector product from; give hvp=... (and vjp=...), or pass torch or jax code")
        if vjp is not None:
            raise ValueError("vjp: order=2 of torch or jax code differentiates the framework's autograd of f "
                             "twice; leave vjp out")
        session = Session(subject_of(f), fw, ("torch", "jax"), kwargs["device"],
                          needs="order: 2 differentiates the framework's autograd twice, so f must be torch or "
                                "jax code")
        forward = Forward(f, session, dict)
        if fw is None:  # a plain function: its first call tells the framework
            pair = _Deciding(forward, f)
        else:
            session.dev()
            pair = (_TorchGradient if fw == "torch" else _JaxGradient)(forward, f)
    inner = {k: v for k, v in kwargs.items() if k != "modes"}
    notes: list[str] = []
    # backends=: with NumPy code and its own hvp, the frameworks' double backward of the same (array-API) f is
    # an opinion on H u; for torch or jax code, that double backward is what is under test
    opinions = _backends(kwargs.get("backends", ()), fw if hvp is None else None, hvp is not None, notes)
    result = check_vjp(pair, pair.hvp, **{**inner, "framework": "numpy", "backends": opinions})
    if session is not None:
        result = Adapter(session, notes).finish(result)
    elif notes:
        result = dataclasses.replace(result, cuts=(*result.cuts, *notes))

    def named(check: str) -> str:
        return f"{check} (order 2)"

    return dataclasses.replace(
        result, functions=("gradient", "hvp"),
        rows=tuple(dataclasses.replace(r, check=named(r.check)) for r in result.rows),
        counterexamples=tuple(dataclasses.replace(c, check=named(c.check)) for c in result.counterexamples))


class _Deciding(_Named):
    """A plain function's gradient: the first call decides torch or jax, then the framework's pair is used."""

    def __init__(self, forward: Forward, like: Any) -> None:
        super().__init__(f"{forward.session.subject} (gradient)", like)
        self.forward, self.like = forward, like
        self.chosen: Any = None

    def pick(self, args: tuple[Any, ...]) -> Any:
        if self.chosen is None:
            self.forward(*args)
            fw = self.forward.session.framework
            self.chosen = (_TorchGradient if fw == "torch" else _JaxGradient)(self.forward, self.like)
        return self.chosen

    def __call__(self, *args: Any) -> Any:
        return self.pick(args)(*args)

    def hvp(self, u: Any, *args: Any) -> Any:
        return self.pick(args).hvp(u, *args)

    def intermediate_magnitude(self, args: tuple[Any, ...], w: list[np.ndarray]) -> float:
        scale = getattr(self.pick(args), "intermediate_magnitude", None)
        return float(scale(args, w)) if scale is not None else 0.0
