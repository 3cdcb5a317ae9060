"""Check your own gradient code against the reference.

Give the oracle your implementation of an op's forward and/or VJP, of a
network's loss and gradients, or of one gradient-descent step; it draws
inputs with the project's hypothesis strategies (:mod:`reference_impl.strategies`:
shapes from one element to 64 wide, kinks at ``+-0.0``, saturating tanh and
sigmoid, logits of magnitude 1e3), runs your function and the reference on
each, compares them under the error model of :mod:`reference_impl.accuracy.ops`
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

Your functions receive the drawn arrays themselves, not copies: one that
writes into an input fails the check ``inputs unchanged``. ``assume()``
inside them skips the input. The controls ``wrt``, ``inputs``,
``conventions``, ``max_elements`` and ``time_budget``
(:mod:`reference_impl.oracle.controls`) narrow what is checked.

torch and jax, where installed, can be added as second and third opinions
(``backends=("torch", "jax")``): your results are then compared with theirs
too, under the same error model (and the per-backend overrides of
``reference_impl/frameworks/recipes.py``, each with its reason).

Every comparison is the engine's (:mod:`reference_impl.engine`): the same
abs / rel / ulp numbers and the same verdict classes (convention, dtype,
shape, non-finite, inaccurate, wrong) as the parity suite and ``certify``.

This module imports hypothesis; ``import reference_impl`` does not import it
(the names above are loaded on first use).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..dtypes import is_float
from ..engine import calls
from ..engine.calls import Snapshot, returned_array, type_name, unpack_tuple, user_message
from ..engine.comparison import Counterexample, Finding, disagreement, op_comparisons, op_conventions
from ..engine.results import OracleResult, Row, Tally, format_rows
from ..engine.search import Budget, search
from ..frameworks import backends as fw_backends
from ..frameworks.recipes import SPECS
from ..ops import OPS
from ..strategies import Example, Source, build_example, examples
from ..strategies.inputs import Inputs
from .args import BACKENDS, DTYPES, check_callable, resolve_common, unknown_name
from .controls import (
    apply_conventions,
    fold_outcome,
    op_inputs_strategy,
    reference_inputs,
    resolve_conventions,
    resolve_inputs,
    resolve_limits,
    resolve_wrt,
    size_capped,
    user_gradient,
    wanted,
)
from .function import check_grad, check_vjp
from .function_report import GradcheckResult, resolve_name
from .network import check_network, check_sgd_step

__all__ = [
    "Row",
    "Counterexample",
    "OracleResult",
    "Oracle",
    "check_op",
    "check_network",
    "check_sgd_step",
    "shape_class",
    "format_rows",
    "DTYPES",
    "BACKENDS",
]


def shape_class(op: str, inputs: Sequence[np.ndarray]) -> str:
    """Which kind of shapes an example has: the rank of each input, and
    ``broadcast`` where two operands of a broadcasting op differ in shape."""
    spec = OPS[op]
    text = " ".join(f"{n}:{np.ndim(x)}d" for n, x in zip(spec.arg_names, inputs))
    if spec.domain.shapes == "broadcast_pair" and np.shape(inputs[0]) != np.shape(inputs[1]):
        text += " broadcast"
    return text


# Long: mostly the argument checks, each naming its argument; the search loop is the last twenty lines.
def check_op(op: str, *, forward: Callable[..., Any] | None = None, vjp: Callable[..., Any] | None = None,
             dtypes: Sequence[str] = DTYPES, params: Any = None, shapes: str | None = None,
             max_examples: int | None = None, seed: int | None = None, backends: Sequence[str] = (),
             profile: str | None = None, wrt: Any = None, inputs: Any = None, conventions: Any = None,
             max_elements: int | None = None, time_budget: float | None = None, framework: str | None = None,
             device: str = "cpu", name: str | None = None) -> OracleResult:
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

    ``wrt``: the names of the inputs whose gradients your ``vjp`` returns
    (a tuple of that many, a bare array for one); default every floating
    input. ``inputs``: an :class:`~reference_impl.strategies.inputs.Inputs`
    describing every input by name (an :class:`~reference_impl.strategies.inputs.Arg`
    alone for a one-input op), or a hypothesis strategy drawing a tuple of
    arrays, instead of the op's own draws; integer ``labels`` stand for
    one-hot targets (the reference gets the one-hot rows, your functions the
    labels). ``conventions``: conventions your code chose, checked as
    declared (``{"relu'(0)": 0.5}``, ``{"dense layout": "(outputs, inputs)"}``;
    :data:`reference_impl.oracle.controls.DECLARABLE`). ``max_elements``
    caps the elements of one drawn input tuple; ``time_budget`` caps the
    seconds of the whole check, shared by the dtypes (the report lists what
    was cut). Your functions receive the drawn arrays themselves: one that
    writes into them fails the check ``inputs unchanged``. ``assume()`` in
    your code skips the input. Misuse of these five keywords raises
    ``ValueError`` / ``TypeError`` naming the keyword.

    torch and jax code is taken as it is (``forward=MySigmoid.apply``; the
    framework told from the callable or set by ``framework``, tensors on
    ``device``); with no ``vjp``, the framework's autograd through ``forward``
    is checked too. A parameter fixed in ``params`` is passed only to code
    that takes it (:mod:`reference_impl.frameworks.callables`). ``name``
    names the subject in the report (default: ``op '<op>'``).
    """
    from ..frameworks.callables import Adapter, adapt_op

    label = resolve_name(name)
    adapter = Adapter()
    if isinstance(op, str) and op in OPS:
        forward, vjp, dtypes, adapter = adapt_op(op, forward, vjp, op_params=OPS[op].params, params=params,
                                                 framework=framework, device=device, dtypes=dtypes)
    problems: list[str] = []
    known = isinstance(op, str) and op in OPS
    if not known:
        problems.append(unknown_name("op", "op", op, sorted(OPS)))
    if forward is None and vjp is None:
        problems.append("forward, vjp: give at least one of your functions to check (forward=..., vjp=...)")
    check_callable(forward, "forward", "forward(*inputs, **params)", problems)
    check_callable(vjp, "vjp", "vjp(cotangent, *inputs, **params)", problems)
    dts, n, sd, bks, prof = resolve_common(dtypes, max_examples, seed, backends, profile, problems)
    cap, budget = resolve_limits(max_elements, time_budget)
    wrt_idx: tuple[int, ...] | None = None
    declared: dict[str, Any] = {}
    narrowed: Any = None
    if known:
        wrt_idx = resolve_wrt(wrt, OPS[op].arg_names, f"op {op!r}")
        declared = resolve_conventions(conventions, op)
        narrowed = resolve_inputs(inputs, op)
        if isinstance(narrowed, Inputs):
            labels = [name for i, (name, arg) in enumerate(narrowed.args) if arg.kind == "labels"
                      and (wrt_idx is None or i in wrt_idx)]
            if labels and wrt_idx is not None:
                raise ValueError(f"wrt: {labels[0]!r} is drawn as integer labels, which have no gradient")
    fixed: dict[str, Any] = {}
    if params is not None and not isinstance(params, Mapping):
        problems.append(f"params: expected a mapping such as {{'reduction': 'sum'}}, got {type_name(params)}")
    elif params and known:
        allowed = OPS[op].params
        for k, v in params.items():
            if k not in allowed:
                problems.append(f"params: {k!r} is not a parameter of {op}; accepted: {sorted(allowed) or 'none'}")
            elif not isinstance(v, str) or v not in allowed[k]:
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
        return OracleResult("op", subject, functions, (), (), tuple(problems), dts, bks, n, sd, prof, name=label)

    tally = Tally()
    found: list[Counterexample] = []
    cuts: list[str] = []
    outside: list[str] = []
    too_big = [0]
    reduced = [0]

    def reduced_to_fit(ex: Example) -> Example:
        reduced[0] += int(bool(ex.recipe.get("cut by max_elements")))
        return ex

    for dt in dts:
        search_budget = Budget(None if budget is None else budget / len(dts))
        evaluate = op_evaluator(op, forward, vjp, bks, tally, wrt=wrt_idx, conventions=declared, outside=outside)
        screen = None
        if narrowed is None:
            strategy = size_capped(examples(op, dt, shapes=shapes, params=fixed or None), cap, _size, too_big)
            screen = _screen_builder(op, dt, shapes, fixed or None, cap, too_big)
        else:
            strategy = size_capped(op_inputs_strategy(op, narrowed, dt, fixed or None, cap).map(reduced_to_fit), cap,
                                   _size, too_big)
        outcome = search(strategy, evaluate, max_examples=n, seed=sd, budget=search_budget, screen=screen)
        if outside:
            raise ValueError(f"inputs: a drawn input is outside the domain of {op}: {outside[0]}")
        fold_outcome(outcome, dt, budget, len(dts), problems, cuts, found)
    if too_big[0] or reduced[0]:
        cuts.append(f"max_elements {cap}: {too_big[0]} drawn input(s) above it were not checked, "
                    f"{reduced[0]} were drawn with smaller sides to fit")
    return adapter.finish(OracleResult("op", op, functions, tally.rows(), tuple(found), tuple(problems), dts, bks, n,
                                       sd, prof, tuple(cuts), name=label))


