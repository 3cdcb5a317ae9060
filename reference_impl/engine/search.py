"""The one search under every checker: draw inputs until an ``evaluate``
function returns a :class:`~reference_impl.engine.Finding`, then let
hypothesis shrink the input, within a time budget.

With the builder of its examples (a function of a
:class:`~reference_impl.strategies.Source`), the examples are first built by
a plain NumPy generator, without hypothesis' per-example bookkeeping; only a
failing one is handed to hypothesis, as the choice sequence that rebuilds it,
to reproduce and shrink. Without one, hypothesis draws every example.

A :class:`Budget` bounds the search in seconds and its shrinking in inputs
and seconds: past either, the search ends at once with the smallest failure
found so far. :class:`Misuse` raised by ``evaluate`` (or while drawing) ends
it at once too, and reaches the caller as the error it carries. Hypothesis'
home folder is a private temporary one while the search runs, so nothing is
written to the caller's working directory.

The hypothesis internals the screen-and-replay relies on are all here:
``choices_to_bytes``, the test's database key and seed attributes, the
``.secondary`` key convention, the home directory setter;
the search tests assert that the replay still reproduces and shrinks.

This module imports hypothesis; ``import reference_impl`` does not import it.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir, storage_directory
from hypothesis.control import currently_in_test_context
from hypothesis.database import InMemoryExampleDatabase

try:  # the replay of a screened example needs hypothesis' choice sequences
    from hypothesis.database import choices_to_bytes
except ImportError:  # an older hypothesis: every example is drawn by hypothesis itself
    choices_to_bytes = None  # type: ignore[assignment]
from hypothesis.errors import (
    FailedHealthCheck,
    Flaky,
    HypothesisDeprecationWarning,
    Unsatisfiable,
    UnsatisfiedAssumption,
)

from ..strategies import GeneratorSource
from .comparison import Finding

__all__ = ["search", "Budget", "SearchOutcome", "Misuse"]


class Misuse(BaseException):
    """The caller misused a checker in a way seen only once inputs are drawn
    (a strategy that draws something else than arrays, a ``wrt`` the
    function's arity refutes). A ``BaseException``: hypothesis lets it
    through at once instead of shrinking it; :func:`search` re-raises it, and
    the checker raises ``error``, a ``TypeError`` or ``ValueError`` naming the
    argument."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class _Stop(BaseException):
    """Ends the search at once: the budget is spent (in time, or in shrinking)."""


@dataclass
class Budget:
    """What one search may spend: ``seconds`` in all (``None``: no limit), and
    past the first failure ``shrink_evaluations`` more inputs and
    ``shrink_seconds`` (``None``: hypothesis' own shrinking, to its end).
    Past the deadline no further input is checked: a search that has found
    nothing ends, a shrink in progress keeps the smallest failure so far
    (every failing input hypothesis tries while shrinking is smaller than the
    ones before it). ``cut`` says what stopped it early."""

    seconds: float | None = None
    shrink_evaluations: int | None = None
    shrink_seconds: float | None = None
    deadline: float = field(default=math.inf)
    last: Finding | None = None
    cut: str = ""
    checked: int = 0
    _shrink_from: tuple[int, float] = (0, 0.0)

    def __post_init__(self) -> None:
        if self.seconds is not None:
            self.deadline = time.monotonic() + self.seconds

    def _spent(self) -> bool:
        now = time.monotonic()
        if now > self.deadline:
            self.cut = ("shrinking stopped at the smallest failing input so far" if self.last
                        else f"the search stopped after {self.checked} input(s)")
            return True
        if self.last is None:
            return False
        checked, since = self._shrink_from
        return ((self.shrink_evaluations is not None and self.checked - checked >= self.shrink_evaluations)
                or (self.shrink_seconds is not None and now - since > self.shrink_seconds))

    def wrap(self, evaluate: Callable[[Any], Finding | None]) -> Callable[[Any], Finding | None]:
        def run(example: Any) -> Finding | None:
            if self._spent():
                raise _Stop
            finding = evaluate(example)
            self.checked += 1
            if finding is not None:
                if self.last is None:
                    self._shrink_from = (self.checked, time.monotonic())
                self.last = finding
            return finding

        return run


@dataclass(frozen=True)
class SearchOutcome:
    """What a search found: the finding on the smallest failing input (or
    ``None``), whether a replay failed to reproduce it (the code under test is
    not deterministic), why no example could be checked (``None`` when some
    were), and what stopped the search early (``""`` when nothing did)."""

    finding: Finding | None
    nondeterministic: bool = False
    problem: str | None = None
    cut: str = ""
    checked: int = 0


class _Found(Exception):
    """Raised inside the hypothesis property so that hypothesis shrinks the input."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.message)
        self.finding = finding


def _raise(finding: Finding | None) -> None:
    # One raise site: hypothesis groups failures by where they were raised,
    # so every kind of failure shrinks towards one minimal input.
    if finding is not None:
        raise _Found(finding)




@contextlib.contextmanager
def _private_hypothesis_home() -> Iterator[None]:
    """Hypothesis caches what it learns about source files under its home
    folder, ``.hypothesis/`` in the working directory by default: the
    search must leave the caller's folder alone, so it points hypothesis at
    a private temporary folder while it runs and removes it afterwards (a
    worker process ends without running exit handlers, so nothing is left to
    them), unless the caller chose one (``HYPOTHESIS_STORAGE_DIRECTORY``)."""
    if os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
        yield
        return
    previous = storage_directory(intent_to_write=False).home_directory
    with tempfile.TemporaryDirectory(prefix="reference_impl-hypothesis-", ignore_cleanup_errors=True) as home:
        set_hypothesis_home_dir(home)
        try:
            yield
        finally:
            set_hypothesis_home_dir(previous)


_REPLAY_KEY = b"reference_impl.screened"
_SEARCH_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                  HealthCheck.large_base_example]


def _screen(build: Callable[[GeneratorSource], Any], evaluate: Callable[[Any], Finding | None],
            max_examples: int, seed: int | None, on_example: Callable[[], None] | None
            ) -> tuple[Finding | None, list[int] | None, int]:
    """Evaluate up to ``max_examples`` examples built from one NumPy
    generator seeded by ``seed``: ``(first finding, the decisions that built
    its example, valid examples)``. ``build`` returns ``None`` for an example
    to skip (a filter), ``assume(False)`` in ``evaluate`` skips one too; as in
    hypothesis, ten skipped per example wanted end the screen."""
    # any int is a hypothesis seed; NumPy takes non-negative ones (distinct ints stay distinct)
    rng = np.random.default_rng(None if seed is None else seed % 2**128)
    valid = skipped = 0
    while valid < max_examples and skipped < 10 * max_examples:
        src = GeneratorSource(rng)
        example = build(src)
        if example is None:
            skipped += 1
            continue
        if on_example is not None:
            on_example()
        try:
            finding = evaluate(example)
        except UnsatisfiedAssumption:
            skipped += 1
            continue
        valid += 1
        if finding is not None:
            return finding, src.choices, valid
    return None, None, valid


def search(strategy: st.SearchStrategy[Any], evaluate: Callable[[Any], Finding | None], *,
           max_examples: int, seed: int | None, budget: Budget | None = None,
           on_example: Callable[[], None] | None = None,
           screen: Callable[[GeneratorSource], Any] | None = None) -> SearchOutcome:
    """Run ``evaluate`` on examples drawn from ``strategy`` until it returns a
    :class:`Finding` (then hypothesis shrinks the input) or ``max_examples``
    pass, within ``budget``.

    With ``screen`` -- the function that builds ``strategy``'s examples from a
    :class:`~reference_impl.strategies.Source` -- the examples are first built
    from a NumPy generator, without hypothesis' per-example bookkeeping; only
    a failing one is handed to hypothesis, as the choice sequence that
    rebuilds it, to reproduce and shrink.

    Settings are independent of any hypothesis profile the caller loaded:
    no deadline (the first call may compile), no example database (nothing
    is written to the working directory), a fixed ``seed`` or a random one."""
    budget = Budget() if budget is None else budget
    run = budget.wrap(evaluate)

    def outcome(finding: Finding | None, nondeterministic: bool = False, problem: str | None = None) -> SearchOutcome:
        return SearchOutcome(finding, nondeterministic, problem, budget.cut, budget.checked)

    try:
        with _private_hypothesis_home():
            return _search(strategy, run, outcome, max_examples=max_examples, seed=seed, on_example=on_example,
                           screen=screen)
    except _Stop:
        return outcome(budget.last)
    except BaseExceptionGroup as group:  # hypothesis may wrap a flaky failure in a group
        misuse = group.subgroup(Misuse)
        if misuse is not None:
            raise misuse.exceptions[0] from None
        if group.subgroup(_Stop) is None:
            raise
        return outcome(budget.last)


def _search(strategy: st.SearchStrategy[Any], run: Callable[[Any], Finding | None],
            outcome: Callable[..., SearchOutcome], *, max_examples: int, seed: int | None,
            on_example: Callable[[], None] | None, screen: Callable[[GeneratorSource], Any] | None) -> SearchOutcome:
    last: list[Finding] = []
    replay: list[int] | None = None
    screened: Finding | None = None
    if screen is not None and choices_to_bytes is not None and not currently_in_test_context():
        # inside a @given test the search below reports that it cannot nest
        with warnings.catch_warnings():
            # assume() in the code under test skips the example here as in hypothesis' own run
            warnings.simplefilter("ignore", HypothesisDeprecationWarning)
            screened, replay, valid = _screen(screen, run, max_examples, seed, on_example)
        if screened is None:
            return outcome(None, problem=None if valid else "no valid example could be drawn (every draw was skipped)")

    def prop(example: Any) -> None:
        if on_example is not None:
            on_example()
        finding = run(example)
        if finding is not None:
            last.append(finding)
        _raise(finding)

    database: InMemoryExampleDatabase | None = None
    phases: tuple[Phase, ...] = (Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink)
    if replay is not None:
        # hypothesis replays the screened example from an in-memory database, then shrinks it
        database = InMemoryExampleDatabase()
        # under the secondary key: hypothesis takes an example under the primary key as already shrunk
        database.save(_REPLAY_KEY + b".secondary", choices_to_bytes(replay))
        phases = (Phase.reuse, Phase.shrink)
    try:
        test = given(strategy)(prop)
        test = settings(settings.get_profile("default"), max_examples=max_examples, deadline=None, database=database,
                        derandomize=False, report_multiple_bugs=False, print_blob=False,
                        suppress_health_check=_SEARCH_HEALTH, phases=phases)(test)
        if replay is not None:
            # hypothesis.seed() would drop the database: the seed of the shrink is set as it sets it
            test._hypothesis_internal_database_key = _REPLAY_KEY  # type: ignore[attr-defined]
            test._hypothesis_internal_use_seed = seed  # type: ignore[attr-defined]
        elif seed is not None:
            test = hypothesis_seed(seed)(test)
        test()
    except _Found as e:
        return outcome(e.finding)
    except Flaky:
        return outcome(last[-1] if last else screened, nondeterministic=True)
    except Unsatisfiable as e:
        return outcome(None, problem=f"no valid example could be drawn ({e})")
    except FailedHealthCheck as e:
        # raised when the caller is itself a hypothesis test: the oracle runs
        # its own search, and hypothesis refuses to nest one in another
        return outcome(None, problem=(f"the oracle runs its own hypothesis search and cannot run inside a @given "
                                      f"test; call it from a plain test ({str(e).splitlines()[0]})"))
    if screened is not None:
        # the replay did not fail again: the code under test is not deterministic
        return outcome(screened, nondeterministic=True)
    return outcome(None)
