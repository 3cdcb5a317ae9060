"""Hand-written torch ``autograd.Function``s and jax ``custom_vjp``s, right and wrong.

Each case is a function whose custom backward / VJP rule is what a check
judges, with the inputs to draw: the wrong ones carry one planted defect each
(named in the case), the right ones include stable alternative algorithms for
the same derivative. Shared by ``test_framework_catalog.py`` and
``benchmarks/bench_frameworks.py``; imports torch and jax.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import torch
from jax import custom_batching

import reference_impl as ri

Arg, Inputs = ri.Arg, ri.Inputs
F = torch.nn.functional


@dataclass(frozen=True)
class Case:
    name: str
    framework: str
    fn: Callable[..., Any]
    inputs: Any
    caught_by: tuple[str, ...] = ("taylor", "adjoint")
    """The checks expected to catch a wrong case (prefixes of the finding's check)."""
    options: dict[str, Any] = field(default_factory=dict)
    """``check_vjp``'s mode for the case: ``{"modes": ("rev", "fwd")}``, ``{"order": 2}``, ``{"batched": True}``."""
    rev_ok: bool = False
    """A wrong case whose defect is its mode's alone: the default reverse-mode check passes it."""

    @property
    def mode(self) -> str:
        """``rev``, ``fwd``, ``order 2`` or ``vmap``: what the case exercises."""
        if self.options.get("batched"):
            return "vmap"
        if self.options.get("order") == 2:
            return "order 2"
        return "fwd" if "fwd" in self.options.get("modes", ()) else "rev"


ROWS = Inputs(x=Arg("real", shape=(3, 4)))
FULL = Inputs(x=Arg("real", shape=(3, 4), range=(-700.0, 700.0)))
"""Past tanh's saturation and exp's overflow: the second order's rounding floor over the whole range."""
UNIT = Inputs(x=Arg("real", shape=(3, 4), scale=1.0))
WIDE = Inputs(x=Arg("real", shape=(2, 4), scale=(1.0, 30.0)))
NARROW_ROWS = Inputs(x=Arg("logits", shape=(2, None)), sides=(1, 3))
SQUARE = Inputs(x=Arg("real", shape=(3, 4), scale=1.0), w=Arg("real", shape=(4, 4), scale=1.0))
PAIR = Inputs(x=Arg("real", shape=(3, 4), scale=1.0), w=Arg("real", shape=(3, 4), scale=1.0))
REGRESSION = Inputs(pred=Arg("real", shape=(3, 4), scale=1.0), target=Arg("real", shape=(3, 4), scale=1.0))


def torch_function(name: str, forward: Callable[..., Any], backward: Callable[..., Any]) -> Callable[..., Any]:
    """``Function.apply`` of a Function whose forward saves its inputs and output."""

    def fwd(ctx: Any, *xs: Any) -> Any:
        out = forward(*xs)
        ctx.save_for_backward(*xs, out)
        return out

    def bwd(ctx: Any, g: Any) -> Any:
        *xs, out = ctx.saved_tensors
        return backward(g, out, *xs)

    cls = type(name, (torch.autograd.Function,), {"forward": staticmethod(fwd), "backward": staticmethod(bwd)})
    apply: Callable[..., Any] = cls.apply
    return apply


def jax_rule(name: str, forward: Callable[..., Any], rule: Callable[..., Any]) -> Callable[..., Any]:
    """A ``jax.custom_vjp`` function whose rule receives ``(g, out, *inputs)``."""
    f = jax.custom_vjp(forward)

    def fwd(*xs: Any) -> tuple[Any, Any]:
        out = forward(*xs)
        return out, (out, *xs)

    def bwd(res: Any, g: Any) -> Any:
        return tuple(rule(g, *res))

    f.defvjp(fwd, bwd)
    f.__name__ = name  # type: ignore[attr-defined]
    return jax.jit(f)


# =========================================================================== the derivatives, torch


def _t_sig(g: Any, y: Any, x: Any) -> Any:
    return (g * y * (1 - y),)


def _t_sig_stable(g: Any, y: Any, x: Any) -> Any:
    e = torch.exp(-x.abs())  # sigma'(x) = e^-|x| / (1 + e^-|x|)^2, no overflow anywhere
    return (g * e / (1 + e) ** 2,)


def _t_sig_sign(g: Any, y: Any, x: Any) -> Any:
    d = g * y * (1 - y)
    d[..., 0] = -d[..., 0]
    return (d,)


def _t_softplus(g: Any, y: Any, x: Any) -> Any:
    return (g * torch.sigmoid(x),)


def _t_softplus_flat(g: Any, y: Any, x: Any) -> Any:
    return (torch.where(x > 20, torch.zeros_like(g), g * torch.sigmoid(x)),)


def _t_softplus_naive(g: Any, y: Any, x: Any) -> Any:
    e = torch.exp(x)
    return (g * e / (1 + e),)  # inf / inf beyond exp's range


def _t_lse(g: Any, y: Any, x: Any) -> Any:
    return (g[..., None] * torch.exp(x - y[..., None]),)


def _t_lse_half(g: Any, y: Any, x: Any) -> Any:
    # "for speed": float32 input in half precision; float64 untouched
    low = torch.float16 if x.dtype == torch.float32 else x.dtype
    return ((g[..., None] * torch.softmax(x.to(low), -1)).to(x.dtype),)


def _t_log_softmax(g: Any, y: Any, x: Any) -> Any:
    return (g - torch.exp(y) * g.sum(-1, keepdim=True),)


def _t_log_softmax_one_class(g: Any, y: Any, x: Any) -> Any:
    if x.shape[-1] == 1:
        return (g,)  # "one class: nothing to normalise" -- but log_softmax is constant there
    return (g - torch.exp(y) * g.sum(-1, keepdim=True),)


def _t_dense(g: Any, y: Any, x: Any, w: Any) -> Any:
    return g @ w.T, x.T @ g


def _t_dense_transposed(g: Any, y: Any, x: Any, w: Any) -> Any:
    return g @ w.T, (x.T @ g).T


def _t_product_copy_paste(g: Any, y: Any, x: Any, w: Any) -> Any:
    return g * w, g * w  # dw should be g * x


def _t_mse(g: Any, y: Any, pred: Any, target: Any) -> Any:
    d = 2 * (pred - target) / pred.numel()
    return g * d, -g * d


def _t_mse_per_row(g: Any, y: Any, pred: Any, target: Any) -> Any:
    d = 2 * (pred - target) / pred.shape[0]  # divides by the batch, not by every element
    return g * d, -g * d


def _t_normalize(g: Any, y: Any, x: Any) -> Any:
    n = x.norm(dim=-1, keepdim=True)
    return ((g - y * (y * g).sum(-1, keepdim=True)) / n,)


def _t_normalize_missing(g: Any, y: Any, x: Any) -> Any:
    return (g / x.norm(dim=-1, keepdim=True),)  # drops the projection term


class Sin(torch.autograd.Function):
    """A right torch Function whose backward uses torch ops on the saved input,
    so it is differentiable again and can be vmapped (the batched and
    second-order tests build their wrong variants on it)."""

    @staticmethod
    def forward(ctx: Any, x: Any) -> Any:
        ctx.save_for_backward(x)
        return torch.sin(x)

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (x,) = ctx.saved_tensors
        return g * torch.cos(x)


class TanhBySigmoidInPlace(torch.autograd.Function):
    """tanh(x/2) = 2 sigma(x) - 1, with the output made in place from the saved sigma."""

    @staticmethod
    def forward(ctx: Any, x: Any) -> Any:
        s = torch.sigmoid(x)
        ctx.save_for_backward(s)
        return s.mul_(2).sub_(1)  # writes into s, which backward still reads as sigma

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (s,) = ctx.saved_tensors
        return 2 * g * s * (1 - s)


class TanhBySigmoid(torch.autograd.Function):
    """tanh(x/2) computed directly (``2 sigma(x) - 1`` cancels to 0 for tiny x),
    its derivative from the saved sigma: ``(1 - tanh^2(x/2)) / 2 = 2 sigma (1 - sigma)``."""

    @staticmethod
    def forward(ctx: Any, x: Any) -> Any:
        ctx.save_for_backward(torch.sigmoid(x))
        return torch.tanh(x / 2)

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (s,) = ctx.saved_tensors
        return 2 * g * s * (1 - s)


class _ScaleRule(torch.autograd.Function):
    """``g * s`` as a Function with its own ``vmap`` rule (``generate_vmap_rule=False``), for a backward to call."""

    generate_vmap_rule = False

    @staticmethod
    def forward(g: Any, s: Any) -> Any:
        return g * s

    @staticmethod
    def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx: Any, dout: Any) -> Any:
        g, s = ctx.saved_tensors
        return dout * s, dout * g

    @staticmethod
    def vmap(info: Any, in_dims: Any, g: Any, s: Any) -> Any:
        gb = g.movedim(in_dims[0], 0) if in_dims[0] is not None else g.expand(info.batch_size, *g.shape)
        sb = s.movedim(in_dims[1], 0) if in_dims[1] is not None else s
        return gb * sb, 0


