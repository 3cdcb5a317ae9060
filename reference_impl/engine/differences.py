"""The numerical tests behind :func:`check_vjp`: Taylor remainder order,
Richardson-extrapolated central differences, the rounding floor, and the
error model for comparing two computations of one gradient. NumPy only.

Everything is stated for a scalar functional of a step ``t`` along a fixed
direction ``u``: ``phi(t) = <v, f(x + t u)>`` with cotangent ``v``. A correct
VJP gives the directional derivative ``phi'(0) = <VJP(v), u>`` (the adjoint
identity, document 002's chain rule read backwards).

Taylor remainder (the eps-free verdict)
---------------------------------------
``r(h) = |phi(h) - phi(0) - h <VJP(v), u>|`` is ``O(h^2)`` when the VJP is
right and ``~ |e| h`` when it is off by ``e = <VJP_true(v) - VJP(v), u>``.
The steps are a geometric sequence ``h_k = 2^-2 * 4^-k`` (at most
``TAYLOR_MAX_STEPS``: the direction is scaled to the input, see
:func:`direction_scale`), walked from the large end and stopped once
``TAYLOR_BELOW_FLOOR`` steps in a row fall below ``TAYLOR_MARGIN`` times the
rounding floor of ``phi`` (:func:`rounding_floor`); above that margin rounding
moves the local order between two steps by less than 0.05.

Those orders only mean something in the asymptotic regime. A step ``h u``
that is large against the scale on which ``f`` curves (logits of spread 0.1
at an offset of 1e3, a sine at 700) sees a nearly piecewise-linear ``phi``
(order near 1) or an exponential one (order above 2), whatever the VJP. So
the verdict is read at the small end: the *window* is the run of steps above
the margin that ends at the smallest one, cut where the local orders
``log(r_k / r_k+1) / log 4`` of its neighbours stop agreeing to within
``SLOPE_AGREEMENT`` (the remainders no longer shrink by one ratio, 16 for
order 2, 4 for order 1). The order is the least-squares slope of ``log r``
against ``log h`` over the window. Outcomes:

* no step above the margin: ``phi`` is linear along ``u`` to rounding and
  the first-order term matches to rounding -- a pass (``exact``);
* a window of fewer than three steps: no asymptotic regime above the floor,
  no verdict (``unresolved``; the adjoint test still judges);
* order >= ``PASS_ORDER`` (1.5, midway between 1 and 2): pass;
* order below it fails only when the remainder goes on shrinking at first
  order into the next, smaller step (local order <= 1.5 there), or, where
  the sequence ended above the floor, over a window of four steps. A
  piecewise-linear function (a leaky relu) has a remainder only while a step
  crosses a kink, and it drops to the floor abruptly below that step; a
  wrong gradient's remainder ``|e| h`` keeps shrinking by 4 per step down
  to the floor.

The inputs are rounded when ``x + h u`` is formed; the test uses the step
actually taken, ``fl(x + h u) - x``, so that rounding is not mistaken for a
first-order error.

Adjoint test
------------
``phi'(0)`` from central differences ``(phi(h) - phi(-h)) / 2h`` over
``RIDDERS_LEVELS`` steps shrinking by ``RIDDERS_SHRINK``, extrapolated by
Richardson's tableau (Ridders' method): each column removes the next even
power of ``h``; the estimate kept is the tableau entry whose change against
its neighbours is smallest, and that change is its truncation error estimate
``E``. That estimate is only trustworthy in the asymptotic regime: where
``phi`` is piecewise linear at the scale of the steps, every central
difference is the same wrong chord and the tableau agrees with itself. So
the first step is taken from the Taylor window (``RIDDERS_WINDOW_STARTS``:
16 and 4 times its smallest step, then its largest), where ``phi`` was seen
to curve at one order; the small end first, since a component of ``phi``
that curves on a short scale with a small amplitude (``sin(x)`` beside
``x^2`` at ``x = 700``) does not show in the orders of the large steps.
Then the step just below the window (``linear_step``), where the remainder
is within the margin of the floor: ``phi`` is linear there to rounding, so
its central differences are exact up to ``floor / h``. That is the start
that holds where ``phi`` is piecewise linear with rare kinks (a softmax of
logits spread over 1e4 is one-hot except across near-ties, and a window of
large steps crossing a tie can show any order). With no window, that step
and the fixed ``RIDDERS_STARTS``. The first start that agrees decides; if
none does, the tightest is reported. Error model::

    |<VJP(v), u> - D| <= ADJOINT_SAFETY * (E + RIDDERS_NOISE_GAIN * floor / h_last + noise)
                         + ADJOINT_ROUNDINGS * u_w * (sum |VJP(v) * u| + |D|)

``floor`` is the rounding floor of ``phi``: the measured one, but at least
``FLOOR_ROUNDINGS * u_w * (sum |v| |f(x)| + sum |x| |VJP(v)|)`` -- the
second sum is the condition of ``phi`` at ``x``: inputs rounded by ``u_w |x|``
(and intermediates of their size, ``x - max x`` at logits of 1e3) move
``phi`` by that much, and a difference quotient over ``h`` divides that by
``h`` (``h_last`` is the smallest step the kept estimate used; each
Richardson column multiplies it by at most ``RIDDERS_NOISE_GAIN``).
``noise`` is the same rounding seen from the other side: how much
``<VJP(v), u>`` moves when the inputs and cotangent are moved by
``ADJOINT_JITTER`` roundings of the working precision ``u_w`` (scaled like
the direction, ``ADJOINT_JITTER_TRIALS`` trials, the largest change). At
logits of 1e3 in float64 the VJP's own value carries an error of about
``u_w * 1e3`` relative, which a tolerance proportional to ``|VJP(v) * u|``
alone misses; measured this way it needs no per-function constant.

Comparing two computations of one gradient
------------------------------------------
A float32 VJP (or a framework's) is compared with a float64 one. Its error
model is backward-stability, measured rather than assumed: the float64 VJP is
re-evaluated ``SPREAD_TRIALS`` times at inputs and cotangent moved by
``SPREAD_ROUNDINGS * u_d * z * (|x| + mean |x|)`` (``z`` standard normal,
``u_d`` the unit roundoff of the compared dtype); ``spread`` is the largest
change per element. The ``mean |x|`` term stands for the absolute rounding of
intermediates of the inputs' size (``x - logsumexp(x)`` at logits of 1e2
carries an error of about ``1e2 u`` in every entry, small ones included).
That covers errors that behave like perturbed inputs, not rounding inside
the VJP whose terms cancel (a layer norm over two features has a gradient of
1e-6 made of terms of order 1). That part is measured too: the ``dtype``
VJP is re-run ``SPREAD_TRIALS`` times at inputs and cotangent with a random
half of their elements moved one ulp; rounding errors decorrelate under such
a move while the exact gradient barely changes, so the largest change
``noise`` shows the size of the VJP's own rounding. A systematic error (a
wrong constant in a float32 code path, a result rounded to half precision)
does not move with a one-ulp change and is not absorbed. An element passes
when::

    |g_d - g_64| <= SPREAD_SAFETY * (spread + noise) + SPREAD_ROUNDINGS * u_d * |g_64|
                    + NORMWISE_ROUNDINGS * u_d * G * max(1, X) + tiny_d

The last term is the normwise part: ``X`` is the largest input magnitude
and ``G`` the gradient's scale: its largest float64 entry over every ``wrt``
input, or, where that is smaller, the secant slope ``max|v| max|f(x)| / X``. A gradient
built from intermediates of the inputs' size (``x - logsumexp(x)``,
``x - mean(x)``) carries absolute errors of about ``u X`` in them; through an
exponential (a softmax) they become relative errors of the gradient, and
through cancellation (a layer norm over two features, whose gradient with
respect to ``x`` is nearly zero while its terms are of order ``|v| / sigma``,
the secant slope) absolute ones. Neither is visible elementwise, and neither is a bug. Conditioning is measured on the
function itself (a layer norm of inputs with a large mean amplifies rounding;
a softmax of logits at 1e3 too), so no per-function constant is needed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..accuracy.acceptance import unit_roundoff
from ..dtypes import info

__all__ = [
    "TAYLOR_STEPS", "TAYLOR_MARGIN", "PASS_ORDER",
    "TaylorFit", "taylor_steps", "taylor_test", "fit_taylor_order", "rounding_floor", "direction_scale",
    "RiddersEstimate", "ridders_derivative", "ridders_starts",
    "spread_tolerance", "unit_roundoff",
]

TAYLOR_STEPS = 14
TAYLOR_MAX_STEPS = 20
TAYLOR_FIRST_STEP = 0.25
TAYLOR_RATIO = 4.0
TAYLOR_MARGIN = 30.0
TAYLOR_BELOW_FLOOR = 2
"""The sequence ends after this many steps in a row below the margin (one
more than needed to see the drop below the window, in case one remainder
sits where a first-order error and the curvature cancel)."""
SLOPE_AGREEMENT = 0.4
"""Local orders within one window differ by at most this much."""
SETTLED_POINTS = 4
SETTLED_ORDER = 1.8
SETTLED_AGREEMENT = 0.25
PASS_ORDER = 1.5
DESCRIBED_STEPS = 4
"""Steps of the window a report lists (the small end)."""
FLOOR_ROUNDINGS = 2
"""The modelled part of the rounding floor, a lower bound under the measured
one: ``2 u sum |v| |f(x)|`` (the output and the inner product with ``v``
rounded once each). It matters where the measurement sees no rounding at all
(``phi`` exactly linear)."""

RIDDERS_SHRINK = 1.4
RIDDERS_LEVELS = 6
RIDDERS_STARTS = (2.0**-4, 2.0**-12)
"""First steps where the Taylor test fitted no window (``phi`` linear to rounding, or not smooth at the
scale of the steps)."""
RIDDERS_WINDOW_STARTS = (-3, -2, 0)
"""Where it fitted one: steps of the window counted from its small end, in turn."""
RIDDERS_NOISE_GAIN = 4.0
"""Rounding of ``phi`` enters a difference quotient as ``floor / h``; each
Richardson column multiplies it by at most ``(c + 1) / (c - 1) < 3`` for
``c = RIDDERS_SHRINK^2``, and the kept entry sits in an early column."""
ADJOINT_SAFETY = 4.0
ADJOINT_ROUNDINGS = 16
ADJOINT_JITTER = 4
"""Roundings by which the inputs and cotangent are moved to measure how much
``<VJP(v), u>`` moves by rounding alone (its condition at ``x``)."""
ADJOINT_JITTER_TRIALS = 2

SPREAD_TRIALS = 3
SPREAD_ROUNDINGS = 32
SPREAD_SAFETY = 2.0
NORMWISE_ROUNDINGS = 4


# =========================================================================== directions and the floor


def direction_scale(x: np.ndarray) -> np.ndarray:
    """Per-element scale of a step: ``|x_i| + mean |x|`` (1 where ``x`` is all
    zero), so that steps are relative to the input: logits at 1e3 are moved
    by about 1e3 h, values near 1e-3 by about 1e-3 h."""
    a = np.abs(np.asarray(x, np.float64))
    mean = float(a.mean()) if a.size else 0.0
    if mean == 0.0 or not math.isfinite(mean):
        return np.ones_like(a)
    return a + mean


def rounding_floor(step: Callable[[float], tuple[float, float]], phi0: float, magnitude: float,
                   work_u: float, probe: float = 2.0**-44) -> float:
    """How much ``phi`` moves by rounding alone near ``t = 0``.

    ``step(t)`` returns ``(phi(t), first-order term for the step actually
    taken)``. Measured: ``|phi(t) - phi(0) - first-order term|`` at four tiny
    steps ``t = +-probe * (1, 2)``, where the Taylor terms beyond the first
    are below ``1e-26`` of ``phi`` and what remains is rounding. Modelled:
    ``FLOOR_ROUNDINGS * u * magnitude``, with ``magnitude = sum |v| |f(x)| +
    sum |x| |VJP(v)|``: the output rounded, and the inputs' own rounding
    carried through ``f`` (its condition at ``x``). The larger of the two is
    the floor."""
    measured = 0.0
    for t in (probe, -probe, 2 * probe, -2 * probe):
        value, first = step(t)
        if math.isfinite(value) and math.isfinite(first):
            measured = max(measured, abs(value - phi0 - first))
    return max(measured, FLOOR_ROUNDINGS * work_u * magnitude, 1e-300)


# =========================================================================== Taylor remainder


@dataclass(frozen=True)
class TaylorFit:
    """The observed convergence order of the Taylor remainder."""

    status: str
    """``order`` (fitted), ``exact`` (remainder at rounding level for every
    step), ``unresolved`` (too few steps above the floor, or the remainder
    vanished abruptly: not smooth at the scale of the step), ``kink`` (a
    first-order fit whose smallest step crosses a kink, set by
    :func:`reference_impl.engine.kinks.taylor_test`: no verdict)."""
    order: float
    """Fitted slope of ``log r`` against ``log h`` (nan unless ``status == 'order'``)."""
    failed: bool
    steps: tuple[float, ...] = field(repr=False, default=())
    remainders: tuple[float, ...] = field(repr=False, default=())
    floor: float = 0.0
    linear_step: float = math.nan
    """The step right below the last one above the margin: there ``phi`` is
    linear to rounding (nan where no step was above the margin)."""

    def describe(self) -> str:
        if self.status == "exact":
            return "Taylor remainder at rounding level for every step (linear along the direction)"
        if self.status == "kink":
            return (f"Taylor remainder of first order down to h={self.steps[-1]:.1e}, a step that crosses a point "
                    "where f is not smooth: no order fitted")
        if self.status == "unresolved":
            return ("Taylor remainder not in its asymptotic regime above the rounding floor (fewer than 3 steps "
                    "with one order): no order fitted")
        shown = list(zip(self.steps, self.remainders))[-DESCRIBED_STEPS:]
        pairs = ", ".join(f"r({h:.1e})={r:.2e}" for h, r in shown)
        if len(self.steps) > len(shown):
            pairs = f"{len(self.steps)} steps from h={self.steps[0]:.1e}, ending {pairs}"
        return (f"Taylor remainder order {self.order:.2f} (2 when the VJP is right, 1 when it is not), "
                f"fitted over {pairs}; rounding floor {self.floor:.1e}")


def taylor_steps(count: int = TAYLOR_STEPS) -> tuple[float, ...]:
    """``h_k = TAYLOR_FIRST_STEP * TAYLOR_RATIO^-k`` for ``k < count``."""
    return tuple(TAYLOR_FIRST_STEP * TAYLOR_RATIO**-k for k in range(count))


def _slopes(hs: np.ndarray, rs: np.ndarray) -> np.ndarray:
    """Local orders ``log(r_k / r_k+1) / log(h_k / h_k+1)`` between neighbouring steps."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(rs[:-1] / rs[1:]) / np.log(hs[:-1] / hs[1:])


