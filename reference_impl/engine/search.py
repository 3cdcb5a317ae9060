"""The check engine, second half: running an opinion and the search.

An *opinion* is code under test -- a user's function, a framework. Whatever
it does wrong (raises, even ``SystemExit``; returns ``None``, a list, a
Python float, a masked array, the wrong shape or dtype, NaN) becomes a
message about it, never a crash of the caller. :func:`search` draws inputs
until an ``evaluate`` function returns a
:class:`~reference_impl.engine.Finding`, then lets hypothesis shrink it: with
a plain NumPy generator where the caller gives the builder of its examples
(the op checks), with hypothesis itself otherwise.

This module imports hypothesis; ``import reference_impl`` does not import it.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import tempfile
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
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

__all__ = ["call_opinion", "as_returned_array", "unpack_tuple", "user_message", "search", "type_name",
           "unknown_name"]


def type_name(x: Any) -> str:
    t = type(x)
    return t.__name__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def unknown_name(arg: str, kind: str, name: Any, valid: Sequence[str]) -> str:
    """``"<arg>: unknown <kind> 'x' (did you mean 'y'?); valid: a, b, c"``."""
    close = difflib.get_close_matches(str(name), list(valid), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{arg}: unknown {kind} {name!r}{hint}; valid: {', '.join(valid)}"


def call_opinion(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[Any, str]:
    """Run code under test: ``(result, "")``, or ``(None, what it raised and where)``.

    ``SystemExit`` and other ``BaseException`` subclasses are caught too, so
    that a user's ``sys.exit()`` does not end the caller; ``KeyboardInterrupt``
    still stops the run, and hypothesis' own signals (``assume(False)``)
    pass through so that hypothesis skips the example."""
    try:
        return fn(*args, **kwargs), ""
    except (KeyboardInterrupt, UnsatisfiedAssumption):
        raise
    except BaseException as e:  # the code under test failing is a finding about it, not a crash of the caller
        if type(e).__module__.startswith("hypothesis"):
            raise  # hypothesis' control flow (StopTest, ...) must reach hypothesis
        frames = traceback.extract_tb(e.__traceback__)
        where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
        return None, f"raised {type(e).__name__}: {e}{where}"


def user_message(role: str, err: str) -> str:
    """``err`` as a sentence about the user's function ``role``."""
    if err.startswith("your "):
        return err
    return f"your {role} {err}" if err.startswith("raised ") else f"your {role}: {err}"


def as_returned_array(value: Any, what: str, shape: tuple[int, ...], dtype: np.dtype) -> tuple[np.ndarray | None, str]:
    """``(array, "")`` when ``value`` is a finite array of ``shape`` and
    ``dtype``; otherwise ``(None, what is wrong)``, naming ``what``."""
    if value is None:
        return None, f"{what} is None; expected a {dtype.name} array of shape {shape}"
    if isinstance(value, (list, tuple)):
        return None, (f"{what} is a {type(value).__name__}, not an array; expected a {dtype.name} array of shape "
                      f"{shape} (np.asarray(..., dtype=np.{dtype.name}) makes one)")
    if isinstance(value, np.ma.MaskedArray):
        return None, (f"{what} is a masked array; its mask would be ignored: return a plain array "
                      f"(np.ma.getdata(...), or np.ma.filled(...) with the value you mean)")
    # np.float64 subclasses float: test for NumPy scalars before Python floats
    if not isinstance(value, np.generic) and isinstance(value, (bool, int, float, complex)):
        return None, (f"{what} is a Python {type(value).__name__} ({value!r}), not an array; expected a "
                      f"{dtype.name} array of shape {shape} (a Python float is float64 and drops the dtype)")
    if isinstance(value, np.ndarray):
        arr = value
    elif isinstance(value, np.generic) or hasattr(value, "__array__"):
        try:
            arr = np.asarray(value)
        except Exception as e:  # a framework tensor that refuses conversion (e.g. one that requires grad)
            return None, f"{what} is a {type_name(value)} that np.asarray cannot convert: {type(e).__name__}: {e}"
    else:
        return None, f"{what} is a {type_name(value)}, not an array; expected a {dtype.name} array of shape {shape}"
    if arr.shape != shape:
        return None, f"{what} has shape {arr.shape}, expected {shape}"
    if arr.dtype != dtype:
        return None, (f"{what} has dtype {arr.dtype}, expected {dtype.name} (the inputs' dtype; a silent "
                      "precision change is a failure)")
    if arr.dtype.kind != "f":
        return None, f"{what} has dtype {arr.dtype}, not a floating dtype"
    finite = np.isfinite(arr)
    if not finite.all():
        idx = tuple(int(i) for i in np.argwhere(~finite)[0]) if arr.ndim else ()
        return None, f"{what} is not finite: {float(arr[idx])} at index {idx} (of shape {shape})"
    return arr, ""


