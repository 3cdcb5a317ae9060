"""The parity suite's assertions: the engine's comparisons, raised as test
failures that say what failed and how to rerun it."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from reference_impl.accuracy.ops import Bound
from reference_impl.engine.adjoint import OP_MODEL, op_adjoint
from reference_impl.engine.comparison import Comparison, compare, op_comparisons
from reference_impl.frameworks.recipes import SPECS
from reference_impl.strategies import Example


class ParityFailure(AssertionError):
    pass



def reproduce_hint(test_id: str | None = None) -> str:
    test_id = test_id or os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
    return (
        f"reproduce: python -m pytest '{test_id}' -p no:randomly --hypothesis-profile=ci "
        "(hypothesis prints the falsifying Example with its seeds and a @reproduce_failure blob above)"
    )


def _label(check: str) -> str:
    return f"VJP w.r.t. '{check[4:-1]}'" if check.startswith("vjp[") else check


def _raise_first(ex: Example, backend: str, comps: list[tuple[str, Comparison]]) -> list[Comparison]:
    for check, comp in comps:
        if not comp.ok:
            raise ParityFailure(
                f"{_label(check)} of op '{ex.op}' disagrees with {backend}\n"
                f"  example: {ex.describe()}\n  {comp.describe()}\n  {reproduce_hint()}"
            )
    return [comp for _, comp in comps]


def check_forward(ex: Example, backend: str, theirs: np.ndarray) -> Comparison:
    """``theirs``, a framework's forward output, against the reference's."""
    factor, note = SPECS[ex.op].factor(backend)
    comps = op_comparisons(ex.op, ex.inputs, ex.params, None, forward=theirs, factor=factor, note=note)
    return _raise_first(ex, backend, comps)[0]


def check_vjp(ex: Example, backend: str, theirs: tuple[np.ndarray, ...]) -> list[Comparison]:
    """``theirs``, a framework's gradients, against the reference's VJP."""
    n = len(ex.inputs)
    if len(theirs) != n:
        raise ParityFailure(f"VJP of '{ex.op}': {backend} returned {len(theirs)} gradients, expected {n}")
    factor, note = SPECS[ex.op].factor(backend)
    comps = op_comparisons(ex.op, ex.inputs, ex.params, ex.cotangent, grads=theirs, factor=factor, note=note)
    return _raise_first(ex, backend, comps)


def check_exact(what: str, actual: Any, expected: Any, bound: Bound, dtype: Any, context: str) -> Comparison:
    """Compare with a value known by reasoning, under one implementation's bound."""
    comp = compare(actual, expected, bound.tolerance(dtype) / 2, dtype, bound.model)
    if not comp.ok:
        raise ParityFailure(f"{what}: {context}\n  {comp.describe()}\n  {reproduce_hint()}")
    return comp


def check_adjoint(ex: Example, seed: int, vjp: Any = None) -> float:
    """Raise ``ParityFailure`` when the adjoint test fails; return the
    error-to-tolerance ratio otherwise."""
    numbers = op_adjoint(ex, seed, vjp)
    if not numbers.ok:
        comp = numbers.comparison(ex.dtype, OP_MODEL)
        raise ParityFailure(
            f"adjoint test of op '{ex.op}' ({ex.dtype.name} VJP vs float64 central differences) fails\n"
            f"  example: {ex.describe()}, direction seed {seed}\n"
            f"  <u, VJP(v)> = {numbers.ours!r}, <v, Df(x)[u]> ~ {numbers.differences!r}; {comp.describe()}\n"
            f"  {reproduce_hint()}"
        )
    return numbers.ratio
