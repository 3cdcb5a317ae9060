"""The oracle's controls beyond the defaults: which gradients the user's VJP
returns (``wrt``), narrowed inputs, declared conventions, the size cap and
the time budget.

Misuse of a control raises ``ValueError`` / ``TypeError`` naming the
keyword at once, before anything is drawn. The inputs a user's description
draws are checked against the op's domain on the first draw that leaves it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from hypothesis import strategies as st

from ..dtypes import is_float
from ..engine.calls import type_name
from ..engine.comparison import Counterexample
from ..engine.search import SearchOutcome
from ..frameworks.recipes import CONVENTIONS
from ..ops import OPS
from ..strategies import Example, values
from ..strategies.inputs import Arg, Inputs, spec_strategy

__all__ = ["DECLARABLE", "resolve_wrt", "resolve_conventions", "resolve_limits", "resolve_inputs",
           "reference_inputs", "apply_conventions", "user_gradient", "op_inputs_strategy", "size_capped",
           "fold_outcome"]

DECLARABLE: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "relu'(0)": ("a number: the derivative your relu takes at exactly +-0 (e.g. 0, 0.5 or 1)", ("relu",)),
    "dense layout": ("'(inputs, outputs)' (the reference's) or '(outputs, inputs)' (torch.nn.Linear's): "
                     "how your W and its gradient are laid out", ("dense", "network")),
}
"""Conventions of :data:`reference_impl.frameworks.recipes.CONVENTIONS` a
caller may declare, what value each takes, and the ops each applies to."""

_DENSE_LAYOUTS = ("(inputs, outputs)", "(outputs, inputs)")


def resolve_wrt(wrt: Any, names: Sequence[str], what: str) -> tuple[int, ...] | None:
    """Indices into ``names`` of the inputs ``wrt`` names; ``None`` for every input."""
    if wrt is None:
        return None
    items = (wrt,) if isinstance(wrt, str) else wrt
    if not isinstance(items, (tuple, list)) or not items:
        raise TypeError(f"wrt: expected a non-empty tuple of input names of {what} such as {tuple(names[:1])!r}, "
                        f"got {wrt!r}")
    out: list[int] = []
    for w in items:
        if not isinstance(w, str) or w not in names:
            raise ValueError(f"wrt: unknown input {w!r} of {what}; valid: {', '.join(names)}")
        if names.index(w) not in out:
            out.append(names.index(w))
    return tuple(sorted(out))


def resolve_conventions(conventions: Any, op: str | None) -> dict[str, Any]:
    """The declared conventions, checked: key, value, and that it applies to ``op``."""
    if conventions is None:
        return {}
    if not isinstance(conventions, Mapping):
        raise TypeError(f"conventions: expected a mapping such as {{\"relu'(0)\": 0.5}}, got {type_name(conventions)}")
    out: dict[str, Any] = {}
    for key, value in conventions.items():
        if key not in DECLARABLE:
            known = f" ({CONVENTIONS[key]}; not one a caller can declare)" if key in CONVENTIONS else ""
            raise ValueError(f"conventions: unknown convention {key!r}{known}; valid: {', '.join(DECLARABLE)}")
        meaning, ops = DECLARABLE[key]
        if op is None or op not in ops:
            where = "a network" if op == "network" else f"op {op!r}"
            raise ValueError(f"conventions: {key!r} does not apply to {where}; it applies to {', '.join(ops)}")
        if key == "relu'(0)":
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
                raise ValueError(f"conventions[{key!r}]: expected {meaning}, got {value!r}")
            out[key] = float(value)
        else:
            if value not in _DENSE_LAYOUTS:
                raise ValueError(f"conventions[{key!r}]: expected {meaning}, got {value!r}")
            out[key] = value
    return out


def resolve_limits(max_elements: Any, time_budget: Any) -> tuple[int | None, float | None]:
    """``max_elements`` (an int >= 1) and ``time_budget`` (seconds > 0), each ``None`` for no limit."""
    if max_elements is not None and (isinstance(max_elements, bool) or not isinstance(max_elements, numbers.Integral)
                                     or max_elements < 1):
        raise ValueError(f"max_elements: expected an int >= 1 (elements over all drawn inputs) or None, "
                         f"got {max_elements!r}")
    if time_budget is not None and (isinstance(time_budget, bool) or not isinstance(time_budget, numbers.Real)
                                    or not float(time_budget) > 0 or not math.isfinite(float(time_budget))):
        raise ValueError(f"time_budget: expected a number of seconds > 0 or None, got {time_budget!r}")
    return (None if max_elements is None else int(max_elements),
            None if time_budget is None else float(time_budget))


# =========================================================================== narrowed inputs


def resolve_inputs(inputs: Any, op: str) -> Inputs | st.SearchStrategy[Any] | None:
    """An :class:`Inputs` naming every input of ``op`` (in the op's order), a
    strategy, or ``None`` for the op's own draws."""
    if inputs is None or isinstance(inputs, st.SearchStrategy):
        return inputs
    names = OPS[op].arg_names
    if isinstance(inputs, Arg):
        inputs = Inputs(inputs)
    elif isinstance(inputs, Mapping):
        inputs = Inputs(**dict(inputs))
    if not isinstance(inputs, Inputs):
        raise TypeError(f"inputs: expected an Inputs(...) description, an Arg (one-input ops), a mapping of input "
                        f"names to Args or a hypothesis strategy drawing tuples of arrays, got {type_name(inputs)}")
    given = inputs.names
    if all(n.startswith("arg") for n in given) and len(given) == len(names):
        by_name = dict(zip(names, (a for _, a in inputs.args)))
    else:
        unknown = [n for n in given if n not in names]
        missing = [n for n in names if n not in given]
        if unknown or missing:
            raise ValueError(f"inputs: describe every input of {op} by name ({', '.join(names)}); "
                             + (f"unknown: {', '.join(unknown)}" if unknown else f"missing: {', '.join(missing)}"))
        by_name = dict(inputs.args)
    domain = OPS[op].domain.values
    for name, kind in zip(names, domain):
        arg = by_name[name]
        if not isinstance(arg, Arg):
            raise TypeError(f"inputs: {name} must be one Arg (the op's inputs are arrays), got {type_name(arg)}")
        if arg.kind == "labels" and kind != "distribution":
            raise ValueError(f"inputs: {name} drawn as integer labels, but {op}'s {name} is {kind!r}; labels stand "
                             "for one-hot targets only")
    return Inputs(**{n: by_name[n] for n in names}, sides=inputs.sides)


def reference_inputs(op: str, inputs: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
    """The inputs as the reference takes them: integer labels become one-hot
    rows with as many classes as the first input's last axis."""
    out = []
    for x in inputs:
        if x.dtype.kind in "iu":
            classes = inputs[0].shape[-1] if np.ndim(inputs[0]) else 0
            if x.shape != inputs[0].shape[:-1] or (x.size and (x.min() < 0 or x.max() >= classes)):
                raise ValueError(f"integer labels of shape {x.shape} with values in [{x.min(initial=0)}, "
                                 f"{x.max(initial=0)}] do not index the {classes} classes of an input of shape "
                                 f"{inputs[0].shape}")
            x = np.eye(classes, dtype=inputs[0].dtype)[x]
        out.append(x)
    return tuple(out)


@st.composite
def op_inputs_strategy(draw: st.DrawFn, op: str, spec: Inputs | st.SearchStrategy[Any], dtype: Any,
                       params: Mapping[str, Any] | None, max_elements: int | None) -> Example:
    """An :class:`Example` of ``op`` whose inputs come from the caller's
    description or strategy; a draw outside the op's domain carries the
    reason in ``recipe['outside the domain']``, for the check to raise."""
    dtype = np.dtype(dtype)
    op_spec = OPS[op]
    recipe: dict[str, Any] = {}
    if isinstance(spec, Inputs):
        drawn = draw(spec_strategy(spec, dtype, max_elements if max_elements is not None else 1 << 30))
        inputs = tuple(drawn.args)
        recipe.update(drawn.recipe)
        if drawn.cut:
            recipe["cut by max_elements"] = True
    else:
        value = draw(spec)
        if isinstance(value, np.ndarray):
            value = (value,)
        if not isinstance(value, (tuple, list)) or not all(
                isinstance(x, np.ndarray) and not isinstance(x, np.ma.MaskedArray)
                and (x.dtype.kind in "fiu" or is_float(x.dtype)) for x in value):
            raise ValueError(f"inputs: the strategy drew {type_name(value)} ({value!r:.80}); expected a tuple of "
                             f"NumPy arrays, one per input of {op} ({', '.join(op_spec.arg_names)})")
        inputs = tuple(x.astype(dtype) if is_float(x.dtype) else x.copy() for x in value)
        recipe["inputs"] = "your strategy"
    chosen = dict(params or {})
    for k, allowed in op_spec.params.items():
        if k not in chosen:
            chosen[k] = draw(st.sampled_from(allowed))
    try:
        if len(inputs) != len(op_spec.arg_names):
            raise ValueError(f"{len(inputs)} array(s) drawn for the {len(op_spec.arg_names)} input(s) "
                             f"{', '.join(op_spec.arg_names)}")
        out_shape = np.shape(op_spec.forward(*reference_inputs(op, inputs), **chosen))
    except (TypeError, ValueError) as e:
        recipe["outside the domain"] = str(e)
        return Example(op, inputs, chosen, np.zeros(()), recipe)
    g, r = draw(values("real", out_shape, dtype))
    recipe["cotangent"] = r
    return Example(op, inputs, chosen, g, recipe)


def size_capped(strategy: st.SearchStrategy[Any], max_elements: int | None, size: Callable[[Any], int],
                counter: list[int]) -> st.SearchStrategy[Any]:
    """``strategy`` without draws above ``max_elements`` elements (counted in ``counter[0]``)."""
    if max_elements is None:
        return strategy

    def small(drawn: Any) -> bool:
        if size(drawn) > max_elements:
            counter[0] += 1
            return False
        return True

    return strategy.filter(small)


# =========================================================================== conventions and wrt


def apply_conventions(op: str, declared: Mapping[str, Any], inputs: Sequence[np.ndarray], cotangent: np.ndarray,
                      grads: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
    """An opinion's gradients under the caller's declared conventions: at an
    exact ``+-0`` of relu's input, ``cotangent * relu'(0)``."""
    out = [np.asarray(g) for g in grads]
    if op == "relu" and "relu'(0)" in declared:
        x = np.asarray(inputs[0])
        d0 = np.asarray(declared["relu'(0)"], dtype=x.dtype)
        out[0] = np.where(x == 0, cotangent * d0, out[0]).astype(x.dtype)
    return tuple(out)


def user_gradient(op: str, declared: Mapping[str, Any], name: str, g: Any, x: np.ndarray) -> Any:
    """The user's gradient w.r.t. ``name`` in the reference's layout, as declared."""
    if (op == "dense" and name == "W" and declared.get("dense layout") == "(outputs, inputs)"
            and isinstance(g, np.ndarray) and g.ndim == 2):
        return g.T  # a gradient in the other layout then has the wrong shape, and fails
    return g


def wanted(wrt: tuple[int, ...] | None, inputs: Sequence[np.ndarray]) -> tuple[int, ...]:
    """The inputs whose gradients are checked: ``wrt``, or every floating input."""
    if wrt is not None:
        return wrt
    return tuple(i for i, x in enumerate(inputs) if is_float(x.dtype))


def fold_outcome(outcome: SearchOutcome, dtype: str, budget: float | None, n_dtypes: int, problems: list[str],
                 cuts: list[str], found: list[Counterexample]) -> None:
    """One dtype's search, into a checker's problems, cuts and counterexamples."""
    if outcome.problem:
        problems.append(f"{dtype}: {outcome.problem}")
    if outcome.cut and budget is not None:
        cuts.append(f"{dtype}: time_budget {budget:g} s ({budget / n_dtypes:g} s per dtype) spent; {outcome.cut}")
    if outcome.finding is not None:
        found.append(outcome.finding.counterexample(dtype, outcome.nondeterministic))
