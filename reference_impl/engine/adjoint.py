"""The adjoint (dot-product) test: ``<u, VJP(v)> = d/dt <v, f(x + t u)>`` at
``t = 0``, one outcome (:class:`AdjointOutcome`) for registered ops, whole
networks and any user function.

Two error models remain, because what is known about ``f`` differs and
neither is sharper everywhere: an op or network of the reference has an
a-priori bound on each evaluation (the accuracy model), so its tolerance is
that bound and two central differences suffice (:func:`adjoint_numbers`); a
user's function comes with none, so its test measures its rounding floor and
noise and extrapolates further (Ridders' tableau, several starting steps:
:func:`adjoint_test`, with the numerics of :mod:`.differences`). Measured on
every op's drawn inputs (``benchmarks/bench_adjoint.py``, 40 per op, the same
directions, the measured model given the VJP's a-priori bound as its noise):
no false alarm in either; a VJP off by ``1 + 1e-7`` caught on 209 of 440
float64 examples by the measured model and 186 by the a-priori one, off by
``1 + 1e-10`` on 83 and 59; in float32, off by ``1 + 1e-4``, on 215 and 243.

For a function ``f``, inputs ``x``, a direction ``u`` and a cotangent ``v``::

    <u, VJP(v)>  ==  <v, (f(x + h u) - f(x - h u)) / 2h>  + O(h^2)

Error model of the right-hand side of the a-priori test (all in float64):

* the step: ``x +- h u`` is rounded, so the left-hand side uses the exact
  chord ``(x+ - x-) / 2h`` as the direction; no input rounding enters;
* truncation: ``c h^2``, estimated a posteriori by Richardson as
  ``|D(2h) - D(h)| / 3`` and counted twice (the estimate is asymptotic);
* rounding of ``f``: ``sum |v| (b(x+) + b(x-)) / 2h`` with ``b`` the bound of
  one evaluation of ``f`` (``tolerances.py``).

The left-hand side carries the VJP's own bound: ``sum |chord| b_grad``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..accuracy import networks as network_tolerances
from ..accuracy import ops as tolerances
from ..frameworks.recipes import SPECS
from ..ops import OPS
from ..strategies import Example
from .comparison import Comparison, compare
from .differences import ADJOINT_ROUNDINGS, ADJOINT_SAFETY, RIDDERS_NOISE_GAIN, RIDDERS_STARTS, ridders_derivative

__all__ = ["STEP", "AdjointOutcome", "adjoint_numbers", "op_adjoint", "network_adjoint", "adjoint_test", "OP_MODEL",
           "NETWORK_MODEL"]

STEP = 2.0**-17
"""Finite-difference step: about u**(1/3) for float64, balancing truncation
(h^2) against rounding (u/h)."""

OP_MODEL = "adjoint test: 2 x Richardson truncation + rounding of f (forward bound) + VJP bound"
NETWORK_MODEL = ("adjoint test of the loss: 2 x Richardson truncation + network_bound of the loss "
                 "at params +- h u + the gradients' network_bound")


@dataclass(frozen=True)
class AdjointOutcome:
    """``<VJP(v), u>``, its finite-difference estimate, their difference and the tolerance."""

    ours: float
    """``<VJP(v), u>``"""
    differences: float
    """``phi'(0)`` from extrapolated central differences."""
    error: float
    tolerance: float
    line: Callable[[float], float] | None = None
    """``phi(t)`` along the direction in float64, where the caller may read the test again below a kink
    (:func:`reference_impl.engine.kinks.below_kinks`), with ``phi``'s rounding ``floor``, the magnitude
    ``abs_terms`` of ``ours``'s terms and its ``noise`` (the gradients' own error along the direction)."""
    floor: float = 0.0
    abs_terms: float = 0.0
    noise: float = 0.0

    @property
    def ratio(self) -> float:
        if self.error == 0.0:
            return 0.0
        return self.error / self.tolerance if self.tolerance > 0 else math.inf

    @property
    def ok(self) -> bool:
        return math.isfinite(self.differences) and self.ratio <= 1.0

    def describe(self) -> str:
        return (f"<VJP(v), u> = {self.ours!r} but Richardson-extrapolated central differences give "
                f"{self.differences!r}: error {self.error:.3e}, tolerance {self.tolerance:.3e} "
                f"(error/tolerance = {self.ratio:.3g})")

    def comparison(self, dtype: Any, model: str) -> Comparison:
        """The engine's comparison of the two numbers (actual: the VJP's
        side, expected: the finite differences; ulps of the VJP's ``dtype``)."""
        return compare(np.float64(self.ours), np.float64(self.differences), self.tolerance, dtype, model,
                       check_dtype=False)


def adjoint_numbers(f: Callable[[tuple[np.ndarray, ...]], Any], grads: Sequence[Any],
                    inputs: Sequence[np.ndarray], cotangent: Any, directions: Sequence[np.ndarray], *,
                    f_error: Callable[[tuple[np.ndarray, ...]], Any], grad_error: Sequence[Any],
                    step: float = STEP) -> AdjointOutcome:
    """The adjoint test of ``grads`` (a VJP of ``f`` at ``inputs`` with
    ``cotangent``, one gradient per input) along ``directions``.

    ``f`` maps a tuple of float64 inputs to the output; ``f_error`` gives
    the elementwise bound of one evaluation of ``f`` at such a tuple;
    ``grad_error`` one bound per gradient (one implementation's)."""
    x = tuple(np.asarray(a, dtype=np.float64) for a in inputs)
    v = np.asarray(cotangent, dtype=np.float64)

    def central(h: float) -> tuple[float, tuple[np.ndarray, ...], float]:
        plus = tuple(a + h * d for a, d in zip(x, directions))
        minus = tuple(a - h * d for a, d in zip(x, directions))
        fp, fm = np.asarray(f(plus), np.float64), np.asarray(f(minus), np.float64)
        chord = tuple((p - m) / (2 * h) for p, m in zip(plus, minus))
        rounding = float(np.sum(np.abs(v) * (np.asarray(f_error(plus)) + np.asarray(f_error(minus)))))
        return float(np.sum(v * (fp - fm))) / (2 * h), chord, rounding / (2 * h)

    d1, chord, round1 = central(step)
    d2, _, round2 = central(2 * step)
    lhs = sum(float(np.sum(c * np.asarray(g, dtype=np.float64))) for c, g in zip(chord, grads))
    grad_err = sum(float(np.sum(np.abs(c) * np.asarray(b, np.float64))) for c, b in zip(chord, grad_error))
    truncation = abs(d2 - d1) / 3
    return AdjointOutcome(lhs, d1, abs(lhs - d1), 2 * truncation + round1 + round2 + grad_err)


