"""The acceptance rule: one bound per op for every implementation under test.

The acceptance rule (one per op, for every implementation under test)
----------------------------------------------------------------------
The reference is the exact result rounded once (``reference_impl.ops``; within
1 ulp in float32, a few in float64, checked against ball arithmetic in the
truth tier), so its own error is negligible and an implementation is judged
by what a *stable algorithm* may do, independently of how the reference
computes. With unit roundoff ``u`` (2**-11 float16, 2**-8 bfloat16, 2**-24
float32, 2**-53 float64; ``reference_impl.dtypes``), an
implementation's result ``y`` passes where, element by element::

    |y - reference| <= u * ( INPUT_ULPS * C  +  F  +  REFERENCE_ULPS * |y_exact| )  +  floor

* ``C = |J| . |x|`` -- the componentwise condition term: the change of the
  exact result when every input (for a VJP, the cotangent too) moves by one
  unit of its own roundoff, ``|d y / d x_j| |x_j|`` summed over inputs. A
  backward-stable algorithm is exact for inputs perturbed that much.
* ``F = sum_t k_t |t|`` -- a few roundings of the natural formula's terms
  ``t`` (an exp or log counts ``ELEMENTARY_ULPS``, a sum of ``n`` terms ``n``
  roundings of their absolute sum). This admits, e.g., ``1 - tanh^2`` in the
  tail (normwise accurate) while rejecting a formula that is wrong.
* ``REFERENCE_ULPS |y_exact|``: the reference's own rounding.
* ``floor = tiny (1 + |factors|)``: a subnormal result, or a subnormal
  intermediate times later factors, may be flushed to zero (XLA on CPU).

Half precision (float16, bfloat16). The reference computes in float64 and
rounds once. The frameworks document that they evaluate a half-precision
elementwise function by upcasting to float32 and rounding the result once,
and accumulate half-precision sums and matrix products in float32 (torch's
CPU kernels compute in their ``opmath`` type, float32; XLA upcasts bf16/f16
arithmetic to f32 on the CPU). Such a result ``y`` of a stable float32
evaluation then satisfies, with ``u_h`` the half dtype's unit roundoff and
``u_s = 2**-24``::

    |y - y_exact| <= u_h |y_exact|  +  (1 + u_h) u_s (INPUT_ULPS C + F)

(the final rounding, plus the float32 algorithm's own error, its inputs
exact in float32). Since ``u_s <= 2**-13 u_h``, and ``F`` already counts
the final rounding (every ``F`` holds at least one rounding of ``|y|``,
or of terms whose sum bounds ``|y|``), this is within the rule above
evaluated with ``u = u_h``: the same rule serves the half dtypes, with
``u``, ``tiny`` and the range of the dtype. The bound above is not the
rule, because a VJP is not one float32 evaluation on exact inputs: autograd
saves the forward's output in the half dtype (torch's ``tanh_backward`` and
``sigmoid_backward`` read the rounded ``y``, jax's pullbacks the rounded
residuals), so the backward formula's inputs already carry a relative error
``u_h``, which is the condition term at ``u = u_h``; and an op composed of
several kernels (a broadcast product's gradient: ``g * b`` rounded, then
summed) rounds its intermediates to the half dtype, each a rounding of
``F`` at ``u_h``; and jax's VJP of a broadcast reduces in the half dtype.
Judged with ``u_s`` in ``C`` and ``F`` instead, 25 of the 44 half-precision
op rows against torch and jax fail; those inspected fail on a saved output
(tanh', softmax'), an intermediate (multiply's broadcast gradient) or jax's
half-precision reduction (add's and dense's bias gradients). The subnormal floor uses the dtype's
``tiny`` (6.1e-5 in float16).

A tolerance is finite for every finite input, up to the dtype's largest
value: a rule whose products overflow float64 there is evaluated again on
exact decimal magnitudes (the same on every platform), and its weighted sum
is stored scaled and capped (``_SATURATION``), so the check it feeds can
always fail.

Each op's ``C`` and ``F`` are written down once, next to each other, in
:mod:`reference_impl.accuracy.ops`; this module holds what they share: the
constants, :class:`Bound`, the registration decorators and the evaluation.
The model is worst-case, not fitted: a correct implementation passes by a
wide margin, a wrong formula (a clamped log, a diagonal-only Jacobian, a NaN
where the value is finite) misses by orders of magnitude.

``reference_impl.accuracy.networks`` carries these per-op errors through whole
networks and gradient-descent runs (``network_bound``, ``trajectory_bound``),
where two implementations are compared and the budget is ``IMPLEMENTATIONS``
times one implementation's bound.

A per-backend override in ``reference_impl/frameworks/recipes.py`` may scale a bound
and must say why.
"""