def _size(ex: Example) -> int:
    return sum(x.size for x in ex.inputs)


def _screen_builder(op: str, dtype: str, shapes: str, params: dict[str, Any] | None, cap: int | None,
                    too_big: list[int]) -> Callable[[Source], Example | None]:
    """:func:`~reference_impl.strategies.build_example` with the size cap of
    :func:`size_capped`: the examples the search screens without hypothesis."""

    def build(src: Source) -> Example | None:
        ex = build_example(src, op, dtype, shapes, params)
        if cap is not None and _size(ex) > cap:
            too_big[0] += 1
            return None
        return ex

    return build


def _transposed(op: str, g: Any, x: np.ndarray) -> bool:
    """A 2-d gradient laid out as the transpose of its input, on an op where
    that is the dense layout convention (``torch.nn.Linear``'s weight)."""
    return ("dense layout" in op_conventions(op) and isinstance(g, np.ndarray) and g.ndim == 2
            and g.shape != x.shape and g.shape == x.shape[::-1] and g.dtype == x.dtype)


def _modified(role: str, snap: Snapshot) -> str:
    changed = snap.changed()
    return f"your {role} modified its input: {changed}" if changed else ""


def _returned_gradients(ret: Any, names: Sequence[str], want: Sequence[int]) -> tuple[tuple[Any, ...] | None, str]:
    """The user's gradients for the ``want`` inputs: a tuple of that many (a
    bare array for one), or a tuple over every input."""
    hint = f"a tuple of {len(want)} array(s), the gradients w.r.t. ({', '.join(names[i] for i in want)})"
    if len(want) == 1 and not isinstance(ret, (tuple, list)) and ret is not None and (
            isinstance(ret, (np.ndarray, np.generic)) or hasattr(ret, "__array__")):
        return (ret,), ""  # one gradient: a bare array is it
    if isinstance(ret, tuple) and len(ret) == len(names) != len(want):
        return tuple(ret[i] for i in want), ""  # every input's gradient: take those checked
    return unpack_tuple(ret, "your vjp", [names[i] for i in want], hint)


