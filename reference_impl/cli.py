"""Command line: ``python -m reference_impl certify [options]`` (also the
console script ``reference-impl certify``).

``certify`` runs in this process (see :mod:`reference_impl.certify`);
``python -m reference_impl certify --help`` lists its options.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

COMMANDS = {"certify": "certify the reference against torch, jax and finite differences (see --help)"}

USAGE = "usage: python -m reference_impl certify [--help] [options]\n\ncommands:\n" + "\n".join(
    f"  {name:10s} {text}" for name, text in COMMANDS.items()
)


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to a command; returns the exit code (2 for a usage problem)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if not args or args[0] not in COMMANDS:
        what = f"unknown command {args[0]!r}" if args else "no command given"
        print(f"reference_impl: {what}\n{USAGE}", file=sys.stderr)
        return 2
    from .certify import certify_main

    return certify_main(args[1:])
