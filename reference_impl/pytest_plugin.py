"""pytest plugin: check your gradient code against reference_impl in your own tests.

Installed with the package (entry point ``pytest11``: ``reference_impl``), so
every pytest run in the environment has:

* the fixture ``gradient_oracle``: a :class:`reference_impl.oracle.Oracle`
  whose ``check_op`` / ``check_network`` / ``check_sgd_step`` and
  ``check_vjp`` / ``check_grad`` (any function of arrays) use the options
  below; each returns a result whose ``raise_if_failed()`` fails the test
  with the report and the shrunk counterexample::

      def test_my_softmax_vjp(gradient_oracle):
          gradient_oracle.check_op("softmax", vjp=my_softmax_vjp).raise_if_failed()

      def test_my_logsumexp_vjp(gradient_oracle):
          gradient_oracle.check_vjp(logsumexp, logsumexp_vjp, inputs=Inputs(x=Arg("logits"))).raise_if_failed()

* options (also settable in the ini file, e.g. ``[tool.pytest.ini_options]``):
  ``--gradient-oracle-backends=torch,jax`` (further opinions; default none),
  ``--gradient-oracle-examples=N`` (examples per dtype and check),
  ``--gradient-oracle-profile=dev|ci|thorough`` (25 random / 100 with a fixed
  seed / 1000 random examples), ``--gradient-oracle-seed=N``;
* the marker ``@pytest.mark.gradient_oracle(backends=..., max_examples=...,
  seed=..., profile=..., dtypes=...)`` to override them for one test;
* a "gradient oracle" section in the terminal summary, one line per check.

This module is imported by every pytest run in the environment, so it
imports nothing but pytest at module level (the oracle, NumPy and hypothesis
load when a test first asks for the fixture) and registers options under the
``--gradient-oracle-`` prefix only.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import Any

import pytest

_PROPERTY = "gradient_oracle"
"""Key of the ``user_properties`` entries that carry summary lines from the
test (possibly in an xdist worker) to the terminal summary."""
_OPTIONS = (
    # (option suffix, ini name, metavar, help)
    ("backends", "gradient_oracle_backends", "NAMES",
     "comma-separated frameworks to compare with as well as the reference: torch, jax (default: none)"),
    ("examples", "gradient_oracle_examples", "N", "examples per dtype and check (default: the profile's)"),
    ("profile", "gradient_oracle_profile", "NAME",
     "a profile of reference_impl.engine.profiles: dev (25 examples, random seed), ci (100, seed 0), thorough "
     "(1000, random), ...; default: $REFERENCE_IMPL_PROFILE, else dev"),
    ("seed", "gradient_oracle_seed", "N", "hypothesis seed of every check (default: the profile's)"),
)


_BACKENDS = ("torch", "jax")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gradient-oracle", "check gradients against reference_impl (fixture gradient_oracle)")
    for suffix, ini, metavar, text in _OPTIONS:
        group.addoption(f"--gradient-oracle-{suffix}", dest=ini, default=None, metavar=metavar, help=text)
        parser.addini(ini, text, default=None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "gradient_oracle(backends=None, max_examples=None, seed=None, profile=None, dtypes=None): "
        "settings of the gradient_oracle fixture for this test (reference_impl)",
    )
    config.pluginmanager.register(_Summary(), "reference_impl-gradient-oracle-summary")
    oracle_settings(config)  # a bad option value stops the run at once, as a usage error


class _Summary:
    """Collects the fixture's summary lines from every test report and writes
    them in the terminal summary (only when a test used the fixture)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "teardown":
            self.lines += [f"{value}  [{report.nodeid}]" for key, value in report.user_properties if key == _PROPERTY]

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.lines:
            return
        terminalreporter.write_sep("=", "gradient oracle")
        for line in self.lines:
            terminalreporter.write_line(line)
        failed = sum(1 for line in self.lines if not line.startswith("PASS"))
        terminalreporter.write_line(f"{len(self.lines)} check(s), {failed} failed (reference_impl)")


def _option(config: pytest.Config, ini: str) -> Any:
    value = config.getoption(ini, default=None)
    if value is None:
        value = config.getini(ini)
    return value if value not in ("", None) else None


def _int(value: Any, name: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise pytest.UsageError(f"--gradient-oracle-{name}: expected an integer, got {value!r}") from None


def oracle_settings(config: pytest.Config, marker: pytest.Mark | None = None) -> dict[str, Any]:
    """The fixture's defaults: command line, then ini file, then the marker
    of the test (which wins)."""
    backends = _option(config, "gradient_oracle_backends")
    profile = _option(config, "gradient_oracle_profile")
    if profile is not None:
        # imported only when the option is given: it imports hypothesis
        from .engine.profiles import PROFILES

        if profile not in PROFILES:
            raise pytest.UsageError(f"--gradient-oracle-profile: {profile!r} is not one of {', '.join(PROFILES)}")
    names = tuple(b.strip() for b in backends.split(",") if b.strip()) if backends else ()
    for name in names:
        if name not in _BACKENDS:
            raise pytest.UsageError(f"--gradient-oracle-backends: {name!r} is not one of {', '.join(_BACKENDS)}")
        if importlib.util.find_spec(name) is None:
            raise pytest.UsageError(f"--gradient-oracle-backends: {name!r} is not installed "
                                    "(pip install \"reference-impl[frameworks]\")")
    examples = _int(_option(config, "gradient_oracle_examples"), "examples")
    if examples is not None and examples < 1:
        raise pytest.UsageError(f"--gradient-oracle-examples: must be >= 1, got {examples}")
    seed = _int(_option(config, "gradient_oracle_seed"), "seed")
    if seed is not None and seed < 0:
        raise pytest.UsageError(f"--gradient-oracle-seed: must be >= 0, got {seed}")
    out: dict[str, Any] = {"backends": names, "max_examples": examples, "seed": seed, "profile": profile}
    if marker is not None:
        if marker.args:
            raise pytest.UsageError("@pytest.mark.gradient_oracle takes keyword arguments only "
                                    "(backends=, max_examples=, seed=, profile=, dtypes=)")
        unknown = set(marker.kwargs) - {"backends", "max_examples", "seed", "profile", "dtypes"}
        if unknown:
            raise pytest.UsageError(f"@pytest.mark.gradient_oracle: unknown argument(s) {sorted(unknown)}; "
                                    "accepted: backends, max_examples, seed, profile, dtypes")
        out.update(marker.kwargs)
    return out


@pytest.fixture
def gradient_oracle(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A :class:`reference_impl.oracle.Oracle` configured by the
    ``--gradient-oracle-*`` options and the test's ``gradient_oracle`` marker."""
    from .oracle import Oracle

    oracle = Oracle(**oracle_settings(request.config, request.node.get_closest_marker("gradient_oracle")))
    yield oracle
    # Added at teardown, so that the lines travel once, with the teardown
    # report, to the process that writes the summary (the xdist controller).
    for result in oracle.results:
        request.node.user_properties.append((_PROPERTY, result.summary_line()))
