"""``check_vjp`` and ``check_grad``: argument checks, the per-dtype search, the result."""

from __future__ import annotations

import dataclasses
import inspect
import numbers
import os
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.errors import HypothesisDeprecationWarning
from hypothesis.errors import UnsatisfiedAssumption as _Unsatisfied

from .. import engine, pytree
from ..dtypes import NAMES
from ..dtypes import resolve as resolve_dtype
from ..engine.profiles import ENV_VAR, PROFILES
from ..engine.results import Tally
from ..engine.search import Budget, Misuse, search
from ..frameworks.array_api import BACKENDS, unavailable_reason
from ..strategies.inputs import Arg, Drawn, Inputs, _is_int, _is_number, leaf_count, spec_strategy
from .function_checks import Counters, Finding, Problem, _validate_drawn, evaluate
from .function_report import Counterexample, GradcheckResult, resolve_name

__all__ = ["check_vjp", "check_grad", "DEFAULT_MAX_ELEMENTS", "DEFAULT_TIME_BUDGET"]

DTYPES = ("float32", "float64")
DEFAULT_MAX_ELEMENTS = 4096
"""Largest number of elements over all inputs of one drawn example."""
DEFAULT_TIME_BUDGET = 60.0
"""Seconds of search and shrinking for one call, shared equally by the dtypes."""
SHRINK_EVALUATIONS = 12
"""Inputs tried while shrinking a failure, past the first failing one.
Hypothesis shrinks the sides first, and in the first few dozen tries; a
failure found on a 16 x 16 input is down to a few elements by then."""
SHRINK_SECONDS = 2.0
"""Seconds of shrinking at most (a slow user function)."""


