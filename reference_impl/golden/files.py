"""Finding, reading and structurally validating the fixture files.

The files live in the repository's top-level ``fixtures/`` folder. A wheel
installs that folder as the package ``reference_impl.fixtures`` (pyproject's
``package-dir``); a source checkout or an editable install reads it where it
is, beside the ``reference_impl`` folder.

Everything read from disk is bounded before it is parsed: only regular files
(a FIFO, a device or a folder is refused before it is opened), at most
:data:`MAX_FILE_BYTES`, JSON nested at most :data:`MAX_DEPTH` deep, number
literals of at most :data:`MAX_NUMBER_CHARS` characters and finite. The
structure is checked with ``jsonschema`` (draft 2020-12) against
``schema.json``; the identifier formats the schema names are checked here
with ``fullmatch`` on length-bounded strings.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
import re
from collections.abc import Mapping
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry
from referencing.exceptions import Unresolvable

from .. import bounded_json

__all__ = [
    "SCHEMA_FILE",
    "MANIFEST_FILE",
    "SCHEMA_VERSION",
    "MAX_FILE_BYTES",
    "MAX_DEPTH",
    "MAX_NUMBER_CHARS",
    "Directory",
    "FixtureError",
    "ManifestError",
    "ReplayError",
    "fixtures_dir",
    "fixture_files",
    "hashed_files",
    "writable",
    "read_json",
    "load_schema",
    "trusted_validator",
    "as_traversable",
    "validate_structure",
    "json_type",
    "short",
]

SCHEMA_FILE = "schema.json"
MANIFEST_FILE = "MANIFEST.json"
SCHEMA_VERSION = 1

MAX_FILE_BYTES = 1 << 20
"""Largest fixture, schema or manifest file read (1 MiB; the largest shipped fixture is under 30 KB)."""
MAX_DEPTH = 64
"""Deepest nesting of JSON arrays and objects read (the fixtures nest 7 deep)."""
MAX_NUMBER_CHARS = 40
"""Longest number literal read: 17 significant digits, a sign and an exponent fit many times over."""

Directory = Traversable | str | os.PathLike[str] | None


class FixtureError(ValueError):
    """A fixture file is malformed; the message names the file and the field."""


class ManifestError(RuntimeError):
    """Fixture files do not match ``MANIFEST.json``; the message names them."""


class ReplayError(RuntimeError):
    """An entry could not be evaluated (not a mismatch: a broken graph)."""


# =========================================================================== where the files are


def _packaged() -> Traversable:
    checkout = Path(__file__).resolve().parents[2]
    beside = checkout / "fixtures"
    # A source checkout (editable install, or the package on PYTHONPATH) reads
    # its own fixtures/, never those of another installed copy.
    if (checkout / "pyproject.toml").is_file() and (beside / SCHEMA_FILE).is_file():
        return beside
    return resources.files("reference_impl.fixtures")


def fixtures_dir(directory: Directory = None) -> Traversable:
    """The shipped fixture folder, or ``directory`` when given: a path (``str``
    or ``os.PathLike``) or a ``Traversable``; anything else is a
    ``TypeError``, and a directory that does not exist a
    :class:`FixtureError`, naming ``directory``."""
    if directory is None:
        return _packaged()
    folder = as_traversable(directory, "directory")
    try:
        found = folder.is_dir()
    except (OSError, ValueError):  # an unreadable parent; a NUL in a path
        found = False
    if not found:
        raise FixtureError(f"directory: {str(directory)!r} is not a folder of fixture files")
    return folder


def as_traversable(path: Any, name: str) -> Traversable:
    """``path`` (``str``, ``os.PathLike`` or ``Traversable``) as a
    ``Traversable``; anything else is a ``TypeError`` naming ``name``."""
    if isinstance(path, str) and not path:
        raise ValueError(f"{name}: an empty path (it would mean the current folder); pass '.' for that")
    if isinstance(path, (str, os.PathLike)):
        try:
            return Path(path)
        except TypeError:  # an os.PathLike whose __fspath__ gives bytes
            pass
    if isinstance(path, Traversable):
        return path
    raise TypeError(f"{name}: expected a path (str or os.PathLike) or an importlib.resources Traversable, got "
                    f"{type(path).__name__} {short_repr(path)}")


def short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def fixture_files(directory: Directory = None) -> list[Traversable]:
    """Every fixture file (``*.json`` except the schema and the manifest), by name."""
    folder = fixtures_dir(directory)
    found = [f for f in folder.iterdir() if f.name.endswith(".json") and f.name not in (SCHEMA_FILE, MANIFEST_FILE)]
    return sorted(found, key=lambda f: f.name)


def hashed_files(directory: Directory = None) -> list[Traversable]:
    """Files the manifest covers: the fixtures and the schema that constrains them."""
    folder = fixtures_dir(directory)
    return sorted((f for f in folder.iterdir() if f.name.endswith(".json") and f.name != MANIFEST_FILE),
                  key=lambda f: f.name)


def writable(directory: Directory) -> Path:
    folder = fixtures_dir(directory)
    if not isinstance(folder, Path):
        raise OSError(f"directory: the fixtures at {folder} are not in a plain folder; pass --dir with a copy")
    return folder


# =========================================================================== bounded reading


def read_bytes(file: Traversable) -> bytes:
    """The file's bytes, if it is a regular file of at most :data:`MAX_FILE_BYTES`."""
    try:
        return bounded_json.read_bytes(file, MAX_FILE_BYTES)
    except bounded_json.JSONLimitError as e:
        raise FixtureError(f"{file.name}: {e}") from None


