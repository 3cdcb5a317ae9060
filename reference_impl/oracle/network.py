"""The oracle for networks: ``check_network`` and ``check_sgd_step``.

See :mod:`reference_impl.oracle` for the shared conventions; the drawn
networks come from :func:`reference_impl.strategies.networks.network_cases`, the
comparisons from :mod:`reference_impl.engine`.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from hypothesis import reject
from hypothesis import strategies as st

from ..accuracy import networks as network_tolerances
from ..dtypes import is_float
from ..engine import calls
from ..engine.calls import Snapshot, returned_array, type_name, unpack_tuple, user_message
from ..engine.comparison import Counterexample, Finding, compare, disagreement
from ..engine.divergence import gradient_order
from ..engine.results import OracleResult, Tally
from ..engine.search import Budget, search
from ..optim import check_lr, train
from ..strategies.inputs import Inputs, spec_strategy
from ..strategies.networks import NetCase, network_cases
from .args import DTYPES, check_callable, resolve_common, resolve_max_batch, resolve_net
from .controls import fold_outcome, resolve_conventions, resolve_limits, resolve_wrt

__all__ = ["check_network", "check_sgd_step"]

_LEARNING_RATES = (1e-3, 1e-2, 0.1, 1.0)


def _batch_class(case: NetCase) -> str:
    # a gradient that forgets to sum over the batch is right at batch 1
    return "batch=1" if case.batch == 1 else "batch>1"


def _resolve_net_settings(net: Any, mlp: Any, max_batch: Any, dtypes: Any, max_examples: Any, seed: Any,
                          backends: Any, profile: str | None, problems: list[str]) -> tuple[Any, ...]:
    """The settings ``check_network`` and ``check_sgd_step`` share: batch
    limit, dtypes, examples, seed, backends, profile, the network adapters
    and the subject's name; problems are appended, not raised."""
    batch = resolve_max_batch(max_batch, problems)
    dts, n, sd, bks, prof = resolve_common(dtypes, max_examples, seed, backends, profile, problems)
    adapters = _net_adapters(bks, problems)
    subject = str(mlp) if mlp is not None else repr(net)
    return dts, n, sd, bks, prof, adapters, subject, batch


def _net_adapters(backends: Sequence[str], problems: list[str]) -> Any:
    if not backends:
        return None
    try:
        return importlib.import_module("reference_impl.frameworks.networks")
    except ImportError as e:
        problems.append(f"backends: comparing networks with torch or jax needs both frameworks "
                        f"(the 'frameworks' extra): {e}")
        return None


def _unpack_layers(value: Any, what: str, depth: int, part_names: tuple[str, str]) -> tuple[Any, str]:
    pair = f"({part_names[0]}, {part_names[1]})"
    layers, err = unpack_tuple(value, what, [""] * depth, f"a tuple of {depth} {pair} pair(s), one per layer")
    if err:
        return None, err
    assert layers is not None
    for l, item in enumerate(layers):
        _, err = unpack_tuple(item, f"{what}[{l}]", ["", ""], f"a {pair} tuple")
        if err:
            return None, err.replace(" returned ", " is ")
    return layers, ""


_PARTS = ("W", "b")


def _net_controls(mlp: Any, wrt: Any, inputs: Any, conventions: Any, max_elements: Any, time_budget: Any,
                  max_batch: int) -> tuple[tuple[str, ...], Any, bool, float | None, int, int | None]:
    """The controls both network checks share, checked: the parts named by
    ``wrt``, the narrowed data, whether ``W`` is laid out ``(outputs,
    inputs)``, the time budget, the batch cap that ``max_elements`` implies,
    and what ``max_elements`` leaves for ``x`` and ``target``."""
    cap, budget = resolve_limits(max_elements, time_budget)
    idx = resolve_wrt(wrt, _PARTS, "the network's parameters")
    parts = _PARTS if idx is None else tuple(_PARTS[i] for i in idx)
    declared = resolve_conventions(conventions, "network")
    transposed = declared.get("dense layout") == "(outputs, inputs)"
    narrowed = _resolve_data(inputs)
    fixed = 0
    if cap is not None and mlp is not None:
        fixed = sum(w.size + b.size for w, b in mlp.init_params(0, np.float64))
        per_row = mlp.sizes[0] + mlp.sizes[-1]
        rows = (cap - fixed) // per_row
        if rows < 1:
            raise ValueError(f"max_elements: {cap} is below the {fixed + per_row} elements of one input of "
                             f"{mlp} (parameters and one row of x and target)")
        max_batch = min(max_batch, rows)
    data_cap = None if cap is None or mlp is None else cap - fixed
    return parts, narrowed, transposed, budget, max_batch, data_cap