class _ScaleRuleMixing(_ScaleRule):
    @staticmethod
    def vmap(info: Any, in_dims: Any, g: Any, s: Any) -> Any:
        gb = g.movedim(in_dims[0], 0) if in_dims[0] is not None else g.expand(info.batch_size, *g.shape)
        sb = s.movedim(in_dims[1], 0) if in_dims[1] is not None else s
        out = gb * sb
        return out.mean(0, keepdim=True).expand_as(out), 0  # "the batch's mean": mixes the rows


class SinByRule(Sin):
    """Sin whose backward multiplies through ``_ScaleRule`` (right per example and under vmap)."""

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (x,) = ctx.saved_tensors
        return _ScaleRule.apply(g, torch.cos(x))


class SinByMixingRule(Sin):
    """Right per example; under ``torch.func.vmap`` the inner Function's ``vmap`` rule mixes the batch."""

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (x,) = ctx.saved_tensors
        return _ScaleRuleMixing.apply(g, torch.cos(x))


class SinDetachedBackward(Sin):
    """Right in value, but its own derivative is cut: the second derivative is 0."""

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (x,) = ctx.saved_tensors
        return g * torch.cos(x.detach())


class TanhHalfSecond(torch.autograd.Function):
    """Right first derivative ``1 - y^2``; one factor of ``y`` detached halves the second derivative."""

    @staticmethod
    def forward(ctx: Any, x: Any) -> Any:
        y = torch.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (y,) = ctx.saved_tensors
        return g * (1 - y * y.detach())


