"""Comparisons with failure messages that say what failed and how to rerun it."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from reference_impl import OPS
from reference_impl.strategies import Example
from reference_impl.tolerances import Bound, Comparison, compare, forward_bound, vjp_bound

from .spec import SPECS

STEP = 2.0**-17
"""Finite-difference step: about u**(1/3) for float64, balancing truncation
(h^2) against rounding (u/h)."""


class ParityFailure(AssertionError):
    pass


def _factor(op: str, backend: str) -> tuple[float, str]:
    o = SPECS[op].override.get(backend)
    return (o.factor, f" (override x{o.factor}: {o.reason})") if o else (1.0, "")


def reproduce_hint(test_id: str | None = None) -> str:
    test_id = test_id or os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
    return (
        f"reproduce: python -m pytest '{test_id}' -p no:randomly --hypothesis-profile=ci "
        "(hypothesis prints the falsifying Example with its seeds and a @reproduce_failure blob above)"
    )


def _fail(what: str, op: str, backend: str, ex_desc: str, comp: Comparison) -> ParityFailure:
    return ParityFailure(
        f"{what} of op '{op}' disagrees with {backend}\n"
        f"  example: {ex_desc}\n"
        f"  {comp.describe()}\n"
        f"  {reproduce_hint()}"
    )


def check_forward(ex: Example, backend: str, theirs: np.ndarray) -> Comparison:
    ours = OPS[ex.op].forward(*ex.inputs, **ex.params)
    factor, note = _factor(ex.op, backend)
    bound = forward_bound(ex.op, ex.inputs, ex.params)
    if np.asarray(theirs).dtype != ex.dtype:  # a silent precision change fails before any value is compared
        comp = compare(theirs, ours, bound.tolerance(ex.dtype, factor), ex.dtype)
        raise _fail(f"forward ({backend}'s dtype)", ex.op, backend, ex.describe(), comp)
    if np.asarray(ours).dtype != ex.dtype:
        comp = compare(ours, theirs, bound.tolerance(ex.dtype, factor), ex.dtype)
        raise _fail("forward (the reference's dtype)", ex.op, backend, ex.describe(), comp)
    comp = compare(ours, theirs, bound.tolerance(ex.dtype, factor), ex.dtype, bound.model + note)
    if not comp.ok:
        raise _fail("forward", ex.op, backend, ex.describe(), comp)
    return comp


def check_vjp(ex: Example, backend: str, theirs: tuple[np.ndarray, ...]) -> list[Comparison]:
    ours = OPS[ex.op].vjp(ex.cotangent, *ex.inputs, **ex.params)
    factor, note = _factor(ex.op, backend)
    bounds = vjp_bound(ex.op, ex.cotangent, ex.inputs, ex.params)
    names = OPS[ex.op].arg_names
    if len(theirs) != len(ours):
        raise ParityFailure(f"VJP of '{ex.op}': {backend} returned {len(theirs)} gradients, expected {len(ours)}")
    out = []
    for name, mine, other, bound in zip(names, ours, theirs, bounds):
        if np.asarray(mine).dtype != ex.dtype:
            comp = compare(mine, other, bound.tolerance(ex.dtype, factor), ex.dtype)
            raise _fail(f"VJP w.r.t. '{name}' (the reference's dtype)", ex.op, backend, ex.describe(), comp)
        if np.asarray(other).dtype != ex.dtype:
            comp = compare(other, mine, bound.tolerance(ex.dtype, factor), ex.dtype)
            raise _fail(f"VJP w.r.t. '{name}' ({backend}'s dtype)", ex.op, backend, ex.describe(), comp)
        comp = compare(mine, other, bound.tolerance(ex.dtype, factor), ex.dtype, bound.model + note)
        if not comp.ok:
            raise _fail(f"VJP w.r.t. '{name}'", ex.op, backend, ex.describe(), comp)
        out.append(comp)
    return out


def check_exact(what: str, actual: Any, expected: Any, bound: Bound, dtype: Any, context: str) -> Comparison:
    """Compare with a value known by reasoning, under one implementation's bound."""
    comp = compare(actual, expected, bound.tolerance(dtype) / 2, dtype, bound.model)
    if not comp.ok:
        raise ParityFailure(f"{what}: {context}\n  {comp.describe()}\n  {reproduce_hint()}")
    return comp


def _one_bound(op: str, inputs: tuple[np.ndarray, ...], params: dict[str, Any]) -> np.ndarray:
    return forward_bound(op, inputs, params).tolerance(np.float64) / 2


def adjoint_numbers(ex: Example, seed: int, vjp: Any = None) -> tuple[float, float, float, float]:
    """The adjoint test's numbers (error model in ``test_adjoint.py``):
    ``(<u, VJP(v)>, <v, Df(x)[u]> by central differences, |difference|,
    tolerance)``. ``vjp`` replaces the reference's VJP, so that meta-tests
    can show a wrong one fails; ``certify`` reports these numbers."""
    op = ex.op
    rng = np.random.default_rng(seed)
    spec, impl = SPECS[op], OPS[op].impl
    x = tuple(a.astype(np.float64) for a in ex.inputs)
    dirs = spec.fd_direction(x, rng) if spec.fd_direction else tuple(rng.standard_normal(a.shape) for a in x)
    v = ex.cotangent.astype(np.float64)

    def central(h: float) -> tuple[float, tuple[np.ndarray, ...], float]:
        plus = tuple(a + h * d for a, d in zip(x, dirs))
        minus = tuple(a - h * d for a, d in zip(x, dirs))
        fp, fm = impl(*plus, **ex.params), impl(*minus, **ex.params)
        chord = tuple((p - m) / (2 * h) for p, m in zip(plus, minus))
        rounding = float(np.sum(np.abs(v) * (_one_bound(op, plus, ex.params) + _one_bound(op, minus, ex.params))))
        return float(np.sum(v * (fp - fm))) / (2 * h), chord, rounding / (2 * h)

    d1, chord, round1 = central(STEP)
    d2, _, round2 = central(2 * STEP)
    grads = (vjp or OPS[op].vjp)(ex.cotangent, *ex.inputs, **ex.params)
    lhs = sum(float(np.sum(c * np.asarray(g, dtype=np.float64))) for c, g in zip(chord, grads))
    vjp_err = sum(
        float(np.sum(np.abs(c) * b.tolerance(ex.dtype) / 2))
        for c, b in zip(chord, vjp_bound(op, ex.cotangent, ex.inputs, ex.params))
    )
    truncation = abs(d2 - d1) / 3
    return lhs, d1, abs(lhs - d1), 2 * truncation + round1 + round2 + vjp_err


def check_adjoint(ex: Example, seed: int, vjp: Any = None) -> float:
    """Raise ``ParityFailure`` when the adjoint test fails; return the
    error-to-tolerance ratio otherwise."""
    lhs, fd, err, tol = adjoint_numbers(ex, seed, vjp)
    if not err <= tol:
        raise ParityFailure(
            f"adjoint test of op '{ex.op}' ({ex.dtype.name} VJP vs float64 central differences) fails\n"
            f"  example: {ex.describe()}, direction seed {seed}\n"
            f"  <u, VJP(v)> = {lhs!r}, <v, Df(x)[u]> ~ {fd!r}; abs error {err:.3e}, rel error "
            f"{err / max(abs(fd), 1e-300):.3e}; tolerance {tol:.3e} (2 x Richardson truncation + rounding of f "
            f"+ VJP bound)\n  {reproduce_hint()}"
        )
    return err / tol if tol > 0 else 0.0