def _resolve_data(inputs: Any) -> Any:
    """``x`` and ``target`` as drawn by the caller: an ``Inputs(x=..., target=...)``
    or a strategy drawing ``(x, target)``; ``None`` for the default draws."""
    if inputs is None or isinstance(inputs, st.SearchStrategy):
        return inputs
    if isinstance(inputs, Mapping):
        inputs = Inputs(**dict(inputs))
    if not isinstance(inputs, Inputs):
        raise TypeError(f"inputs: expected Inputs(x=Arg(...), target=Arg(...)) or a hypothesis strategy drawing "
                        f"(x, target), got {type_name(inputs)}")
    if set(inputs.names) != {"x", "target"}:
        raise ValueError(f"inputs: describe x and target by name; got {', '.join(inputs.names)}")
    args = dict(inputs.args)
    return Inputs(x=args["x"], target=args["target"], sides=inputs.sides)


@st.composite
def _cases(draw: st.DrawFn, mlp: Any, dt: str, max_batch: int, narrowed: Any, data_cap: int | None) -> NetCase:
    """A network case; with ``narrowed``, ``x`` and ``target`` come from the
    caller, and a pair the network does not accept carries the reason in
    ``recipe['outside the domain']``."""
    case: NetCase = draw(network_cases(mlp, dt, max_batch))
    if narrowed is None:
        return case
    dtype = np.dtype(dt)
    if isinstance(narrowed, Inputs):
        drawn = draw(spec_strategy(narrowed, dtype, data_cap if data_cap is not None else 1 << 30))
        pair, recipe = tuple(drawn.args), {**case.recipe, **drawn.recipe}
    else:
        pair, recipe = draw(narrowed), {**case.recipe, "data": "your strategy"}
    if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(
            isinstance(a, np.ndarray) and (a.dtype.kind in "fiu" or is_float(a.dtype)) for a in pair)):
        raise ValueError(f"inputs: the strategy drew {type_name(pair)} ({pair!r:.80}); expected a pair of NumPy "
                         "arrays (x, target)")
    if data_cap is not None and pair[0].size + pair[1].size > data_cap:
        reject()  # above max_elements: not checked
    x, target = (a.astype(dtype) if is_float(a.dtype) else a.copy() for a in pair)
    out = NetCase(case.params, x, target, recipe)
    try:
        if x.ndim != 2 or x.shape[1] != mlp.sizes[0]:
            raise ValueError(f"x has shape {x.shape}; the network takes (batch, {mlp.sizes[0]})")
        mlp.forward(case.params, x, _reference_target(mlp, x, target))
    except (TypeError, ValueError) as e:
        recipe["outside the domain"] = f"{e} (drawn: x{x.shape} {x.dtype}, target{target.shape} {target.dtype})"
    return out


