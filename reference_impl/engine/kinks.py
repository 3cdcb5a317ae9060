"""Steps that cross a kink: reading the adjoint test below a point where
``phi(t) = <v, f(x + t u)>`` is not smooth. NumPy only.

A piecewise-smooth ``f`` (relu, clipping, hard-swish, sparsemax, entmax)
makes ``phi`` piecewise smooth along the line. A step ``h`` larger than the
distance ``d`` to the nearest non-smooth point of ``phi`` measures a chord
across it: the Taylor remainder shrinks at first order and the central
differences converge, in Richardson's tableau, to a value between the two
one-sided slopes. Neither says anything about the VJP at ``x``.

The evidence is free of the VJP under test: the symmetric second
difference ``s(h) = phi(h) + phi(-h) - 2 phi(0)``, ``h`` times the gap
between the one-sided differences. Where ``phi`` is smooth on ``[-h, h]``
it is ``phi''(0) h^2`` (second order, or at the rounding floor where ``phi``
is linear); across a slope jump ``J`` it is about ``J (h - d)``, which
shrinks at first order while ``h >> d``. A step *crosses a kink*
(:func:`crosses`) when ``s(h)`` stands above ``TAYLOR_MARGIN`` times the
rounding floor and shrinks into ``h / 4`` at an order of at most
``PASS_ORDER`` -- the criterion under which the Taylor test calls the same
remainder first order, so a failed Taylor fit whose smallest step crosses
a kink is no verdict.

Then the extrapolation is shrunk below the kink (:func:`below_kinks`): a
Ridders estimate is started from every step of the Taylor sequence
(``h_k = 2^-2 * 4^-k``) downwards. An estimate is *trusted* where neither
its first step nor the next one crosses a kink and the estimate from the
next step (4 times smaller) agrees with it within both tolerances. The scan
ends once a tolerance exceeds ``SCAN_GROWTH`` times the best trusted one
(rounding has taken over below it), or at the end of the sequence. The trusted estimate with the smallest tolerance
decides: ``pass`` or ``wrong``. Where some step crossed a kink and no
estimate is trusted -- the kink is closer to ``x`` than rounding resolves,
or ``x`` lies on it -- the outcome is ``undecided`` (at a kink): not a
failure, counted and shown in the report. Where no step crossed one the
outcome is ``smooth``, and the first verdict stands.

A chord across a kink agrees with itself (every large step sees the same
two slopes), so reproducibility alone would trust it; its ``s(h)`` is first
order, which excludes it. An estimate whose steps straddle the kink by
less than a factor 4 differs from the estimate below it, which is exact
where ``phi`` is piecewise linear, and is not reproduced.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

from . import differences
from .adjoint import AdjointOutcome, adjoint_test
from .differences import PASS_ORDER, TAYLOR_MARGIN, TAYLOR_MAX_STEPS, TAYLOR_RATIO, TaylorFit, taylor_steps

__all__ = ["SCAN_GROWTH", "Line", "crosses", "taylor_test", "KinkVerdict", "read_adjoint", "below_kinks", "reread"]

SCAN_GROWTH = 1e3
"""The scan stops once an estimate's tolerance exceeds this many times the
best trusted one: below that step rounding grows it by 4 per step."""


class Line:
    """``phi`` along the direction, each value computed once."""

    def __init__(self, phi: Callable[[float], float], phi0: float) -> None:
        self.phi, self.phi0 = phi, phi0
        self.values: dict[float, float] = {0.0: phi0}

    def __call__(self, t: float) -> float:
        if t not in self.values:
            self.values[t] = self.phi(t)
        return self.values[t]

    def second(self, h: float) -> float:
        """``|phi(h) + phi(-h) - 2 phi(0)|``."""
        return abs(self(h) + self(-h) - 2 * self.phi0)


def crosses(line: Line, h: float, floor: float) -> bool:
    """Steps of size ``h`` cross a kink: ``s(h)`` stands above the margin and
    shrinks into ``h / 4`` at first order (see the module notes)."""
    big, small = line.second(h), line.second(h / TAYLOR_RATIO)
    if not (math.isfinite(big) and math.isfinite(small)) or big <= TAYLOR_MARGIN * floor:
        return False
    return math.log(big / max(small, floor)) / math.log(TAYLOR_RATIO) <= PASS_ORDER


def taylor_test(remainder: Callable[[float], float], floor: float, phi: Callable[[float], float],
                phi0: float) -> tuple[TaylorFit, Line]:
    """:func:`..differences.taylor_test`, where a failed fit whose smallest
    step crosses a kink becomes status ``kink`` (not failed: the adjoint test
    decides, read below the kink); and ``phi`` as a :class:`Line` for it."""
    fit = differences.taylor_test(remainder, floor)
    line = Line(phi, phi0)
    if fit.failed and crosses(line, fit.steps[-1], floor):
        fit = dataclasses.replace(fit, status="kink", order=math.nan, failed=False)
    return fit, line


@dataclass(frozen=True)
class KinkVerdict:
    """What the adjoint test says once read below the kinks."""

    status: str
    """``pass``, ``wrong``, ``undecided`` (a kink crossed, nothing trusted
    below it) or ``smooth`` (no step crossed a kink)."""
    outcome: AdjointOutcome | None
    """The trusted estimate against ``<VJP(v), u>`` (None unless ``pass`` / ``wrong``)."""
    step: float
    """The first step of that estimate (nan without one)."""
    crossed: float
    """The smallest step that crossed a kink (nan where none did)."""

    def describe(self) -> str:
        if math.isnan(self.crossed) and self.outcome is not None:
            return self.outcome.describe()
        where = f"a step as small as {self.crossed:.1e} crosses a point where f is not smooth"
        if self.outcome is None:
            return (f"{where}, and no smaller step gives a reproducible estimate above the rounding floor "
                    "(undecided at a kink)")
        return f"{self.outcome.describe()}; read at steps from {self.step:.1e} down ({where})"


def read_adjoint(line: Line, ours: float, abs_terms: float, floor: float, work_u: float, noise: float,
                 fit: TaylorFit, piecewise: bool = False) -> KinkVerdict:
    """The adjoint test from the starts the Taylor ``fit`` suggests; read
    below the kinks (:func:`below_kinks`) where it fails, where the fit
    stopped at a kink, or on every example of a function declared
    ``piecewise`` smooth."""
    adj = adjoint_test(line, ours, abs_terms, floor, work_u, noise, differences.ridders_starts(fit))
    at_kink = fit.status == "kink"
    if piecewise or at_kink or not adj.ok:
        below = below_kinks(line, ours, abs_terms, floor, work_u, noise, fit.steps[-1] if at_kink else 0.0)
        if below.status != "smooth":
            return below
    return KinkVerdict("pass" if adj.ok else "wrong", adj, math.nan, math.nan)


def below_kinks(line: Line, ours: float, abs_terms: float, floor: float, work_u: float,
                noise: float = 0.0, down_to: float = 0.0) -> KinkVerdict:
    """The adjoint test read below every kink the Taylor sequence's steps
    cross (see the module notes); ``ours``, ``abs_terms``, ``floor``,
    ``work_u`` and ``noise`` as in :func:`~reference_impl.engine.adjoint.adjoint_test`.
    The scan goes on at least down to the step ``down_to`` (one known to cross a kink)."""
    steps: list[float] = []
    outcomes: list[AdjointOutcome] = []
    kinked: list[bool] = []
    best: tuple[float, AdjointOutcome] | None = None
    for h in taylor_steps(TAYLOR_MAX_STEPS):
        out = adjoint_test(line, ours, abs_terms, floor, work_u, noise, (h,))
        steps.append(h)
        outcomes.append(out)
        kinked.append(crosses(line, h, floor))
        if len(steps) >= 2:
            a, b = outcomes[-2], out
            if (not (kinked[-2] or kinked[-1]) and math.isfinite(a.differences) and math.isfinite(b.differences)
                    and abs(a.differences - b.differences) <= a.tolerance + b.tolerance
                    and (best is None or a.tolerance < best[1].tolerance)):
                best = (steps[-2], a)
        if best is not None and out.tolerance > SCAN_GROWTH * best[1].tolerance and h <= (down_to or math.inf):
            break  # rounding has taken over below the trusted estimate
    crossed = min((h for h, k in zip(steps, kinked) if k), default=math.nan)
    if math.isnan(crossed):
        return KinkVerdict("smooth", None, math.nan, math.nan)
    if best is None:
        return KinkVerdict("undecided", None, math.nan, crossed)
    return KinkVerdict("pass" if best[1].ok else "wrong", best[1], best[0], crossed)


def reread(outcome: AdjointOutcome, work_u: float) -> AdjointOutcome:
    """A failed adjoint test that carries its ``line``
    (:func:`reference_impl.engine.adjoint.network_adjoint`) read again below
    the kinks its steps cross: the trusted reading where one passes, else
    ``outcome`` unchanged (a wrong reading or an undecided kink keeps the failure)."""
    if outcome.ok or outcome.line is None:
        return outcome
    below = below_kinks(Line(outcome.line, outcome.line(0.0)), outcome.ours, outcome.abs_terms, outcome.floor,
                        work_u, outcome.noise)
    return below.outcome if below.status == "pass" and below.outcome is not None else outcome
