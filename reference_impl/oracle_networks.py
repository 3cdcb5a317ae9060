"""The oracle for networks: ``check_network`` and ``check_sgd_step``.

See :mod:`reference_impl.oracle` for the shared conventions; the drawn
networks come from :func:`reference_impl.net_strategies.network_cases`, the
comparisons from :mod:`reference_impl.engine`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from hypothesis import strategies as st

from . import network_tolerances
from .engine import Counterexample, Finding, compare, disagreement
from .net_strategies import NetCase, network_cases
from .network_checks import gradient_order
from .optim import check_lr, train
from .oracle_args import DTYPES, check_callable, resolve_common, resolve_max_batch, resolve_net
from .oracle_results import OracleResult, Tally
from .runner import as_returned_array, call_opinion, search, unpack_tuple, user_message

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


def _copy_params(params: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    return tuple((w.copy(), b.copy()) for w, b in params)


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


def check_network(net: Any, *, value_and_grad: Callable[..., Any] | None = None, dtypes: Sequence[str] = DTYPES,
                  max_examples: int | None = None, seed: int | None = None, backends: Sequence[str] = (),
                  profile: str | None = None, max_batch: Any = 16) -> OracleResult:
    """Check your ``value_and_grad(params, x, target) -> (loss, ((dW_1, db_1), ...))``
    for the network ``net`` (a :class:`reference_impl.networks.MLP`, a
    :class:`~reference_impl.networks.Preset` or a preset key such as
    ``"002"``) against :meth:`MLP.value_and_grad`, under
    :func:`reference_impl.network_tolerances.network_bound`.

    ``params`` is ``((W_1, b_1), ...)`` with ``W`` laid out ``(inputs,
    outputs)``; ``x`` is ``(batch, inputs)``, batches of 1 to ``max_batch``
    rows. Other arguments as in :func:`check_op`; backends compare with
    ``torch.nn.Linear`` layers and ``jax.grad`` (``reference_impl.frameworks.networks``).
    """
    problems: list[str] = []
    mlp = resolve_net(net, problems)
    if value_and_grad is None:
        problems.append("value_and_grad: give your function value_and_grad(params, x, target)")
    check_callable(value_and_grad, "value_and_grad", "value_and_grad(params, x, target)", problems)
    dts, n, sd, bks, prof, adapters, subject, max_batch = _resolve_net_settings(
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
            bound = network_tolerances.network_bound(tape, grads)
            opinions: dict[str, tuple[Any, tuple[np.ndarray, ...], tuple[np.ndarray, ...]]] = {
                "reference": (tape.loss, grads.dW, grads.db)}
            for b in bks:
                run = adapters.torch_value_and_grad if b == "torch" else adapters.jax_value_and_grad
                try:
                    res = run(mlp, case.params, case.x, case.target)
                except Exception as e:  # a framework failing is reported, not raised
                    return finding("loss", b, "backend error", f"{b} raised {type(e).__name__}: {e}")
                opinions[b] = (res.loss, tuple(res.dW), tuple(res.db))

            ret, err = call_opinion(user_fn, (_copy_params(case.params), case.x.copy(), case.target.copy()), {})
            pair: tuple[Any, ...] | None = None
            if not err:
                pair, err = unpack_tuple(ret, "your value_and_grad", ["loss", "grads"],
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
                msg = user_message("value_and_grad", err)
                tally.record_error("value_and_grad", dt, sc, "reference", msg)
                return finding("value_and_grad", "reference", "user function error", msg)
            first: Finding | None = None
            for against, (o_loss, o_dw, o_db) in opinions.items():
                theirs = {"loss": [o_loss], "dW": o_dw, "db": o_db}
                # the backward pass's order: an error that starts in layer 2 is reported at layer 2
                for part, layer in gradient_order(depth):
                    l = layer or 0
                    m, o = mine[part][l], np.asarray(theirs[part][l])
                    tol = bound.tolerance("loss") if part == "loss" else bound.tolerance(part, l)
                    comp = compare(m, o, tol, dtype, bound.model)
                    tally.record(part, dt, sc, against, comp, new_example=l == depth - 1 or part == "loss")
                    if not comp.ok and first is None:
                        where = "loss" if part == "loss" else f"{part}[{l}] (layer {l + 1} of {depth})"
                        first = disagreement(part, against, f"your {where}", comp, call, desc, case.arrays())
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
    :func:`reference_impl.network_tolerances.trajectory_bound`.

    ``lr``: a fixed learning rate, or ``None`` to draw one of 1e-3, 1e-2,
    0.1 and 1. Other arguments as in :func:`check_network`; backends compare
    with ``torch.optim.SGD`` and ``optax.sgd``.
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
            bound = network_tolerances.trajectory_bound(traj, case.x, case.target)
            opinions: dict[str, Any] = {"reference": traj.params[1]}
            for b in bks:
                run = adapters.torch_sgd if b == "torch" else adapters.jax_sgd
                try:
                    path, _ = run(mlp, case.params, case.x, case.target, rate, 1)
                except Exception as e:  # a framework failing is reported, not raised
                    return finding("W", b, "backend error", f"{b} raised {type(e).__name__}: {e}")
                opinions[b] = path[1]

            ret, err = call_opinion(user_fn, (_copy_params(case.params), case.x.copy(), case.target.copy(), rate), {})
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
                msg = user_message("step", err)
                tally.record_error("step", dt, sc, "reference", msg)
                return finding("step", "reference", "user function error", msg)
            first: Finding | None = None
            for against, theirs in opinions.items():
                for l in range(depth):
                    for i, part in enumerate(("W", "b")):
                        m, o = mine[l][i], np.asarray(theirs[l][i])
                        tol = bound.tolerance(1, l, part)
                        comp = compare(m, o, tol, dtype, bound.model)
                        tally.record(part, dt, sc, against, comp, new_example=l == 0)
                        if not comp.ok and first is None:
                            first = disagreement(part, against, f"your new {part}[{l}] (layer {l + 1} of {depth})",
                                                 comp, call, desc, case.arrays())
            return first

        hit, flaky, problem = search(cases(dt), evaluate, max_examples=n, seed=sd)
        if problem:
            problems.append(f"{dt}: {problem}")
        if hit is not None:
            found.append(hit.counterexample(dt, flaky))
    return OracleResult("sgd_step", subject, ("step",), tally.rows(), tuple(found), tuple(problems),
                        dts, bks, n, sd, prof)
