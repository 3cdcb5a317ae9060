"""Command line: ``python -m reference_impl {certify,golden} [options]`` (also
the console script ``reference-impl``).

One argparse parser with a subcommand each: ``certify``'s options come from
:func:`reference_impl.certify.add_arguments`, ``golden``'s from
``reference_impl.golden.add_arguments``; each command's ``run(namespace)``
returns the exit code (2 for a usage problem).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from . import golden
from .certify import command as certify

__all__ = ["main", "build_parser"]

_COMMANDS = ("certify", "golden")


def _golden_interface() -> tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]:
    """``golden``'s ``add_arguments`` and ``run``; where golden offers only
    ``main(argv)``, the remaining words are handed to it unchanged."""
    add: Any = getattr(golden, "add_arguments", None)
    run: Any = getattr(golden, "run", None)
    if add is not None and run is not None:
        return add, run

    def add_rest(p: argparse.ArgumentParser) -> None:
        p.add_argument("rest", nargs=argparse.REMAINDER, help="golden's own command and options (see golden --help)")

    def run_rest(ns: argparse.Namespace) -> int:
        return int(golden.main(list(ns.rest)))

    return add_rest, run_rest


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m reference_impl",
                                     description="reference_impl: certify the reference, manage the golden fixtures.")
    sub = parser.add_subparsers(dest="command", metavar="{certify,golden}")
    cert = sub.add_parser("certify", help="certify the reference against torch, jax and finite differences",
                          description=certify.DESCRIPTION)
    certify.add_arguments(cert)
    cert.set_defaults(run=certify.certify_run)
    add_golden, run_golden = _golden_interface()
    gold = sub.add_parser("golden", help="verify, regenerate and re-manifest the golden fixtures",
                          add_help=getattr(golden, "add_arguments", None) is not None)
    add_golden(gold)
    gold.set_defaults(run=run_golden)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse and dispatch; returns the exit code (2 for a usage problem, 0 for ``--help``)."""
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    if not words or (words[0] not in _COMMANDS and not words[0].startswith("-")):
        what = f"unknown command {words[0]!r}" if words else "no command given"
        print(f"reference_impl: {what}; choose one of {', '.join(_COMMANDS)}", file=sys.stderr)
        parser.print_usage(sys.stderr)
        return 2
    if words[0] == "golden" and getattr(golden, "add_arguments", None) is None:
        return int(golden.main(words[1:]))  # golden's own parser, until it offers add_arguments / run
    try:
        args = parser.parse_args(words)
    except SystemExit as e:  # argparse exits 2 on bad usage and 0 for --help
        return int(e.code) if isinstance(e.code, int) else 2
    if getattr(args, "run", None) is None:
        parser.print_usage(sys.stderr)
        print("reference_impl: no command given; choose certify or golden", file=sys.stderr)
        return 2
    return int(args.run(args))
