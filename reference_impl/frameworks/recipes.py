"""The recipes: one row per op, how torch and jax compute it and its exact
value in ball arithmetic (the truth).

Note [How to add an op]
-----------------------
An op lives in three places; the parity suite, the truth tier, the oracle
and ``certify`` then cover it in both dtypes with no test file changed.

1. ``reference_impl/ops.py``: the forward, decorated with
   ``@op(name, inputs=(...), domain=Domain(shapes, values), formula="fwd | vjp",
   sources=("00N",), check=..., params={"name": (default, ...)})`` -- ``check``
   (optional) validates the inputs, ``params`` (optional) lists each keyword's
   allowed values, default first; ``Domain`` kinds are listed in
   ``op_registry.py``. Right below it the VJP rule, decorated with
   ``@<forward>.defvjp``: ``rule(g, ans, *inputs, **params)`` returns one
   gradient per input, each of that input's shape and dtype.
2. ``reference_impl/accuracy/ops.py``: the error model of the acceptance rule,
   ``_fwd_<op>(*inputs, **params)`` and ``_vjp_<op>(g, *inputs, **params)``
   (one rule per gradient), each giving the condition term ``C``, the formula
   term ``F``, the model's text and a floor's factors; register them with
   ``@forward_rule(name, value=...)`` / ``@vjp_rule(name, value=...)`` right
   above, where ``value`` gives the exact result (its magnitude is the
   reference's own rounding term).
3. One ``OpSpec`` row in ``_ROWS`` below: the ``torch`` and ``jax`` recipes,
   the ``truth_forward`` / ``truth_vjp`` recipes in ball arithmetic (the
   textbook formula, rearranged only to remove a cancellation, never the
   reference's code); at least one named special case in ``SPECIALS``
   (the special-case tests require one per op); and where they apply the
   ``conventions`` that may explain a difference, ``identities``, an
   ``fd_direction`` and (rarely) an ``override`` with its reason. A row
   without its torch, jax or truth recipes is refused, naming the op, and an
   op without a row stops the import of this module.

Framework recipes receive a namespace instead of importing frameworks here,
so this table (and the engine, which reads its conventions) imports neither torch nor jax:
``torch`` recipes get ``ns.torch`` and ``ns.F`` (``torch.nn.functional``);
``jax`` recipes get ``ns.jax``, ``ns.jnp``, ``ns.nn`` (``jax.nn``),
``ns.special`` (``jax.scipy.special``) and ``ns.optax``; truth recipes get
the python-flint helpers of ``reference_impl.frameworks.truth`` (see "truth recipes"
below). A framework recipe must use the framework's own operations; writing
the reference's formula in torch would prove nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from ..ops import OPS
from .truth_recipes import (
    truth_cross_entropy,
    truth_cross_entropy_vjp,
    truth_dense_vjp,
    truth_matmul_vjp,
    truth_mse,
    truth_mse_vjp,
    truth_sce,
    truth_sce_vjp,
    truth_sigmoid_derivative,
    truth_softmax,
    truth_softmax_vjp,
)

__all__ = ["Override", "SpecialCase", "OpSpec", "SPECS", "CONVENTIONS"]


CONVENTIONS: Mapping[str, str] = MappingProxyType(
    {
        "relu'(0)": "relu'(0) = relu'(-0.0) = 0, as torch.relu and jax.nn.relu; torch.maximum(x, 0) and "
        "jnp.maximum(x, 0) give 1/2 there and torch.clamp(x, min=0) gives 1",
        "dense layout": "W is (inputs, outputs); torch.nn.Linear stores (outputs, inputs)",
        "reduction": "'mean' as torch: cross-entropy losses average over rows, mse over every element; "
        "mse also offers the documents' 'half_sum' = 1/2 sum (yhat - y)^2",
        "cross_entropy gradient": "d/dp = -t/p, the unconstrained partial, not projected onto the simplex "
        "(F.cross_entropy(log p, t) would project it)",
        "dtypes": "float32 and float64, never mixed, never promoted; outputs and gradients keep the dtype",
    }
)


@dataclass(frozen=True)
class Override:
    """Scales an op's tolerance. ``reason`` must say why the error model in
    ``tolerances.py`` does not cover this framework's computation."""

    factor: float
    reason: str

    def __post_init__(self) -> None:
        if not self.reason.strip():
            raise ValueError("Override.reason: an override must carry its reason")
        if not (self.factor >= 1.0 and np.isfinite(self.factor)):
            raise ValueError(f"Override.factor: must be finite and >= 1, got {self.factor}")