from __future__ import annotations

import dataclasses
import decimal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..dtypes import info

__all__ = [
    "unit_roundoff", "ELEMENTARY_ULPS", "FUNCTION_ULPS", "INPUT_ULPS", "REFERENCE_ULPS", "IMPLEMENTATIONS",
    "Bound", "Rule", "forward_rule", "vjp_rule", "forward_bound", "vjp_bound", "has_model",
    "distribution_sum_tolerance", "E", "P", "R", "f64", "tiny", "largest",
]

IMPLEMENTATIONS = 2
"""Network comparisons: both sides carry a per-implementation bound."""

ELEMENTARY_ULPS = 4
"""Error of one exp/log/tanh evaluation, in units of ``u`` (2 ulp = 4 u).
glibc's double-precision exp/log/tanh are within 1 ulp; SLEEF's vector
functions used by PyTorch on CPU (``u10`` variants) within 1.0 ulp; XLA's
CPU float32 exp/log/tanh approximations are documented within a few ulp."""

FUNCTION_ULPS = 8
"""Error of one framework exp/log/tanh in the acceptance rule, in units of
``u`` (4 ulp): vectorised elementary functions (SLEEF, XLA's rational
approximations, which clamp tanh to +-1 a little early in float64) are
documented, and measured against the truth, within a few ulp."""

INPUT_ULPS = 2
"""Relative perturbation of each input, in units of ``u``, that a stable
algorithm's result may correspond to."""

REFERENCE_ULPS = 2
"""The reference's own error, in units of ``u |y|`` (1 ulp <= 2 u |y|)."""


def unit_roundoff(dtype: Any) -> float:
    """``u = eps / 2``: 2**-11 float16, 2**-8 bfloat16, 2**-24 float32, 2**-53 float64."""
    return info(dtype).u


def tiny(dtype: Any) -> float:
    """The smallest normal number of ``dtype`` (6.1e-5 float16, 1.18e-38 bfloat16 and float32)."""
    return info(dtype).tiny


def largest(dtype: Any) -> float:
    """The largest finite number of ``dtype`` (65504 float16, about 3.39e38 bfloat16)."""
    return info(dtype).max


def distribution_sum_tolerance(n: int, dtype: Any) -> float:
    """How far from 1 a correctly normalised row of ``n`` probabilities may
    sum: each entry carries the error of a softmax (``n + 2 E + 8`` roundings
    at most, the exp/sum/divide chain), and the check itself sums in float64.
    The factor ``IMPLEMENTATIONS`` allows the row to have been produced by
    another library."""
    return IMPLEMENTATIONS * (n + 2 * ELEMENTARY_ULPS + 8) * unit_roundoff(dtype)


@dataclass(frozen=True)
class Bound:
    """An allowed error ``k u M + floor`` elementwise: ``M`` the rule's
    magnitude (condition term, formula terms and the reference's rounding,
    already weighted), ``k`` its scale (1 for the acceptance rule)."""

    k: np.ndarray
    magnitude: np.ndarray
    model: str
    """The formula the bound comes from, for failure messages."""
    floor_scale: Any = 0.0
    """Magnitude of the factors that multiply an intermediate which may
    underflow (see the module docstring); 0 where only the result can."""
    absolute: Any = 0.0
    """An absolute allowance where the result is ambiguous (relu' at a
    subnormal x that one side flushes to 0)."""

    def tolerance(self, dtype: Any, factor: float = 1.0) -> np.ndarray:
        u = unit_roundoff(dtype)
        k = np.asarray(self.k, dtype=np.float64)
        m = np.asarray(self.magnitude, dtype=np.float64)
        with np.errstate(over="ignore"):  # capped below: a finite tolerance can still fail (see _SATURATION)
            floor = tiny(dtype) * (1.0 + np.asarray(self.floor_scale, dtype=np.float64))
            tol = factor * (k * u * m + floor + np.asarray(self.absolute, dtype=np.float64))
        return np.minimum(np.asarray(tol), _F64_MAX)