# Long: one closure per example (forward, then VJP, each against every opinion), over the op's fixed settings.
def op_evaluator(op: str, forward: Callable[..., Any] | None, vjp: Callable[..., Any] | None,
                 backends: Sequence[str], tally: Tally, *, wrt: tuple[int, ...] | None = None,
                 conventions: Mapping[str, Any] | None = None, outside: list[str] | None = None
                 ) -> Callable[[Example], Finding | None]:
    """The check of one example: run the user's ``forward`` / ``vjp`` on the
    drawn arrays themselves (a write into them is a finding, ``inputs
    unchanged``) and every opinion (the reference, then ``backends``), compare
    with the engine, fold the comparisons into ``tally``; the first failure
    is the :class:`Finding`. ``wrt`` and ``conventions`` as in
    :func:`check_op`; a drawn input outside the op's domain is appended to
    ``outside`` (and not checked)."""
    names = OPS[op].arg_names
    declared = dict(conventions or {})

    def evaluate(ex: Example) -> Finding | None:  # long: see op_evaluator
        if "outside the domain" in ex.recipe:
            if outside is not None and not outside:
                outside.append(f"{ex.recipe['outside the domain']} (drawn: "
                               f"{', '.join(f'{n}{x.shape} {x.dtype}' for n, x in zip(names, ex.inputs))})")
            return None
        dtype = ex.dtype
        dt = dtype.name
        sc = shape_class(op, ex.inputs)
        kw = "".join(f", {k}={v!r}" for k, v in ex.params.items())
        ref_inputs = reference_inputs(op, ex.inputs)
        arrays = {"cotangent": ex.cotangent, **dict(zip(names, ex.inputs))} if vjp else dict(zip(names, ex.inputs))
        # copies taken before your functions run: a counterexample shows what they were given
        given = {k: v.copy() for k, v in arrays.items()}
        want = wanted(wrt, ex.inputs)
        for i in want:
            if not is_float(ex.inputs[i].dtype):
                raise ValueError(f"wrt: {names[i]!r} is drawn as {ex.inputs[i].dtype} (integer data has no gradient)")

        def failed(check: str, message: str, call: str, against: str = "reference",
                   kind: str = "user function error") -> Finding:
            return Finding(check, against, kind, message, call, ex.describe(), given)

        def modified(role: str, snap: Snapshot, call: str) -> Finding:
            msg = _modified(role, snap)
            tally.record_error("inputs unchanged", dt, sc, "contract", msg)
            return failed("inputs unchanged", msg, call, "contract", "modified input")

        reference_grads = None
        if vjp is not None:
            reference_grads = apply_conventions(op, declared, ex.inputs, ex.cotangent,
                                                OPS[op].vjp(ex.cotangent, *ref_inputs, **ex.params))
        opinions: dict[str, tuple[Any, Any, float, str]] = {"reference": (None, reference_grads, 1.0, "")}
        for b in backends:
            try:
                out, grads = fw_backends.get_backend(b).vjp(op, ex.cotangent, ref_inputs, ex.params)
            except Exception as e:  # a framework failing on a valid input is reported, not raised
                return failed("forward" if forward else "vjp", f"{b} raised {type(e).__name__}: {e}",
                              f"{b}'s own {op} and autograd", b, "backend error")
            factor, note = SPECS[op].factor(b)
            theirs = apply_conventions(op, declared, ex.inputs, ex.cotangent, [np.asarray(g) for g in grads])
            opinions[b] = (np.asarray(out), theirs, factor, note)

        first: Finding | None = None
        if forward is not None:
            call = f"forward({', '.join(names)}{kw})"
            snap = Snapshot(names, ex.inputs)
            ret, err = calls.call(forward, ex.inputs, ex.params)
            if snap.changed():
                return modified("forward", snap, call)
            arr = None
            expected = None
            if not err:
                # the reference's forward, computed once: its shape here, its value in the comparison
                expected = OPS[op].forward(*ref_inputs, **ex.params)
                arr, err = returned_array(ret, "the result", np.shape(expected), dtype)
            if err:
                msg = user_message("forward", err)
                tally.record_error("forward", dt, sc, "reference", msg)
                return failed("forward", msg, call)
            for against, (theirs_out, _, factor, note) in opinions.items():
                compared_to = expected if against == "reference" else theirs_out
                for check, comp in op_comparisons(op, ref_inputs, ex.params, None, forward=arr,
                                                  expected_forward=compared_to, factor=factor, note=note):
                    tally.record(check, dt, sc, against, comp)
                    if not comp.ok and first is None:
                        first = disagreement(check, against, "your forward", comp, call, ex.describe(), given)
        if vjp is not None:
            call = f"vjp(cotangent, {', '.join(names)}{kw})"
            snap = Snapshot(["cotangent", *names], [ex.cotangent, *ex.inputs])
            ret, err = calls.call(vjp, (ex.cotangent, *ex.inputs), ex.params)
            if snap.changed():
                return modified("vjp", snap, call)
            returned: tuple[Any, ...] | None = None
            if not err:
                returned, err = _returned_gradients(ret, names, want)
            checked: dict[int, np.ndarray] = {}
            if not err and returned is not None:
                for i, g in zip(want, returned):
                    x = ref_inputs[i]
                    g = user_gradient(op, declared, names[i], g, x)
                    if _transposed(op, g, x) and "dense layout" not in declared:
                        checked[i] = g  # the engine reports the dense layout convention
                        continue
                    grad, err = returned_array(g, f"the gradient w.r.t. '{names[i]}'", x.shape, dtype)
                    if grad is None:
                        break
                    checked[i] = grad
            if err:
                msg = user_message("vjp", err)
                tally.record_error("vjp", dt, sc, "reference", msg)
                return failed("vjp", msg, call)
            for against, (_, theirs, factor, note) in opinions.items():
                # the gradients not checked stand in as the opinion's own, and their rows are dropped
                mine = [checked.get(i, theirs[i]) for i in range(len(names))]
                for check, comp in op_comparisons(op, ref_inputs, ex.params, ex.cotangent, grads=mine,
                                                  expected_grads=theirs, factor=factor, note=note):
                    if names.index(check[4:-1]) not in checked:
                        continue
                    tally.record(check, dt, sc, against, comp)
                    if not comp.ok and first is None:
                        what = f"your VJP w.r.t. '{check[4:-1]}'"
                        first = disagreement(check, against, what, comp, call, ex.describe(), given)
        return first

    return evaluate


