"""The check engine: the one loop every check of the project runs.

Draw an input, run an opinion on it (the implementation under test: a
framework, a user's function), compare with the expected value (the
reference), keep the worst error, and report the first failure with its
counterexample. The parity suite, the oracle (``check_op``,
``check_network``, ``check_sgd_step``) and ``certify`` are thin layers over
the functions here, so one disagreement prints the same numbers wherever it
is reported.

One comparison, one direction: ``actual`` is the implementation under test,
``expected`` the reference. For each element

* absolute error ``|actual - expected|``;
* relative error ``|actual - expected| / |expected|``;
* ulp error ``|actual - expected| / spacing(expected)`` in the working dtype;

relative and ulp errors are taken only over *resolved* elements, where
``|expected|`` exceeds the tolerance: elsewhere the value is zero within
rounding and a relative error says nothing.

Verdicts of a disagreement, from the most to the least benign:

* ``convention`` -- a documented difference of convention
  (``frameworks.recipes.CONVENTIONS``: relu'(0), the dense layout, the
  cross-entropy gradient's projection), never an error ratio; a constant
  factor (a sum for a mean) is not one: it is ``wrong``, the factor named;
* ``dtype`` -- the result silently changed precision;
* ``shape`` -- the result has another shape;
* ``non-finite`` -- NaN or inf where the reference is finite;
* ``inaccurate`` -- beyond the tolerance by less than ``WRONG_RATIO`` (the
  report gives ulps);
* ``wrong`` -- beyond the tolerance by ``WRONG_RATIO`` or more.

Passing rows carry accuracy grades (:mod:`.grades`): the largest ulp error
against the reference where that means something, a normwise figure, and the
count of flushed subnormals; ``certify --strict`` fails rows whose ulp grade
exceeds :data:`STRICT_ULP_LIMIT`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..accuracy import ops as tolerances
from ..frameworks.recipes import CONVENTIONS, SPECS
from ..ops import OPS
from .grades import bound_grading, grade
from .literals import array_literal

__all__ = [
    "WRONG_RATIO", "STRICT_ULP_LIMIT", "VERDICTS",
    "ulp_error", "Comparison", "compare", "Worst",
    "op_comparisons", "Finding", "Counterexample",
]

WRONG_RATIO = 10.0
"""A disagreement beyond the tolerance by less than this factor is
``inaccurate`` (a formula that loses a few more digits than the error model
allows); at or beyond it, ``wrong``."""

STRICT_ULP_LIMIT = 1024.0
"""``certify --strict`` fails a passing row whose largest error against the
reference exceeds this many ulps of the working dtype. The error model allows
more where a formula cancels (a softmax VJP with one class near 1, sums of
terms of both signs), so such rows pass the tolerance and still fail here:
1024 ulps is 10 bits of 24 (float32) or 53 (float64), beyond any stable
algorithm's spread on the project's inputs."""

_RELU_KINK = "relu'(0)"

VERDICTS = ("pass", "convention", "dtype", "shape", "non-finite", "inaccurate", "wrong", "error")
"""Ordered from the most to the least benign; a row keeps the worst it saw.
``error``: the function under test did not return a valid result."""


# =========================================================================== the comparison


def ulp_error(actual: Any, expected: Any, dtype: Any) -> np.ndarray:
    """``|actual - expected|`` in units of the spacing of ``dtype`` at ``expected``."""
    err = np.abs(np.asarray(actual, np.float64) - np.asarray(expected, np.float64))
    with np.errstate(over="ignore"):  # an error of many ulps near 0 may exceed float64's range: inf is right
        return np.asarray(err / _ulp(expected, dtype))


def _ulp(expected: Any, dtype: Any) -> np.ndarray:
    """The spacing of ``dtype`` at ``expected`` (at least its smallest subnormal), in float64."""
    dtype = np.dtype(dtype)
    spacing = np.spacing(np.abs(np.asarray(expected, dtype=dtype)))
    return np.maximum(spacing, np.asarray(np.finfo(dtype).smallest_subnormal, dtype)).astype(np.float64)


@dataclass(frozen=True)
class Comparison:
    """Outcome of comparing an implementation's array with the reference's."""

    ok: bool
    shape: tuple[int, ...]
    worst_index: tuple[int, ...]
    actual: float
    expected: float
    abs_error: float
    rel_error: float
    """At the worst element; NaN where that element is not resolved."""
    ulp_error: float
    tolerance: float
    """Tolerance at the worst element (the largest error-to-tolerance ratio)."""
    ratio: float
    """Largest ``abs_error / tolerance`` over all elements (<= 1 passes)."""
    max_abs_error: float
    max_rel_error: float
    """Over the resolved elements (``|expected| > tolerance``); NaN if none."""
    max_ulp_error: float
    model: str
    verdict: str = "pass"
    """One of :data:`VERDICTS`."""
    mismatch: str = ""
    """What is wrong when no error can be measured (shape, dtype, non-finite, convention)."""
    diagnosis: str = ""
    """What a measured disagreement looks like, where it has a recognisable shape (a constant factor)."""
    normwise: float = float("nan")
    flushed: int = 0
    """``max_ulp_error``, ``normwise`` and ``flushed``: the grades (:mod:`.grades`)."""

    def describe(self) -> str:
        if self.mismatch:
            return f"{self.verdict}: {self.mismatch}"
        head = "" if self.verdict == "pass" else f"{self.verdict}: "
        tail = f"; {self.diagnosis}" if self.diagnosis else ""
        return (
            f"{head}worst element {self.worst_index} of shape {self.shape}: actual {self.actual!r}, "
            f"expected {self.expected!r}, abs error {self.abs_error:.3e}, rel error {_fmt(self.rel_error, '.3e')}, "
            f"ulp error {_fmt(self.ulp_error, '.1f')}; tolerance there {self.tolerance:.3e} "
            f"(error/tolerance = {self.ratio:.3g}; model: {self.model}){tail}"
        )


def _fmt(v: float, spec: str) -> str:
    return "-" if math.isnan(v) else format(v, spec)


def _nan_max(values: np.ndarray) -> float:
    return float(values.max()) if values.size else float("nan")


def _unmeasured(a: np.ndarray, verdict: str, message: str, model: str, ratio: float = float("inf")) -> Comparison:
    nan = float("nan")
    return Comparison(False, tuple(a.shape), (), nan, nan, nan, nan, nan, nan, ratio, nan, nan, nan, model,
                      verdict, message)


def compare(actual: Any, expected: Any, tolerance: Any, dtype: Any, model: str = "", *,
            conventions: Sequence[str] = (), kink: Any = None, check_dtype: bool = True, floor: Any = None,
            scale: Any = None) -> Comparison:
    """Compare ``actual`` (the implementation under test) with ``expected``
    (the reference) elementwise: pass where ``|actual - expected| <= tolerance``.

    Shapes must match and ``actual`` must have ``dtype`` (unless
    ``check_dtype`` is false, for scalars the engine computes in float64);
    a non-finite value fails. A failure is classified (module docstring);
    ``conventions`` names the keys of ``CONVENTIONS`` that may explain it and
    ``kink`` (a boolean array of ``actual``'s shape) marks the elements at a
    kink where the convention ``relu'(0)`` applies. ``floor`` and ``scale``
    refine the grades (:func:`.grades.grade`).
    """
    dtype = np.dtype(dtype)
    a = np.asarray(actual)
    e = np.asarray(expected)
    if a.shape != e.shape:
        if "dense layout" in conventions and a.ndim == 2 and a.T.shape == e.shape and _close(a.T, e, tolerance):
            return _unmeasured(a, "convention", f"dense layout: the result is the transpose of the reference's "
                               f"({CONVENTIONS['dense layout']})", model, 0.0)
        return _unmeasured(a, "shape", f"shape mismatch: got {a.shape}, expected {e.shape}", model)
    if check_dtype and a.dtype != dtype:
        return _unmeasured(a, "dtype", f"dtype change: got {a.dtype}, expected {dtype} (a silent precision change "
                           "is a failure)", model)
    # no copy where the arrays are float64 already; nothing below writes to them
    a64 = np.asarray(a, dtype=np.float64)
    e64 = np.asarray(e, dtype=np.float64)
    finite_a, finite_e = np.isfinite(a64), np.isfinite(e64)
    if not (finite_a.all() and finite_e.all()):
        idx = tuple(int(i) for i in np.argwhere(~(finite_a & finite_e))[0])
        where = "the reference is not finite" if not finite_e[idx] else "the reference is finite"
        return _unmeasured(a, "non-finite", f"non-finite value at {idx}: got {a64[idx]!r}, expected {e64[idx]!r} "
                           f"({where})", model)
    if a.size == 0:
        return Comparison(True, a.shape, (), 0.0, 0.0, 0.0, float("nan"), float("nan"), 0.0, 0.0, 0.0,
                          float("nan"), float("nan"), model)
    tol = np.broadcast_to(np.asarray(tolerance, dtype=np.float64), a.shape)
    err = np.abs(a64 - e64)
    resolved = np.abs(e64) > tol
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # err / tiny tol may overflow: inf is right
        ratio = np.where(err == 0, 0.0, err / tol)
        rel = np.where(resolved, err / np.abs(e64), np.nan)
        ulp = np.where(resolved, err / _ulp(e64, dtype), np.nan)
    grades = grade(err, e64, tol, ulp, resolved, dtype, floor, scale)
    flat = int(np.argmax(ratio))
    idx = tuple(int(i) for i in np.unravel_index(flat, a.shape)) if a.ndim else ()
    worst = float(ratio.flat[flat])
    ok = bool(worst <= 1.0)
    verdict, mismatch, diagnosis = "pass", "", ""
    if not ok:
        verdict, mismatch, diagnosis = _classify(a64, e64, tol, ratio > 1.0, worst, conventions, kink)
    return Comparison(
        ok=ok, shape=tuple(a.shape), worst_index=idx, actual=float(a64.flat[flat]), expected=float(e64.flat[flat]),
        abs_error=float(err.flat[flat]), rel_error=float(rel.flat[flat]), ulp_error=float(ulp.flat[flat]),
        tolerance=float(tol.flat[flat]), ratio=worst, max_abs_error=float(err.max()),
        max_rel_error=_nan_max(rel[resolved]), max_ulp_error=grades.ulp, model=model, verdict=verdict,
        mismatch=mismatch, diagnosis=diagnosis, normwise=grades.normwise, flushed=grades.flushed,
    )


def _close(a: np.ndarray, e: np.ndarray, tol: Any) -> bool:
    with np.errstate(invalid="ignore", over="ignore"):
        return bool(np.all(np.abs(a.astype(np.float64) - e) <= np.asarray(tol, np.float64)))


def _classify(a: np.ndarray, e: np.ndarray, tol: np.ndarray, bad: np.ndarray, worst: float,
              conventions: Sequence[str], kink: Any) -> tuple[str, str, str]:
    """``(verdict, mismatch, diagnosis)`` of a value disagreement (shapes and
    dtypes agree, all finite). A convention is a documented choice the result
    follows exactly; a constant factor is never one (the reduction is the
    caller's ``reduction`` parameter, passed to every implementation), so it
    is ``wrong``, with the factor named."""
    if _RELU_KINK in conventions and kink is not None:
        at_kink = np.broadcast_to(np.asarray(kink, bool), a.shape)
        if np.all(at_kink[bad]):
            return "convention", (f"relu'(0): differs only at {int(bad.sum())} element(s) where the input is "
                                  f"exactly +-0 ({CONVENTIONS[_RELU_KINK]})"), ""
    if "cross_entropy gradient" in conventions and a.ndim >= 1 and a.shape[-1] > 1:
        shift = (a - e).mean(axis=-1, keepdims=True)
        if _close(a - shift, e, tol):
            return "convention", (f"cross_entropy gradient: differs by a constant per row, a projection onto the "
                                  f"simplex ({CONVENTIONS['cross_entropy gradient']})"), ""
    verdict = "inaccurate" if worst < WRONG_RATIO else "wrong"
    if "reduction" in conventions:
        factor = _integer_factor(a, e, tol)
        if factor is not None:
            return "wrong", "", (f"the whole result is the reference's times {factor:g}: a reduction mistake "
                                 f"(a 1/N missing or applied twice) for the reduction the parameters name "
                                 f"({CONVENTIONS['reduction']})")
    return verdict, "", ""


def _integer_factor(a: np.ndarray, e: np.ndarray, tol: np.ndarray) -> float | None:
    """``c`` (or ``1/c``) with ``c`` an integer >= 2 such that ``a = c e`` within the tolerance."""
    k = int(np.argmax(np.abs(e)))
    if e.flat[k] == 0 or a.flat[k] == 0:
        return None
    c = float(a.flat[k] / e.flat[k])
    for f in (c, 1.0 / c):
        n = round(f)
        if n >= 2 and abs(f - n) <= 1e-3 * n:
            factor = float(n) if f == c else 1.0 / n
            if _close(a, factor * e, tol * max(factor, 1.0)):
                return factor
    return None


# =========================================================================== the worst-error accumulator


@dataclass
class Worst:
    """The worst errors of many comparisons: what a row of a report shows.
    Each figure stays NaN until something measured it (a Taylor-order row
    has no absolute error; a contract row has neither)."""

    examples: int = 0
    abs_error: float = float("nan")
    rel_error: float = float("nan")
    ulp_error: float = float("nan")
    normwise: float = float("nan")
    flushed: int = 0
    order: float = float("nan")
    """The lowest fitted Taylor remainder order (2 when a gradient is right, 1 when wrong)."""
    ratio: float = 0.0
    tolerance: float = float("nan")
    """The tolerance where the ratio is largest."""
    model: str = ""
    verdict: str = "pass"
    """The least benign verdict seen (:data:`VERDICTS`)."""
    message: str = ""

    def _worse(self, verdict: str) -> None:
        if VERDICTS.index(verdict) > VERDICTS.index(self.verdict):
            self.verdict = verdict

    def fold(self, comp: Comparison) -> None:
        """Take one comparison in (on an example already counted)."""
        self._worse(comp.verdict)
        if comp.mismatch:
            if comp.verdict != "convention":
                self.abs_error = self.ratio = float("inf")
            self.model = comp.mismatch
            return
        self.abs_error = _max_nan(self.abs_error, comp.max_abs_error)
        self.rel_error = _max_nan(self.rel_error, comp.max_rel_error)
        self.ulp_error = _max_nan(self.ulp_error, comp.max_ulp_error)
        self.normwise, self.flushed = _max_nan(self.normwise, comp.normwise), self.flushed + comp.flushed
        if comp.ratio > self.ratio or math.isnan(self.tolerance):
            self.ratio, self.tolerance, self.model = comp.ratio, comp.tolerance, comp.model

    def fold_ratio(self, abs_error: float, ratio: float, tolerance: float, model: str) -> None:
        """Take in one error already divided by its tolerance (an adjoint test,
        two computations of one gradient): beyond the tolerance by less than
        :data:`WRONG_RATIO` is ``inaccurate``, by more (or NaN) ``wrong``."""
        self.abs_error = _max_nan(self.abs_error, abs_error)
        if ratio > self.ratio or math.isnan(self.tolerance):
            self.ratio, self.tolerance, self.model = ratio, tolerance, model
        if not ratio <= 1.0:
            self._worse("inaccurate" if ratio < WRONG_RATIO else "wrong")

    def fold_order(self, order: float, failed: bool, model: str) -> None:
        """Take in one fitted Taylor remainder order; a failed fit is ``wrong``
        (order 1: the gradient is not the derivative)."""
        self.order = _min_nan(self.order, order)
        if not self.model or failed:
            self.model = model
        if failed:
            self._worse("wrong")

    def note_pass(self, model: str) -> None:
        """A check with nothing to measure passed (a contract held)."""
        self.model = self.model or model

    def error(self, message: str) -> None:
        """The function under test did not return a valid result."""
        self.verdict, self.message, self.model = "error", message, message

    @property
    def status(self) -> str:
        """``pass``, ``fail`` (a disagreement, conventions included) or ``error``."""
        if self.verdict == "error":
            return "error"
        return "pass" if self.verdict == "pass" else "fail"


def _min_nan(old: float, new: float) -> float:
    if math.isnan(new):
        return old
    return new if math.isnan(old) else min(old, new)


def _max_nan(old: float, new: float) -> float:
    if math.isnan(new):
        return old
    return new if math.isnan(old) else max(old, new)


# =========================================================================== one op's comparisons


def op_conventions(op: str) -> tuple[str, ...]:
    """The conventions (keys of ``CONVENTIONS``) a disagreement on ``op`` may come from."""
    return SPECS[op].conventions


def op_comparisons(op: str, inputs: Sequence[np.ndarray], params: Mapping[str, Any], cotangent: np.ndarray | None,
                   *, forward: Any = None, grads: Sequence[Any] | None = None, expected_forward: Any = None,
                   expected_grads: Sequence[Any] | None = None, factor: float = 1.0, note: str = ""
                   ) -> list[tuple[str, Comparison]]:
    """Compare an implementation's ``forward`` output and/or VJP ``grads`` of
    ``op`` on one example with the reference's (or with ``expected_*``, a
    second opinion), under the op's error model scaled by ``factor``.
    Returns ``[(check, Comparison)]`` with checks named ``forward`` and
    ``vjp[<input>]``, in that order."""
    spec = OPS[op]
    dtype = np.asarray(inputs[0]).dtype
    conv = op_conventions(op)
    out: list[tuple[str, Comparison]] = []
    if forward is not None:
        exp = expected_forward if expected_forward is not None else spec.forward(*inputs, **params)
        bound = tolerances.forward_bound(op, inputs, params)
        out.append(("forward", _expected_dtype(exp, dtype, bound.model) or compare(
            forward, exp, bound.tolerance(dtype, factor), dtype, bound.model + note, conventions=conv,
            **bound_grading(bound, dtype, factor))))
    if grads is not None:
        assert cotangent is not None
        exp_g = expected_grads if expected_grads is not None else spec.vjp(cotangent, *inputs, **params)
        bounds = tolerances.vjp_bound(op, cotangent, inputs, params)
        for i, (name, mine, theirs, bound) in enumerate(zip(spec.arg_names, grads, exp_g, bounds)):
            kink = (np.asarray(inputs[0]) == 0) if op == "relu" and i == 0 else None
            out.append((f"vjp[{name}]", _expected_dtype(theirs, dtype, bound.model) or compare(
                mine, theirs, bound.tolerance(dtype, factor), dtype, bound.model + note, conventions=conv, kink=kink,
                **bound_grading(bound, dtype, factor))))
    return out


def _expected_dtype(expected: Any, dtype: np.dtype, model: str) -> Comparison | None:
    """A failure when the expected side (the reference) changed the dtype."""
    e = np.asarray(expected)
    if e.dtype == dtype:
        return None
    return _unmeasured(e, "dtype", f"dtype change on the expected side: it has {e.dtype}, the inputs {dtype}", model)


# =========================================================================== findings


@dataclass(frozen=True)
class Counterexample:
    """The minimal failing input hypothesis found, and what went wrong on it."""

    dtype: str
    check: str
    against: str
    kind: str
    """``disagreement`` (values beyond the tolerance), ``user function error``
    (raised, returned None / a list / a wrong shape, dtype or NaN) or
    ``backend error`` (torch or jax failed on the input)."""
    message: str
    call: str
    """How the function was called, e.g. ``vjp(cotangent, x, W, b)``."""
    example: str
    """Shapes, dtype, parameters and the seeds the values were drawn from."""
    arrays: Mapping[str, np.ndarray] = field(repr=False)
    """Every array the function received, by name, to reproduce the failure."""
    nondeterministic: bool = False
    """The function failed on this input once and passed when it was repeated."""
    verdict: str = ""
    """The disagreement's class (:data:`VERDICTS`), empty for errors."""
    framework: str = "numpy"
    """Whose literals print the arrays (``numpy``, ``torch``, ``jax``: the code's own, :mod:`.literals`)."""

    def describe(self, max_elements: int = 64) -> str:
        what = f"{self.kind}, {self.verdict}" if self.verdict else self.kind
        lines = [
            f"counterexample ({self.dtype}, {what}, shrunk by hypothesis): {self.check} vs {self.against}",
            f"  {self.message}",
            f"  called as: {self.call}",
            f"  input: {self.example}",
        ]
        if self.nondeterministic:
            lines.append("  note: the function failed on this input once and passed when it was repeated "
                         "(it is not deterministic)")
        lines.extend(f"    {array_literal(k, a, self.framework, max_elements)}" for k, a in self.arrays.items())
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dtype": self.dtype, "check": self.check, "against": self.against, "kind": self.kind,
            "verdict": self.verdict, "message": self.message, "call": self.call, "example": self.example,
            "nondeterministic": self.nondeterministic, "framework": self.framework,
            "arrays": {k: {"shape": list(v.shape), "dtype": v.dtype.name,
                           "values": v.tolist() if v.size <= 4096 else None} for k, v in self.arrays.items()},
        }


@dataclass(frozen=True)
class Finding:
    """A failure on one example, before it becomes a :class:`Counterexample`."""

    check: str
    against: str
    kind: str
    message: str
    call: str
    example: str
    arrays: Mapping[str, np.ndarray]
    verdict: str = ""

    def counterexample(self, dtype: str, nondeterministic: bool = False) -> Counterexample:
        return Counterexample(dtype, self.check, self.against, self.kind, self.message, self.call, self.example,
                              dict(self.arrays), nondeterministic, self.verdict)


def disagreement(check: str, against: str, what: str, comp: Comparison, call: str, example: str,
                 arrays: Mapping[str, np.ndarray]) -> Finding:
    """The finding for a failed comparison: ``"<what> disagrees with <against>: <describe>"``."""
    return Finding(check, against, "disagreement", f"{what} disagrees with {against}: {comp.describe()}",
                   call, example, {k: np.array(v, copy=True) for k, v in arrays.items()}, comp.verdict)