@dataclass(frozen=True)
class SpecialCase:
    """A hand-picked input (kink, saturation, extreme logits, degenerate
    shape). ``expected_forward`` / ``expected_grads`` hold values known
    exactly by reasoning (never computed by the reference); ``None`` means
    the case is checked against the frameworks only."""

    name: str
    inputs: Callable[[np.dtype], tuple[np.ndarray, ...]]
    params: Mapping[str, Any] = field(default_factory=dict)
    cotangent: Callable[[tuple[int, ...], np.dtype], np.ndarray] | None = None
    """Defaults to all ones of the output's shape."""
    expected_forward: Callable[[np.dtype], np.ndarray] | None = None
    expected_grads: Callable[[np.dtype], tuple[np.ndarray, ...]] | None = None
    why: str = ""


@dataclass(frozen=True)
class OpSpec:
    """One row of the table."""

    name: str
    """Key into ``reference_impl.OPS``."""
    torch: Callable[..., Any]
    """``(ns, *tensors, **params) -> tensor`` with torch's own ops."""
    jax: Callable[..., Any]
    """``(ns, *arrays, **params) -> array`` with jax's own ops."""
    truth_forward: Callable[..., Any] | None = None
    """``(ns, *balls, **params) -> balls``: the exact forward in python-flint
    ball arithmetic (see :func:`reference_impl.frameworks.truth.forward`)."""
    truth_vjp: Callable[..., tuple[Any, ...]] | None = None
    """``(ns, g, *balls, **params) -> (balls, ...)``: the exact gradients, one
    per input, for the cotangent ``g`` (balls)."""
    identities: tuple[str, ...] = ()
    """Names of framework-free identities the identity tests check."""
    special: tuple[SpecialCase, ...] = ()
    fd_direction: Callable[[tuple[np.ndarray, ...], np.random.Generator], tuple[np.ndarray, ...]] | None = None
    """Direction for the finite-difference adjoint test, when a plain normal
    direction would leave the op's domain or cross a kink."""
    override: Mapping[str, Override] = field(default_factory=dict)
    """Per-backend tolerance overrides, each with its reason."""
    conventions: tuple[str, ...] = ()
    """Keys of :data:`CONVENTIONS` that may explain a disagreement on this op
    (the engine then reports a convention, not an error)."""

    def __post_init__(self) -> None:
        if self.name not in OPS:
            raise ValueError(f"OpSpec.name: {self.name!r} is not an op in reference_impl.OPS")
        lacking = [r for r in ("torch", "jax", "truth_forward", "truth_vjp") if not callable(getattr(self, r))]
        if lacking:
            raise ValueError(f"OpSpec {self.name!r}: no {' / '.join(lacking)} recipe; every op needs torch, jax "
                             "and truth recipes")
        unknown = set(self.conventions) - set(CONVENTIONS)
        if unknown:
            raise ValueError(f"OpSpec.conventions: {sorted(unknown)} are not keys of CONVENTIONS")

    def factor(self, backend: str) -> tuple[float, str]:
        """The tolerance override for ``backend``: ``(factor, note)``, ``(1.0, "")`` without one."""
        o = self.override.get(backend)
        return (o.factor, f" (override x{o.factor}: {o.reason})") if o else (1.0, "")


# ---------------------------------------------------------------- recipes


def _rows_reduce(rows: Any, reduction: str) -> Any:
    return rows.mean() if reduction == "mean" else rows.sum()


def _torch_cross_entropy(ns: Any, p: Any, t: Any, reduction: str = "mean") -> Any:
    # torch has no cross-entropy on probabilities: F.cross_entropy applies
    # log_softmax (its gradient w.r.t. p would be projected onto the simplex)
    # and F.kl_div's target gradient is NaN at zero targets. xlogy(t, p) is
    # torch's own t*log(p) with the 0*log(.) = 0 convention.
    return _rows_reduce(-ns.torch.special.xlogy(t, p).sum(dim=-1), reduction)


def _jax_cross_entropy(ns: Any, p: Any, t: Any, reduction: str = "mean") -> Any:
    return _rows_reduce(-ns.special.xlogy(t, p).sum(axis=-1), reduction)


