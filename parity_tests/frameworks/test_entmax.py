"""entmax 1.3 (sparsemax, entmax15, entmax_bisect, SparsemaxLoss,
Entmax15Loss: torch Functions with hand-written backward passes) under
``check_vjp``: piecewise smooth, with kinks where an entry leaves the
support; no false alarm at a kink, and a backward missing a term fails as
wrong (``reference_impl.engine.kinks``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import reference_impl as ri

torch = pytest.importorskip("torch")
entmax = pytest.importorskip("entmax")
torch.set_num_threads(1)  # on a shared machine threads make each small torch call milliseconds slower

pytestmark = pytest.mark.torch

class SparsemaxMissingMean(torch.autograd.Function):
    """sparsemax with a backward that forgets to subtract the mean over the support."""

    @staticmethod
    def forward(ctx: Any, x: Any) -> Any:
        p = entmax.sparsemax(x, dim=-1)
        ctx.save_for_backward(p)
        return p

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (p,) = ctx.saved_tensors
        return g * (p > 0)


def _entmax_inputs(loss: bool, sides: tuple[int, int] = (1, 16)) -> ri.Inputs:
    x = ri.Arg("logits", shape=("batch", "classes"))
    if loss:
        return ri.Inputs(x=x, target=ri.Arg("labels", shape=("batch",), classes="classes"), sides=sides)
    return ri.Inputs(x=x, sides=sides)


SUBJECTS: dict[str, tuple[Callable[..., Any], bool]] = {
    "sparsemax": (entmax.sparsemax, False),
    "entmax15": (entmax.entmax15, False),
    "entmax_bisect": (entmax.entmax_bisect, False),
    "SparsemaxLoss": (entmax.SparsemaxLoss(), True),
    "Entmax15Loss": (entmax.Entmax15Loss(), True),
}


def _no_false_alarm(result: Any) -> None:
    assert result.ok, result.report()
    assert not any(r.verdict in ("wrong", "inaccurate") for r in result.rows), result.report()


def test_entmax_sparsemax_at_the_seed_that_raised_a_false_alarm_passes() -> None:
    # seed 2 at 25 examples: logits at an offset of 1e3, a step of 4e-6 already crossed a kink
    _no_false_alarm(ri.check_vjp(entmax.sparsemax, inputs=ri.Arg("logits", shape=(2, 10)), seed=2, max_examples=25))


@pytest.mark.parametrize(("name", "seed"), [
    ("sparsemax", 3), ("sparsemax", 14), ("entmax15", 0), ("entmax15", 1), ("entmax_bisect", 0),
    ("entmax_bisect", 1), ("SparsemaxLoss", 3), ("SparsemaxLoss", 0), ("Entmax15Loss", 0), ("Entmax15Loss", 1)])
def test_entmax_functions_pass_check_vjp(name: str, seed: int) -> None:
    fn, loss = SUBJECTS[name]
    sides = (1, 4) if name == "entmax_bisect" else (1, 16)  # bisection: 50 iterations a call
    _no_false_alarm(ri.check_vjp(fn, inputs=_entmax_inputs(loss, sides), seed=seed, max_examples=25))


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SUBJECTS))
def test_entmax_functions_pass_check_vjp_on_20_seeds(name: str) -> None:
    # small sides keep the default run short: 20 seeds x 25 examples x 2 dtypes per function
    fn, loss = SUBJECTS[name]
    sides = (1, 4) if name == "entmax_bisect" else (1, 6)
    for seed in range(20):
        _no_false_alarm(ri.check_vjp(fn, inputs=_entmax_inputs(loss, sides), seed=seed, max_examples=25))


@pytest.mark.parametrize("piecewise", [False, True])
def test_a_sparsemax_backward_missing_a_term_still_fails_as_wrong(piecewise: bool) -> None:
    result = ri.check_vjp(SparsemaxMissingMean.apply, inputs=_entmax_inputs(False), seed=0, max_examples=25,
                          piecewise=piecewise)
    assert not result.ok
    assert any(r.verdict == "wrong" for r in result.rows), result.report()


def test_sparsemax_declared_piecewise_passes() -> None:
    _no_false_alarm(ri.check_vjp(entmax.sparsemax, inputs=ri.Arg("logits", shape=(2, 10)), seed=2, max_examples=25,
                                 piecewise=True))
