"""Check your own gradient code against the reference.

Give the oracle your implementation of an op's forward and/or VJP, of a
network's loss and gradients, or of one gradient-descent step; it draws
inputs with the project's hypothesis strategies (:mod:`reference_impl.strategies`:
shapes from one element to 64 wide, kinks at ``+-0.0``, saturating tanh and
sigmoid, logits of magnitude 1e3), runs your function and the reference on
each, compares them under the error model of :mod:`reference_impl.tolerances`
and, when they disagree, lets hypothesis shrink the input to a minimal one::

    import reference_impl as ri

    def my_softmax_vjp(g, x):
        s = ri.softmax(x)
        return (s * (g - (g * s).sum(axis=-1, keepdims=True)),)

    result = ri.check_op("softmax", vjp=my_softmax_vjp)
    print(result.report())   # per dtype and shape class: worst errors, tolerance, examples
    result.raise_if_failed() # AssertionError with the report and the shrunk counterexample

Your functions are called as the reference's are:

* ``forward(*inputs, **params)`` -> one array;
* ``vjp(cotangent, *inputs, **params)`` -> a tuple with one gradient per
  input (a bare array is accepted for one-input ops);
* ``value_and_grad(params, x, target)`` -> ``(loss, ((dW_1, db_1), ...))``
  for a network, ``W`` laid out ``(inputs, outputs)``;
* ``step(params, x, target, lr)`` -> the new ``((W_1, b_1), ...)``.

Every returned array must have the reference's shape and the inputs' dtype
and be finite; NumPy arrays, NumPy scalars and framework arrays that
``np.asarray`` converts are accepted, lists and Python floats are not.
Whatever your function does wrong -- raises, returns ``None``, a list, the
wrong shape or dtype, NaN -- is reported as its failure on a concrete input,
never as a crash of the oracle; so is misuse of the oracle itself (an unknown
op name lists the valid ones).

torch and jax, where installed, can be added as second and third opinions
(``backends=("torch", "jax")``): your results are then compared with theirs
too, under the same error model (and ``parity_tests/spec.py``'s per-backend
overrides, each with its reason).

This module imports hypothesis; ``import reference_impl`` does not import it
(the names above are loaded on first use).
"""

from __future__ import annotations

import difflib
import math
import numbers
import os
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.errors import FailedHealthCheck, Flaky, Unsatisfiable

from . import tolerances
from .ops import OPS
from .profiles import ENV_VAR, PROFILES
from .strategies import Example, examples

__all__ = [
    "Row",
    "Counterexample",
    "OracleResult",
    "Oracle",
    "check_op",
    "check_network",
    "check_sgd_step",
    "shape_class",
    "DTYPES",
    "BACKENDS",
]

DTYPES = ("float32", "float64")
BACKENDS = ("torch", "jax")

SMALLEST_PROBABILITY = 1e-30
"""A network whose cost is ``cross_entropy`` on probabilities is checked only
where every predicted probability is at least this: the cost's gradient
``-t / p`` overflows float32 near its underflow threshold (1e-38), and a
probability that underflows to 0 leaves the cost undefined."""

_SCALES = (0.5, 1.0, 1.5)
"""Weight scales for drawn networks: pre-activations of order 0.5 to 1.5 per
layer, so tanh and sigmoid saturate now and then, never absurdly."""

_LEARNING_RATES = (1e-3, 1e-2, 0.1, 1.0)


# =========================================================================== results


@dataclass(frozen=True)
class Row:
    """One line of a result: a check (``forward``, ``vjp[x]``, ``loss``,
    ``dW``, ...) in one dtype and shape class against one opinion."""

    check: str
    dtype: str
    shape_class: str
    against: str
    """``reference``, ``torch`` or ``jax``."""
    examples: int
    worst_abs_error: float
    worst_rel_error: float
    worst_ulp_error: float
    worst_ratio: float
    """Largest ``|error| / tolerance`` over every element of every example (<= 1 passes)."""
    tolerance: float
    """The tolerance at the element with the largest ratio."""
    model: str
    """The error model that tolerance comes from."""
    status: str
    """``pass``, ``fail`` (values disagree) or ``error`` (the function did not return a valid result)."""

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def to_dict(self) -> dict[str, Any]:
        return {k: _json_float(v) for k, v in self.__dict__.items()}


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
    """How your function was called, e.g. ``vjp(cotangent, x, W, b)``."""
    example: str
    """Shapes, dtype, parameters and the seeds the values were drawn from."""
    arrays: Mapping[str, np.ndarray] = field(repr=False)
    """Every array your function received, by name, to reproduce the failure."""
    nondeterministic: bool = False
    """The function failed on this input once and passed when it was repeated."""

    def describe(self, max_elements: int = 64) -> str:
        lines = [
            f"counterexample ({self.dtype}, {self.kind}, shrunk by hypothesis): {self.check} vs {self.against}",
            f"  {self.message}",
            f"  called as: {self.call}",
            f"  input: {self.example}",
        ]
        if self.nondeterministic:
            lines.append("  note: the function failed on this input once and passed when it was repeated "
                         "(it is not deterministic)")
        with np.printoptions(floatmode="unique", threshold=max_elements, linewidth=110):
            for name, arr in self.arrays.items():
                if arr.size <= max_elements:
                    text = np.array2string(arr, separator=", ", prefix="    " + name + " = np.array(")
                    lines.append(f"    {name} = np.array({text}, dtype=np.{arr.dtype.name})")
                else:
                    lines.append(f"    {name}: {arr.dtype.name} array of shape {arr.shape} (see 'input' for its seed)")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dtype": self.dtype, "check": self.check, "against": self.against, "kind": self.kind,
            "message": self.message, "call": self.call, "example": self.example,
            "nondeterministic": self.nondeterministic,
            "arrays": {k: {"shape": list(v.shape), "dtype": v.dtype.name,
                           "values": v.tolist() if v.size <= 4096 else None} for k, v in self.arrays.items()},
        }