def _reference_target(mlp: Any, x: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Integer labels as the one-hot rows the reference takes."""
    if target.dtype.kind not in "iu":
        return target
    k = mlp.sizes[-1]
    if target.shape != (x.shape[0],) or (target.size and (target.min() < 0 or target.max() >= k)):
        raise ValueError(f"integer labels of shape {target.shape} do not index the {k} outputs of {x.shape[0]} rows")
    return np.eye(k, dtype=x.dtype)[target]


def _given_arrays(case: NetCase, transposed: bool) -> dict[str, np.ndarray]:
    """A counterexample's arrays as your function received them: each ``W`` in your layout."""
    return {k: np.array(v.T if transposed and k[0] == "W" else v) for k, v in case.arrays().items()}


def _given_params(params: Sequence[tuple[np.ndarray, np.ndarray]], transposed: bool) -> tuple[Any, ...]:
    """The parameters as your function receives them: ``W`` in your layout."""
    return tuple((np.ascontiguousarray(w.T) if transposed else w, b) for w, b in params)


def _search_all(dts: Sequence[str], budget: float | None, strategy: Callable[[str], st.SearchStrategy[Any]],
                evaluator: Callable[[str], Callable[[Any], Finding | None]], n: int, sd: int | None,
                problems: list[str], outside: list[str]) -> tuple[list[Counterexample], list[str]]:
    found: list[Counterexample] = []
    cuts: list[str] = []
    for dt in dts:
        run = Budget(None if budget is None else budget / len(dts))
        outcome = search(strategy(dt), evaluator(dt), max_examples=n, seed=sd, budget=run)
        if outside:
            raise ValueError(f"inputs: a drawn (x, target) is outside what the network accepts: {outside[0]}")
        fold_outcome(outcome, dt, budget, len(dts), problems, cuts, found)
    return found, cuts


# Long: argument checks, then one evaluator closed over the resolved settings; the two halves share a dozen locals.
def check_network(net: Any, *, value_and_grad: Callable[..., Any] | None = None, dtypes: Sequence[str] = DTYPES,
                  max_examples: int | None = None, seed: int | None = None, backends: Sequence[str] = (),
                  profile: str | None = None, max_batch: Any = 16, wrt: Any = None, inputs: Any = None,
                  conventions: Any = None, max_elements: int | None = None,
                  time_budget: float | None = None, model: Any = None, framework: str | None = None,
                  device: str = "cpu") -> OracleResult:
    """Check your ``value_and_grad(params, x, target) -> (loss, ((dW_1, db_1), ...))``
    for the network ``net`` (a :class:`reference_impl.networks.MLP`, a
    :class:`~reference_impl.networks.Preset` or a preset key such as
    ``"002"``) against :meth:`MLP.value_and_grad`, under
    :func:`reference_impl.accuracy.networks.network_bound`.

    ``params`` is ``((W_1, b_1), ...)`` with ``W`` laid out ``(inputs,
    outputs)``; ``x`` is ``(batch, inputs)``, batches of 1 to ``max_batch``
    rows. Other arguments as in :func:`check_op`; backends compare with
    ``torch.nn.Linear`` layers and ``jax.grad`` (``reference_impl.frameworks.networks``).

    ``wrt``: the parameters your function differentiates, ``("W",)`` or
    ``("b",)``; each layer's gradients are then a tuple of those (a bare
    array for one). ``inputs``: ``Inputs(x=Arg(...), target=Arg(...))`` or a
    strategy drawing ``(x, target)``; integer ``labels`` stand for one-hot
    targets. ``conventions={"dense layout": "(outputs, inputs)"}``: your code
    holds ``W`` (and ``dW``) transposed, as ``torch.nn.Linear``.
    ``max_elements`` caps the elements of one input (parameters, ``x`` and
    ``target``: it lowers ``max_batch``); ``time_budget`` as in :func:`check_op`.

    torch and jax code as in :func:`check_vjp`: ``value_and_grad`` may take
    tensors or jax arrays (the parameters arrive requiring grad; ``framework``
    and ``device`` as there), or ``model=`` a ``torch.nn.Module`` whose
    ``nn.Linear`` layers, in order, are the network's: ``model(x)`` is the
    output, the cost ``net``'s by torch's losses, and torch's autograd through
    the model the ``value_and_grad`` checked
    (:func:`reference_impl.frameworks.networks.module_value_and_grad`).
    """
    problems: list[str] = []
    mlp = resolve_net(net, problems)
    if model is not None or (value_and_grad is not None and (framework is not None or _framework_code())):
        from ..frameworks.callables import adapt_network

        value_and_grad = adapt_network(value_and_grad, model, mlp, framework=framework, device=device)
        if model is not None and mlp is not None and conventions is not None:
            raise ValueError("conventions: the model's nn.Linear layers are read in their own layout; leave "
                             "conventions out with model=")
    if value_and_grad is None:
        problems.append("value_and_grad: give your function value_and_grad(params, x, target)")
    check_callable(value_and_grad, "value_and_grad", "value_and_grad(params, x, target)", problems)
    dts, n, sd, bks, prof, adapters, subject, max_batch = _resolve_net_settings(
        net, mlp, max_batch, dtypes, max_examples, seed, backends, profile, problems)
    parts, narrowed, transposed, budget, max_batch, data_cap = _net_controls(
        mlp, wrt, inputs, conventions, max_elements, time_budget, max_batch)
    if problems:
        return OracleResult("network", subject, ("value_and_grad",), (), (), tuple(problems), dts, bks, n, sd, prof)
    user_fn: Callable[..., Any] = value_and_grad  # type: ignore[assignment]  # not None: a problem otherwise

    tally = Tally()
    outside: list[str] = []
    depth = mlp.depth
    per_layer = "(dW, db)" if parts == _PARTS else f"d{parts[0]}"

    # Long: the user's call, its contract, then every layer's comparison against each opinion, on one case.
    def evaluator(dt: str) -> Callable[[NetCase], Finding | None]:
        def evaluate(case: NetCase) -> Finding | None:
            if "outside the domain" in case.recipe:
                if not outside:
                    outside.append(case.recipe["outside the domain"])
                return None
            dtype = np.dtype(dt)
            sc = _batch_class(case)
            desc = case.describe(mlp)
            call = "value_and_grad(params, x, target)"
            given = _given_arrays(case, transposed)

            def finding(check: str, against: str, kind: str, message: str) -> Finding:
                return Finding(check, against, kind, message, call, desc, given)

            target = _reference_target(mlp, case.x, case.target)
            tape = mlp.forward(case.params, case.x, target)
            grads = mlp.backward(tape)
            bound = network_tolerances.network_bound(tape, grads)
            opinions: dict[str, tuple[Any, tuple[np.ndarray, ...], tuple[np.ndarray, ...]]] = {
                "reference": (tape.loss, grads.dW, grads.db)}
            for b in bks:
                run = adapters.torch_value_and_grad if b == "torch" else adapters.jax_value_and_grad
                try:
                    res = run(mlp, case.params, case.x, target)
                except Exception as e:  # a framework failing is reported, not raised
                    return finding("loss", b, "backend error", f"{b} raised {type(e).__name__}: {e}")
                opinions[b] = (res.loss, tuple(res.dW), tuple(res.db))

            params = _given_params(case.params, transposed)
            snap = Snapshot(["params", "x", "target"], [params, case.x, case.target])
            ret, err = calls.call(user_fn, (params, case.x, case.target), {})
            changed = snap.changed()
            if changed:
                msg = f"your value_and_grad modified its input: {changed}"
                tally.record_error("inputs unchanged", dt, sc, "contract", msg)
                return finding("inputs unchanged", "contract", "modified input", msg)
            pair: tuple[Any, ...] | None = None
            if not err:
                pair, err = unpack_tuple(ret, "your value_and_grad", ["loss", "grads"],
                                         f"(loss, grads) with grads a tuple of {depth} {per_layer} per layer")
            mine: dict[str, list[np.ndarray]] = {"loss": [], "dW": [], "db": []}
            if not err and pair is not None:
                loss, err = returned_array(pair[0], "the loss", (), dtype)
                if loss is not None:
                    mine["loss"].append(loss)
            if not err and pair is not None:
                layers, err = _unpack_grads(pair[1], depth, parts)
                for l in range(depth) if not err else ():
                    for k, part in enumerate(parts):
                        ref = grads.dW[l] if part == "W" else grads.db[l]
                        returned = layers[l][k]
                        if part == "W" and transposed and isinstance(returned, np.ndarray) and returned.ndim == 2:
                            returned = returned.T
                        arr, err = returned_array(returned, f"d{part}[{l}] (layer {l + 1})", ref.shape, dtype)
                        if arr is None:
                            break
                        mine[f"d{part}"].append(arr)
                    if err:
                        break
            if err:
                msg = user_message("value_and_grad", err)
                tally.record_error("value_and_grad", dt, sc, "reference", msg)
                return finding("value_and_grad", "reference", "user function error", msg)
            first: Finding | None = None
            checked = {"loss", *(f"d{p}" for p in parts)}
            for against, (o_loss, o_dw, o_db) in opinions.items():
                theirs = {"loss": [o_loss], "dW": o_dw, "db": o_db}
                # the backward pass's order: an error that starts in layer 2 is reported at layer 2
                for part, layer in gradient_order(depth):
                    if part not in checked:
                        continue
                    l = layer or 0
                    m, o = mine[part][l], np.asarray(theirs[part][l])
                    tol = bound.tolerance("loss") if part == "loss" else bound.tolerance(part, l)
                    comp = compare(m, o, tol, dtype, bound.model)
                    tally.record(part, dt, sc, against, comp, new_example=l == depth - 1 or part == "loss")
                    if not comp.ok and first is None:
                        where = "loss" if part == "loss" else f"{part}[{l}] (layer {l + 1} of {depth})"
                        first = disagreement(part, against, f"your {where}", comp, call, desc, given)
            return first

        return evaluate

    found, cuts = _search_all(dts, budget, lambda dt: _cases(mlp, dt, max_batch, narrowed, data_cap), evaluator, n, sd,
                              problems, outside)
    return OracleResult("network", subject, ("value_and_grad",), tally.rows(), tuple(found), tuple(problems),
                        dts, bks, n, sd, prof, tuple(cuts))


def _framework_code() -> bool:
    """torch or jax code can exist only once one of them is imported."""
    return "torch" in sys.modules or "jax" in sys.modules


def _unpack_grads(value: Any, depth: int, parts: tuple[str, ...]) -> tuple[Any, str]:
    if len(parts) == 2:
        return _unpack_layers(value, "the gradients", depth, ("dW", "db"))
    layers, err = unpack_tuple(value, "the gradients", [""] * depth,
                               f"a tuple of {depth} d{parts[0]} array(s), one per layer")
    return ([(g,) for g in layers] if layers is not None else None), err


# Long: as check_network, for a step of gradient descent instead of a gradient.
def check_sgd_step(net: Any, *, step: Callable[..., Any] | None = None, lr: Any = None, dtypes: Sequence[str] = DTYPES,
                   max_examples: int | None = None, seed: int | None = None, backends: Sequence[str] = (),
                   profile: str | None = None, max_batch: Any = 16, wrt: Any = None, inputs: Any = None,
                   conventions: Any = None, max_elements: int | None = None,
                   time_budget: float | None = None) -> OracleResult:
    """Check your ``step(params, x, target, lr) -> ((W_1, b_1), ...)`` -- one
    full-batch gradient-descent step ``w <- w - lr dL/dw`` on the network
    ``net`` -- against :func:`reference_impl.optim.train` with one step, under
    :func:`reference_impl.accuracy.networks.trajectory_bound`.

    ``lr``: a fixed learning rate, or ``None`` to draw one of 1e-3, 1e-2,
    0.1 and 1. ``wrt``: the parameters your step trains, ``("W",)`` or
    ``("b",)``; the others must come back as they were. Other arguments as
    in :func:`check_network`; backends compare with ``torch.optim.SGD`` and
    ``optax.sgd``. A step that updates ``params`` in place fails the check
    ``inputs unchanged``: return new arrays.
    """
    problems: list[str] = []
    mlp = resolve_net(net, problems)
    if step is None:
        problems.append("step: give your function step(params, x, target, lr)")
    check_callable(step, "step", "step(params, x, target, lr)", problems)
    if lr is not None:
        try:
            lr = check_lr(lr)
        except (TypeError, ValueError) as e:
            problems.append(str(e))
    dts, n, sd, bks, prof, adapters, subject, max_batch = _resolve_net_settings(
        net, mlp, max_batch, dtypes, max_examples, seed, backends, profile, problems)
    parts, narrowed, transposed, budget, max_batch, data_cap = _net_controls(
        mlp, wrt, inputs, conventions, max_elements, time_budget, max_batch)
    if problems:
        return OracleResult("sgd_step", subject, ("step",), (), (), tuple(problems), dts, bks, n, sd, prof)
    user_fn: Callable[..., Any] = step  # type: ignore[assignment]  # not None: a problem otherwise

    @st.composite
    def cases(draw: st.DrawFn, dt: str) -> tuple[NetCase, float]:
        case = draw(_cases(mlp, dt, max_batch, narrowed, data_cap))
        rate = lr if lr is not None else draw(st.sampled_from(_LEARNING_RATES), label="lr")
        return case, float(rate)

    tally = Tally()
    outside: list[str] = []
    depth = mlp.depth

    def evaluator(dt: str) -> Callable[[tuple[NetCase, float]], Finding | None]:
        def evaluate(drawn: tuple[NetCase, float]) -> Finding | None:
            case, rate = drawn
            if "outside the domain" in case.recipe:
                if not outside:
                    outside.append(case.recipe["outside the domain"])
                return None
            dtype = np.dtype(dt)
            sc = _batch_class(case)
            desc = f"{case.describe(mlp)}, lr {rate!r}"
            call = f"step(params, x, target, lr={rate!r})"
            given = _given_arrays(case, transposed)

            def finding(check: str, against: str, kind: str, message: str) -> Finding:
                return Finding(check, against, kind, message, call, desc, given)

            target = _reference_target(mlp, case.x, case.target)
            traj = train(mlp, case.params, case.x, target, lr=rate, steps=1)
            bound = network_tolerances.trajectory_bound(traj, case.x, target)
            opinions: dict[str, Any] = {"reference": traj.params[1]}
            for b in bks:
                run = adapters.torch_sgd if b == "torch" else adapters.jax_sgd
                try:
                    path, _ = run(mlp, case.params, case.x, target, rate, 1)
                except Exception as e:  # a framework failing is reported, not raised
                    return finding("W", b, "backend error", f"{b} raised {type(e).__name__}: {e}")
                opinions[b] = path[1]

            params = _given_params(case.params, transposed)
            snap = Snapshot(["params", "x", "target"], [params, case.x, case.target])
            ret, err = calls.call(user_fn, (params, case.x, case.target, rate), {})
            changed = snap.changed()
            if changed:
                msg = f"your step modified its input: {changed}"
                tally.record_error("inputs unchanged", dt, sc, "contract", msg)
                return finding("inputs unchanged", "contract", "modified input", msg)
            layers: Any = None
            if not err:
                layers, err = _unpack_layers(ret, "your step", depth, ("W", "b"))
            mine: list[tuple[np.ndarray, np.ndarray]] = []
            for l in range(depth) if not err else ():
                pair: list[np.ndarray] = []
                for i, part in enumerate(_PARTS):
                    returned = layers[l][i]
                    if part == "W" and transposed and isinstance(returned, np.ndarray) and returned.ndim == 2:
                        returned = returned.T
                    arr, err = returned_array(returned, f"the new {part}[{l}] (layer {l + 1})",
                                                 case.params[l][i].shape, dtype)
                    if arr is None:
                        break
                    pair.append(arr)
                if err:
                    break
                mine.append((pair[0], pair[1]))
            if err:
                msg = user_message("step", err)
                tally.record_error("step", dt, sc, "reference", msg)
                return finding("step", "reference", "user function error", msg)
            first: Finding | None = None
            for against, theirs in opinions.items():
                for l in range(depth):
                    for i, part in enumerate(_PARTS):
                        m = mine[l][i]
                        # a parameter the step does not train comes back as it was
                        o = np.asarray(theirs[l][i]) if part in parts else case.params[l][i]
                        tol = bound.tolerance(1, l, part)
                        comp = compare(m, o, tol, dtype, bound.model)
                        tally.record(part, dt, sc, against, comp, new_example=l == 0)
                        if not comp.ok and first is None:
                            first = disagreement(part, against, f"your new {part}[{l}] (layer {l + 1} of {depth})",
                                                 comp, call, desc, given)
            return first

        return evaluate

    found, cuts = _search_all(dts, budget, cases, evaluator, n, sd, problems, outside)
    return OracleResult("sgd_step", subject, ("step",), tally.rows(), tuple(found), tuple(problems),
                        dts, bks, n, sd, prof, tuple(cuts))
