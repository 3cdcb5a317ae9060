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

from .engine import Counterexample, Finding, disagreement, op_comparisons, op_conventions
from .frameworks import backends as fw_backends
from .ops import OPS
from .oracle_args import BACKENDS, DTYPES, check_callable, copy_arrays, resolve_common, spec_factor
from .oracle_networks import check_network, check_sgd_step
from .oracle_results import OracleResult, Row, Tally, format_rows
from .runner import as_returned_array, call_opinion, search, type_name, unknown_name, unpack_tuple, user_message
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
    check_callable(forward, "forward", "forward(*inputs, **params)", problems)
    check_callable(vjp, "vjp", "vjp(cotangent, *inputs, **params)", problems)
    dts, n, sd, bks, prof = resolve_common(dtypes, max_examples, seed, backends, profile, problems)
    fixed: dict[str, Any] = {}
    if params is not None and not isinstance(params, Mapping):
        problems.append(f"params: expected a mapping such as {{'reduction': 'sum'}}, got {type_name(params)}")
    elif params and isinstance(op, str) and op in OPS:
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
        return OracleResult("op", subject, functions, (), (), tuple(problems), dts, bks, n, sd, prof)

    tally = Tally()
    found: list[Counterexample] = []
    for dt in dts:
        evaluate = op_evaluator(op, forward, vjp, bks, tally)
        hit, flaky, problem = search(examples(op, dt, shapes=shapes, params=fixed or None), evaluate,
                                     max_examples=n, seed=sd)
        if problem:
            problems.append(f"{dt}: {problem}")
        if hit is not None:
            found.append(hit.counterexample(dt, flaky))
    return OracleResult("op", op, functions, tally.rows(), tuple(found), tuple(problems), dts, bks, n, sd, prof)


def _transposed(op: str, g: Any, x: np.ndarray) -> bool:
    """A 2-d gradient laid out as the transpose of its input, on an op where
    that is the dense layout convention (``torch.nn.Linear``'s weight)."""
    return ("dense layout" in op_conventions(op) and isinstance(g, np.ndarray) and g.ndim == 2
            and g.shape != x.shape and g.shape == x.shape[::-1] and g.dtype == x.dtype)


def op_evaluator(op: str, forward: Callable[..., Any] | None, vjp: Callable[..., Any] | None,
                 backends: Sequence[str], tally: Tally) -> Callable[[Example], Finding | None]:
    """The check of one example: run the user's ``forward`` / ``vjp`` and
    every opinion (the reference, then ``backends``), compare with the
    engine, fold the comparisons into ``tally``; the first failure is the
    :class:`Finding`."""
    names = OPS[op].arg_names

    def evaluate(ex: Example) -> Finding | None:
        dtype = ex.dtype
        dt = dtype.name
        sc = shape_class(op, ex.inputs)
        kw = "".join(f", {k}={v!r}" for k, v in ex.params.items())
        arrays = {"cotangent": ex.cotangent, **dict(zip(names, ex.inputs))} if vjp else dict(zip(names, ex.inputs))
        desc = ex.describe()

        def failed(check: str, message: str, call: str, against: str = "reference",
                   kind: str = "user function error") -> Finding:
            return Finding(check, against, kind, message, call, desc, {k: v.copy() for k, v in arrays.items()})

        # None: op_comparisons computes the reference's values
        opinions: dict[str, tuple[Any, Any, float, str]] = {"reference": (None, None, 1.0, "")}
        for b in backends:
            try:
                out, grads = fw_backends.get_backend(b).vjp(op, ex.cotangent, ex.inputs, ex.params)
            except Exception as e:  # a framework failing on a valid input is reported, not raised
                return failed("forward" if forward else "vjp", f"{b} raised {type(e).__name__}: {e}",
                              f"{b}'s own {op} and autograd", b, "backend error")
            factor, note = spec_factor(op, b)
            opinions[b] = (np.asarray(out), tuple(np.asarray(g) for g in grads), factor, note)

        first: Finding | None = None
        if forward is not None:
            call = f"forward({', '.join(names)}{kw})"
            ret, err = call_opinion(forward, copy_arrays(ex.inputs), ex.params)
            arr = None
            if not err:
                shape = np.shape(OPS[op].forward(*ex.inputs, **ex.params))
                arr, err = as_returned_array(ret, "the result", shape, dtype)
            if err:
                msg = user_message("forward", err)
                tally.record_error("forward", dt, sc, "reference", msg)
                return failed("forward", msg, call)
            for against, (out, _, factor, note) in opinions.items():
                for check, comp in op_comparisons(op, ex.inputs, ex.params, None, forward=arr, expected_forward=out,
                                                  factor=factor, note=note):
                    tally.record(check, dt, sc, against, comp)
                    if not comp.ok and first is None:
                        first = disagreement(check, against, "your forward", comp, call, desc, arrays)
        if vjp is not None:
            call = f"vjp(cotangent, {', '.join(names)}{kw})"
            ret, err = call_opinion(vjp, (ex.cotangent.copy(), *copy_arrays(ex.inputs)), ex.params)
            hint = f"a tuple of {len(names)} array(s), the gradients w.r.t. ({', '.join(names)})"
            returned: tuple[Any, ...] | None = None
            if not err:
                if len(names) == 1 and not isinstance(ret, (tuple, list)) and ret is not None and (
                        isinstance(ret, (np.ndarray, np.generic)) or hasattr(ret, "__array__")):
                    ret = (ret,)  # one input: a bare array is the gradient w.r.t. it
                returned, err = unpack_tuple(ret, "your vjp", names, hint)
            checked: list[np.ndarray] = []
            if not err and returned is not None:
                for name, x, g in zip(names, ex.inputs, returned):
                    if _transposed(op, g, x):
                        checked.append(g)  # the engine reports the dense layout convention
                        continue
                    grad, err = as_returned_array(g, f"the gradient w.r.t. '{name}'", x.shape, dtype)
                    if grad is None:
                        break
                    checked.append(grad)
            if err:
                msg = user_message("vjp", err)
                tally.record_error("vjp", dt, sc, "reference", msg)
                return failed("vjp", msg, call)
            for against, (_, theirs, factor, note) in opinions.items():
                for check, comp in op_comparisons(op, ex.inputs, ex.params, ex.cotangent, grads=checked,
                                                  expected_grads=theirs, factor=factor, note=note):
                    tally.record(check, dt, sc, against, comp)
                    if not comp.ok and first is None:
                        what = f"your VJP w.r.t. '{check[4:-1]}'"
                        first = disagreement(check, against, what, comp, call, desc, arrays)
        return first

    return evaluate


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