@dataclass(frozen=True)
class OracleResult:
    """What :func:`check_op`, :func:`check_network` and :func:`check_sgd_step` return."""

    kind: str
    """``op``, ``network`` or ``sgd_step``."""
    subject: str
    """The op's name or the network's description."""
    functions: tuple[str, ...]
    """Which of your functions were checked (``forward``, ``vjp``, ...)."""
    rows: tuple[Row, ...]
    counterexamples: tuple[Counterexample, ...]
    """At most one per dtype: the shrunk failing input."""
    problems: tuple[str, ...]
    """Misuse of the oracle or a missing backend; nothing was checked where these apply."""
    dtypes: tuple[str, ...]
    backends: tuple[str, ...]
    max_examples: int
    seed: int | None
    profile: str

    @property
    def ok(self) -> bool:
        """True when nothing went wrong and at least one example was compared."""
        return (not self.problems and not self.counterexamples and bool(self.rows)
                and all(r.passed for r in self.rows))

    @property
    def examples(self) -> int:
        """Inputs your functions were run on (per dtype and shape class, summed)."""
        seen: dict[tuple[str, str], int] = {}
        for r in self.rows:
            key = (r.dtype, r.shape_class)
            seen[key] = max(seen.get(key, 0), r.examples)
        return sum(seen.values())

    @property
    def worst_ratio(self) -> float:
        return max((r.worst_ratio for r in self.rows), default=0.0)

    def title(self) -> str:
        what = "/".join(self.functions) or "nothing"
        subject = f"op '{self.subject}'" if self.kind == "op" else self.subject
        return f"{what} of {subject}"

    def summary_line(self) -> str:
        """One line: status, subject, examples, worst error/tolerance."""
        if self.problems:
            return f"ERROR {self.title()}: {self.problems[0]}"
        status = "PASS" if self.ok else "FAIL"
        against = ", ".join(["reference", *self.backends])
        return (f"{status} {self.title()}: {self.examples} examples in {', '.join(self.dtypes)} against {against}; "
                f"worst error/tolerance {self.worst_ratio:.3g}")

    def report(self) -> str:
        """The readable report: every row, the counterexamples and the problems."""
        lines = [f"gradient oracle: {self.title()} -- {'PASSED' if self.ok else 'FAILED'}"]
        lines.append(f"  settings: dtypes {list(self.dtypes)}, backends {['reference', *self.backends]}, "
                     f"max_examples {self.max_examples} per dtype, seed {self.seed}, profile {self.profile!r}")
        for p in self.problems:
            lines.append(f"  problem: {p}")
        if self.rows:
            lines.append("")
            lines.extend("  " + line for line in format_rows(self.rows))
            lines.append("  (errors are |yours - theirs|; tolerance from reference_impl.tolerances at the element "
                         "with the worst error/tolerance)")
        for c in self.counterexamples:
            lines.append("")
            lines.extend("  " + line for line in c.describe().splitlines())
        if self.counterexamples:
            lines.append("")
            lines.append("  reproduce: call your function on the arrays above, or rerun the check with "
                         f"seed={self.seed if self.seed is not None else '<an int>'} (a fixed seed replays the search)")
        return "\n".join(lines)

    __str__ = report

    def raise_if_failed(self) -> OracleResult:
        """Raise ``AssertionError`` carrying :meth:`report` unless :attr:`ok`; returns ``self``."""
        if not self.ok:
            raise AssertionError(self.report())
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "subject": self.subject, "functions": list(self.functions), "ok": self.ok,
            "dtypes": list(self.dtypes), "backends": list(self.backends), "max_examples": self.max_examples,
            "seed": self.seed, "profile": self.profile, "problems": list(self.problems),
            "rows": [r.to_dict() for r in self.rows],
            "counterexamples": [c.to_dict() for c in self.counterexamples],
        }


def _json_float(v: Any) -> Any:
    # JSON has no inf/nan; a ratio of inf (a shape mismatch) is kept readable
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


def _fmt(v: float, spec: str = ".2e") -> str:
    if isinstance(v, float) and math.isnan(v):
        return "-"
    return format(v, spec)