def read_json(file: Traversable) -> Any:
    """Parse a fixture, schema or manifest file within the limits above;
    every problem is a :class:`FixtureError` naming the file."""
    try:
        return bounded_json.loads(read_bytes(file), max_depth=MAX_DEPTH, max_number_chars=MAX_NUMBER_CHARS)
    except bounded_json.JSONLimitError as e:
        raise FixtureError(f"{file.name}: {e}") from None


# =========================================================================== structure (jsonschema)

# Formats the schema names, each a bounded length and a fullmatch: a
# trailing newline does not pass (as it would with ``$`` and re.search).
_FORMATS = {
    "document-key": (3, re.compile(r"[0-9]{3}")),
    "identifier": (64, re.compile(r"[A-Za-z][A-Za-z0-9_]*")),
    "entry-id": (96, re.compile(r"[0-9]{3}(?:-[a-z0-9]+)+")),
    "erratum-id": (96, re.compile(r"[0-9]{3}-erratum(?:-[a-z0-9]+)+")),
}
_FORMAT_CHECKER = jsonschema.FormatChecker(formats=())


def _format(name: str) -> None:
    limit, pattern = _FORMATS[name]

    def check(value: object) -> bool:
        return not isinstance(value, str) or (len(value) <= limit and pattern.fullmatch(value) is not None)

    _FORMAT_CHECKER.checks(name)(check)


for _name in _FORMATS:
    _format(_name)


def _canonical_digest(schema: Any) -> str | None:
    """sha256 of ``schema`` as canonical JSON (keys sorted, no spaces), or
    ``None`` where it is not JSON data (a cycle, a non-string key, NaN)."""
    def plain(obj: Any) -> Any:
        if isinstance(obj, Mapping):
            return dict(obj)
        raise TypeError(f"{type(obj).__name__} is not JSON data")

    try:
        text = json.dumps(schema, sort_keys=True, separators=(",", ":"), allow_nan=False, default=plain)
    except (TypeError, ValueError, RecursionError):
        return None
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@functools.cache
def _project_schema() -> tuple[dict[str, Any], str, jsonschema.Draft202012Validator]:
    """The schema this package ships, checked against the draft 2020-12
    metaschema once; its canonical digest; and the one validator built from
    it. The validator's registry is empty and retrieves nothing, so a
    ``$ref`` can only point into the schema itself (jsonschema's default
    would fetch a remote ``$ref`` over the network)."""
    file = _packaged() / SCHEMA_FILE
    schema = read_json(file)
    if not isinstance(schema, dict):
        raise FixtureError(f"{SCHEMA_FILE}: (top level): a schema must be an object")
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as e:
        raise FixtureError(f"{SCHEMA_FILE}: {_where(e.absolute_path)}: not a valid JSON Schema: {e.message}") from None
    digest = _canonical_digest(schema)
    assert digest is not None  # parsed JSON is JSON data
    validator = jsonschema.Draft202012Validator(schema, format_checker=_FORMAT_CHECKER, registry=Registry())
    return schema, digest, validator


