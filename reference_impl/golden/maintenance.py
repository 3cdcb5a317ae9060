"""Keeping the fixtures honest: the sha256 manifest, the regenerate-and-diff
of derived values, and the canonical JSON text the files are written in."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import numpy as np

from .. import engine
from .._validate import check_bool
from ..accuracy import ops as tolerances
from .files import (
    MANIFEST_FILE,
    Directory,
    FixtureError,
    ManifestError,
    fixtures_dir,
    hashed_files,
    read_bytes,
    read_json,
    writable,
)
from .loader import load_fixtures
from .model import DTYPE, Entry
from .replay import REFERENCE, execute, input_values, model_tolerances, passes_of, quantity_key, read_quantity

__all__ = [
    "UPDATE",
    "Drift",
    "manifest_problems",
    "check_manifest",
    "write_manifest",
    "derived_drift",
    "regenerate_derived",
    "dumps",
]

UPDATE = "python -m reference_impl.golden update-manifest"


def _digest(file: Traversable) -> str:
    # Line endings are normalised so that a checkout with CRLF conversion
    # still matches; any other byte change is an edit.
    return hashlib.sha256(read_bytes(file).replace(b"\r\n", b"\n")).hexdigest()


def manifest_problems(directory: Directory = None) -> list[str]:
    """Every disagreement between the fixture files and ``MANIFEST.json``,
    each naming the file (empty when all agree)."""
    folder = fixtures_dir(directory)
    mfile = folder / MANIFEST_FILE
    if not mfile.is_file():
        return [f"{MANIFEST_FILE}: missing; create it with: {UPDATE}"]
    try:
        manifest = read_json(mfile)
        if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
            raise ValueError("expected an object with a 'files' object")
        recorded = {str(k): v for k, v in manifest["files"].items()}
        if manifest.get("algorithm") != "sha256":
            return [f"{MANIFEST_FILE}: algorithm: expected 'sha256', got {manifest.get('algorithm')!r}"]
    except (FixtureError, ValueError) as e:
        return [f"{MANIFEST_FILE}: unreadable ({e}); rewrite it with: {UPDATE}"]
    problems = []
    present = {f.name: f for f in hashed_files(directory)}
    digests: dict[str, str] = {}
    for name, file in present.items():
        try:
            digests[name] = _digest(file)
        except FixtureError as e:
            problems.append(str(e))
    for name in sorted(set(recorded) | set(present)):
        if name in present and name not in digests:
            continue  # unreadable: reported above
        if name not in present:
            problems.append(f"{name}: listed in {MANIFEST_FILE} but missing from the fixtures")
        elif name not in recorded:
            problems.append(f"{name}: not listed in {MANIFEST_FILE}; if it is meant to ship, run: {UPDATE}")
        elif digests[name] != recorded[name]:
            problems.append(
                f"{name}: content differs from {MANIFEST_FILE} (sha256 {digests[name][:12]}..., "
                f"recorded {str(recorded[name])[:12]}...); a fixture must not change silently -- if the edit "
                f"is intended, run: {UPDATE}"
            )
    return problems


def check_manifest(directory: Directory = None) -> None:
    """Raise :class:`ManifestError` naming every file that differs from ``MANIFEST.json``."""
    problems = manifest_problems(directory)
    if problems:
        raise ManifestError("fixture files do not match the manifest:\n  " + "\n  ".join(problems))


def write_manifest(directory: Directory = None) -> Path:
    """Rewrite ``MANIFEST.json`` from the files as they are (on purpose only)."""
    folder = writable(directory)
    files = {f.name: _digest(f) for f in hashed_files(folder)}
    manifest = {
        "algorithm": "sha256",
        "note": "sha256 of every file in this folder (CRLF read as LF). Rewrite only on purpose, with: " + UPDATE,
        "files": files,
    }
    path = folder / MANIFEST_FILE
    path.write_text(dumps(manifest), encoding="utf-8", newline="\n")
    return path


# =========================================================================== derived values


@dataclass(frozen=True)
class Drift:
    """A stored derived number against the one the reference computes now."""

    file: str
    entry_id: str
    field: str
    """JSON path of the stored value, e.g. ``entries[3].expected[1].value``."""
    stored: np.ndarray
    recomputed: np.ndarray
    within_tolerance: bool
    detail: str

    def describe(self) -> str:
        state = "within" if self.within_tolerance else "BEYOND"
        return (f"{self.file}: {self.field} ({self.entry_id}): recomputed value differs, {state} tolerance: "
                f"{self.detail}")


def _derived_input_tolerance(value: np.ndarray) -> np.ndarray:
    # one elementary-function evaluation per element (the only derivation is log)
    u = tolerances.unit_roundoff(DTYPE)
    return np.asarray(tolerances.IMPLEMENTATIONS * (tolerances.ELEMENTARY_ULPS * u * np.abs(value)
                                                    + float(np.finfo(DTYPE).tiny)))


def _recompute(entry: Entry, from_stored_inputs: bool) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """(derived input index -> value, derived expectation index -> value)."""
    values = input_values(entry, recompute_derived=True)
    new_inputs = {j: values[i.name] for j, i in enumerate(entry.inputs) if i.origin == "derived"}
    run_values = input_values(entry) if from_stored_inputs else values
    passes = passes_of(entry)
    trace = execute(entry, run_values, REFERENCE, passes)
    new_expected = {e.index: read_quantity(trace, quantity_key(e, passes), entry)
                    for e in entry.expected if e.origin == "derived"}
    return new_inputs, new_expected


def _same_bits(stored: np.ndarray, new: np.ndarray) -> bool:
    """Equal values with equal signs of zero (``array_equal`` has -0.0 == 0.0)."""
    return stored.shape == new.shape and np.array_equal(stored, new) and np.array_equal(
        np.signbit(stored), np.signbit(new))


def derived_drift(directory: Directory = None, *, all_changes: bool = False) -> list[Drift]:
    """Recompute every derived number through the reference and diff it
    against the stored one (regenerate-and-diff). Returns the differences
    beyond the error model, or every bitwise change with ``all_changes``.

    Derived expectations are recomputed from the stored inputs, so that a
    drift is attributed to the value where it appears."""
    all_changes = check_bool(all_changes, "all_changes")
    drifts = []
    for ff in load_fixtures(directory):
        for i, entry in enumerate(ff.entries):
            new_inputs, new_expected = _recompute(entry, from_stored_inputs=True)
            model = model_tolerances(entry) if new_expected else {}
            passes = passes_of(entry)
            pairs: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []
            for j, v in new_inputs.items():
                stored = entry.inputs[j].value
                assert stored is not None
                pairs.append((f"entries[{i}].inputs[{j}].value", stored, v, _derived_input_tolerance(v)))
            for k, v in new_expected.items():
                e = entry.expected[k]
                tol = model[quantity_key(e, passes)]
                pairs.append((f"entries[{i}].expected[{k}].value", np.asarray(e.value), v, tol))
            for where, stored, new, tol in pairs:
                c = engine.compare(new, stored, tol, DTYPE, model="error model of the recomputation")
                if (not c.ok) or (all_changes and not _same_bits(stored, new)):
                    drifts.append(Drift(ff.name, entry.id, where, stored, new, c.ok, c.describe()))
    return drifts


def _to_json(value: np.ndarray) -> Any:
    return np.asarray(value, dtype=DTYPE).tolist()


def regenerate_derived(directory: Directory = None, *, write: bool = False) -> list[Drift]:
    """Recompute every derived number (derived inputs first, then the derived
    expected values from them). Returns every change; with ``write`` the
    files are rewritten, after which the manifest must be updated on purpose."""
    write = check_bool(write, "write")  # a truthy "no" must not rewrite files
    folder = fixtures_dir(directory)
    changes = []
    for ff in load_fixtures(directory):
        raw = ff.raw
        touched = False
        for i, entry in enumerate(ff.entries):
            new_inputs, new_expected = _recompute(entry, from_stored_inputs=False)
            recomputed = [("inputs", j, entry.inputs[j].value, v) for j, v in new_inputs.items()]
            recomputed += [("expected", k, entry.expected[k].value, v) for k, v in new_expected.items()]
            for part, j, value, v in recomputed:
                stored = np.asarray(value)
                if not _same_bits(stored, v):
                    changes.append(Drift(ff.name, entry.id, f"entries[{i}].{part}[{j}].value", stored, v, True,
                                         f"stored {stored.tolist()}, recomputed {v.tolist()}"))
                    raw["entries"][i][part][j]["value"] = _to_json(v)
                    touched = True
        if write and touched:
            path = writable(folder) / ff.name
            path.write_text(dumps(raw), encoding="utf-8", newline="\n")
    return changes


# =========================================================================== canonical JSON


def _flat(x: Any) -> bool:
    return not isinstance(x, dict) and (not isinstance(x, list) or all(_flat(v) for v in x))


def dumps(obj: Any) -> str:
    """The canonical text of a fixture file: two-space indentation, arrays of
    numbers on one line (so that a changed number is a one-line diff), floats
    in their shortest round-tripping form, a final newline."""

    def enc(x: Any, depth: int) -> str:
        pad, inner = "  " * depth, "  " * (depth + 1)
        if isinstance(x, dict):
            if not x:
                return "{}"
            one_line = json.dumps(x, ensure_ascii=False, allow_nan=False)
            if all(_flat(v) or v == {} or (isinstance(v, dict) and all(_flat(w) for w in v.values()))
                   for v in x.values()) and len(one_line) + len(inner) <= 118:
                return one_line
            body = ",\n".join(f"{inner}{json.dumps(k, ensure_ascii=False)}: {enc(v, depth + 1)}" for k, v in x.items())
            return "{\n" + body + "\n" + pad + "}"
        if isinstance(x, list):
            one_line = json.dumps(x, ensure_ascii=False, allow_nan=False)
            if _flat(x) and (len(one_line) + len(inner) <= 118 or all(not isinstance(v, str) for v in x)):
                return one_line
            if not x:
                return "[]"
            return "[\n" + ",\n".join(inner + enc(v, depth + 1) for v in x) + "\n" + pad + "]"
        return json.dumps(x, ensure_ascii=False, allow_nan=False)

    try:
        return enc(obj, 0) + "\n"
    except (TypeError, ValueError, RecursionError) as e:  # not JSON data: an ndarray, NaN, a cycle
        kind = TypeError if isinstance(e, TypeError) else ValueError
        raise kind(f"obj: not JSON data a fixture file can hold ({type(e).__name__}: {e})") from None