class TanhWithJVP(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Any) -> Any:
        y = torch.tanh(x)
        ctx.save_for_backward(y)
        ctx.y = y
        return y

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (y,) = ctx.saved_tensors
        return g * (1 - y * y)

    @staticmethod
    def jvp(ctx: Any, t: Any) -> Any:
        return t * (1 - ctx.y) * (1 + ctx.y)


class TanhWrongJVP(TanhWithJVP):
    @staticmethod
    def jvp(ctx: Any, t: Any) -> Any:
        return t * (1 - ctx.y)  # a wrong JVP beside a right backward


# =========================================================================== the derivatives, jax


def _j_lse_rule(g: Any, y: Any, x: Any) -> Any:
    return (g[..., None] * jnp.exp(x - y[..., None]),)


def _j_lse_softmax(g: Any, y: Any, x: Any) -> Any:
    return (g[..., None] * jax.nn.softmax(x, axis=-1),)


def _j_lse_naive(g: Any, y: Any, x: Any) -> Any:
    e = jnp.exp(x)
    return (g[..., None] * e / e.sum(-1, keepdims=True),)


def _j_lse_global_sum(g: Any, y: Any, x: Any) -> Any:
    return (g.sum() * jax.nn.softmax(x, axis=-1),)  # sums the cotangent over every row


def _j_lse(x: Any) -> Any:
    return jax.nn.logsumexp(x, axis=-1)


def _j_swish(g: Any, y: Any, x: Any) -> Any:
    s = jax.nn.sigmoid(x)
    return (g * (s + x * s * (1 - s)),)


def _j_swish_missing(g: Any, y: Any, x: Any) -> Any:
    return (g * jax.nn.sigmoid(x),)


def _j_tanh(g: Any, y: Any, x: Any) -> Any:
    return (g * (1 - y * y),)


def _j_tanh_factored(g: Any, y: Any, x: Any) -> Any:
    return (g * (1 - y) * (1 + y),)  # no cancellation in 1 - y^2 as |y| -> 1


def _j_tanh_wrong(g: Any, y: Any, x: Any) -> Any:
    return (g * (1 - y),)


def _j_sig_sign(g: Any, y: Any, x: Any) -> Any:
    return ((g * y * (1 - y)).at[..., -1].multiply(-1),)


def _j_softplus(g: Any, y: Any, x: Any) -> Any:
    return (g * jnp.exp(-jnp.logaddexp(0.0, -x)),)  # sigma(x) = exp(-softplus(-x)), in log space


def _j_softplus_bf16(g: Any, y: Any, x: Any) -> Any:
    low = jnp.bfloat16 if x.dtype == jnp.float32 else x.dtype
    return ((g * jax.nn.sigmoid(x.astype(low))).astype(x.dtype),)


def _j_mse(g: Any, y: Any, pred: Any, target: Any) -> Any:
    d = 2 * (pred - target) / pred.size
    return g * d, -g * d


def _j_mse_half(g: Any, y: Any, pred: Any, target: Any) -> Any:
    d = (pred - target) / pred.size  # forgets the 2
    return g * d, -g * d


