"""The ``golden`` commands: ``verify``, ``regenerate-derived``, ``update-manifest``.

Two ways in: ``python -m reference_impl.golden COMMAND`` (:func:`main`), or a
parent command line that mounts them with :func:`add_arguments` on its own
sub-parser and calls :func:`run` with the parsed namespace. Exit codes: 0 all
good, 1 a problem with the fixtures (listed on stderr), 2 a usage or
environment problem (one line on stderr: a missing ``--dir``, an unreadable
or unwritable folder).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable

from .files import Directory, FixtureError, ManifestError, ReplayError, fixtures_dir
from .loader import load_fixtures
from .maintenance import UPDATE, derived_drift, manifest_problems, regenerate_derived, write_manifest
from .replay import replay

__all__ = ["verify", "add_arguments", "run", "main"]

COMMANDS = ("verify", "regenerate-derived", "update-manifest")


def verify(directory: Directory = None) -> list[str]:
    """Everything CI should notice, as messages naming file and field:
    manifest mismatches, malformed files, derived values that drifted beyond
    the error model, and expected quantities the reference misses."""
    problems = list(manifest_problems(directory))
    try:
        files = load_fixtures(directory)
    except FixtureError as e:
        return [*problems, str(e)]
    try:
        problems += [d.describe() for d in derived_drift(directory)]
    except ReplayError as e:
        problems.append(str(e))
    for ff in files:
        for entry in ff.entries:
            try:
                problems += [o.message for o in replay(entry) if not o.ok]
            except ReplayError as e:
                problems.append(str(e))
    return problems


def _summary(directory: Directory) -> str:
    files = load_fixtures(directory)
    n_entries = sum(len(f.entries) for f in files)
    counts: dict[str, int] = {}
    for f in files:
        for e in f.entries:
            for x in e.expected:
                counts[x.origin] = counts.get(x.origin, 0) + 1
    return (f"{len(files)} files, {n_entries} entries, expected quantities by origin: "
            + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the three commands (``args.golden_command``) and their options to
    ``parser``; :func:`run` executes the parsed namespace."""
    if not isinstance(parser, argparse.ArgumentParser):
        raise TypeError(f"parser: expected an argparse.ArgumentParser (or a sub-parser), got {type(parser).__name__}")
    sub = parser.add_subparsers(dest="golden_command", required=True, metavar="{" + ",".join(COMMANDS) + "}")
    p_verify = sub.add_parser("verify", help="manifest, schema, regenerate-and-diff of derived values, replay")
    p_regen = sub.add_parser("regenerate-derived", help="recompute derived values; show the diff, or --write it")
    p_regen.add_argument("--write", action="store_true", help="rewrite the fixture files with the recomputed values")
    p_manifest = sub.add_parser("update-manifest", help="rewrite MANIFEST.json from the files as they are")
    for p in (p_verify, p_regen, p_manifest):
        p.add_argument("--dir", default=None, help="a fixture folder other than the shipped one")


def _usage_error(command: str, message: str) -> int:
    print(f"golden {command}: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    """Execute a namespace parsed by a parser prepared with :func:`add_arguments`."""
    if not isinstance(args, argparse.Namespace) or not all(hasattr(args, k) for k in ("golden_command", "dir")):
        raise TypeError(f"args: expected the argparse.Namespace of a parser prepared with golden.add_arguments "
                        f"(golden_command and dir), got {type(args).__name__}")
    command = args.golden_command
    directory = args.dir
    try:
        fixtures_dir(directory)  # a missing folder is a usage error, reported before any work
    except FixtureError:
        return _usage_error(command, f"--dir {directory}: not a folder of fixture files")
    if command == "verify":
        problems = verify(directory)
        if problems:
            print(f"golden fixtures: {len(problems)} problem(s)", file=sys.stderr)
            for msg in problems:
                print("  " + msg, file=sys.stderr)
            return 1
        print(f"golden fixtures verified: {_summary(directory)}; manifest, derived values and replay agree")
        return 0
    if command == "regenerate-derived":
        try:
            changes = regenerate_derived(directory, write=args.write)
            beyond = derived_drift(directory) if not args.write else []
        except (FixtureError, ReplayError) as e:
            print(f"golden regenerate-derived: {e}", file=sys.stderr)
            return 1
        except OSError as e:
            return _usage_error(command, str(e))
        for c in changes:
            print(f"{c.file}: {c.field} ({c.entry_id}): {c.detail}")
        if args.write:
            print(f"rewrote {len(changes)} derived value(s)" + (f"; accept the edit with: {UPDATE}" if changes else ""))
            return 0
        print(f"{len(changes)} derived value(s) would change, {len(beyond)} beyond the error model"
              + ("; rewrite with --write" if changes else ""))
        return 1 if beyond else 0
    if command == "update-manifest":
        try:
            path = write_manifest(directory)
        except (OSError, FixtureError, ManifestError) as e:
            return _usage_error(command, str(e))
        print(f"wrote {path}")
        return 0
    return _usage_error(str(command), f"unknown command; expected one of {list(COMMANDS)}")


def main(argv: Iterable[str] | None = None) -> int:
    """``python -m reference_impl.golden {verify,regenerate-derived,update-manifest} [--dir DIR]``."""
    parser = argparse.ArgumentParser(prog="python -m reference_impl.golden",
                                     description="Check and maintain the golden fixtures.")
    add_arguments(parser)
    if argv is not None and (isinstance(argv, (str, bytes)) or not isinstance(argv, Iterable)):
        raise TypeError(f"argv: expected a list of strings (the arguments after the program name), got "
                        f"{type(argv).__name__}")
    words = None if argv is None else list(argv)
    if words is not None and not all(isinstance(w, str) for w in words):
        raise TypeError("argv: expected a list of strings, got " + ", ".join(sorted({type(w).__name__ for w in words
                                                                                      if not isinstance(w, str)})))
    return run(parser.parse_args(words))
