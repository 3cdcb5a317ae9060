"""The one search under every checker: the NumPy screen hands a failing
example to hypothesis, which reproduces it (not reported as nondeterministic)
and shrinks it; the budget ends a search at once; misuse propagates; the
caller's working directory is left alone.

The screen-and-replay relies on hypothesis internals (see
``reference_impl/engine/search.py``): these tests are the canary that fails
when a hypothesis release breaks them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from reference_impl.engine.comparison import Finding
from reference_impl.engine.search import Budget, Misuse, search
from reference_impl.strategies import Example, Source, build_example, examples

pytestmark = pytest.mark.numpy_only


def _finding(ex: Example) -> Finding:
    return Finding("forward", "reference", "disagreement", "planted", "forward(x)", ex.describe(), {"x": ex.inputs[0]})


def _big(ex: Example) -> Finding | None:
    """A planted failure: any element of magnitude above 1."""
    return _finding(ex) if np.abs(ex.inputs[0]).max(initial=0.0) > 1.0 else None


def _screen(src: Source) -> Example:
    return build_example(src, "tanh", "float64")


def test_a_screened_failure_is_replayed_and_shrunk() -> None:
    screened: list[Example] = []

    def first_failure(ex: Example) -> Finding | None:
        found = _big(ex)
        if found is not None and not screened:
            screened.append(ex)
        return found

    outcome = search(examples("tanh", "float64"), first_failure, max_examples=100, seed=0, screen=_screen)
    assert outcome.finding is not None and screened
    assert outcome.nondeterministic is False, "hypothesis did not reproduce the screened example"
    shrunk = outcome.finding.arrays["x"]
    assert shrunk.size <= screened[0].inputs[0].size
    assert shrunk.size == 1, f"not shrunk to one element: {shrunk.shape}"


def test_without_a_screen_hypothesis_draws_and_shrinks() -> None:
    outcome = search(examples("tanh", "float64"), _big, max_examples=100, seed=0)
    assert outcome.finding is not None and outcome.nondeterministic is False
    assert outcome.finding.arrays["x"].size == 1


def test_a_negative_seed_is_a_seed_for_the_screen_too() -> None:
    outcome = search(examples("tanh", "float64"), _big, max_examples=100, seed=-1, screen=_screen)
    assert outcome.finding is not None and outcome.nondeterministic is False


def test_a_spent_budget_ends_the_search_and_says_so() -> None:
    calls = []

    def slow(ex: Example) -> None:
        calls.append(ex)

    budget = Budget(0.0)
    outcome = search(examples("tanh", "float64"), slow, max_examples=100, seed=0, budget=budget, screen=_screen)
    assert outcome.finding is None and not calls
    assert outcome.cut == "the search stopped after 0 input(s)"


@pytest.mark.parametrize("screened", [True, False])
def test_the_shrink_cap_keeps_the_smallest_failure_so_far(screened: bool) -> None:
    """Past the first failure, ``shrink_evaluations`` more inputs at most (the
    replay of a screened example among them); the finding is on the smallest."""
    tried: list[int] = []
    failures: list[int] = []

    def counted(ex: Example) -> Finding | None:
        found = _big(ex)
        if failures or found is not None:
            tried.append(ex.inputs[0].size)
        if found is not None:
            failures.append(ex.inputs[0].size)
        return found

    budget = Budget(None, shrink_evaluations=3)
    outcome = search(examples("tanh", "float64"), counted, max_examples=100, seed=0, budget=budget,
                     screen=_screen if screened else None)
    assert outcome.finding is not None
    assert len(tried) == 1 + 3, tried
    assert outcome.finding.arrays["x"].size == failures[-1] == min(failures)


def test_misuse_ends_the_search_and_reaches_the_caller() -> None:
    def misused(ex: Example) -> None:
        raise Misuse(ValueError("wrt: planted misuse"))

    for screen in (_screen, None):
        with pytest.raises(Misuse) as info:
            search(examples("tanh", "float64"), misused, max_examples=10, seed=0, screen=screen)
        assert isinstance(info.value.error, ValueError) and str(info.value.error) == "wrt: planted misuse"


def test_the_search_leaves_the_working_directory_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYPOTHESIS_STORAGE_DIRECTORY", raising=False)
    search(examples("tanh", "float64"), _big, max_examples=20, seed=0)
    assert os.listdir(tmp_path) == []
