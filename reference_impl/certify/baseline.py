"""``certify --baseline``: what moved since an earlier certificate.

The file is checked before the run (a regular file, bounded size, nesting
and numerals, the shape of a certificate), so a bad baseline costs nothing.

Rows match on their keys: section, subject, backend, mode, device and dtype;
a row of a certificate written before rows had a mode or a device ran in
its framework's usual mode (torch eager, jax jitted) on the ``cpu``. The two
runs compare on the rows they share; the others are listed as new or gone,
counted by framework, mode and dtype.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import bounded_json
from .modes import RowKey, row_key
from .summary import DEFAULT_DEVICE, mode_of, mode_suffix
from .tasks import CertRow

__all__ = ["UsageError", "load_baseline", "compare_baseline", "baseline_text", "MAX_BASELINE_BYTES", "MAX_DEPTH",
           "row_key", "key_label"]


class UsageError(Exception):
    """A usage or environment problem: exit code 2, with this message."""


def _f(v: float, spec: str = ".2e") -> str:
    if isinstance(v, float) and math.isnan(v):
        return "-"
    return format(v, spec)


def _ratio_of(d: dict[str, Any]) -> float:
    try:
        return float(d.get("worst_ratio", "nan"))
    except (TypeError, ValueError):
        return float("nan")


MAX_BASELINE_BYTES = 64 * 2**20
"""A certificate of every row with full counterexamples is a few MB."""
MAX_DEPTH = 64
"""A certificate nests a handful of levels; deeper JSON is not one."""
MAX_NUMBER_DIGITS = 400
"""Longest numeral, in characters, accepted before the JSON parser converts it."""
_ROW_KEYS = ("section", "subject", "backend", "dtype")
_OPTIONAL_KEYS = ("mode", "device")
"""Keys that rows carry since certify ran compiled code and devices; older certificates lack them."""

def key_label(key: RowKey) -> str:
    """``op / relu / torch / float32``, with the mode and device where they are not the usual mode and ``cpu``."""
    section, subject, backend, dtype, mode, device = key
    return " / ".join([section, subject, backend, *([mode] if mode_suffix(backend, mode) else []),
                       *([device] if device != DEFAULT_DEVICE else []), dtype])


def _group(key: RowKey) -> str:
    _, _, backend, dtype, mode, device = key
    return " ".join([backend if device == DEFAULT_DEVICE else f"{backend} ({device})", mode, dtype])


def load_baseline(path: Path) -> dict[str, Any]:
    """Read an earlier ``--json`` certificate; :class:`UsageError` naming the
    file and the problem when it is not one. Checked before any row runs:
    a regular file, at most :data:`MAX_BASELINE_BYTES`, nesting at most
    :data:`MAX_DEPTH`, numerals of at most :data:`MAX_NUMBER_DIGITS` characters
    (:mod:`reference_impl.bounded_json`),
    rows with string keys, a dict ``environment``."""
    try:
        data = bounded_json.read_json(Path(path), max_bytes=MAX_BASELINE_BYTES, max_depth=MAX_DEPTH,
                                      max_number_chars=MAX_NUMBER_DIGITS)
    except bounded_json.JSONLimitError as e:
        raise UsageError(f"--baseline: {path}: {e}; give a certificate written by --json") from None
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        raise UsageError(f"--baseline: {path} is not a certificate written by --json (no 'rows' list)")
    for i, r in enumerate(data["rows"]):
        if not isinstance(r, dict) or not set(_ROW_KEYS) <= set(r):
            raise UsageError(f"--baseline: {path}: rows[{i}] lacks section/subject/backend/dtype")
        if not all(isinstance(r[k], str) for k in _ROW_KEYS):
            raise UsageError(f"--baseline: {path}: rows[{i}]: section/subject/backend/dtype must be strings")
        if not all(isinstance(r.get(k, ""), str) for k in _OPTIONAL_KEYS):
            raise UsageError(f"--baseline: {path}: rows[{i}]: mode/device must be strings where present")
    for name in ("environment", "settings"):
        if not isinstance(data.get(name, {}), dict):
            raise UsageError(f"--baseline: {path}: '{name}' is a {type(data[name]).__name__}, not an object")
    return data


SAMPLING_SETTINGS = ("seed", "profile", "max_examples")
"""Settings that decide which examples are drawn: when they differ between
two runs, the rows saw different inputs and a change of error is sampling."""


def compare_baseline(old: dict[str, Any], new_rows: Sequence[CertRow], new_env: dict[str, Any],
                     path: str = "", new_settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """What moved between ``old`` (a loaded certificate) and this run:
    status changes, rows added or removed (by :func:`row_key`; counted by
    framework, mode and dtype), version changes, and every shared row ranked
    by how far its error/tolerance ratio moved (in decades; ratios below 1e-6
    of the tolerance count as 1e-6, i.e. no measurable error, so that exact
    zeros rank sensibly)."""
    floor = 1e-6
    old_rows = {row_key(r): r for r in old["rows"]}
    new_map = {row_key(r): r for r in new_rows}
    changes = []
    for key, nr in new_map.items():
        orow = old_rows.get(key)
        if orow is None:
            continue
        o_ratio, n_ratio = _ratio_of(orow), nr.worst_ratio
        if math.isnan(o_ratio) or math.isnan(n_ratio):
            decades = float("nan")  # a row without a ratio (a golden replay): only its status can change
        elif math.isinf(o_ratio) or math.isinf(n_ratio):
            decades = 0.0 if o_ratio == n_ratio else math.copysign(float("inf"), n_ratio - o_ratio)
        else:
            decades = math.log10(max(n_ratio, floor)) - math.log10(max(o_ratio, floor))
        changes.append({
            "section": key[0], "subject": key[1], "backend": key[2], "dtype": key[3], "mode": key[4],
            "device": key[5], "row": key_label(key),
            "old_status": orow.get("status"), "new_status": nr.status,
            "old_ratio": o_ratio, "new_ratio": n_ratio, "decades": decades,
            "old_rel": orow.get("worst_rel_error"), "new_rel": nr.worst_rel_error,
        })
    status_changed = [c for c in changes if c["old_status"] != c["new_status"]]
    ranked = sorted((c for c in changes if not math.isnan(c["decades"])), key=lambda c: -abs(c["decades"]))
    env_old = old.get("environment", {}) or {}
    versions = {k: [env_old.get(k), new_env.get(k)] for k in ("python", "numpy", "torch", "jax", "jaxlib", "optax",
                                                                "hypothesis", "platform")
                if env_old.get(k) != new_env.get(k)}
    old_settings = old.get("settings", {}) or {}
    sampling = {k: [old_settings.get(k), (new_settings or {}).get(k)] for k in SAMPLING_SETTINGS
                if new_settings is not None and old_settings.get(k) != new_settings.get(k)}
    added = [k for k in new_map if k not in old_rows]
    removed = [k for k in old_rows if k not in new_map]
    return {
        "path": path,
        "created": old.get("created"),
        "settings_changed": sampling,
        "versions_changed": versions,
        "status_changed": status_changed,
        "ranked": ranked,
        "shared": len(changes),
        "added": [key_label(k) for k in added],
        "removed": [key_label(k) for k in removed],
        "added_by_group": _count(added),
        "removed_by_group": _count(removed),
    }


def _count(keys: Sequence[RowKey]) -> dict[str, int]:
    out: dict[str, int] = {}
    for k in keys:
        out[_group(k)] = out.get(_group(k), 0) + 1
    return out


def baseline_text(b: dict[str, Any], top: int = 10) -> str:
    out = [f"Changes since the baseline {b['path']} ({b.get('created')}):"]
    if b.get("settings_changed"):
        out.append("  NOTE: the two runs drew different examples ("
                   + "; ".join(f"{k} {o} -> {n}" for k, (o, n) in b["settings_changed"].items())
                   + "): changes in error below are sampling, not a change of the code")
    if b["versions_changed"]:
        out.append("  versions: " + "; ".join(f"{k} {o} -> {n}" for k, (o, n) in b["versions_changed"].items()))
    else:
        out.append("  versions: unchanged")
    if "shared" in b:
        out.append(f"  compared on the {b['shared']} rows both runs have; {len(b['added'])} new, "
                   f"{len(b['removed'])} gone")
    for c in b["status_changed"]:
        out.append(f"  STATUS {_name(c)}: {c['old_status']} -> {c['new_status']}")
    moved = [c for c in b["ranked"] if float(c["decades"]) != 0.0]
    if not moved and not b["status_changed"] and not b["added"] and not b["removed"]:
        out.append("  no changes")
        return "\n".join(out)
    out.append(f"  largest changes in error/tolerance (top {min(top, len(moved))} of {len(b['ranked'])} rows; "
               f"{len(moved)} moved):")
    for c in moved[:top]:
        d = float(c["decades"])
        arrow = "up" if d > 0 else ("down" if d < 0 else "same")
        out.append(f"    {_name(c)}: {_f(float(c['old_ratio']), '.3g')} -> {_f(float(c['new_ratio']), '.3g')} "
                   f"({arrow} {abs(d):.2f} decades)")
    for what, title in (("added", "new rows"), ("removed", "rows gone")):
        if b[what]:
            by_group = b.get(f"{what}_by_group") or {}
            counted = "; ".join(f"{g}: {n}" for g, n in by_group.items())
            out.append(f"  {title}: {len(b[what])}" + (f" ({counted})" if counted else "") + " -- "
                       + ", ".join(b[what][:5]) + (", ..." if len(b[what]) > 5 else ""))
    return "\n".join(out)


def _name(c: dict[str, Any]) -> str:
    device = c.get("device", DEFAULT_DEVICE)
    against = c["backend"] if device == DEFAULT_DEVICE else f"{c['backend']} ({device})"
    return f"{c['section']} {c['subject']} vs {against}{mode_suffix(c['backend'], mode_of(c))} {c['dtype']}"
