"""The ``--quick`` tier of the root ``conftest.py``: the paths it collects,
the ``slow`` tests it leaves out and the hypothesis profile it runs at."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import settings

import conftest

ROOT = Path(conftest.__file__).parent


def test_every_quick_path_exists() -> None:
    """A renamed folder or file would otherwise empty the tier without an error."""
    for rel in conftest.QUICK:
        assert (ROOT / rel).exists(), rel


@pytest.mark.parametrize(("rel", "inside"), [
    (".", True), ("parity_tests", True), ("parity_tests/frameworks", True),
    ("parity_tests/frameworks/test_ops.py", True), ("parity_tests/reference/test_adjoint.py", True),
    ("parity_tests/accuracy", True), ("parity_tests/frameworks/test_sgd.py", False),
    ("parity_tests/frameworks/test_ops_extra.py", False), ("parity_tests/checking", False),
    ("parity_tests/certify/test_certify.py", False), ("benchmarks", False)])
def test_the_quick_paths_and_the_folders_on_the_way(rel: str, inside: bool) -> None:
    assert conftest._in_quick(ROOT / rel) is inside


def test_paths_outside_the_checkout_are_left_to_pytest(tmp_path: Path) -> None:
    assert conftest._in_quick(tmp_path / "test_user.py")


def test_quick_loads_its_profile_unless_one_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded: list[str] = []
    monkeypatch.setattr(conftest, "settings", SimpleNamespace(load_profile=loaded.append))

    class Config:
        def __init__(self, **options: Any) -> None:
            self.options = options

        def getoption(self, name: str, default: Any = None) -> Any:
            return self.options.get(name, default)

    conftest.pytest_configure(Config(quick=True, hypothesis_profile=None))  # type: ignore[arg-type]
    conftest.pytest_configure(Config(quick=True, hypothesis_profile="ci"))  # type: ignore[arg-type]
    conftest.pytest_configure(Config(quick=False, hypothesis_profile=None))  # type: ignore[arg-type]
    assert loaded == ["quick"]
    quick = settings.get_profile("quick")
    assert quick.max_examples == 25 and quick.derandomize and quick.database is None


def test_quick_collects_the_quick_paths_without_the_slow_tests() -> None:
    """The tier is exactly the quick paths' tests less the ``slow`` ones: nothing
    outside them, nothing left out inside them."""
    def collect(*args: str) -> list[str]:
        out = subprocess.run([sys.executable, "-m", "pytest", "--co", "-q", *args],
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
        return [line for line in out.stdout.splitlines() if "::" in line]

    quick = collect("--quick")
    assert sorted(quick) == sorted(collect("-m", "not slow", *conftest.QUICK))
    assert len(quick) > 500
    assert {t.split("::")[0].rsplit("/", 1)[0] for t in quick} >= {
        "parity_tests/reference", "parity_tests/accuracy", "parity_tests/golden", "parity_tests/frameworks"}


def test_quick_deselects_the_slow_tests_and_reports_them() -> None:
    class Item:
        def __init__(self, name: str, slow: bool) -> None:
            self.name, self.slow = name, slow

        def get_closest_marker(self, name: str) -> object:
            return object() if name == "slow" and self.slow else None

    deselected: list[Any] = []
    for quick in (True, False):
        items = [Item("a", False), Item("b", True), Item("c", False)]
        config = SimpleNamespace(getoption=lambda name, q=quick: q,
                                 hook=SimpleNamespace(pytest_deselected=lambda items: deselected.extend(items)))
        conftest.pytest_collection_modifyitems(config, items)  # type: ignore[arg-type]
        assert [i.name for i in items] == (["a", "c"] if quick else ["a", "b", "c"])
    assert [i.name for i in deselected] == ["b"]