Rule = tuple[Any, Any, str] | tuple[Any, Any, str, Any]
"""``(C, F, model)`` or ``(C, F, model, floor factors)``; the exact value's
magnitude for the reference term is ``|y|`` passed separately."""


E = FUNCTION_ULPS
P = INPUT_ULPS
R = REFERENCE_ULPS


def f64(*xs: np.ndarray) -> tuple[np.ndarray, ...]:
    return tuple(np.asarray(x, dtype=np.float64) for x in xs)


class _Big(decimal.Decimal):
    """A magnitude of a rule evaluated again where float64 overflowed: a
    decimal (30 digits, exponents to +-999999) that mixes with floats and
    ints and answers NumPy's object-array ``exp``, ``log``, ``log1p``,
    ``tanh`` and ``sqrt``, so that a rule's NumPy code runs unchanged."""

    def exp(self, context: Any = None) -> _Big:
        return _Big(decimal.Decimal.exp(self))

    def log(self) -> _Big:
        return _Big(self.ln())

    def log1p(self) -> _Big:
        return _big(self + 1).log() if abs(self) > 1e-12 else _big(self - self * self / 2)

    def sqrt(self, context: Any = None) -> _Big:
        return _Big(decimal.Decimal.sqrt(self))

    def tanh(self) -> _Big:
        if abs(self) < 1e-10:
            return self
        e = _big(-2 * abs(self)).exp()
        return _Big(((1 - e) / (1 + e)).copy_sign(self))


def _lift(name: str, swap: bool = False) -> Callable[[Any, Any], Any]:
    base = getattr(decimal.Decimal, name)

    def op(self: _Big, other: Any) -> Any:
        if isinstance(other, np.ndarray):
            return NotImplemented  # NumPy broadcasts, then comes back element by element
        return _Big(base(_big(other), self) if swap else base(self, _big(other)))
    return op


for _name in ("add", "sub", "mul", "truediv", "pow"):
    setattr(_Big, f"__{_name}__", _lift(f"__{_name}__"))
    setattr(_Big, f"__r{_name}__", _lift(f"__{_name}__", swap=True))
setattr(_Big, "__neg__", lambda self: _Big(decimal.Decimal.__neg__(self)))  # noqa: B010
setattr(_Big, "__abs__", lambda self: _Big(decimal.Decimal.__abs__(self)))  # noqa: B010


def _big(v: Any) -> _Big:
    return v if isinstance(v, _Big) else _Big(v if isinstance(v, (int, decimal.Decimal)) else float(v))


_BIG_CONTEXT = decimal.Context(prec=30, Emin=-999999, Emax=999999, traps=[])
"""No traps: ``0 * inf`` (an input already infinite in float64) is a NaN, capped like any other (``_saturated``)."""


_F64_MAX = float(np.finfo(np.float64).max)

_SATURATION = 8.0
"""A rule's magnitude is stored as ``magnitude / _SATURATION`` with
``k = _SATURATION``, so that the sum ``P C + F + R |y|`` of terms that each fit
in float64 (inputs near the dtype's largest value: ``C = |x|`` for relu at
``x = 1.8e308``) never overflows. A magnitude beyond ``_SATURATION`` times
float64's largest value is capped there: the tolerance is then at least
``8 u max``, more than the rule's reference term ``R u |y|`` of any
representable result, and stays finite so that the comparison can still fail
(an inf or NaN tolerance would accept anything)."""


def _evaluate(rule: Callable[..., Any], xs: Sequence[np.ndarray], params: Mapping[str, Any]) -> Any:
    """``rule(*xs, **params)`` in float64, or -- where a product of large
    magnitudes overflows there, or ``0 * inf`` makes a NaN, for finite
    inputs -- again on :class:`_Big` decimals, where ``|x|^3`` of any float64 fits."""
    out = rule(*xs, **params)
    if _all_finite(out):
        return out
    with decimal.localcontext(_BIG_CONTEXT):
        return rule(*(np.asarray(np.frompyfunc(_big, 1, 1)(x), dtype=object) for x in xs), **params)


def _all_finite(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_all_finite(v) for v in value)
    if isinstance(value, str):
        return True
    return bool(np.isfinite(value).all())


def _saturated(value: Any) -> np.ndarray:
    """``value`` in float64, a magnitude beyond its range (or one the model
    could not evaluate, NaN) capped at float64's largest value."""
    with np.errstate(over="ignore", invalid="ignore"):
        v = np.asarray(value, dtype=np.float64)
    return v if np.isfinite(v).all() else np.nan_to_num(v, nan=_F64_MAX, posinf=_F64_MAX)