# =========================================================================== preconfigured


class Oracle:
    """The checks with shared defaults (what the pytest fixture
    ``gradient_oracle`` hands a test): :func:`check_op`, :func:`check_network`,
    :func:`check_sgd_step` and the generic
    :func:`~reference_impl.oracle.function.check_vjp` /
    :func:`~reference_impl.oracle.function.check_grad`; every result is kept in
    :attr:`results`."""

    def __init__(self, *, backends: Sequence[str] = (), max_examples: int | None = None, seed: int | None = None,
                 profile: str | None = None, dtypes: Sequence[str] | None = None) -> None:
        self.defaults: dict[str, Any] = {"backends": tuple(backends), "max_examples": max_examples, "seed": seed,
                                         "profile": profile}
        if dtypes is not None:
            self.defaults["dtypes"] = tuple(dtypes)
        self.results: list[OracleResult | GradcheckResult] = []

    def _run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        result = fn(*args, **{**self.defaults, **kwargs})
        self.results.append(result)
        return result

    def check_op(self, op: str, **kwargs: Any) -> OracleResult:
        """:func:`check_op` with this oracle's defaults."""
        result: OracleResult = self._run(check_op, op, **kwargs)
        return result

    def check_network(self, net: Any, **kwargs: Any) -> OracleResult:
        """:func:`check_network` with this oracle's defaults."""
        result: OracleResult = self._run(check_network, net, **kwargs)
        return result

    def check_sgd_step(self, net: Any, **kwargs: Any) -> OracleResult:
        """:func:`check_sgd_step` with this oracle's defaults."""
        result: OracleResult = self._run(check_sgd_step, net, **kwargs)
        return result

    def check_vjp(self, f: Callable[..., Any], vjp: Callable[..., Any] | None = None, **kwargs: Any) -> GradcheckResult:
        """:func:`reference_impl.oracle.function.check_vjp` with this oracle's defaults."""
        result: GradcheckResult = self._run(check_vjp, f, vjp, **kwargs)
        return result

    def check_grad(self, loss: Callable[..., Any], grad: Callable[..., Any] | None = None,
                   **kwargs: Any) -> GradcheckResult:
        """:func:`reference_impl.oracle.function.check_grad` with this oracle's defaults."""
        result: GradcheckResult = self._run(check_grad, loss, grad, **kwargs)
        return result
