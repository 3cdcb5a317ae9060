"""The search that drives :func:`reference_impl.oracle.function_checks.evaluate`:
hypothesis draws inputs, a failure is shrunk within a bounded share of the
time budget, and the time budget ends the search at once."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.errors import Flaky, Unsatisfiable

from ..engine.calls import UnsatisfiedAssumption
from .function_checks import Counters, Finding, _Misuse

__all__ = ["run_search", "SearchOutcome", "SHRINK_EVALUATIONS", "SHRINK_SECONDS"]


class _Stop(Exception):
    """Raised inside the hypothesis property: a finding (hypothesis shrinks
    the input), the time budget spent, or misuse."""


def _stop() -> None:
    # One raise site: hypothesis groups failures by where they were raised.
    raise _Stop()


class _Abort(BaseException):
    """Ends the hypothesis run at once (a ``BaseException``: hypothesis does
    not take it for a failure of the property): the time budget is spent, or
    shrinking has had its share."""


SHRINK_EVALUATIONS = 12
"""Inputs tried while shrinking a failure, past the first failing one.
Hypothesis shrinks the sides first, and in the first few dozen tries; a
failure found on a 16 x 16 input is down to a few elements by then."""
SHRINK_SECONDS = 2.0
"""Seconds of shrinking at most (a slow user function)."""


_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
           HealthCheck.large_base_example]


@dataclass
class SearchOutcome:
    finding: Finding | None
    timed_out: bool
    problem: str


def run_search(strategy: st.SearchStrategy[Any], evaluate_one: Callable[[Any], Finding | None], *,
               max_examples: int, seed: int | None, deadline: float, counters: Counters) -> SearchOutcome:
    """Draw examples until ``evaluate_one`` finds a failure (then shrink) or
    ``max_examples`` pass, within ``deadline`` (``time.monotonic()``). Past the
    deadline the search ends at once, and a shrink in progress keeps the
    smallest failure found so far; shrinking also ends after
    ``SHRINK_EVALUATIONS`` inputs or ``SHRINK_SECONDS``. Every failing input
    hypothesis tries while shrinking is smaller than those before it, so the
    last finding is the smallest."""
    found: list[Finding] = []
    timed_out: list[bool] = []
    shrink_from = {"evaluated": 0, "time": 0.0}

    def prop(example: Any) -> None:
        if counters.misuse:
            _stop()
        now = time.monotonic()
        if now > deadline:
            timed_out.append(True)
            raise _Abort()
        if found and (counters.evaluated - shrink_from["evaluated"] >= SHRINK_EVALUATIONS
                      or now - shrink_from["time"] > SHRINK_SECONDS):
            raise _Abort()
        try:
            finding = evaluate_one(example)
        except _Misuse as e:
            counters.misuse = str(e)
            _stop()
            return
        except UnsatisfiedAssumption:
            counters.skipped += 1
            raise
        if finding is not None:
            if not found:
                shrink_from.update(evaluated=counters.evaluated, time=time.monotonic())
            found.append(finding)
            _stop()

    test = settings(settings.get_profile("default"), max_examples=max_examples, deadline=None, database=None,
                    derandomize=False, report_multiple_bugs=False, print_blob=False, suppress_health_check=_HEALTH,
                    phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink)
                    )(given(strategy)(prop))
    if seed is not None:
        test = hypothesis_seed(seed)(test)
    problem = ""
    try:
        test()
    except (_Stop, _Abort):
        pass
    except _Misuse as e:  # raised while drawing (a user's strategy drew something else than arrays)
        counters.misuse = str(e)
    except Flaky:
        pass
    except Unsatisfiable:
        problem = "no input could be checked: every drawn input was skipped (assume()/reject() in your functions)"
    except BaseExceptionGroup as group:  # hypothesis may wrap a flaky failure in a group
        if not group.subgroup((_Stop, _Abort)):
            raise
    return SearchOutcome(found[-1] if found else None, bool(timed_out), problem)