def load_schema(directory: Directory = None) -> dict[str, Any]:
    """The project's own ``schema.json`` (the one this package ships, valid
    draft 2020-12), as a new dict.

    With ``directory``, that folder's ``schema.json`` must be the same schema
    (the sha256 of its canonical JSON equal to the shipped one's); any other
    is a :class:`FixtureError` naming the file and the folder. A schema is
    code the loader runs, so none is taken from a fixture folder: a ``$ref``
    cycle recurses without end, a ``$ref`` to an address fetches it, and a
    ``pattern`` such as ``^(0|00)+$`` backtracks exponentially on a
    40-character string. Accepting only the project's own schema is also
    what keeps every pattern bounded: it has no ``pattern`` keyword, and the
    formats it names are matched here, each a ``fullmatch`` of a linear
    pattern on a length-bounded string (``_FORMATS``)."""
    schema, digest, _ = _project_schema()
    if directory is not None:
        folder = fixtures_dir(directory)
        theirs = read_json(folder / SCHEMA_FILE)
        if _canonical_digest(theirs) != digest:
            raise FixtureError(
                f"{SCHEMA_FILE}: the schema in {folder} is not the project's own (its sha256 differs from that of "
                "the schema.json reference_impl ships); a fixture folder must carry that schema unchanged, since "
                "the loader never runs a schema from a folder"
            )
    return copy.deepcopy(schema)


def trusted_validator(schema: Any, name: str = "schema") -> jsonschema.Draft202012Validator:
    """The validator of the project's schema, for ``schema`` ``None`` or a
    mapping equal to it (what :func:`load_schema` returns); any other
    argument is a ``TypeError`` / ``ValueError`` naming ``name``. The
    caller's mapping itself is never run (see :func:`load_schema`)."""
    _, digest, validator = _project_schema()
    if schema is None:
        return validator
    if not isinstance(schema, Mapping):
        raise TypeError(f"{name}: expected the mapping golden.load_schema() returns, or None, got "
                        f"{type(schema).__name__} {short_repr(schema)}")
    # Only the project's schema ever runs, and it has no ``pattern``: so no regular expression a caller or a
    # folder supplies is matched, and every format is one of ours (a bounded fullmatch, ``_FORMATS``).
    if _canonical_digest(schema) != digest:
        raise ValueError(f"{name}: not the project's fixture schema (the schema.json reference_impl ships); "
                         "pass None or golden.load_schema(): no other schema is run")
    return validator


def json_type(x: Any) -> str:
    if x is None:
        return "null"
    if isinstance(x, bool):
        return "boolean"
    if isinstance(x, int):
        return "integer"
    if isinstance(x, float):
        return "number"
    if isinstance(x, str):
        return "string"
    if isinstance(x, list):
        return "array"
    if isinstance(x, dict):
        return "object"
    return type(x).__name__


def short(x: Any) -> str:
    s = json.dumps(x, ensure_ascii=False)
    return s if len(s) <= 60 else s[:57] + "..."


def _where(path: Any) -> str:
    out = ""
    for key in path:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out


def _at(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _describe(error: jsonschema.ValidationError, file: str) -> str:
    """One validation error in the words of the loader: file, field, problem."""
    path = _where(error.absolute_path)
    where = path or "(top level)"
    x, kind, rule = error.instance, error.validator, error.validator_value
    if kind == "required":
        missing = next(k for k in rule if k not in x)
        return f"{file}: {_at(path, missing)}: required field is missing"
    if kind == "additionalProperties" and rule is False:
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(k for k in x if k not in allowed)[0]
        return f"{file}: {_at(path, extra)}: unknown field (allowed: {allowed})"
    if kind == "type":
        types = [rule] if isinstance(rule, str) else list(rule)
        return f"{file}: {where}: expected {' or '.join(types)}, got {json_type(x)} {short(x)}"
    if kind == "enum":
        return f"{file}: {where}: {short(x)} is not one of {rule}"
    if kind == "minLength" and rule == 1:
        return f"{file}: {where}: must not be empty"
    if kind == "minItems":
        return f"{file}: {where}: needs at least {rule} item(s), got {len(x)}"
    if kind == "format":
        limit, pattern = _FORMATS[rule]
        return (f"{file}: {where}: {short(x)} is not a valid {rule} (at most {limit} characters matching "
                f"{pattern.pattern} in full)")
    return f"{file}: {where}: {error.message[:200]}"


def validate_structure(raw: Any, schema: Mapping[str, Any] | None, file: str) -> None:
    """Check ``raw`` against the project's schema (``schema``: ``None`` or
    that schema, :func:`trusted_validator`); the first problem (jsonschema's
    most relevant) is a :class:`FixtureError` naming the file and the field."""
    validator = trusted_validator(schema)
    try:
        error = jsonschema.exceptions.best_match(validator.iter_errors(raw))
    except Unresolvable as e:
        raise FixtureError(f"{SCHEMA_FILE}: unresolvable $ref {e.ref!r} (used in {file})") from None
    if error is not None:
        raise FixtureError(_describe(error, file))
