"""Root pytest configuration: hypothesis profiles, float64 for JAX, the
double-double kernels loaded, the ``--quick`` tier and the
``decimal_fallback`` fixture.

Profiles (see ``reference_impl/engine/profiles.py``): ``dev`` (default),
``quick``, ``ci``, ``nightly``, ``thorough``. Choose with
``--hypothesis-profile=ci`` (hypothesis' own option, which wins) or
``REFERENCE_IMPL_PROFILE=ci``.

``--quick`` runs the tier that certifies the reference itself in about a
minute on two cores: the framework-free checks (``parity_tests/reference``),
the truth tier and accuracy (``parity_tests/accuracy``), the golden fixtures
(``parity_tests/golden``) and every op against torch and jax
(``parity_tests/frameworks/test_ops.py``), without the ``slow`` sweeps, at the
``quick`` profile (derandomized, 25 examples a property) unless a profile is
named. The rest -- the oracle's own tests, the certify command line, the networks,
packaging, robustness -- and 100 examples a property run in the full suite.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("JAX_ENABLE_X64", "1")  # before any jax array exists: float64 must stay float64
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np
import pytest
from hypothesis import settings

from reference_impl import double_double as ddm
from reference_impl import wide
from reference_impl.engine import profiles

profiles.register()
profiles.load_from_env()

QUICK = ("parity_tests/reference", "parity_tests/accuracy", "parity_tests/golden",
         "parity_tests/frameworks/test_ops.py")
"""The ``--quick`` tier, relative to this file's folder."""
_ROOT = Path(__file__).parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--quick", action="store_true", default=False,
                     help=f"run the quick tier ({', '.join(QUICK)}; no slow tests; the quick profile "
                          "unless --hypothesis-profile names one)")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("quick") and not config.getoption("hypothesis_profile", None):
        settings.load_profile("quick")
    # The compiled double-double kernels (where numba is installed) import parts of
    # numba as they compile. Compile (or load) them all here, before any in-process
    # pytester run snapshots sys.modules and drops what was imported during it (a
    # second import of those numba modules fails on its duplicate registrations).
    # Each xdist worker begins at its own share of the loops (on a cold cache each
    # compiles its share and loads the rest); the controller runs no tests.
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if ddm.KERNELS and (worker or not config.getoption("numprocesses", None)):
        count = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
        ddm._kernels().warm((int(worker.removeprefix("gw")) % count) / count if worker else 0.0)


def _in_quick(path: Path) -> bool:
    """Whether ``path`` is in the quick tier or a folder on the way to it."""
    try:
        rel = path.resolve().relative_to(_ROOT).as_posix()
    except ValueError:
        return True  # outside this checkout (a pytester run, a user's path): not ours to filter
    return rel == "." or any(rel == q or rel.startswith(q + "/") or q.startswith(rel + "/") for q in QUICK)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if config.getoption("quick") and not _in_quick(collection_path):
        return True
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("quick"):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if item not in slow]


@pytest.fixture
def decimal_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reference as on a platform whose ``longdouble`` is plain float64
    (Windows, Apple silicon); float64 computes in double-double either way,
    so no result may change."""
    monkeypatch.setattr(wide, "_LONG", np.float64)
    assert not wide.extended()
