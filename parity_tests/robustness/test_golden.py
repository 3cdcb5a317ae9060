"""Robustness of the golden fixture loader and its command line against
hostile files: special files, huge or deeply nested JSON, absurd numbers and
shapes, identifiers with trailing newlines, and random mutations of a real
fixture. The contract: a :class:`golden.FixtureError` (a ``ValueError``)
naming the file, or a loaded file; the command line exits 2 with one line on
a usage problem; nothing hangs or allocates without bound."""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reference_impl import golden

PACKAGED = Path(str(golden.fixtures_dir()))
DOC_002 = json.loads((PACKAGED / "doc_002.json").read_text(encoding="utf-8"))
SCHEMA = golden.load_schema()


def _write(folder: Path, data: Any, name: str = "doc_002.json") -> Path:
    path = folder / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _fails(path: Path, *fragments: str) -> str:
    started = time.perf_counter()
    with pytest.raises(golden.FixtureError) as info:
        golden.load_file(path, SCHEMA)
    assert time.perf_counter() - started < 5.0
    message = str(info.value)
    assert message.startswith(f"{path.name}: "), message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message}"
    return message


# --------------------------------------------------------------------------- special and oversized files


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this platform")
def test_a_fifo_is_refused_without_opening_it(tmp_path: Path) -> None:
    fifo = tmp_path / "doc_002.json"
    os.mkfifo(fifo)
    _fails(fifo, "not a regular file")


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_dev_zero_is_refused() -> None:
    _fails(Path("/dev/zero"), "not a regular file")
    with pytest.raises(golden.FixtureError, match=r"^zero: not a regular file"):
        golden.load_file("/dev/zero")  # the file is named before a schema beside it is looked for


def test_a_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "doc_002.json"
    folder.mkdir()
    _fails(folder, "a directory, not a regular file")


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    _fails(tmp_path / "doc_002.json", "cannot be read")


def test_an_oversized_file_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "doc_002.json"
    path.write_bytes(b" " * (golden.MAX_FILE_BYTES + 1))
    _fails(path, "more than the limit")


def test_deep_nesting_is_refused_without_recursion_error(tmp_path: Path) -> None:
    path = tmp_path / "doc_002.json"
    path.write_text("[" * 10**5 + "]" * 10**5, encoding="utf-8")
    _fails(path, "nested 100000 deep")


def test_brackets_inside_strings_do_not_count_as_nesting(tmp_path: Path) -> None:
    data = copy.deepcopy(DOC_002)
    data["entries"][1]["description"] = "[" * 500 + '"{' * 10
    _write(tmp_path, data)
    golden.load_file(tmp_path / "doc_002.json", SCHEMA)


@pytest.mark.parametrize(("literal", "fragment"), [
    ("1" * 5000, "5000 characters"),
    ("1e400", "beyond the range of float64"),
    ("-1e999", "beyond the range of float64"),
    ("0." + "0" * 100 + "1", "characters"),
])
def test_absurd_number_literals_are_refused(tmp_path: Path, literal: str, fragment: str) -> None:
    text = json.dumps(DOC_002).replace('"schema_version": 1', f'"schema_version": {literal}', 1)
    path = tmp_path / "doc_002.json"
    path.write_text(text, encoding="utf-8")
    _fails(path, fragment)


def test_decimals_of_400_is_refused_without_overflow_error(tmp_path: Path) -> None:
    data = copy.deepcopy(DOC_002)
    data["entries"][1]["expected"][0]["decimals"] = 400
    _fails(_write(tmp_path, data), "entries[1].expected[0].decimals")


def test_a_placeholder_of_20000_by_20000_is_refused_before_allocation(tmp_path: Path) -> None:
    data = copy.deepcopy(DOC_002)
    entry = data["entries"][2]
    placeholder = next(i for i, x in enumerate(entry["inputs"]) if x["origin"] == "placeholder")
    entry["inputs"][placeholder]["shape"] = [20000, 20000]
    _fails(_write(tmp_path, data), f"entries[2].inputs[{placeholder}].shape", "400000000 elements")


def test_a_fixture_id_with_a_trailing_newline_fails(tmp_path: Path) -> None:
    data = copy.deepcopy(DOC_002)
    data["entries"][1]["id"] += "\n"
    _fails(_write(tmp_path, data), "entries[1].id", "not a valid entry-id")