def _torch_sce(ns: Any, z: Any, t: Any, reduction: str = "mean") -> Any:
    c = z.shape[-1]
    if z.ndim <= 2:
        return ns.F.cross_entropy(z, t, reduction=reduction)
    return ns.F.cross_entropy(z.reshape(-1, c), t.reshape(-1, c), reduction=reduction)


def _jax_sce(ns: Any, z: Any, t: Any, reduction: str = "mean") -> Any:
    return _rows_reduce(ns.optax.losses.softmax_cross_entropy(z, t), reduction)


def _torch_mse(ns: Any, p: Any, t: Any, reduction: str = "mean") -> Any:
    if reduction == "half_sum":
        return 0.5 * ns.F.mse_loss(p, t, reduction="sum")
    return ns.F.mse_loss(p, t, reduction=reduction)


def _jax_mse(ns: Any, p: Any, t: Any, reduction: str = "mean") -> Any:
    if reduction == "half_sum":
        return ns.optax.losses.l2_loss(p, t).sum()  # optax's l2_loss is 1/2 (p - t)^2
    sq = ns.optax.losses.squared_error(p, t)
    return sq.mean() if reduction == "mean" else sq.sum()


# ---------------------------------------------------------------- finite-difference directions


def _fd_away_from_kink(inputs: tuple[np.ndarray, ...], rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    # relu is not differentiable at 0: a central difference there measures
    # (1 + 0)/2. Zero the direction where a step could cross the kink.
    (x,) = inputs
    u = rng.standard_normal(x.shape)
    return (np.where(np.abs(x) > 1e-3 * max(1.0, float(np.abs(x).max())), u, 0.0),)


def _fd_multiplicative_first(inputs: tuple[np.ndarray, ...], rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    # probabilities must stay > 0: perturb relative to each entry
    p, t = inputs
    return p * rng.uniform(-1, 1, p.shape), rng.standard_normal(t.shape)


# ---------------------------------------------------------------- special values


def _arr(values: Any) -> Callable[[np.dtype], np.ndarray]:
    return lambda dtype: np.asarray(values, dtype=dtype)


def _tuple(*fns: Callable[[np.dtype], np.ndarray]) -> Callable[[np.dtype], tuple[np.ndarray, ...]]:
    return lambda dtype: tuple(f(dtype) for f in fns)


_KINK = [0.0, -0.0, 1.0, -1.0, 1e-30, -1e-30]
_ONE_HOT_3 = [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]

SPECIALS: dict[str, tuple[SpecialCase, ...]] = {
    "relu": (
        SpecialCase(
            "kink_at_signed_zero",
            _tuple(_arr(_KINK)),
            expected_forward=_arr([0.0, 0.0, 1.0, 0.0, 1e-30, 0.0]),
            expected_grads=_tuple(_arr([0.0, 0.0, 1.0, 0.0, 1.0, 0.0])),
            why="relu'(0) = relu'(-0.0) = 0, the convention of torch.relu and jax.nn.relu",
        ),
    ),
    "tanh": (
        SpecialCase(
            "saturated",
            _tuple(_arr([-1000.0, -20.0, 20.0, 1000.0, 0.0])),
            expected_forward=_arr([-1.0, -1.0, 1.0, 1.0, 0.0]),
            expected_grads=_tuple(_arr([0.0, 0.0, 0.0, 0.0, 1.0])),
            why="tanh rounds to +-1 beyond |x| = 20 in both dtypes, so 1 - tanh^2 is exactly 0",
        ),
    ),
    "sigmoid": (
        SpecialCase(
            "saturated",
            _tuple(_arr([-700.0, -100.0, -40.0, 0.0, 40.0, 100.0, 700.0])),
            why="no overflow of exp at |x| = 700 and the derivative vanishes at both ends",
        ),
        SpecialCase(
            "at_zero",
            _tuple(_arr([0.0])),
            expected_forward=_arr([0.5]),
            expected_grads=_tuple(_arr([0.25])),
            why="sigma(0) = 1/2 and sigma'(0) = 1/4 exactly",
        ),
    ),
    "softmax": (
        SpecialCase(
            "extreme_logits",
            _tuple(_arr([[1000.0, -1000.0, 0.0], [1000.0, 1000.0, 1000.0], [-1000.0, -999.0, -1000.0]])),
            why="magnitudes of 1e3 and spreads of 2e3 must neither overflow nor give NaN",
        ),
        SpecialCase(
            "one_class",
            _tuple(_arr([[3.0], [-1000.0], [0.0]])),
            expected_forward=_arr([[1.0], [1.0], [1.0]]),
            expected_grads=_tuple(_arr([[0.0], [0.0], [0.0]])),
            why="a single class gets probability 1 and the output does not depend on the input",
        ),
        SpecialCase(
            "one_element",
            _tuple(_arr([42.0])),
            expected_forward=_arr([1.0]),
            expected_grads=_tuple(_arr([0.0])),
        ),
    ),
    "softmax_cross_entropy": (
        SpecialCase(
            "extreme_logits",
            _tuple(_arr([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 0.0]]), _arr(_ONE_HOT_3)),
            params={"reduction": "sum"},
            why="a confident wrong answer costs about 2000, finite, with gradient softmax - target",
        ),
        SpecialCase(
            "one_class",
            _tuple(_arr([[5.0], [-7.0]]), _arr([[1.0], [1.0]])),
            params={"reduction": "mean"},
            expected_forward=lambda d: np.asarray(0.0, dtype=d),
            expected_grads=_tuple(_arr([[0.0], [0.0]]), _arr([[0.0], [0.0]])),
            why="with one class log softmax is 0: zero loss, zero gradients",
        ),
    ),
    "cross_entropy": (
        SpecialCase(
            "document_002_first_output",
            _tuple(_arr([0.29228018, 0.03001013, 0.67770969]), _arr([1.0, 0.0, 0.0])),
            params={"reduction": "sum"},
            why="the printed first output of the 2-4-4-3 network of document 002 against its target",
        ),
        SpecialCase(
            "certain_and_right",
            _tuple(_arr([[1.0]]), _arr([[1.0]])),
            params={"reduction": "mean"},
            expected_forward=lambda d: np.asarray(0.0, dtype=d),
            expected_grads=_tuple(_arr([[-1.0]]), _arr([[0.0]])),
            why="-log 1 = 0; d/dp = -t/p = -1; d/dt = -log p = 0",
        ),
    ),
    "mse": (
        SpecialCase(
            "one_element_half_sum",
            _tuple(_arr([0.75]), _arr([0.25])),
            params={"reduction": "half_sum"},
            expected_forward=lambda d: np.asarray(0.125, dtype=d),
            expected_grads=_tuple(_arr([0.5]), _arr([-0.5])),
            why="the documents' 1/2 (yhat - y)^2 with n = 1: gradient is the bare residual",
        ),
    ),
    "dense": (
        SpecialCase(
            "one_by_one",
            _tuple(_arr([[2.0]]), _arr([[3.0]]), _arr([0.5])),
            expected_forward=_arr([[6.5]]),
            expected_grads=_tuple(_arr([[3.0]]), _arr([[2.0]]), _arr([1.0])),
        ),
    ),
    "add": (
        SpecialCase(
            "distributor_broadcast",
            _tuple(_arr([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), _arr([10.0, 20.0, 30.0])),
            expected_forward=_arr([[11.0, 22.0, 33.0], [14.0, 25.0, 36.0]]),
            expected_grads=_tuple(_arr(np.ones((2, 3))), _arr([2.0, 2.0, 2.0])),
            why="the add gate passes the gradient unchanged; the broadcast bias sums it over rows",
        ),
    ),
    "multiply": (
        SpecialCase(
            "switch",
            _tuple(_arr([3.0, -4.0]), _arr([5.0, 2.0])),
            expected_forward=_arr([15.0, -8.0]),
            expected_grads=_tuple(_arr([5.0, 2.0]), _arr([3.0, -4.0])),
            why="each input's gradient is the other input: the multiply gate is a switch",
        ),
    ),
    "matmul": (
        SpecialCase(
            "vector_dot",
            _tuple(_arr([1.0, 2.0, 3.0]), _arr([4.0, 5.0, 6.0])),
            expected_forward=lambda d: np.asarray(32.0, dtype=d),
            expected_grads=_tuple(_arr([4.0, 5.0, 6.0]), _arr([1.0, 2.0, 3.0])),
        ),
    ),
}


# ---------------------------------------------------------------- the table

_ROWS = (
    OpSpec("add", torch=lambda ns, a, b: ns.torch.add(a, b), jax=lambda ns, a, b: ns.jnp.add(a, b),
           truth_forward=lambda ns, a, b: a + b,
           truth_vjp=lambda ns, g, a, b: (ns.unbroadcast(g, a.shape), ns.unbroadcast(g, b.shape))),
    OpSpec("multiply", torch=lambda ns, a, b: ns.torch.mul(a, b), jax=lambda ns, a, b: ns.jnp.multiply(a, b),
           truth_forward=lambda ns, a, b: a * b,
           truth_vjp=lambda ns, g, a, b: (ns.unbroadcast(g * b, a.shape), ns.unbroadcast(g * a, b.shape))),
    OpSpec("matmul", torch=lambda ns, a, b: ns.torch.matmul(a, b), jax=lambda ns, a, b: ns.jnp.matmul(a, b),
           truth_forward=lambda ns, a, b: np.matmul(a, b), truth_vjp=truth_matmul_vjp),
    OpSpec(
        "dense",
        conventions=("dense layout",),
        # nn.functional.linear stores W as (outputs, inputs): the reference's
        # (inputs, outputs) layout is passed transposed, pinning the convention.
        torch=lambda ns, x, w, b: ns.F.linear(x, w.T, b),
        jax=lambda ns, x, w, b: ns.jnp.matmul(x, w) + b,
        truth_forward=lambda ns, x, w, b: np.matmul(x, w) + b,
        truth_vjp=truth_dense_vjp,
    ),
    OpSpec("relu", torch=lambda ns, x: ns.torch.relu(x), jax=lambda ns, x: ns.nn.relu(x),
           truth_forward=lambda ns, x: np.where(ns.mid(x) > 0, x, ns.zeros(x.shape)),
           truth_vjp=lambda ns, g, x: (np.where(ns.mid(x) > 0, g, ns.zeros(x.shape)),),
           identities=("relu_derivative_is_step",), fd_direction=_fd_away_from_kink, conventions=("relu'(0)",)),
    OpSpec("tanh", torch=lambda ns, x: ns.torch.tanh(x), jax=lambda ns, x: ns.jnp.tanh(x),
           truth_forward=lambda ns, x: ns.map(lambda v: v.tanh(), x),
           # 1 - tanh^2 = sech^2 = 1 / cosh^2: no cancellation where tanh -> +-1
           truth_vjp=lambda ns, g, x: (g * ns.map(lambda v: 1 / (v.cosh() * v.cosh()), x),),
           identities=("tanh_derivative",)),
    OpSpec("sigmoid", torch=lambda ns, x: ns.torch.sigmoid(x), jax=lambda ns, x: ns.nn.sigmoid(x),
           truth_forward=lambda ns, x: ns.map(lambda v: 1 / (1 + ns.exp(-v)), x),
           truth_vjp=lambda ns, g, x: (g * ns.map(lambda v: truth_sigmoid_derivative(ns, v), x),),
           identities=("sigmoid_derivative",)),
    OpSpec("softmax", torch=lambda ns, x: ns.torch.softmax(x, dim=-1), jax=lambda ns, x: ns.nn.softmax(x, axis=-1),
           truth_forward=truth_softmax, truth_vjp=truth_softmax_vjp,
           identities=("softmax_jacobian_rows_sum_to_zero",)),
    OpSpec("cross_entropy", torch=_torch_cross_entropy, jax=_jax_cross_entropy,
           truth_forward=truth_cross_entropy, truth_vjp=truth_cross_entropy_vjp,
           fd_direction=_fd_multiplicative_first, conventions=("reduction", "cross_entropy gradient")),
    OpSpec("softmax_cross_entropy", torch=_torch_sce, jax=_jax_sce, truth_forward=truth_sce, truth_vjp=truth_sce_vjp,
           identities=("softmax_cross_entropy_gradient_is_softmax_minus_target",), conventions=("reduction",)),
    OpSpec("mse", torch=_torch_mse, jax=_jax_mse, truth_forward=truth_mse, truth_vjp=truth_mse_vjp,
           conventions=("reduction",)),
)

SPECS: Mapping[str, OpSpec] = MappingProxyType(
    {row.name: OpSpec(**{**row.__dict__, "special": SPECIALS.get(row.name, ())}) for row in _ROWS}
)


missing = set(OPS) - set(SPECS)
if missing:  # adding an op without its row is a mistake the suite must report at once
    raise RuntimeError(f"ops without a spec row in reference_impl/frameworks/recipes.py: {sorted(missing)}")