def unpack_tuple(value: Any, what: str, names: Sequence[str], hint: str) -> tuple[tuple[Any, ...] | None, str]:
    """A tuple with one item per name, or what is wrong with ``value``."""
    if value is None:
        return None, f"{what} returned None; expected {hint}"
    if isinstance(value, list):
        return None, f"{what} returned a list; expected {hint}"
    if not isinstance(value, tuple):
        return None, f"{what} returned a {type_name(value)}; expected {hint}"
    if len(value) != len(names):
        return None, f"{what} returned a tuple of {len(value)} item(s); expected {hint}"
    return value, ""


# =========================================================================== the search


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
    rng = np.random.default_rng(seed)
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
           max_examples: int, seed: int | None,
           on_example: Callable[[], None] | None = None,
           screen: Callable[[GeneratorSource], Any] | None = None) -> tuple[Finding | None, bool, str | None]:
    """Run ``evaluate`` on examples drawn from ``strategy`` until it returns a
    :class:`Finding` (then hypothesis shrinks the input) or ``max_examples``
    pass. Returns ``(finding of the minimal input, nondeterministic, problem)``.

    With ``screen`` -- the function that builds ``strategy``'s examples from a
    :class:`~reference_impl.strategies.Source` -- the examples are first built
    from a NumPy generator, without hypothesis' per-example bookkeeping; only
    a failing one is handed to hypothesis, as the choice sequence that
    rebuilds it, to reproduce and shrink.

    Settings are independent of any hypothesis profile the caller loaded:
    no deadline (the first call may compile), no example database (nothing
    is written to the working directory), a fixed ``seed`` or a random one."""
    last: list[Finding] = []
    replay: list[int] | None = None
    screened: Finding | None = None
    if screen is not None and choices_to_bytes is not None and not currently_in_test_context():
        # inside a @given test the search below reports that it cannot nest
        with warnings.catch_warnings():
            # assume() in the code under test skips the example here as in hypothesis' own run
            warnings.simplefilter("ignore", HypothesisDeprecationWarning)
            screened, replay, valid = _screen(screen, evaluate, max_examples, seed, on_example)
        if screened is None:
            return None, False, None if valid else "no valid example could be drawn (every draw was skipped)"

    def prop(example: Any) -> None:
        if on_example is not None:
            on_example()
        finding = evaluate(example)
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
        with _private_hypothesis_home():
            test()
    except _Found as e:
        return e.finding, False, None
    except Flaky:
        return (last[-1] if last else screened), True, None
    except Unsatisfiable as e:
        return None, False, f"no valid example could be drawn ({e})"
    except FailedHealthCheck as e:
        # raised when the caller is itself a hypothesis test: the oracle runs
        # its own search, and hypothesis refuses to nest one in another
        return None, False, (f"the oracle runs its own hypothesis search and cannot run inside a @given test; "
                             f"call it from a plain test ({str(e).splitlines()[0]})")
    if screened is not None:
        # the replay did not fail again: the code under test is not deterministic
        return screened, True, None
    return None, False, None