@custom_batching.custom_vmap
def _j_mul(a: Any, b: Any) -> Any:
    return a * b


@_j_mul.def_vmap
def _j_mul_vmap(axis_size: int, in_batched: Any, a: Any, b: Any) -> Any:
    out = a * b
    batched = any(in_batched)
    return (jnp.broadcast_to(out.mean(0), out.shape) if batched else out), batched  # mixes the batch's rows


def _j_sin_rule(g: Any, y: Any, x: Any) -> Any:
    return (g * jnp.cos(x),)


def _j_sin_mixing(g: Any, y: Any, x: Any) -> Any:
    return (_j_mul(g, jnp.cos(x)),)


def _j_sin_constant(g: Any, y: Any, x: Any) -> Any:
    return (g * jax.lax.stop_gradient(jnp.cos(x)),)  # right in value, zero derivative


@jax.custom_jvp
def _j_sin_wrong_jvp(x: Any) -> Any:
    return jnp.sin(x)


_j_sin_wrong_jvp.defjvp(lambda p, t: (jnp.sin(p[0]), -jnp.cos(p[0]) * t[0]))  # and so its VJP, by transposition


def _t(name: str, forward: Callable[..., Any], backward: Callable[..., Any]) -> Callable[..., Any]:
    return torch_function(name, forward, backward)


def _j(name: str, forward: Callable[..., Any], rule: Callable[..., Any]) -> Callable[..., Any]:
    return jax_rule(name, forward, rule)


def _mse_t(p: Any, t: Any) -> Any:
    return ((p - t) ** 2).mean()


def _mse_j(p: Any, t: Any) -> Any:
    return jnp.mean((p - t) ** 2)


def _normalize_t(x: Any) -> Any:
    return x / x.norm(dim=-1, keepdim=True)


CORRECT = [
    Case("torch sigmoid, y(1 - y)", "torch", _t("Sigmoid", torch.sigmoid, _t_sig), ROWS),
    Case("torch sigmoid, e^-|x| / (1 + e^-|x|)^2", "torch", _t("SigmoidStable", torch.sigmoid, _t_sig_stable), ROWS),
    Case("torch softplus", "torch", _t("Softplus", F.softplus, _t_softplus), WIDE),
    Case("torch logsumexp, exp(x - lse)", "torch", _t("LogSumExp", lambda x: torch.logsumexp(x, -1), _t_lse), ROWS),
    Case("torch log_softmax", "torch", _t("LogSoftmax", lambda x: torch.log_softmax(x, -1), _t_log_softmax),
         NARROW_ROWS),
    Case("torch dense x @ W", "torch", _t("Dense", lambda x, w: x @ w, _t_dense), SQUARE),
    Case("torch mse, mean", "torch", _t("MSE", _mse_t, _t_mse), REGRESSION),
    Case("torch l2 normalize", "torch", _t("Normalize", _normalize_t, _t_normalize), UNIT),
    Case("torch tanh(x/2), backward 2 sigma (1 - sigma)", "torch", TanhBySigmoid.apply, ROWS),
    Case("jax logsumexp, exp(x - lse)", "jax", _j("lse", _j_lse, _j_lse_rule), ROWS),
    Case("jax logsumexp, softmax", "jax", _j("lse_softmax", _j_lse, _j_lse_softmax), ROWS),
    Case("jax swish", "jax", _j("swish", jax.nn.silu, _j_swish), WIDE),
    Case("jax tanh, 1 - y^2", "jax", _j("tanh", jnp.tanh, _j_tanh), ROWS),
    Case("jax tanh, (1 - y)(1 + y)", "jax", _j("tanh_factored", jnp.tanh, _j_tanh_factored), ROWS),
    Case("jax softplus, exp(-softplus(-x))", "jax", _j("softplus", jax.nn.softplus, _j_softplus), WIDE),
    Case("jax mse, mean", "jax", _j("mse", _mse_j, _j_mse), REGRESSION),
    Case("torch tanh, forward mode (jvp (1 - y)(1 + y))", "torch", TanhWithJVP.apply, ROWS,
         options={"modes": ("rev", "fwd")}),
    Case("torch.tanh, second order over +-700", "torch", torch.tanh, FULL, options={"order": 2}),
    Case("torch sin Function, second order over +-700", "torch", Sin.apply, FULL, options={"order": 2}),
    Case("jax sin, second order over +-700", "jax", _j("sin", jnp.sin, _j_sin_rule), FULL, options={"order": 2}),
    Case("torch sin, backward through a vmap rule, vmapped", "torch", SinByRule.apply, ROWS,
         options={"batched": True}),
    Case("jax sin, vmapped", "jax", _j("sin_vmapped", jnp.sin, _j_sin_rule), ROWS, options={"batched": True}),
]