def _settled(hs: Sequence[float], rs: Sequence[float], floor: float) -> bool:
    """The last ``SETTLED_POINTS`` remainders stand above the floor and shrink
    at one second-or-higher order: the asymptotic regime is reached and the
    smaller steps would only repeat it."""
    if len(rs) < SETTLED_POINTS:
        return False
    h = np.asarray(hs[-SETTLED_POINTS:], np.float64)
    r = np.asarray(rs[-SETTLED_POINTS:], np.float64)
    if not (np.all(np.isfinite(r)) and np.all(r > TAYLOR_MARGIN * floor)):
        return False
    s = _slopes(h, r)
    return bool(np.all(s >= SETTLED_ORDER) and float(s.max() - s.min()) <= SETTLED_AGREEMENT)


def taylor_test(remainder: Callable[[float], float], floor: float) -> TaylorFit:
    """Evaluate ``remainder(h)`` down the step sequence only as far as the
    verdict needs (see the module notes), and fit the order."""
    hs: list[float] = []
    rs: list[float] = []
    below = 0
    for h in taylor_steps(TAYLOR_MAX_STEPS):
        r = remainder(h)
        hs.append(h)
        rs.append(r)
        if not math.isfinite(r):
            continue  # f failed at this step (overflow at a large step): no information, go on
        if r > TAYLOR_MARGIN * floor:
            below = 0
        else:
            below += 1
            if below >= TAYLOR_BELOW_FLOOR:
                break
    return fit_taylor_order(hs, rs, floor)