@pytest.mark.parametrize("field", ["name", "document"])
def test_identifier_checks_are_bounded(tmp_path: Path, field: str) -> None:
    data = copy.deepcopy(DOC_002)
    hostile = "a" * 50_000 + "!"  # the kind of input that makes a backtracking pattern explode
    if field == "name":
        data["entries"][1]["inputs"][0]["name"] = hostile
        where = "entries[1].inputs[0].name"
    else:
        data["document"] = hostile
        where = "document"
    _fails(_write(tmp_path, data), where, "not a valid")


# --------------------------------------------------------------------------- random mutations of a real fixture

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


ALL_PATHS = [p for p in _paths(DOC_002) if p]


@settings(deadline=5000, max_examples=50, suppress_health_check=[HealthCheck.too_slow])
@given(where=st.sampled_from(ALL_PATHS), value=JSON_VALUES, delete=st.booleans())
def test_a_mutated_fixture_is_refused_naming_the_file_or_loads(tmp_path_factory: pytest.TempPathFactory,
                                                               where: tuple[Any, ...], value: Any,
                                                               delete: bool) -> None:
    data = copy.deepcopy(DOC_002)
    node = data
    for key in where[:-1]:
        node = node[key]
    if delete:
        del node[where[-1]]
    else:
        node[where[-1]] = value
    folder = tmp_path_factory.mktemp("mutated")
    path = _write(folder, data)
    try:
        loaded = golden.load_file(path, SCHEMA)
    except golden.FixtureError as e:
        message = str(e)
        assert message.startswith("doc_002.json: "), message
        return
    for entry in loaded.entries:  # what loads must also replay or say why not
        try:
            outcomes = golden.replay(entry)
        except golden.ReplayError as e:
            message = str(e)
            assert entry.id in message, message
            continue
        assert all(isinstance(o.ok, bool) for o in outcomes)


# --------------------------------------------------------------------------- manifest and command line


def test_a_special_file_in_the_folder_is_a_manifest_problem_not_a_hang(tmp_path: Path) -> None:
    for f in PACKAGED.glob("*.json"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "doc_002.json").unlink()
    (tmp_path / "doc_002.json").mkdir()
    problems = golden.manifest_problems(tmp_path)
    assert any(p.startswith("doc_002.json: a directory") for p in problems), problems


