"""Command line: ``python -m reference_impl certify``.

Runs the parity suite shipped with the package (``parity_tests``) under a
hypothesis profile and prints a summary per op, backend and dtype.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from typing import Any


class _Collector:
    def __init__(self) -> None:
        self.results: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: {"passed": 0, "failed": 0})

    def pytest_runtest_logreport(self, report: Any) -> None:
        if report.when != "call" and not (report.when == "setup" and report.failed):
            return
        name = report.nodeid.split("::")[-1]
        test, _, params = name.partition("[")
        self.results[(test, params.rstrip("]"))]["passed" if report.passed else "failed"] += 1


def certify(argv: list[str]) -> int:
    import pytest

    ap = argparse.ArgumentParser(prog="reference_impl certify")
    ap.add_argument("--profile", default="ci", choices=["dev", "ci", "thorough"])
    args = ap.parse_args(argv)
    collector = _Collector()
    code = pytest.main(["--pyargs", "parity_tests", "-q", "-p", "no:cacheprovider",
                        f"--hypothesis-profile={args.profile}"], plugins=[collector])
    failed = [(t, p) for (t, p), r in sorted(collector.results.items()) if r["failed"]]
    print(f"\ncertify: {len(collector.results)} checks, {len(failed)} failed (profile {args.profile})")
    for t, p in failed:
        print(f"  FAILED {t}[{p}]")
    return 0 if code == 0 else 1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("certify",):
        print("usage: python -m reference_impl certify [--profile ci]", file=sys.stderr)
        return 2
    return certify(argv[1:])