def fit_taylor_order(steps: Sequence[float], remainders: Sequence[float], floor: float) -> TaylorFit:
    """Fit the order from remainders at decreasing ``steps`` (see the module notes)."""
    hs = np.asarray(steps, np.float64)
    rs = np.asarray(remainders, np.float64)
    finite = np.isfinite(rs)
    if not finite.any():
        return TaylorFit("unresolved", float("nan"), False, floor=floor)
    above = finite & (rs > TAYLOR_MARGIN * floor)
    idx = np.flatnonzero(above)
    if idx.size == 0:
        return TaylorFit("exact", float("nan"), False, floor=floor)
    # the run of steps above the floor that ends at the smallest such step
    last = int(idx[-1])
    lin = float(hs[last + 1]) if last + 1 < hs.size and finite[last + 1] else math.nan
    first = last
    while first > 0 and above[first - 1]:
        first -= 1
    # within it, the asymptotic window: the steps towards the small end whose local orders agree
    slopes = _slopes(hs[first:last + 1], rs[first:last + 1])
    start, lo, hi = last, math.inf, -math.inf
    for k in range(last - 1, first - 1, -1):
        s = float(slopes[k - first])
        if max(hi, s) - min(lo, s) > SLOPE_AGREEMENT:
            break
        lo, hi, start = min(lo, s), max(hi, s), k
    window = list(range(start, last + 1))
    w_steps, w_rems = tuple(float(h) for h in hs[window]), tuple(float(r) for r in rs[window])
    if len(window) < 3:
        return TaylorFit("unresolved", float("nan"), False, w_steps, w_rems, floor, lin)
    order = float(np.polyfit(np.log(hs[window]), np.log(rs[window]), 1)[0])
    failed = order < PASS_ORDER
    if failed:
        nxt = rs[last + 1] if last + 1 < hs.size else math.nan
        if math.isfinite(nxt):
            # below the window the remainder must keep shrinking at first order; an abrupt drop means a
            # kink stopped being crossed, or a regime ended that was not the asymptotic one
            drop = float(_slopes(hs[last:last + 2], np.array([rs[last], nxt]))[0])
            if not drop <= PASS_ORDER:
                return TaylorFit("unresolved", order, False, w_steps, w_rems, floor, lin)
        elif len(window) < 4:
            return TaylorFit("unresolved", order, False, w_steps, w_rems, floor, lin)
    return TaylorFit("order", order, failed, w_steps, w_rems, floor, lin)