WRONG = [
    Case("torch sigmoid: wrong sign on one coordinate", "torch", _t("SigmoidSign", torch.sigmoid, _t_sig_sign), ROWS),
    Case("torch softplus: flat beyond 20", "torch", _t("SoftplusFlat", F.softplus, _t_softplus_flat), WIDE),
    Case("torch softplus: NaN beyond exp's range", "torch", _t("SoftplusNaive", F.softplus, _t_softplus_naive),
         ROWS, ("gradient",)),
    Case("torch logsumexp: float16 for float32 input", "torch",
         _t("LogSumExpHalf", lambda x: torch.logsumexp(x, -1), _t_lse_half), ROWS, ("float32 vs float64",)),
    Case("torch log_softmax: wrong on one-class rows", "torch",
         _t("LogSoftmaxOneClass", lambda x: torch.log_softmax(x, -1), _t_log_softmax_one_class), NARROW_ROWS),
    Case("torch dense: transposed weight gradient", "torch", _t("DenseT", lambda x, w: x @ w, _t_dense_transposed),
         SQUARE),
    Case("torch product: dw copied from dx", "torch", _t("ProductCopy", lambda x, w: x * w, _t_product_copy_paste),
         PAIR),
    Case("torch mse: divides by the batch only", "torch", _t("MSERow", _mse_t, _t_mse_per_row), REGRESSION),
    Case("torch l2 normalize: missing term", "torch", _t("NormalizeMissing", _normalize_t, _t_normalize_missing),
         UNIT),
    Case("torch tanh(x/2): in-place write into the saved tensor", "torch", TanhBySigmoidInPlace.apply, ROWS),
    Case("jax logsumexp: NaN for large logits", "jax", _j("lse_naive", _j_lse, _j_lse_naive), ROWS, ("gradient",)),
    Case("jax logsumexp: cotangent summed over rows", "jax", _j("lse_global", _j_lse, _j_lse_global_sum), ROWS),
    Case("jax swish: missing term", "jax", _j("swish_missing", jax.nn.silu, _j_swish_missing), WIDE),
    Case("jax tanh: 1 - y", "jax", _j("tanh_wrong", jnp.tanh, _j_tanh_wrong), ROWS),
    Case("jax sigmoid: wrong sign on one coordinate", "jax", _j("sigmoid_sign", jax.nn.sigmoid, _j_sig_sign), ROWS),
    Case("jax softplus: bfloat16 for float32 input", "jax", _j("softplus_bf16", jax.nn.softplus, _j_softplus_bf16),
         WIDE, ("float32 vs float64",)),
    Case("jax mse: forgets the 2", "jax", _j("mse_half", _mse_j, _j_mse_half), REGRESSION),
    Case("torch tanh: wrong jvp beside a right backward", "torch", TanhWrongJVP.apply, ROWS,
         ("taylor[x] (fwd)", "adjoint[x] (fwd)", "fwd vs rev"), {"modes": ("rev", "fwd")}, True),
    Case("jax sin: custom_jvp rule -cos (its VJP too)", "jax", _j_sin_wrong_jvp, ROWS,
         options={"modes": ("rev", "fwd")}),
    Case("torch sin: detached saved input (second derivative 0)", "torch", SinDetachedBackward.apply, ROWS,
         ("taylor[x] (order 2)", "adjoint[x] (order 2)"), {"order": 2}, True),
    # over +-700 the second derivative is 0 in the saturated tails: the defect shows only where |x| < ~20
    Case("torch tanh: half the second derivative, over +-700", "torch", TanhHalfSecond.apply, FULL,
         ("taylor[x] (order 2)", "adjoint[x] (order 2)"), {"order": 2, "max_examples": 10}, True),
    Case("jax sin: stop_gradient in the rule (second derivative 0)", "jax", _j("sin_constant", jnp.sin,
                                                                            _j_sin_constant), ROWS,
         ("taylor[x] (order 2)", "adjoint[x] (order 2)"), {"order": 2}, True),
    Case("torch sin: vmap rule mixing the batch, inside backward", "torch", SinByMixingRule.apply, ROWS,
         ("taylor[x] (vmap)", "adjoint[x] (vmap)", "vmap vs per-example"), {"batched": True}, True),
    Case("jax sin: custom_vmap rule mixing the batch, inside bwd", "jax", _j("sin_mixing", jnp.sin, _j_sin_mixing),
         ROWS, ("taylor[x] (vmap)", "adjoint[x] (vmap)", "vmap vs per-example"), {"batched": True}, True),
]