_FORWARD: dict[str, Callable[..., Rule]] = {}
_FORWARD_VALUE: dict[str, Callable[..., Any]] = {}
_VJP: dict[str, Callable[..., list[Rule]]] = {}
_VJP_VALUE: dict[str, Callable[..., list[Any]]] = {}


def forward_rule(op: str, value: Callable[..., Any]) -> Callable[[Callable[..., Rule]], Callable[..., Rule]]:
    """Register the function below as ``op``'s forward rule (``C``, ``F``,
    model); ``value(*inputs, **params)`` is the exact forward in float64, whose
    magnitude gives the reference's own rounding term."""
    def register(rule: Callable[..., Rule]) -> Callable[..., Rule]:
        _FORWARD[op], _FORWARD_VALUE[op] = rule, value
        return rule
    return register


def vjp_rule(op: str,
             value: Callable[..., list[Any]]) -> Callable[[Callable[..., list[Rule]]], Callable[..., list[Rule]]]:
    """Register the function below as ``op``'s VJP rules, one per input;
    ``value(g, *inputs, **params)`` gives the exact gradients (0 where ``F``
    already holds each term's magnitude)."""
    def register(rule: Callable[..., list[Rule]]) -> Callable[..., list[Rule]]:
        _VJP[op], _VJP_VALUE[op] = rule, value
        return rule
    return register


def _bound(rule: Rule, exact: Any) -> Bound:
    """The rule's terms weighted and summed, in the wide format where the rule
    was evaluated there, then stored scaled by ``1 / _SATURATION``."""
    cond, formula, model = rule[0], rule[1], rule[2]
    floor = rule[3] if len(rule) > 3 else 0.0
    magnitude = (P / _SATURATION) * np.asarray(cond) + np.asarray(formula) / _SATURATION \
        + (R / _SATURATION) * np.abs(exact)
    return Bound(np.full(np.shape(magnitude), _SATURATION), _saturated(magnitude), model, _saturated(floor))


def forward_bound(op: str, inputs: Sequence[np.ndarray], params: Mapping[str, Any] | None = None) -> Bound:
    """What an implementation of ``op``'s forward may differ from the
    reference by: the acceptance rule above."""
    xs, kw = f64(*inputs), dict(params or {})
    with np.errstate(all="ignore"):  # an overflow is retried wide, then saturated (see _SATURATION)
        rule, exact = _evaluate(lambda *a, **p: (_FORWARD[op](*a, **p), _exact_forward(op, a, p)), xs, kw)
        return _bound(rule, exact)


def vjp_bound(op: str, cotangent: np.ndarray, inputs: Sequence[np.ndarray],
              params: Mapping[str, Any] | None = None) -> tuple[Bound, ...]:
    """What each gradient of an implementation of ``op``'s VJP may differ
    from the reference by: the acceptance rule above."""
    g, *xs = f64(cotangent, *inputs)
    kw = dict(params or {})
    with np.errstate(all="ignore"):  # an overflow is retried wide, then saturated (see _SATURATION)
        rules, exact = _evaluate(lambda g, *a, **p: (_VJP[op](g, *a, **p), _exact_vjp(op, g, a, p)), (g, *xs), kw)
        bounds = tuple(_bound(r, y) for r, y in zip(rules, exact))
    if op == "relu":
        # A subnormal x may be read as 0 (flush to zero), where relu'(0) = 0: either slope is right there.
        ax = np.abs(xs[0])
        flushable = (ax > 0) & (ax < tiny(np.asarray(inputs[0]).dtype))
        bounds = (dataclasses.replace(bounds[0], absolute=np.where(flushable, np.abs(g), 0.0),
                                      model=bounds[0].model + "; either slope where x is subnormal"),)
    return bounds


def _exact_forward(op: str, xs: Sequence[np.ndarray], params: Mapping[str, Any]) -> Any:
    """``|y|`` to within a few percent, for the reference's own rounding term."""
    return np.abs(_FORWARD_VALUE[op](*xs, **params))


def _exact_vjp(op: str, g: np.ndarray, xs: Sequence[np.ndarray], params: Mapping[str, Any]) -> list[Any]:
    return [np.abs(v) for v in _VJP_VALUE[op](g, *xs, **params)]


def has_model(op: str) -> bool:
    return op in _FORWARD and op in _VJP