def format_rows(rows: Sequence[Row]) -> list[str]:
    """Rows as an aligned plain-text table."""
    head = ("dtype", "check", "shape class", "against", "examples", "worst abs", "worst rel", "worst ulp",
            "err/tol", "tolerance", "status")
    body = [(r.dtype, r.check, r.shape_class, r.against, str(r.examples), _fmt(r.worst_abs_error),
             _fmt(r.worst_rel_error), _fmt(r.worst_ulp_error, ".3g"), _fmt(r.worst_ratio, ".3g"),
             _fmt(r.tolerance), r.status.upper()) for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    return [fmt(head), fmt(tuple("-" * w for w in widths)), *(fmt(b) for b in body)]


# =========================================================================== accumulating rows


@dataclass
class _Cell:
    examples: int = 0
    worst_abs: float = 0.0
    worst_rel: float = 0.0
    worst_ulp: float = 0.0
    worst_ratio: float = 0.0
    tolerance: float = float("nan")
    model: str = ""
    status: str = "pass"


def error_measures(actual: Any, expected: Any, tolerance: Any, dtype: Any) -> tuple[float, float, float]:
    """``(worst absolute, relative, ulp error)`` of ``actual`` against ``expected``.

    The relative and ulp errors are taken over the elements whose expected
    magnitude exceeds their tolerance: elsewhere the value is zero within
    rounding (a softmax VJP of 1e-30 next to entries of order 1), and a
    relative error there says nothing about the implementation."""
    a64, e64 = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    if a64.size == 0:
        return 0.0, 0.0, 0.0
    err = np.abs(a64 - e64)
    resolved = np.abs(e64) > np.broadcast_to(np.asarray(tolerance, np.float64), e64.shape)
    if not resolved.any():
        return float(err.max()), 0.0, 0.0
    rel = err[resolved] / np.abs(e64[resolved])
    ulp = tolerances.ulp_error(a64[resolved], e64[resolved], dtype)
    return float(err.max()), float(rel.max()), float(ulp.max())


class Tally:
    """Worst errors per (check, dtype, shape class, against), over every
    example hypothesis ran -- the search and the shrinking alike: each is a
    real input the function was run on."""

    def __init__(self) -> None:
        self.cells: dict[tuple[str, str, str, str], _Cell] = {}

    def _cell(self, check: str, dtype: str, shape_class: str, against: str) -> _Cell:
        return self.cells.setdefault((check, dtype, shape_class, against), _Cell())

    def record(self, check: str, dtype: str, shape_class: str, against: str, comp: tolerances.Comparison,
               actual: Any, expected: Any, tolerance: Any, new_example: bool = True) -> None:
        """Fold one comparison in; ``new_example=False`` for a further
        comparison on the same input (another layer of one network)."""
        c = self._cell(check, dtype, shape_class, against)
        c.examples += int(new_example)
        if comp.mismatch:
            c.worst_abs = c.worst_rel = c.worst_ulp = c.worst_ratio = float("inf")
            c.model, c.status = comp.mismatch, "fail"
            return
        abs_err, rel_err, ulp_err = error_measures(actual, expected, tolerance, dtype)
        c.worst_abs = max(c.worst_abs, abs_err)
        c.worst_rel = max(c.worst_rel, rel_err)
        c.worst_ulp = max(c.worst_ulp, ulp_err)
        if comp.ratio > c.worst_ratio or math.isnan(c.tolerance):
            c.worst_ratio, c.tolerance, c.model = comp.ratio, comp.tolerance, comp.model
        if not comp.ok:
            c.status = "fail"

    def record_error(self, check: str, dtype: str, shape_class: str, against: str, message: str) -> None:
        c = self._cell(check, dtype, shape_class, against)
        c.examples += 1
        c.status = "error"
        c.model = message

    def rows(self) -> tuple[Row, ...]:
        order = {"reference": 0, "torch": 1, "jax": 2}
        keys = sorted(self.cells, key=lambda k: (k[1], k[2], k[0], order.get(k[3], 9), k[3]))
        out = []
        for k in keys:
            c = self.cells[k]
            out.append(Row(k[0], k[1], k[2], k[3], c.examples, c.worst_abs, c.worst_rel, c.worst_ulp,
                           c.worst_ratio, c.tolerance, c.model, c.status))
        return tuple(out)


# =========================================================================== the search


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

    def counterexample(self, dtype: str, nondeterministic: bool = False) -> Counterexample:
        return Counterexample(dtype, self.check, self.against, self.kind, self.message, self.call, self.example,
                              dict(self.arrays), nondeterministic)


class _Found(Exception):
    """Raised inside the hypothesis property so that hypothesis shrinks the input."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.message)
        self.finding = finding


def _raise(finding: Finding | None) -> None:
    # One raise site: hypothesis groups failures by where they were raised,
    # so every kind of failure shrinks towards one minimal input.
    if finding is not None:
        raise _Found(finding)


_SEARCH_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                  HealthCheck.large_base_example]


def search(strategy: st.SearchStrategy[Any], evaluate: Callable[[Any], Finding | None], *,
           max_examples: int, seed: int | None,
           on_example: Callable[[], None] | None = None) -> tuple[Finding | None, bool, str | None]:
    """Run ``evaluate`` on examples drawn from ``strategy`` until it returns a
    :class:`Finding` (then hypothesis shrinks the input) or ``max_examples``
    pass. Returns ``(finding of the minimal input, nondeterministic, problem)``.

    Settings are independent of any hypothesis profile the caller loaded:
    no deadline (the first call may compile), no example database (nothing
    written to the working directory), a fixed ``seed`` or a random one."""
    last: list[Finding] = []

    def prop(example: Any) -> None:
        if on_example is not None:
            on_example()
        finding = evaluate(example)
        if finding is not None:
            last.append(finding)
        _raise(finding)

    try:
        test = given(strategy)(prop)
        test = settings(settings.get_profile("default"), max_examples=max_examples, deadline=None, database=None,
                        derandomize=False, report_multiple_bugs=False, print_blob=False,
                        suppress_health_check=_SEARCH_HEALTH,
                        phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink))(test)
        if seed is not None:
            test = hypothesis_seed(seed)(test)
        test()
    except _Found as e:
        return e.finding, False, None
    except Flaky:
        return (last[-1] if last else None), True, None
    except Unsatisfiable as e:
        return None, False, f"no valid example could be drawn ({e})"
    except FailedHealthCheck as e:
        # raised when the caller is itself a hypothesis test: the oracle runs
        # its own search, and hypothesis refuses to nest one in another
        return None, False, (f"the oracle runs its own hypothesis search and cannot run inside a @given test; "
                             f"call it from a plain test ({str(e).splitlines()[0]})")
    return None, False, None


# =========================================================================== validating what a function returned


def _type_name(x: Any) -> str:
    t = type(x)
    return t.__name__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def as_returned_array(value: Any, what: str, shape: tuple[int, ...], dtype: np.dtype) -> tuple[np.ndarray | None, str]:
    """``(array, "")`` when ``value`` is a finite array of ``shape`` and
    ``dtype``; otherwise ``(None, what is wrong)``, naming ``what``."""
    if value is None:
        return None, f"{what} is None; expected a {dtype.name} array of shape {shape}"
    if isinstance(value, (list, tuple)):
        return None, (f"{what} is a {type(value).__name__}, not an array; expected a {dtype.name} array of shape "
                      f"{shape} (np.asarray(..., dtype=np.{dtype.name}) makes one)")
    if isinstance(value, (bool, int, float, complex)):
        return None, (f"{what} is a Python {type(value).__name__} ({value!r}), not an array; expected a "
                      f"{dtype.name} array of shape {shape} (a Python float is float64 and drops the dtype)")
    if isinstance(value, np.ndarray):
        arr = value
    elif isinstance(value, np.generic) or hasattr(value, "__array__"):
        try:
            arr = np.asarray(value)
        except Exception as e:  # a framework tensor that refuses conversion (e.g. one that requires grad)
            return None, f"{what} is a {_type_name(value)} that np.asarray cannot convert: {type(e).__name__}: {e}"
    else:
        return None, f"{what} is a {_type_name(value)}, not an array; expected a {dtype.name} array of shape {shape}"
    if arr.shape != shape:
        return None, f"{what} has shape {arr.shape}, expected {shape}"
    if arr.dtype != dtype:
        return None, (f"{what} has dtype {arr.dtype}, expected {dtype.name} (the inputs' dtype; a silent "
                      "precision change is a failure)")
    if arr.dtype.kind != "f":
        return None, f"{what} has dtype {arr.dtype}, not a floating dtype"
    finite = np.isfinite(arr)
    if not finite.all():
        idx = tuple(int(i) for i in np.argwhere(~finite)[0]) if arr.ndim else ()
        return None, f"{what} is not finite: {float(arr[idx])} at index {idx} (of shape {shape})"
    return arr, ""


def _call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[Any, str]:
    """Run a user function; an exception becomes a message with the line it came from."""
    try:
        return fn(*args, **kwargs), ""
    except Exception as e:  # the user's function failing is a finding about it, not a crash of the oracle
        frames = traceback.extract_tb(e.__traceback__)
        where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
        return None, f"raised {type(e).__name__}: {e}{where}"


def _user_message(role: str, err: str) -> str:
    """``err`` as a sentence about the user's function ``role``."""
    if err.startswith("your "):
        return err
    return f"your {role} {err}" if err.startswith("raised ") else f"your {role}: {err}"


def _unpack_tuple(value: Any, what: str, names: Sequence[str], hint: str) -> tuple[tuple[Any, ...] | None, str]:
    """A tuple with one item per name, or what is wrong with ``value``."""
    if value is None:
        return None, f"{what} returned None; expected {hint}"
    if isinstance(value, list):
        return None, f"{what} returned a list; expected {hint}"
    if not isinstance(value, tuple):
        return None, f"{what} returned a {_type_name(value)}; expected {hint}"
    if len(value) != len(names):
        return None, f"{what} returned a tuple of {len(value)} item(s); expected {hint}"
    return value, ""


# =========================================================================== argument checks (misuse is reported)


def unknown_name(arg: str, kind: str, name: Any, valid: Sequence[str]) -> str:
    """``"<arg>: unknown <kind> 'x' (did you mean 'y'?); valid: a, b, c"``."""
    close = difflib.get_close_matches(str(name), list(valid), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{arg}: unknown {kind} {name!r}{hint}; valid: {', '.join(valid)}"


def _resolve_profile(profile: str | None, problems: list[str]) -> str:
    name = profile if profile is not None else os.environ.get(ENV_VAR, "dev")
    if name not in PROFILES:
        src = "profile" if profile is not None else ENV_VAR
        problems.append(f"{src}: {name!r} is not a profile; valid: {', '.join(PROFILES)}")
        return "dev"
    return name


def _resolve_common(dtypes: Any, max_examples: Any, seed: Any, backends: Any, profile: str | None,
                    problems: list[str]) -> tuple[tuple[str, ...], int, int | None, tuple[str, ...], str]:
    prof = _resolve_profile(profile, problems)
    if isinstance(dtypes, (str, np.dtype, type)):
        dtypes = (dtypes,)
    dts: list[str] = []
    try:
        items = list(dtypes)
    except TypeError:
        problems.append(f"dtypes: expected a sequence such as ('float32', 'float64'), got {_type_name(dtypes)}")
        items = []
    for d in items:
        try:
            name = np.dtype(d).name
        except TypeError:
            name = str(d)
        if name not in DTYPES:
            problems.append(f"dtypes: {d!r} is not supported; use 'float32' and/or 'float64'")
        elif name not in dts:
            dts.append(name)
    if items and not dts and not problems:
        problems.append("dtypes: empty; use 'float32' and/or 'float64'")
    if max_examples is None:
        n = PROFILES[prof]
    elif isinstance(max_examples, bool) or not isinstance(max_examples, numbers.Integral) or max_examples < 1:
        problems.append(f"max_examples: expected an int >= 1, got {max_examples!r}")
        n = 1
    else:
        n = int(max_examples)
    if seed is None:
        sd = 0 if prof == "ci" else None  # the ci profile is derandomized: the same examples every run
    elif isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        problems.append(f"seed: expected an int or None, got {seed!r}")
        sd = None
    else:
        sd = int(seed)
    if isinstance(backends, str):
        backends = tuple(b for b in backends.split(",") if b)
    bks: list[str] = []
    for b in backends or ():
        if b not in BACKENDS:
            problems.append(unknown_name("backends", "backend", b, BACKENDS))
            continue
        try:
            from parity_tests.backends import BackendUnavailable, get_backend
        except ImportError as e:
            problems.append(f"backends: the framework adapters (parity_tests.backends) cannot be imported: {e}")
            continue
        try:
            get_backend(b)
        except BackendUnavailable as e:
            problems.append(f"backends: {e}")
            continue
        if b not in bks:
            bks.append(b)
    return tuple(dts), n, sd, tuple(bks), prof


def _check_callable(fn: Any, name: str, signature: str, problems: list[str]) -> None:
    if fn is not None and not callable(fn):
        problems.append(f"{name}: expected a callable {signature}, got {_type_name(fn)}")


def _copy(arrays: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
    # A function that modifies its inputs in place must not corrupt the
    # reference's inputs or the counterexample.
    return tuple(np.array(a, copy=True) for a in arrays)


def _spec_factor(op: str, backend: str) -> tuple[float, str]:
    from parity_tests.spec import SPECS

    o = SPECS[op].override.get(backend)
    return (o.factor, f" (override x{o.factor}: {o.reason})") if o else (1.0, "")


def _conventions_for(op: str) -> str:
    """The conventions (parity_tests.spec.CONVENTIONS) a disagreement on
    ``op`` may come from, for the failure message."""
    keys = {"relu": ("relu'(0)",), "dense": ("dense layout",),
            "cross_entropy": ("reduction", "cross_entropy gradient"), "softmax_cross_entropy": ("reduction",),
            "mse": ("reduction",)}.get(op, ())
    if not keys:
        return ""
    try:
        from parity_tests.spec import CONVENTIONS
    except ImportError:
        return ""
    return " Conventions that apply: " + "; ".join(f"{k}: {CONVENTIONS[k]}" for k in keys if k in CONVENTIONS)


# =========================================================================== ops


def shape_class(op: str, inputs: Sequence[np.ndarray]) -> str:
    """Which kind of shapes an example has: the rank of each input, and
    ``broadcast`` where two operands of a broadcasting op differ in shape."""
    spec = OPS[op]
    text = " ".join(f"{n}:{np.ndim(x)}d" for n, x in zip(spec.arg_names, inputs))
    if spec.domain.shapes == "broadcast_pair" and np.shape(inputs[0]) != np.shape(inputs[1]):
        text += " broadcast"
    return text


def check_op(op: str, *, forward: Callable[..., Any] | None = None, vjp: Callable[..., Any] | None = None,
             dtypes: Sequence[str] = DTYPES, params: Any = None, shapes: str | None = None,
             max_examples: int | None = None, seed: int | None = None, backends: Sequence[str] = (),
             profile: str | None = None) -> OracleResult:
    """Check your ``forward(*inputs, **params)`` and/or
    ``vjp(cotangent, *inputs, **params)`` of the op ``op`` (a key of
    :data:`reference_impl.OPS`) against the reference.

    ``dtypes``: float32 and/or float64, one search each. ``params`` fixes
    keyword parameters (``{"reduction": "sum"}``); the others are drawn from
    the op's allowed values. ``shapes``: ``"free"`` (any size 1..64, up to
    three axes) or ``"palette"`` (a short fixed list; the default when jax
    is a backend, which compiles once per shape). ``max_examples`` per
    dtype and ``seed`` (``None``: random) default from ``profile`` (``dev``:
    25, random; ``ci``: 100, seed 0; ``thorough``: 1000, random; default
    the environment variable ``REFERENCE_IMPL_PROFILE``, else ``dev``).
    ``backends``: any of ``"torch"``, ``"jax"`` as further opinions.
    """
    problems: list[str] = []
    if not isinstance(op, str) or op not in OPS:
        problems.append(unknown_name("op", "op", op, sorted(OPS)))
    if forward is None and vjp is None:
        problems.append("forward, vjp: give at least one of your functions to check (forward=..., vjp=...)")
    _check_callable(forward, "forward", "forward(*inputs, **params)", problems)
    _check_callable(vjp, "vjp", "vjp(cotangent, *inputs, **params)", problems)
    dts, n, sd, bks, prof = _resolve_common(dtypes, max_examples, seed, backends, profile, problems)
    fixed: dict[str, Any] = {}
    if params is not None and not isinstance(params, Mapping):
        problems.append(f"params: expected a mapping such as {{'reduction': 'sum'}}, got {_type_name(params)}")
    elif params and isinstance(op, str) and op in OPS:
        allowed = OPS[op].params
        for k, v in params.items():
            if k not in allowed:
                problems.append(f"params: {k!r} is not a parameter of {op}; accepted: {sorted(allowed) or 'none'}")
            elif v not in allowed[k]:
                problems.append(f"params[{k!r}]: {v!r} is not one of {list(allowed[k])}")
            else:
                fixed[k] = v
    if shapes is None:
        shapes = "palette" if "jax" in bks else "free"
    elif shapes not in ("free", "palette"):
        problems.append(f"shapes: {shapes!r} is not 'free' or 'palette'")
    functions = tuple(name for name, fn in (("forward", forward), ("vjp", vjp)) if fn is not None)
    subject = op if isinstance(op, str) else repr(op)
    if problems:
        return OracleResult("op", subject, functions, (), (), tuple(problems), dts, bks, n, sd, prof)

    tally = Tally()
    found: list[Counterexample] = []
    for dt in dts:
        evaluate = _op_evaluator(op, forward, vjp, bks, tally)
        hit, flaky, problem = search(examples(op, dt, shapes=shapes, params=fixed or None), evaluate,
                                     max_examples=n, seed=sd)
        if problem:
            problems.append(f"{dt}: {problem}")
        if hit is not None:
            found.append(hit.counterexample(dt, flaky))
    return OracleResult("op", op, functions, tally.rows(), tuple(found), tuple(problems), dts, bks, n, sd, prof)


def _op_evaluator(op: str, forward: Callable[..., Any] | None, vjp: Callable[..., Any] | None,
                  backends: Sequence[str], tally: Tally) -> Callable[[Example], Finding | None]:
    spec = OPS[op]
    names = spec.arg_names
    conventions = _conventions_for(op)

    def evaluate(ex: Example) -> Finding | None:
        dtype = ex.dtype
        dt = dtype.name
        sc = shape_class(op, ex.inputs)
        kw = "".join(f", {k}={v!r}" for k, v in ex.params.items())
        arrays = {"cotangent": ex.cotangent, **dict(zip(names, ex.inputs))} if vjp else dict(zip(names, ex.inputs))
        desc = ex.describe()

        def finding(check: str, against: str, kind: str, message: str, call: str) -> Finding:
            return Finding(check, against, kind, message, call, desc, {k: v.copy() for k, v in arrays.items()})

        opinions: dict[str, tuple[np.ndarray, tuple[np.ndarray, ...] | None, float, str]] = {
            "reference": (spec.forward(*ex.inputs, **ex.params),
                          spec.vjp(ex.cotangent, *ex.inputs, **ex.params) if vjp else None, 1.0, ""),
        }
        for b in backends:
            from parity_tests.backends import get_backend

            try:
                out, grads = get_backend(b).vjp(op, ex.cotangent, ex.inputs, ex.params)
            except Exception as e:  # a framework failing on a valid input is reported, not raised
                return finding("forward" if forward else "vjp", b, "backend error",
                               f"{b} raised {type(e).__name__}: {e}", f"{b}'s own {op} and autograd")
            factor, note = _spec_factor(op, b)
            opinions[b] = (np.asarray(out), tuple(np.asarray(g) for g in grads), factor, note)

        first: Finding | None = None
        if forward is not None:
            call = f"forward({', '.join(names)}{kw})"
            ret, err = _call(forward, _copy(ex.inputs), ex.params)
            ref_out = opinions["reference"][0]
            arr = None
            if not err:
                arr, err = as_returned_array(ret, "the result", ref_out.shape, dtype)
            if err:
                msg = _user_message("forward", err)
                tally.record_error("forward", dt, sc, "reference", msg)
                return finding("forward", "reference", "user function error", msg, call)
            bound = tolerances.forward_bound(op, ex.inputs, ex.params)
            for against, (out, _, factor, note) in opinions.items():
                tol = bound.tolerance(dtype, factor)
                comp = tolerances.compare(arr, out, tol, dtype, bound.model + note)
                tally.record("forward", dt, sc, against, comp, arr, out, tol)
                if not comp.ok and first is None:
                    first = finding("forward", against, "disagreement",
                                    f"your forward disagrees with {against}: {comp.describe()}.{conventions}", call)
        if vjp is not None:
            call = f"vjp(cotangent, {', '.join(names)}{kw})"
            ret, err = _call(vjp, (ex.cotangent.copy(), *_copy(ex.inputs)), ex.params)
            hint = f"a tuple of {len(names)} array(s), the gradients w.r.t. ({', '.join(names)})"
            returned: tuple[Any, ...] | None = None
            if not err:
                if len(names) == 1 and not isinstance(ret, (tuple, list)) and ret is not None and (
                        isinstance(ret, (np.ndarray, np.generic)) or hasattr(ret, "__array__")):
                    ret = (ret,)  # one input: a bare array is the gradient w.r.t. it
                returned, err = _unpack_tuple(ret, "your vjp", names, hint)
            checked: list[np.ndarray] = []
            if not err and returned is not None:
                for name, x, g in zip(names, ex.inputs, returned):
                    grad, err = as_returned_array(g, f"the gradient w.r.t. '{name}'", x.shape, dtype)
                    if grad is None:
                        break
                    checked.append(grad)
            if err:
                msg = _user_message("vjp", err)
                tally.record_error("vjp", dt, sc, "reference", msg)
                return finding("vjp", "reference", "user function error", msg, call)
            bounds = tolerances.vjp_bound(op, ex.cotangent, ex.inputs, ex.params)
            for against, (_, theirs, factor, note) in opinions.items():
                assert theirs is not None
                for name, mine, other, bound in zip(names, checked, theirs, bounds):
                    check = f"vjp[{name}]"
                    tol = bound.tolerance(dtype, factor)
                    comp = tolerances.compare(mine, other, tol, dtype, bound.model + note)
                    tally.record(check, dt, sc, against, comp, mine, other, tol)
                    if not comp.ok and first is None:
                        first = finding(check, against, "disagreement",
                                        f"your VJP w.r.t. '{name}' disagrees with {against}: "
                                        f"{comp.describe()}.{conventions}", call)
        return first

    return evaluate


# =========================================================================== networks


@dataclass(frozen=True)
class NetCase:
    """A drawn network input: parameters, data and how they were drawn."""

    params: tuple[tuple[np.ndarray, np.ndarray], ...]
    x: np.ndarray
    target: np.ndarray
    recipe: dict[str, Any]

    @property
    def batch(self) -> int:
        return int(self.x.shape[0])

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"x": self.x, "target": self.target}
        for l, (w, b) in enumerate(self.params):
            out[f"W{l + 1}"], out[f"b{l + 1}"] = w, b
        return out

    def describe(self, net: Any) -> str:
        return f"{net}, batch {self.batch}, {self.x.dtype.name}, recipe {self.recipe}"


def _resolve_net(net: Any, problems: list[str]) -> Any:
    from . import networks

    if isinstance(net, networks.MLP):
        return net
    if isinstance(net, networks.Preset):
        return net.net
    if isinstance(net, str):
        if net in networks.PRESETS:
            return networks.PRESETS[net]().net
        problems.append(unknown_name("net", "preset", net, sorted(networks.PRESETS)) + " (or pass an MLP)")
        return None
    problems.append(f"net: expected a reference_impl.networks.MLP, a Preset or a preset key "
                    f"({', '.join(sorted(networks.PRESETS))}), got {_type_name(net)}")
    return None


@st.composite
def network_cases(draw: st.DrawFn, net: Any, dtype: Any, max_batch: int = 16,
                  batches: Sequence[int] | None = None) -> NetCase:
    """Parameters from ``net.init_params(seed, dtype, scale)``, ``x`` normal,
    a target of the cost's kind (one-hot or a distribution per row for the
    classification costs, normal for ``mse``). The batch is 1..``max_batch``
    rows, or one of ``batches`` (a JIT-compiling framework compiles once per
    shape)."""
    dtype = np.dtype(dtype)
    batch = draw(st.sampled_from(tuple(batches)) if batches else st.integers(1, max_batch), label="batch")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    scale = draw(st.sampled_from(_SCALES), label="scale")
    kind = "real" if net.cost == "mse" else draw(st.sampled_from(("one_hot", "soft")), label="target")
    params = net.init_params(seed, dtype, scale)
    rng = np.random.default_rng([seed, 1])
    x = rng.normal(size=(batch, net.sizes[0]))
    k = net.sizes[-1]
    if kind == "one_hot":
        t = np.eye(k)[rng.integers(0, k, size=batch)]
    elif kind == "soft":
        t = rng.dirichlet(np.ones(k), size=batch)
    else:
        t = rng.normal(size=(batch, k))
    x, t = x.astype(dtype), t.astype(dtype)
    if net.cost == "cross_entropy":
        assume(float(np.min(net.predict(params, x))) >= SMALLEST_PROBABILITY)
    return NetCase(params, x, t, {"batch": batch, "seed": seed, "scale": scale, "target": kind})


def _batch_class(case: NetCase) -> str:
    # a gradient that forgets to sum over the batch is right at batch 1
    return "batch=1" if case.batch == 1 else "batch>1"


def _resolve_net_settings(net: Any, mlp: Any, max_batch: Any, dtypes: Any, max_examples: Any, seed: Any,
                          backends: Any, profile: str | None, problems: list[str]) -> tuple[Any, ...]:
    """The settings ``check_network`` and ``check_sgd_step`` share: batch
    limit, dtypes, examples, seed, backends, profile, the network adapters
    and the subject's name; problems are appended, not raised."""
    if isinstance(max_batch, bool) or not isinstance(max_batch, numbers.Integral) or max_batch < 1:
        problems.append(f"max_batch: expected an int >= 1, got {max_batch!r}")
    dts, n, sd, bks, prof = _resolve_common(dtypes, max_examples, seed, backends, profile, problems)
    adapters = _net_adapters(bks, problems)
    subject = str(mlp) if mlp is not None else repr(net)
    return dts, n, sd, bks, prof, adapters, subject


def _net_adapters(backends: Sequence[str], problems: list[str]) -> Any:
    if not backends:
        return None
    try:
        from parity_tests import net_adapters
    except ImportError as e:
        problems.append(f"backends: comparing networks with torch or jax needs parity_tests.net_adapters, which "
                        f"imports both frameworks: {e}")
        return None
    return net_adapters


def _copy_params(params: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    return tuple((w.copy(), b.copy()) for w, b in params)


def _unpack_layers(value: Any, what: str, depth: int, part_names: tuple[str, str]) -> tuple[Any, str]:
    pair = f"({part_names[0]}, {part_names[1]})"
    layers, err = _unpack_tuple(value, what, [""] * depth, f"a tuple of {depth} {pair} pair(s), one per layer")
    if err:
        return None, err
    assert layers is not None
    for l, item in enumerate(layers):
        _, err = _unpack_tuple(item, f"{what}[{l}]", ["", ""], f"a {pair} tuple")
        if err:
            return None, err.replace(" returned ", " is ")
    return layers, ""


def check_network(net: Any, *, value_and_grad: Callable[..., Any] | None = None, dtypes: Sequence[str] = DTYPES,
                  max_examples: int | None = None, seed: int | None = None, backends: Sequence[str] = (),
                  profile: str | None = None, max_batch: Any = 16) -> OracleResult:
    """Check your ``value_and_grad(params, x, target) -> (loss, ((dW_1, db_1), ...))``
    for the network ``net`` (a :class:`reference_impl.networks.MLP`, a
    :class:`~reference_impl.networks.Preset` or a preset key such as
    ``"002"``) against :meth:`MLP.value_and_grad`, under
    :func:`reference_impl.tolerances.network_bound`.

    ``params`` is ``((W_1, b_1), ...)`` with ``W`` laid out ``(inputs,
    outputs)``; ``x`` is ``(batch, inputs)``, batches of 1 to ``max_batch``
    rows. Other arguments as in :func:`check_op`; backends compare with
    ``torch.nn.Linear`` layers and ``jax.grad`` through ``parity_tests.net_adapters``.
    """
    problems: list[str] = []
    mlp = _resolve_net(net, problems)
    if value_and_grad is None:
        problems.append("value_and_grad: give your function value_and_grad(params, x, target)")
    _check_callable(value_and_grad, "value_and_grad", "value_and_grad(params, x, target)", problems)
    dts, n, sd, bks, prof, adapters, subject = _resolve_net_settings(
        net, mlp, max_batch, dtypes, max_examples, seed, backends, profile, problems)
    if problems:
        return OracleResult("network", subject, ("value_and_grad",), (), (), tuple(problems), dts, bks, n, sd, prof)
    user_fn: Callable[..., Any] = value_and_grad  # type: ignore[assignment]  # not None: a problem otherwise

    tally = Tally()
    found: list[Counterexample] = []
    depth = mlp.depth
    for dt in dts:
        def evaluate(case: NetCase, dt: str = dt) -> Finding | None:
            dtype = np.dtype(dt)
            sc = _batch_class(case)
            desc = case.describe(mlp)
            call = "value_and_grad(params, x, target)"

            def finding(check: str, against: str, kind: str, message: str) -> Finding:
                return Finding(check, against, kind, message, call, desc, case.arrays())

            tape = mlp.forward(case.params, case.x, case.target)
            grads = mlp.backward(tape)
            bound = tolerances.network_bound(tape, grads)
            opinions: dict[str, tuple[Any, tuple[np.ndarray, ...], tuple[np.ndarray, ...]]] = {
                "reference": (tape.loss, grads.dW, grads.db)}
            for b in bks:
                run = adapters.torch_value_and_grad if b == "torch" else adapters.jax_value_and_grad
                try:
                    res = run(mlp, case.params, case.x, case.target)
                except Exception as e:  # a framework failing is reported, not raised
                    return finding("loss", b, "backend error", f"{b} raised {type(e).__name__}: {e}")
                opinions[b] = (res.loss, tuple(res.dW), tuple(res.db))

            ret, err = _call(user_fn, (_copy_params(case.params), case.x.copy(), case.target.copy()), {})
            pair: tuple[Any, ...] | None = None
            if not err:
                pair, err = _unpack_tuple(ret, "your value_and_grad", ["loss", "grads"],
                                          f"(loss, grads) with grads a tuple of {depth} (dW, db) pair(s)")
            mine: dict[str, list[np.ndarray]] = {"loss": [], "dW": [], "db": []}
            if not err and pair is not None:
                loss, err = as_returned_array(pair[0], "the loss", (), dtype)
                if loss is not None:
                    mine["loss"].append(loss)
            if not err and pair is not None:
                layers, err = _unpack_layers(pair[1], "the gradients", depth, ("dW", "db"))
                for l in range(depth) if not err else ():
                    for part, ref in (("dW", grads.dW[l]), ("db", grads.db[l])):
                        returned = layers[l][0 if part == "dW" else 1]
                        arr, err = as_returned_array(returned, f"{part}[{l}] (layer {l + 1})", ref.shape, dtype)
                        if arr is None:
                            break
                        mine[part].append(arr)
                    if err:
                        break
            if err:
                msg = _user_message("value_and_grad", err)
                tally.record_error("value_and_grad", dt, sc, "reference", msg)
                return finding("value_and_grad", "reference", "user function error", msg)
            first: Finding | None = None
            for against, (o_loss, o_dw, o_db) in opinions.items():
                for part, theirs in (("loss", [o_loss]), ("dW", o_dw), ("db", o_db)):
                    for l, (m, o) in enumerate(zip(mine[part], theirs)):
                        tol = bound.tolerance("loss") if part == "loss" else bound.tolerance(part, l)
                        comp = tolerances.compare(m, np.asarray(o), tol, dtype, bound.model)
                        tally.record(part, dt, sc, against, comp, m, o, tol, new_example=l == 0)
                        if not comp.ok and first is None:
                            where = "the loss" if part == "loss" else f"{part}[{l}] (layer {l + 1} of {depth})"
                            first = finding(part, against, "disagreement",
                                            f"your {where} disagrees with {against}: {comp.describe()}")
            return first

        hit, flaky, problem = search(network_cases(mlp, dt, max_batch), evaluate, max_examples=n, seed=sd)
        if problem:
            problems.append(f"{dt}: {problem}")
        if hit is not None:
            found.append(hit.counterexample(dt, flaky))
    return OracleResult("network", subject, ("value_and_grad",), tally.rows(), tuple(found), tuple(problems),
                        dts, bks, n, sd, prof)


def check_sgd_step(net: Any, *, step: Callable[..., Any] | None = None, lr: Any = None, dtypes: Sequence[str] = DTYPES,
                   max_examples: int | None = None, seed: int | None = None, backends: Sequence[str] = (),
                   profile: str | None = None, max_batch: Any = 16) -> OracleResult:
    """Check your ``step(params, x, target, lr) -> ((W_1, b_1), ...)`` -- one
    full-batch gradient-descent step ``w <- w - lr dL/dw`` on the network
    ``net`` -- against :func:`reference_impl.optim.train` with one step, under
    :func:`reference_impl.tolerances.trajectory_bound`.

    ``lr``: a fixed learning rate, or ``None`` to draw one of 1e-3, 1e-2,
    0.1 and 1. Other arguments as in :func:`check_network`; backends compare
    with ``torch.optim.SGD`` and ``optax.sgd``.
    """
    from .optim import check_lr, train

    problems: list[str] = []
    mlp = _resolve_net(net, problems)
    if step is None:
        problems.append("step: give your function step(params, x, target, lr)")
    _check_callable(step, "step", "step(params, x, target, lr)", problems)
    if lr is not None:
        try:
            lr = check_lr(lr)
        except (TypeError, ValueError) as e:
            problems.append(str(e))
    dts, n, sd, bks, prof, adapters, subject = _resolve_net_settings(
        net, mlp, max_batch, dtypes, max_examples, seed, backends, profile, problems)
    if problems:
        return OracleResult("sgd_step", subject, ("step",), (), (), tuple(problems), dts, bks, n, sd, prof)
    user_fn: Callable[..., Any] = step  # type: ignore[assignment]  # not None: a problem otherwise

    @st.composite
    def cases(draw: st.DrawFn, dt: str) -> tuple[NetCase, float]:
        case = draw(network_cases(mlp, dt, max_batch))
        rate = lr if lr is not None else draw(st.sampled_from(_LEARNING_RATES), label="lr")
        return case, float(rate)

    tally = Tally()
    found: list[Counterexample] = []
    depth = mlp.depth
    for dt in dts:
        def evaluate(drawn: tuple[NetCase, float], dt: str = dt) -> Finding | None:
            case, rate = drawn
            dtype = np.dtype(dt)
            sc = _batch_class(case)
            desc = f"{case.describe(mlp)}, lr {rate!r}"
            call = f"step(params, x, target, lr={rate!r})"

            def finding(check: str, against: str, kind: str, message: str) -> Finding:
                return Finding(check, against, kind, message, call, desc, case.arrays())

            traj = train(mlp, case.params, case.x, case.target, lr=rate, steps=1)
            bound = tolerances.trajectory_bound(traj, case.x, case.target)
            opinions: dict[str, Any] = {"reference": traj.params[1]}
            for b in bks:
                run = adapters.torch_sgd if b == "torch" else adapters.jax_sgd
                try:
                    path, _ = run(mlp, case.params, case.x, case.target, rate, 1)
                except Exception as e:  # a framework failing is reported, not raised
                    return finding("W", b, "backend error", f"{b} raised {type(e).__name__}: {e}")
                opinions[b] = path[1]

            ret, err = _call(user_fn, (_copy_params(case.params), case.x.copy(), case.target.copy(), rate), {})
            layers: Any = None
            if not err:
                layers, err = _unpack_layers(ret, "your step", depth, ("W", "b"))
            mine: list[tuple[np.ndarray, np.ndarray]] = []
            for l in range(depth) if not err else ():
                pair: list[np.ndarray] = []
                for i, part in enumerate(("W", "b")):
                    arr, err = as_returned_array(layers[l][i], f"the new {part}[{l}] (layer {l + 1})",
                                                 case.params[l][i].shape, dtype)
                    if arr is None:
                        break
                    pair.append(arr)
                if err:
                    break
                mine.append((pair[0], pair[1]))
            if err:
                msg = _user_message("step", err)
                tally.record_error("step", dt, sc, "reference", msg)
                return finding("step", "reference", "user function error", msg)
            first: Finding | None = None
            for against, theirs in opinions.items():
                for l in range(depth):
                    for i, part in enumerate(("W", "b")):
                        m, o = mine[l][i], np.asarray(theirs[l][i])
                        tol = bound.tolerance(1, l, part)
                        comp = tolerances.compare(m, o, tol, dtype, bound.model)
                        tally.record(part, dt, sc, against, comp, m, o, tol, new_example=l == 0)
                        if not comp.ok and first is None:
                            first = finding(part, against, "disagreement",
                                            f"your new {part}[{l}] (layer {l + 1} of {depth}) disagrees with "
                                            f"{against}: {comp.describe()}")
            return first

        hit, flaky, problem = search(cases(dt), evaluate, max_examples=n, seed=sd)
        if problem:
            problems.append(f"{dt}: {problem}")
        if hit is not None:
            found.append(hit.counterexample(dt, flaky))
    return OracleResult("sgd_step", subject, ("step",), tally.rows(), tuple(found), tuple(problems),
                        dts, bks, n, sd, prof)


# =========================================================================== preconfigured


class Oracle:
    """The three checks with shared defaults (what the pytest fixture
    ``gradient_oracle`` hands a test); every result is kept in :attr:`results`."""

    def __init__(self, *, backends: Sequence[str] = (), max_examples: int | None = None, seed: int | None = None,
                 profile: str | None = None, dtypes: Sequence[str] | None = None) -> None:
        self.defaults: dict[str, Any] = {"backends": tuple(backends), "max_examples": max_examples, "seed": seed,
                                         "profile": profile}
        if dtypes is not None:
            self.defaults["dtypes"] = tuple(dtypes)
        self.results: list[OracleResult] = []

    def _run(self, fn: Callable[..., OracleResult], *args: Any, **kwargs: Any) -> OracleResult:
        result = fn(*args, **{**self.defaults, **kwargs})
        self.results.append(result)
        return result

    def check_op(self, op: str, **kwargs: Any) -> OracleResult:
        """:func:`check_op` with this oracle's defaults."""
        return self._run(check_op, op, **kwargs)

    def check_network(self, net: Any, **kwargs: Any) -> OracleResult:
        """:func:`check_network` with this oracle's defaults."""
        return self._run(check_network, net, **kwargs)

    def check_sgd_step(self, net: Any, **kwargs: Any) -> OracleResult:
        """:func:`check_sgd_step` with this oracle's defaults."""
        return self._run(check_sgd_step, net, **kwargs)