def op_adjoint(ex: Example, seed: int, vjp: Callable[..., Any] | None = None) -> AdjointOutcome:
    """The adjoint test of ``ex.op``'s VJP (the reference's, or ``vjp``) on
    one example, along a direction drawn from ``seed`` (the recipe's
    ``fd_direction`` where a plain normal one would leave the domain)."""
    op, params = ex.op, ex.params
    rng = np.random.default_rng(seed)
    spec, impl = SPECS[op], OPS[op].impl
    x = tuple(a.astype(np.float64) for a in ex.inputs)
    dirs = spec.fd_direction(x, rng) if spec.fd_direction else tuple(rng.standard_normal(a.shape) for a in x)
    grads = (vjp or OPS[op].vjp)(ex.cotangent, *ex.inputs, **params)
    grad_error = [b.tolerance(ex.dtype) / 2 for b in tolerances.vjp_bound(op, ex.cotangent, ex.inputs, params)]
    return adjoint_numbers(
        lambda xs: impl(*xs, **params), grads, x, ex.cotangent, dirs,
        f_error=lambda xs: tolerances.forward_bound(op, xs, params).tolerance(np.float64) / 2,
        grad_error=grad_error)


def network_adjoint(net: Any, params: Sequence[tuple[np.ndarray, np.ndarray]], x: np.ndarray, target: np.ndarray,
                    seed: int) -> AdjointOutcome:
    """The adjoint test of a whole network: ``<u, dL/dparams>`` from the
    reference's backward pass (in the parameters' dtype) against the central
    difference of the loss along ``u`` in float64."""
    rng = np.random.default_rng(seed)
    flat = tuple(a for pair in params for a in pair)
    flat64 = tuple(a.astype(np.float64) for a in flat)
    dirs = tuple(rng.standard_normal(a.shape) for a in flat64)
    x64, t64 = x.astype(np.float64), target.astype(np.float64)

    def pairs(xs: tuple[np.ndarray, ...]) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
        return tuple((xs[i], xs[i + 1]) for i in range(0, len(xs), 2))

    tape = net.forward(params, x, target)
    grads = net.backward(tape)
    bound = network_tolerances.network_bound(tape, grads)
    grad_flat = tuple(g for pair in grads.params for g in pair)
    grad_error = [bound.error(part, l) for l in range(len(params)) for part in ("dW", "db")]
    tapes: dict[int, Any] = {}  # the loss and its bound share one forward pass per point

    def tape_at(xs: tuple[np.ndarray, ...]) -> Any:
        if id(xs) not in tapes:
            tapes[id(xs)] = (xs, net.forward(pairs(xs), x64, t64))
        return tapes[id(xs)][1]

    out = adjoint_numbers(
        lambda xs: tape_at(xs).loss, grad_flat, flat64, 1.0, dirs,
        f_error=lambda xs: network_tolerances.network_bound(tape_at(xs)).error("loss"),
        grad_error=grad_error)

    def line(t: float) -> float:
        return float(net.forward(pairs(tuple(a + t * d for a, d in zip(flat64, dirs))), x64, t64).loss)

    terms = sum(float(np.sum(np.abs(d * np.asarray(g, np.float64)))) for d, g in zip(dirs, grad_flat))
    noise = sum(float(np.sum(np.abs(d) * np.asarray(b, np.float64))) for d, b in zip(dirs, grad_error))
    return dataclasses.replace(out, line=line, floor=float(np.asarray(network_tolerances.network_bound(
        tape_at(flat64)).error("loss"))), abs_terms=terms, noise=noise)


def adjoint_test(phi: Callable[[float], float], ours: float, abs_terms: float, floor: float,
                 work_u: float, noise: float = 0.0, first_steps: Sequence[float] = RIDDERS_STARTS) -> AdjointOutcome:
    """Compare ``ours = <VJP(v), u>`` (whose terms sum in magnitude to
    ``abs_terms``, and which moves by ``noise`` when the inputs move by a few
    roundings) with the extrapolated differences of ``phi``, started from
    each of ``first_steps`` in turn until one agrees."""
    best: AdjointOutcome | None = None
    for h0 in first_steps:
        e = ridders_derivative(phi, h0)
        if not (math.isfinite(e.derivative) and math.isfinite(e.error)):
            continue
        tol = (ADJOINT_SAFETY * (e.error + RIDDERS_NOISE_GAIN * floor / e.last_step + noise)
               + ADJOINT_ROUNDINGS * work_u * (abs_terms + abs(e.derivative)))
        outcome = AdjointOutcome(ours, e.derivative, abs(ours - e.derivative), tol)
        if best is None or outcome.tolerance < best.tolerance:
            best = outcome
        if outcome.ok:
            return outcome
    return best if best is not None else AdjointOutcome(ours, float("nan"), float("inf"), 0.0)