def test_verify_of_a_missing_folder_exits_2_with_one_line() -> None:
    r = subprocess.run([sys.executable, "-m", "reference_impl.golden", "verify", "--dir", "/nonexistent"],
                       capture_output=True, text=True, check=False, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip() == "golden verify: --dir /nonexistent: not a folder of fixture files"
    assert r.stdout == ""


def test_a_parent_parser_mounts_the_golden_commands(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    parser = argparse.ArgumentParser(prog="reference-impl")
    sub = parser.add_subparsers(dest="command", required=True)
    golden.add_arguments(sub.add_parser("golden"))
    assert golden.run(parser.parse_args(["golden", "verify"])) == 0
    assert capsys.readouterr().out.startswith("golden fixtures verified: 5 files")
    assert golden.run(parser.parse_args(["golden", "update-manifest", "--dir", str(tmp_path / "nope")])) == 2
    assert capsys.readouterr().err.count("\n") == 1
    with pytest.raises(SystemExit) as info:
        parser.parse_args(["golden", "unknown-command"])
    assert info.value.code == 2


def test_library_loaders_name_a_missing_directory() -> None:
    with pytest.raises(golden.FixtureError, match=r"^directory: '/nonexistent' is not a folder of fixture files"):
        golden.load_fixtures("/nonexistent")


# --------------------------------------------------------------------------- a fixture folder's own schema


def _folder_with_schema(folder: Path, schema: Any) -> Path:
    for f in PACKAGED.glob("*.json"):
        (folder / f.name).write_bytes(f.read_bytes())
    (folder / golden.SCHEMA_FILE).write_text(json.dumps(schema), encoding="utf-8")
    return folder


HOSTILE_SCHEMAS = {
    # a $ref cycle: jsonschema recursed until RecursionError in load_file, entries and verify
    "ref-cycle": {"$schema": "https://json-schema.org/draft/2020-12/schema", "$ref": "#/$defs/a",
                  "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}},
    # a backtracking pattern: 40 characters took 17.7 s in verify
    "exponential-pattern": {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
                            "properties": {"document": {"type": "string", "pattern": "^(0|00)+$"}}},
    # a $ref to an address: jsonschema's default registry would fetch it
    "remote-ref": {"$schema": "https://json-schema.org/draft/2020-12/schema",
                   "$ref": "https://example.invalid/schema.json"},
    # the project's schema with one bound loosened
    "edited": {**SCHEMA, "required": ["document"]},
}


@pytest.mark.parametrize("kind", sorted(HOSTILE_SCHEMAS))
def test_a_folder_schema_other_than_the_projects_is_refused_naming_file_and_folder(tmp_path: Path, kind: str) -> None:
    folder = _folder_with_schema(tmp_path, HOSTILE_SCHEMAS[kind])
    data = copy.deepcopy(DOC_002)
    data["document"] = "0" * 40 + "!"  # what the pattern backtracks on
    _write(folder, data)
    for call in (lambda: golden.load_file(folder / "doc_002.json"), lambda: golden.entries(folder),
                 lambda: golden.load_schema(folder), lambda: golden.derived_drift(folder)):
        started = time.perf_counter()
        with pytest.raises(golden.FixtureError) as info:
            call()
        assert time.perf_counter() - started < 5.0
        message = str(info.value)
        assert message.startswith("schema.json: the schema in ") and str(folder) in message, message
        assert "not the project's own" in message, message


def test_verify_of_a_folder_with_a_ref_cycle_exits_1_with_the_problem_listed(tmp_path: Path) -> None:
    folder = _folder_with_schema(tmp_path, HOSTILE_SCHEMAS["ref-cycle"])
    r = subprocess.run([sys.executable, "-m", "reference_impl.golden", "verify", "--dir", str(folder)],
                       capture_output=True, text=True, check=False, timeout=120)
    assert r.returncode == 1, r.stderr[-2000:]
    assert "Traceback" not in r.stderr and "RecursionError" not in r.stderr, r.stderr[-2000:]
    assert f"schema.json: the schema in {folder} is not the project's own" in r.stderr


def test_a_copy_of_the_projects_schema_is_accepted_reformatted(tmp_path: Path) -> None:
    folder = _folder_with_schema(tmp_path, SCHEMA)  # json.dumps: other whitespace, the same schema
    assert golden.load_schema(folder) == SCHEMA
    assert golden.load_file(folder / "doc_002.json").document == "002"


@pytest.mark.parametrize(("schema", "exc", "fragment"), [
    ([], TypeError, "expected the mapping golden.load_schema() returns, or None, got list"),
    ("schema.json", TypeError, "got str"),
    ({"type": "object"}, ValueError, "not the project's fixture schema"),
    ({**SCHEMA, "$defs": {**SCHEMA["$defs"], "name": {"type": "string", "pattern": "^(a|aa)+$"}}}, ValueError,
     "not the project's fixture schema"),
])
def test_load_file_checks_its_schema_argument(schema: Any, exc: type[Exception], fragment: str) -> None:
    with pytest.raises(exc) as info:
        golden.load_file(PACKAGED / "doc_002.json", schema=schema)
    assert str(info.value).startswith("schema: ") and fragment in str(info.value), info.value
    assert golden.load_file(PACKAGED / "doc_002.json", schema=golden.load_schema()).document == "002"


# --------------------------------------------------------------------------- the golden API's own arguments


@pytest.mark.parametrize("path", [None, 123, 1.5, ["doc_002.json"], b"doc_002.json", object()])
def test_load_file_of_something_not_a_path_names_path(path: Any) -> None:
    with pytest.raises(TypeError, match=r"^path: expected a path \(str or os\.PathLike\) or an importlib"):
        golden.load_file(path)


@pytest.mark.parametrize("call", ["fixtures_dir", "fixture_files", "load_schema", "load_fixtures", "entries",
                                  "errata", "manifest_problems", "check_manifest", "write_manifest", "derived_drift",
                                  "regenerate_derived", "verify"])
@pytest.mark.parametrize("directory", [123, ["fixtures"], b"fixtures", object()])
def test_every_directory_argument_is_checked(call: str, directory: Any) -> None:
    with pytest.raises(TypeError, match=r"^directory: expected a path"):
        getattr(golden, call)(directory)


def test_an_empty_directory_string_is_not_the_current_folder() -> None:
    with pytest.raises(ValueError, match=r"^directory: an empty path"):
        golden.entries("")


ENTRY = golden.entries()[0]


@pytest.mark.parametrize("entry", [None, "002-relu-example", 3, {"id": "002-relu-example"}])
def test_replay_and_input_values_name_a_bad_entry(entry: Any) -> None:
    for call in (golden.replay, golden.input_values):
        with pytest.raises(TypeError, match=r"^entry: expected a golden Entry") as info:
            call(entry)
        if isinstance(entry, str):
            assert "golden.entries()" in str(info.value)


@pytest.mark.parametrize("backend", ["torch", object(), 3, type("OnlyForward", (), {"forward": lambda *a: None})()])
def test_replay_names_a_bad_backend_not_the_entrys_step(backend: Any) -> None:
    with pytest.raises(TypeError, match=r"^backend: expected an object with forward\(op, inputs, params\) and vjp") \
            as info:
        golden.replay(ENTRY, backend)
    assert "steps[" not in str(info.value)
    if backend == "torch":
        assert "get_backend('torch')" in str(info.value)


@pytest.mark.parametrize(("call", "argument"), [
    (lambda v: golden.regenerate_derived(write=v), "write"),
    (lambda v: golden.derived_drift(all_changes=v), "all_changes"),
    (lambda v: golden.input_values(ENTRY, recompute_derived=v), "recompute_derived"),
])
def test_flags_are_true_or_false_not_truthy(call: Any, argument: str) -> None:
    for value in ("no", 1, None):
        with pytest.raises(TypeError, match=rf"^{argument}: expected True or False"):
            call(value)


@pytest.mark.parametrize(("decimals", "exc"), [(None, TypeError), ("3", TypeError), (1.5, TypeError),
                                               (-1, ValueError), (True, TypeError)])
def test_half_unit_checks_decimals(decimals: Any, exc: type[Exception]) -> None:
    with pytest.raises(exc, match=r"^decimals: "):
        golden.half_unit(decimals)
    assert golden.half_unit(3) == 0.5 * 10.0**-3 and golden.half_unit(10**30) == 0.0


def test_entry_input_of_an_unknown_name_names_name() -> None:
    with pytest.raises(ValueError, match=r"^name: 'nope' is not one of \["):
        ENTRY.input("nope")
    with pytest.raises(ValueError, match=r"^name: "):
        ENTRY.input(np.zeros(3))  # type: ignore[arg-type]
    assert ENTRY.input(ENTRY.inputs[0].name) is ENTRY.inputs[0]


@pytest.mark.parametrize(("obj", "exc"), [(np.zeros(2), TypeError), (float("nan"), ValueError),
                                          ({"a": object()}, TypeError)])
def test_dumps_of_what_json_cannot_hold_names_obj(obj: Any, exc: type[Exception]) -> None:
    with pytest.raises(exc, match=r"^obj: not JSON data"):
        golden.dumps(obj)
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(ValueError, match=r"^obj: not JSON data"):
        golden.dumps(cycle)


def test_reference_backend_checks_its_arguments() -> None:
    x = (np.array([0.5, -1.0]),)
    for args, fragment in (((None, x, {}), r"^op: None is not one of"), (("gelu", x, {}), r"^op: 'gelu' is not one"),
                           (("relu", None, {}), r"^inputs: expected a tuple"),
                           (("relu", x, None), r"^params: expected a mapping")):
        with pytest.raises((TypeError, ValueError), match=fragment):
            golden.REFERENCE.forward(*args)
    np.testing.assert_array_equal(golden.REFERENCE.forward("relu", x, {}), [0.5, 0.0])


def test_command_line_functions_check_their_arguments() -> None:
    with pytest.raises(TypeError, match=r"^parser: expected an argparse\.ArgumentParser"):
        golden.add_arguments(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^args: expected the argparse\.Namespace"):
        golden.run(argparse.Namespace())
    with pytest.raises(TypeError, match=r"^argv: expected a list of strings"):
        golden.main(123)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^argv: expected a list of strings, got int"):
        golden.main(["verify", 3])  # type: ignore[list-item]


def test_a_path_with_a_nul_is_named_not_a_crash() -> None:
    with pytest.raises(golden.FixtureError, match=r"^doc\x00002\.json: cannot be read \(embedded null byte\)"):
        golden.load_file("doc\x00002.json")


def test_the_projects_schema_runs_no_regular_expression() -> None:
    """Only the project's schema runs (a folder's own is refused), so it alone
    decides which regular expressions meet a fixture's strings: none. An
    identifier format belongs in ``golden.files._FORMATS`` (a bounded
    fullmatch), never in a ``pattern`` that backtracks on hostile input."""
    def keywords(node: Any) -> set[str]:
        if isinstance(node, dict):
            return set(node) | {k for v in node.values() for k in keywords(v)}
        if isinstance(node, list):
            return {k for v in node for k in keywords(v)}
        return set()

    assert not keywords(SCHEMA) & {"pattern", "patternProperties"}