# =========================================================================== Richardson / Ridders


@dataclass(frozen=True)
class RiddersEstimate:
    derivative: float
    error: float
    """The tableau's own estimate of its truncation error."""
    last_step: float


def ridders_derivative(phi: Callable[[float], float], first_step: float) -> RiddersEstimate:
    """``phi'(0)`` by central differences extrapolated in Richardson's tableau."""
    c = RIDDERS_SHRINK**2
    h = first_step
    prev: list[float] = [(phi(h) - phi(-h)) / (2 * h)]
    best, err, used = prev[0], math.inf, h
    for _ in range(1, RIDDERS_LEVELS):
        h /= RIDDERS_SHRINK
        row = [(phi(h) - phi(-h)) / (2 * h)]
        factor = c
        for j in range(1, len(prev) + 1):
            row.append((row[j - 1] * factor - prev[j - 1]) / (factor - 1))
            factor *= c
            change = max(abs(row[j] - row[j - 1]), abs(row[j] - prev[j - 1]))
            if change <= err:
                best, err, used = row[j], change, h
        # the newest diagonal entry moved by more than twice the best error: rounding took over
        if abs(row[-1] - prev[-1]) >= 2 * err:
            break
        prev = row
    if not math.isfinite(err):
        err = abs(prev[0]) if math.isfinite(prev[0]) else math.inf
    return RiddersEstimate(best, err, used)