def _positional_names(fn: Callable[..., Any]) -> tuple[str, ...]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return ()
    return tuple(p.name for p in sig.parameters.values()
                 if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def _resolve_settings(dtypes: Any, max_examples: Any, seed: Any, backends: Any, profile: Any, max_elements: Any,
                      time_budget: Any) -> tuple[tuple[str, ...], int, int | None, tuple[str, ...], str, int, float]:
    name = profile if profile is not None else os.environ.get(ENV_VAR, "dev")
    if name not in PROFILES:
        src = "profile" if profile is not None else ENV_VAR
        raise ValueError(f"{src}: {name!r} is not a profile; valid: {', '.join(PROFILES)}")
    if isinstance(dtypes, (str, np.dtype, type)):
        dtypes = (dtypes,)
    try:
        items = list(dtypes)
    except TypeError:
        raise TypeError(f"dtypes: expected a sequence such as ('float32', 'float64'), got {type(dtypes).__name__}"
                        ) from None
    dts: list[str] = []
    for d in items:
        try:
            dn = resolve_dtype(d).name
        except TypeError:
            dn = str(d)
        if dn not in NAMES:
            raise ValueError(f"dtypes: {d!r} is not supported; use one or more of {', '.join(NAMES)}")
        if dn not in dts:
            dts.append(dn)
    if not dts:
        raise ValueError("dtypes: empty; use 'float32' and/or 'float64'")
    if max_examples is None:
        n = PROFILES[name]
    elif isinstance(max_examples, bool) or not isinstance(max_examples, numbers.Integral) or max_examples < 1:
        raise ValueError(f"max_examples: expected an int >= 1, got {max_examples!r}")
    else:
        n = int(max_examples)
    if seed is None:
        sd = 0 if name == "ci" else None
    elif isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed: expected an int or None, got {seed!r}")
    else:
        sd = int(seed)
    if isinstance(backends, str):
        backends = tuple(b for b in backends.split(",") if b)
    bks: list[str] = []
    for b in backends or ():
        if b not in BACKENDS:
            raise ValueError(f"backends: unknown backend {b!r}; valid: {', '.join(BACKENDS)}")
        why = unavailable_reason(b)
        if why:
            raise ValueError(why)
        if b not in bks:
            bks.append(b)
    if not _is_int(max_elements) or int(max_elements) < 1:
        raise ValueError(f"max_elements: expected an int >= 1, got {max_elements!r}")
    if not _is_number(time_budget) or not float(time_budget) > 0:
        raise ValueError(f"time_budget: expected a number of seconds > 0, got {time_budget!r}")
    return tuple(dts), n, sd, tuple(bks), name, int(max_elements), float(time_budget)


def _resolve_wrt(wrt: Any, names: tuple[str, ...], n_known: int | None) -> tuple[int, ...] | None:
    if wrt is None:
        return None
    try:
        items: tuple[Any, ...] = (wrt,) if isinstance(wrt, (str, int)) else tuple(wrt)
    except TypeError:
        raise TypeError(f"wrt: expected a name, an index or a sequence of them, got {type(wrt).__name__}") from None
    if not items:
        raise ValueError("wrt: empty; name at least one input (or leave wrt=None for every floating input)")
    out: list[int] = []
    for w in items:
        if isinstance(w, str):
            if w not in names:
                valid = ", ".join(names) if names else "(f's signature names none; use indices)"
                raise ValueError(f"wrt: unknown input {w!r}; valid: {valid}")
            idx = names.index(w)
        elif _is_int(w):
            idx = int(w)
            if idx < 0 or (n_known is not None and idx >= n_known):
                raise ValueError(f"wrt: index {w} out of range for {n_known} input(s)")
        else:
            raise TypeError(f"wrt: expected input names or indices, got {w!r}")
        if idx not in out:
            out.append(idx)
    return tuple(out)


def _counterexample(f: engine.Finding, dtype: str) -> Counterexample:
    return f.counterexample(dtype)


def _run(pb: Problem, inputs: Any, *, kind: str, subject: str, dtypes: tuple[str, ...], max_examples: int,
         seed: int | None, backends: tuple[str, ...], profile: str, max_elements: int, time_budget: float
         ) -> GradcheckResult:
    tally = Tally()
    counters = Counters()
    counterexamples: list[Counterexample] = []
    cuts: list[str] = []
    problems: list[str] = []
    per_dtype = time_budget / len(dtypes)
    for dt in dtypes:
        dtype = np.dtype(dt)
        deadline = time.monotonic() + per_dtype
        finding: engine.Finding | None = None
        if isinstance(inputs, list):
            for k, example in enumerate(inputs):
                if time.monotonic() > deadline:
                    cuts.append(f"{dt}: time_budget {time_budget:g} s spent after {k} of {len(inputs)} examples")
                    break
                try:
                    drawn = Drawn(_validate_drawn(example, len(pb.arg_names)), ())
                    if leaf_count(drawn.args) > max_elements:
                        counters.cut_by_size += 1
                        continue
                    with warnings.catch_warnings():
                        # assume()/reject() in a user function outside a hypothesis test: still a skip
                        warnings.filterwarnings("ignore", message="Using `(assume|reject)` outside",
                                                category=HypothesisDeprecationWarning)
                        finding = evaluate(pb, drawn, dtype, (seed or 0) + k, tally, counters)
                except Misuse as e:
                    raise e.error from None
                except _Unsatisfied:
                    counters.skipped += 1
                    continue
                if finding is not None:
                    break
        else:
            strategy = _strategy(inputs, dtype, max_elements, counters)

            def one(pair: tuple[Drawn, int], dtype: np.dtype = dtype) -> Finding | None:
                try:
                    return evaluate(pb, pair[0], dtype, pair[1], tally, counters)
                except _Unsatisfied:
                    counters.skipped += 1
                    raise

            budget = Budget(per_dtype, shrink_evaluations=SHRINK_EVALUATIONS, shrink_seconds=SHRINK_SECONDS)
            try:
                outcome = search(st.tuples(strategy, st.integers(0, 2**32 - 1)), one, max_examples=max_examples,
                                 seed=seed, budget=budget)
            except Misuse as e:
                raise e.error from None
            finding = outcome.finding
            if outcome.cut:
                cuts.append(f"{dt}: time_budget {time_budget:g} s ({per_dtype:g} s per dtype) spent; {outcome.cut}")
            if outcome.problem:
                problems.append(f"{dt}: {_checked_nothing(outcome.problem)}")
        if finding is not None:
            counterexamples.append(_counterexample(finding, dt))
    if counters.structure_errors and counters.structure_errors == counters.evaluated - counters.skipped:
        first = next(c for c in counterexamples)
        raise TypeError(f"{pb.vjp_name}: {first.message.removeprefix(f'your {pb.vjp_name} ')} "
                        f"(on every input tried; called as {first.call})")
    cuts.extend(counters.notes())
    if counters.cut_by_size:
        cuts.append(f"max_elements {max_elements}: {counters.cut_by_size} drawn input(s) were reduced or skipped "
                    "to stay within it")
    if not tally.cells and not problems:
        problems.append("no input could be checked: every input was skipped")
    return GradcheckResult(kind, subject, (pb.f_name, pb.vjp_name), tally.rows(), tuple(counterexamples),
                           tuple(problems), tuple(cuts), counters.skipped, dtypes, backends, max_examples, seed,
                           profile, tuple(counters.coverage.lines()))


def _checked_nothing(problem: str) -> str:
    """The search's word for "every drawn input was skipped", said of the user's functions."""
    if problem.startswith("no valid example could be drawn"):
        return "no input could be checked: every drawn input was skipped (assume()/reject() in your functions)"
    return problem


def _strategy(inputs: Any, dtype: np.dtype, max_elements: int, counters: Counters) -> st.SearchStrategy[Drawn]:
    if isinstance(inputs, Inputs):
        def counted(d: Drawn) -> Drawn:
            counters.cut_by_size += int(d.cut)
            return d
        return spec_strategy(inputs, dtype, max_elements).map(counted)

    def wrap(value: Any) -> Drawn:
        return Drawn(_validate_drawn(value, 0), ())

    def small(d: Drawn) -> bool:
        if leaf_count(d.args) > max_elements:
            counters.cut_by_size += 1
            return False
        return True

    return inputs.map(wrap).filter(small)


def _resolve_inputs(inputs: Any) -> Any:
    if isinstance(inputs, (Inputs, st.SearchStrategy)):
        return inputs
    if isinstance(inputs, Arg):
        return Inputs(inputs)
    if isinstance(inputs, (list, tuple)) and inputs and all(isinstance(e, (tuple, list, np.ndarray)) for e in inputs):
        return list(inputs)
    raise TypeError(f"inputs: expected a hypothesis strategy, a list of example tuples or an Inputs(...) "
                    f"description, got {type(inputs).__name__}")


def check_vjp(f: Callable[..., Any], vjp: Callable[..., Any] | None = None, *, inputs: Any, wrt: Any = None,
              dtypes: Sequence[str] = DTYPES, max_examples: int | None = None, seed: int | None = None,
              backends: Sequence[str] = (), max_elements: int = DEFAULT_MAX_ELEMENTS,
              time_budget: float = DEFAULT_TIME_BUDGET, profile: str | None = None, framework: str | None = None,
              device: str = "cpu", modes: Sequence[str] = ("rev",), order: int = 1,
              hvp: Callable[..., Any] | None = None, batched: bool = False, piecewise: bool = False,
              name: str | None = None) -> GradcheckResult:
    """Check ``vjp(cotangent, *inputs)`` against ``f(*inputs)``.

    ``f`` returns an array or a pytree of arrays; ``vjp`` returns the
    gradients of ``<cotangent, f(*inputs)>`` for the inputs named by ``wrt``
    (names from ``f``'s signature or an :class:`Inputs`, or indices; default:
    every floating input): a tuple with one per ``wrt`` input (a bare gradient
    when there is one; a tuple over every input is accepted too). ``inputs``
    is a hypothesis strategy drawing tuples of arrays, a list of example
    tuples, or an :class:`Inputs` description. Floating inputs are cast to
    each of ``dtypes``.

    Per dtype and shape class it reports the Taylor remainder order, the
    adjoint test against Richardson-extrapolated central differences, the
    float32 gradient against the float64 one, the gradients' finiteness,
    dtype and shape, whether ``f`` or ``vjp`` modified an argument, and, with
    ``backends``, torch's and jax's autograd of the same ``f`` (written against
    the array API). See :mod:`reference_impl.engine.differences` for the error
    models. Misuse raises ``TypeError`` / ``ValueError`` naming the argument.

    torch and jax code is taken as it is (functions of tensors,
    ``Function.apply``, ``custom_vjp``, compiled or jitted functions; the
    framework told from ``f`` or set by ``framework``): it receives tensors of
    the drawn dtype on ``device``, and with ``vjp`` None the framework's own
    autograd through ``f`` is the VJP checked (:mod:`reference_impl.frameworks.callables`);
    ``modes=("rev", "fwd")`` checks its forward mode (JVPs) too.

    ``order=2`` checks the gradient's own derivative instead: for a fixed
    cotangent ``v``, the Hessian-vector product ``H u`` of ``phi(x) = <v,
    f(x)>`` as the VJP of the gradient ``g(x) = J(x)^T v``, by the same
    Taylor-remainder order (``|g(x + h u) - g(x) - h H u|`` shrinks like
    ``h^2`` when ``H u`` is right, like ``h`` when not) and adjoint verdicts;
    rows and findings carry `` (order 2)``. For torch and jax code both come
    from the framework's double backward (so a custom backward that is not
    itself differentiated correctly is caught); NumPy code gives ``vjp`` and
    ``hvp(v, u, *inputs) -> H u`` (:mod:`reference_impl.frameworks.second_order`).

    ``batched=True`` checks the framework's ``vmap`` of the VJP over a stack
    of cotangents (``check_batched_grad``): one of its rows as the VJP under
    the same verdicts, and against the per-example VJP under the error model
    (:mod:`reference_impl.frameworks.batched`).

    Kinks (relu, clipping, sparsemax): a step that crosses a point where
    ``f`` is not smooth is detected and the adjoint test is read below it;
    where no step above the rounding floor is below it, the example is
    *undecided at a kink* -- counted in the report, not a failure
    (:mod:`reference_impl.engine.kinks`). ``piecewise=True`` declares ``f``
    piecewise smooth: every example's adjoint test is read below the kinks,
    not only one that would otherwise fail (slower; an estimate across a
    kink cannot pass a wrong VJP either). ``name`` names the subject in the
    report (default: ``f``'s ``__name__``).
    """
    from ..frameworks.callables import adapt_vjp, check_modes

    piecewise, name = _declared(piecewise, name)

    if batched is not False:
        if batched is not True:
            raise TypeError(f"batched: expected True or False, got {batched!r}")
        if not (type(order) is int and order == 1) or hvp is not None or isinstance(modes, str) or (
                tuple(modes) != ("rev",)):
            raise ValueError("batched: True checks the reverse mode's vmap only; leave order=1 and modes=('rev',)")
        from ..frameworks.batched import check_batched

        return _named(check_batched(check_vjp, f, vjp, {
            "inputs": inputs, "wrt": wrt, "dtypes": dtypes, "max_examples": max_examples, "seed": seed,
            "max_elements": max_elements, "time_budget": time_budget, "profile": profile,
            "framework": framework, "device": device, "backends": backends, "piecewise": piecewise}), name)
    if not (type(order) is int and order == 1) or hvp is not None:
        from ..frameworks.second_order import check_order2

        return _named(check_order2(check_vjp, f, vjp, hvp, order, {
            "inputs": inputs, "wrt": wrt, "dtypes": dtypes, "max_examples": max_examples, "seed": seed,
            "backends": backends, "max_elements": max_elements, "time_budget": time_budget, "profile": profile,
            "framework": framework, "device": device, "modes": modes, "piecewise": piecewise}), name)

    if isinstance(modes, str) or tuple(modes) != ("rev",):
        return _named(check_modes(check_vjp, f, vjp, modes, {
            "inputs": inputs, "wrt": wrt, "dtypes": dtypes, "max_examples": max_examples, "seed": seed,
            "backends": backends, "max_elements": max_elements, "time_budget": time_budget, "profile": profile,
            "framework": framework, "device": device, "piecewise": piecewise}), name)

    f, vjp, backends, dtypes, inputs, adapter = adapt_vjp(f, vjp, framework=framework, device=device,
                                                          backends=backends, dtypes=dtypes, inputs=inputs)
    if not callable(f):
        raise TypeError(f"f: expected a callable f(*inputs) -> array or pytree, got {type(f).__name__}")
    if not callable(vjp):
        raise TypeError(f"vjp: expected a callable vjp(cotangent, *inputs) -> gradients, got {type(vjp).__name__}")
    settings_ = _resolve_settings(dtypes, max_examples, seed, backends, profile, max_elements, time_budget)
    dts, n, sd, bks, prof, cap, budget = settings_
    resolved = _resolve_inputs(inputs)
    names = resolved.names if isinstance(resolved, Inputs) else _positional_names(f)
    n_known = len(resolved.args) if isinstance(resolved, Inputs) else (
        len(_validate_or_raise(resolved[0])) if isinstance(resolved, list) else None)
    pb = Problem(f, vjp, "f", "vjp", tuple(names), _resolve_wrt(wrt, tuple(names), n_known), bks,
                 piecewise=piecewise)
    subject = getattr(f, "__name__", type(f).__name__)
    return _named(adapter.finish(_run(pb, resolved, kind="vjp", subject=subject, dtypes=dts, max_examples=n,
                                      seed=sd, backends=bks, profile=prof, max_elements=cap, time_budget=budget)),
                  name)


def _declared(piecewise: Any, name: Any) -> tuple[bool, str]:
    if not isinstance(piecewise, (bool, np.bool_)):
        raise TypeError(f"piecewise: expected True or False, got {piecewise!r}")
    return bool(piecewise), resolve_name(name)


def _named(result: GradcheckResult, name: str) -> GradcheckResult:
    return dataclasses.replace(result, name=name) if name else result


def _validate_or_raise(example: Any) -> tuple[Any, ...]:
    try:
        return _validate_drawn(example, 0)
    except Misuse as e:
        raise TypeError(str(e).replace("the strategy drew", "an example holds")) from None


def _has_args(tree: Any) -> bool:
    leaves, _ = pytree.flatten(tree)
    return any(isinstance(x, Arg) for x in leaves)


def check_grad(loss: Callable[..., Any], grad: Callable[..., Any] | None = None, *, params: Any = None,
               data: Any = None, dtypes: Sequence[str] = DTYPES, max_examples: int | None = None,
               seed: int | None = None, backends: Sequence[str] = (), max_elements: int = DEFAULT_MAX_ELEMENTS,
               time_budget: float = DEFAULT_TIME_BUDGET, profile: str | None = None, loss_fn: Any = None,
               framework: str | None = None, device: str = "cpu", piecewise: bool = False,
               name: str | None = None) -> GradcheckResult:
    """Check ``grad(params, data)`` against a scalar ``loss(params, data)``
    (``loss(params)`` / ``grad(params)`` when ``data`` is None).

    ``params`` and ``data`` are each a pytree (dict, tuple, list) of NumPy
    arrays (used as given), a pytree whose leaves are :class:`Arg` (drawn), or
    a hypothesis strategy drawing such a pytree. ``grad`` returns a pytree of
    ``params``' structure. Only ``params`` is differentiated. The checks are
    those of :func:`check_vjp`, on the whole parameter pytree at once.

    torch and jax code as in :func:`check_vjp` (``params`` and ``data`` may
    hold tensors); with ``grad`` None the framework's autograd is checked. A
    ``torch.nn.Module`` is checked as ``check_grad(model, loss_fn=..., data=(x,
    target))``: the loss ``loss_fn(model(x), target)``, its parameters that
    require grad the params. ``piecewise`` and ``name`` as in :func:`check_vjp`.
    """
    from ..frameworks.callables import adapt_grad

    piecewise, name = _declared(piecewise, name)
    loss, grad, params, data, backends, dtypes, adapter = adapt_grad(
        loss, grad, params=params, data=data, loss_fn=loss_fn, framework=framework, device=device,
        backends=backends, dtypes=dtypes)
    if not callable(loss):
        raise TypeError(f"loss: expected a callable loss(params, data) -> scalar, got {type(loss).__name__}")
    if not callable(grad):
        raise TypeError(f"grad: expected a callable grad(params, data) -> pytree like params, "
                        f"got {type(grad).__name__}")
    dts, n, sd, bks, prof, cap, budget = _resolve_settings(dtypes, max_examples, seed, backends, profile,
                                                           max_elements, time_budget)
    parts = [("params", params)] + ([("data", data)] if data is not None else [])
    for part, value in parts:
        if not isinstance(value, st.SearchStrategy):
            leaves, _ = pytree.flatten(value)
            bad = [x for x in leaves if not isinstance(x, (np.ndarray, Arg))]
            if bad or not leaves:
                got = type(bad[0]).__name__ if bad else "an empty container"
                raise TypeError(f"{part}: expected NumPy arrays, Args or a strategy (in a dict/tuple/list), got {got}")
    resolved: Any
    if any(isinstance(v, st.SearchStrategy) for _, v in parts):
        resolved = st.tuples(*(v if isinstance(v, st.SearchStrategy) else st.just(v) for _, v in parts))
    elif any(_has_args(v) for _, v in parts):
        resolved = Inputs(**dict(parts))
    else:
        resolved = [tuple(v for _, v in parts)]
    pb = Problem(loss, grad, "loss", "grad", tuple(n for n, _ in parts), (0,), bks, gradient_only=True,
                 piecewise=piecewise)
    subject = getattr(loss, "__name__", type(loss).__name__)
    return _named(adapter.finish(_run(pb, resolved, kind="grad", subject=subject, dtypes=dts, max_examples=n,
                                      seed=sd, backends=bks, profile=prof, max_elements=cap, time_budget=budget)),
                  name)