def ridders_starts(fit: TaylorFit) -> tuple[float, ...]:
    """First steps for the extrapolation: inside the Taylor window where one
    was fitted, from its small end, then the step below it where ``phi`` is
    linear to rounding (see the module notes); without a window, that step
    and the fixed ones."""
    linear = (fit.linear_step,) if math.isfinite(fit.linear_step) else ()
    if fit.status != "order" or len(fit.steps) < 3:
        return (*linear, *RIDDERS_STARTS)
    return tuple(dict.fromkeys((*(fit.steps[k] for k in RIDDERS_WINDOW_STARTS), *linear)))


# =========================================================================== two computations of one gradient


def spread_tolerance(reference: np.ndarray, perturbed: Sequence[np.ndarray], dtype: object,
                     checked: np.ndarray | None = None, jittered: Sequence[np.ndarray] = (),
                     gradient_scale: float = 0.0, input_scale: float = 0.0) -> np.ndarray:
    """Elementwise tolerance for a ``dtype`` computation ``checked`` of the
    gradient ``reference`` (float64), given the float64 gradient at inputs
    perturbed by ``SPREAD_ROUNDINGS`` roundings of ``dtype`` and the ``dtype``
    gradient at inputs one ulp away (see the module notes)."""
    ref = np.asarray(reference, np.float64)
    spread = _largest_change(ref, perturbed)
    if checked is not None:
        spread = spread + _largest_change(np.asarray(checked, np.float64), jittered)
    u = unit_roundoff(dtype)
    tiny = info(dtype).tiny
    normwise = NORMWISE_ROUNDINGS * u * gradient_scale * max(1.0, input_scale)
    return SPREAD_SAFETY * spread + SPREAD_ROUNDINGS * u * np.abs(ref) + normwise + tiny


def _largest_change(center: np.ndarray, others: Sequence[np.ndarray]) -> np.ndarray:
    out = np.zeros_like(center)
    for p in others:
        diff = np.abs(np.asarray(p, np.float64) - center)
        out = np.maximum(out, np.where(np.isfinite(diff), diff, 0.0))
    return out
