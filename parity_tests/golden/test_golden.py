"""Golden fixtures: schema, manifest, regenerate-and-diff, and what they hold.

Malformed and tampered files are built from copies of the packaged fixtures
in ``tmp_path``; the packaged files are never written. The replay of every
entry through the reference, torch and jax is in ``test_golden_replay.py``;
the check of the fixtures against the documents' text in
``test_golden_sources.py``.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reference_impl import golden
from reference_impl.accuracy.ops import ELEMENTARY_ULPS, IMPLEMENTATIONS, forward_bound, unit_roundoff, vjp_bound
from reference_impl.engine.comparison import compare
from reference_impl.sources import SOURCES

U64 = unit_roundoff(np.float64)
DECIMAL_REPR = 4 * U64
"""A decimal tolerance read from JSON and the same decimal computed as
0.5 * 10**-d differ by a couple of roundings at most."""

PACKAGED = golden.fixtures_dir()
FILES = golden.load_fixtures()
ENTRIES = {e.id: e for ff in FILES for e in ff.entries}
RELU = "002-relu-example"


@pytest.fixture
def fixture_copy(tmp_path: Path) -> Path:
    dest = tmp_path / "fixtures"
    dest.mkdir()
    for f in PACKAGED.iterdir():
        if f.name.endswith(".json"):
            (dest / f.name).write_bytes(f.read_bytes())
    return dest


def _edit(folder: Path, name: str, change: Callable[[dict[str, Any]], None]) -> None:
    path = folder / name
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(golden.dumps(data), encoding="utf-8")


def _entry(data: dict[str, Any], entry_id: str) -> dict[str, Any]:
    return next(e for e in data["entries"] if e["id"] == entry_id)


def _index(data: dict[str, Any], entry_id: str) -> int:
    return next(i for i, e in enumerate(data["entries"]) if e["id"] == entry_id)


# =========================================================================== loading


def test_packaged_fixtures_cover_every_document() -> None:
    assert {ff.document for ff in FILES} == set(SOURCES)
    for ff in FILES:
        assert ff.name == f"doc_{ff.document}.json"
        assert ff.entries, f"{ff.name} has no entries"
        assert all(e.document == ff.document for e in ff.entries)


REPOSITORY = Path(__file__).resolve().parents[2]


def test_fixtures_live_in_the_top_level_folder_only() -> None:
    # A source checkout reads the repository's fixtures/; a wheel carries the
    # same files as the package reference_impl.fixtures (pyproject package-dir).
    import reference_impl

    names = {f.name for f in golden.fixture_files()}
    assert names == {p.name for p in (REPOSITORY / "fixtures").glob("doc_*.json")}
    assert golden.SCHEMA_FILE not in names and golden.MANIFEST_FILE not in names
    assert not list((REPOSITORY / "reference_impl").rglob("*.json")), "fixture files must live in fixtures/ only"
    if Path(reference_impl.__file__).resolve().parents[1] == REPOSITORY:  # run from the checkout
        assert Path(str(PACKAGED)).resolve() == REPOSITORY / "fixtures"
    else:  # against an installed wheel
        from importlib import resources

        assert str(PACKAGED) == str(resources.files("reference_impl.fixtures"))


def test_packaging_maps_the_fixtures_into_the_wheel() -> None:
    import tomllib

    config = tomllib.loads((REPOSITORY / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    assert config["package-dir"]["reference_impl.fixtures"] == "fixtures"
    assert "reference_impl.fixtures" in config["packages"]
    assert config["package-data"]["reference_impl.fixtures"] == ["*.json"]


def test_every_expected_number_says_where_it_comes_from() -> None:
    for e in ENTRIES.values():
        for x in e.expected:
            assert x.origin in ("document", "derived", "rule"), f"{e.id}: expected[{x.index}]"
            if x.origin == "document":
                assert x.decimals is not None and x.tolerance is not None
                want = 0.0 if x.tolerance_rule == "exact" else 0.5 * 10.0 ** -x.decimals
                assert x.tolerance == pytest.approx(want, rel=DECIMAL_REPR, abs=0.0), f"{e.id}: expected[{x.index}]"
            if x.origin == "derived":
                assert x.tolerance is None and x.decimals is None, f"{e.id}: a derived value has no printed precision"


def test_entries_without_checks_say_why() -> None:
    unchecked = [e for e in ENTRIES.values() if not e.expected]
    assert [e.id for e in unchecked] == ["002-gradient-descent-start"]
    for e in unchecked:
        assert e.unchecked and e.lost
        assert all(i.origin == "document" and i.value is not None for i in e.inputs)


# =========================================================================== malformed files

Mutation = Callable[[dict[str, Any]], None]


def _set(path: tuple[Any, ...], value: Any) -> Mutation:
    def change(data: dict[str, Any]) -> None:
        node: Any = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return change


def _delete(path: tuple[Any, ...]) -> Mutation:
    def change(data: dict[str, Any]) -> None:
        node: Any = data
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
    return change


def _both(*changes: Mutation) -> Mutation:
    def change(data: dict[str, Any]) -> None:
        for c in changes:
            c(data)
    return change


# doc_002.json, entries[1] is the relu example; every case names the field it breaks
MALFORMED = [
    ("missing-field", _delete(("entries", 1, "description")),
     ["entries[1].description", "required field is missing"]),
    ("wrong-type", _set(("entries", 1, "section"), 5), ["entries[1].section", "expected string, got integer"]),
    ("bool-is-not-a-number", _set(("entries", 1, "inputs", 0, "value"), True),
     ["entries[1].inputs[0].value", "got boolean"]),
    ("unknown-document-in-entry", _set(("entries", 1, "document"), "009"),
     ["entries[1].document", "unknown document '009'"]),
    ("unknown-document-of-file", _set(("document",), "009"), ["document", "unknown document '009'"]),
    ("expected-value-wrong-shape", _set(("entries", 1, "expected", 0, "value"), [0.93412086, 0.0, 0.07139904]),
     ["entries[1].expected[0].value", "shape (3,) does not match", "(4,)"]),
    ("expected-shape-disagrees-with-input", _set(("entries", 1, "expected", 1, "shape"), [3]),
     ["entries[1].expected[1].shape", "does not match the shape (4,) of input 'x'"]),
    ("input-value-wrong-shape", _set(("entries", 1, "inputs", 0, "value"), [0.93412086, -0.89987134]),
     ["entries[1].inputs[0].value", "shape (2,) does not match"]),
    ("ragged-value", _set(("entries", 1, "inputs", 0, "value"), [[1.0, 2.0], [3.0]]),
     ["entries[1].inputs[0].value", "ragged"]),
    ("hand-picked-tolerance", _set(("entries", 1, "expected", 0, "tolerance"), 1e-3),
     ["entries[1].expected[0].tolerance", "does not follow from the printed precision", "5e-09"]),
    ("decimals-disagree-with-value",
     _both(_set(("entries", 1, "expected", 0, "decimals"), 4), _set(("entries", 1, "expected", 0, "tolerance"), 5e-5)),
     ["entries[1].expected[0].decimals", "more than 4 decimals"]),
    ("derived-value-with-a-tolerance", _set(("entries", 1, "expected", 1, "tolerance"), 1e-12),
     ["entries[1].expected[1].tolerance", "must be null"]),
    ("unknown-field", _set(("entries", 1, "weights"), []), ["entries[1].weights", "unknown field"]),
    ("unknown-op", _set(("entries", 1, "steps", 0, "op"), "gelu"), ["entries[1].steps[0].op", "unknown op 'gelu'"]),
    ("unknown-parameter-value", _set(("entries", 1, "steps", 0, "params"), {"reduction": "sum"}),
     ["entries[1].steps[0].params.reduction", "relu has no parameter"]),
    ("undefined-variable", _set(("entries", 1, "steps", 0, "inputs"), ["nope"]),
     ["entries[1].steps[0].inputs[0]", "'nope' is not an input"]),
    ("wrong-arity", _set(("entries", 1, "steps", 0, "inputs"), ["x", "x"]),
     ["entries[1].steps[0].inputs", "relu takes 1 input"]),
    ("placeholder-with-a-value", _set(("entries", 2, "inputs", 0, "value"), [1.0, 2.0, 3.0]),
     ["entries[2].inputs[0].value", "a placeholder has no value"]),
    ("count-claimed-as-derived", _set(("entries", 2, "expected", 0, "origin"), "derived"),
     ["entries[2].expected[0].origin", "is read from the document, not derived"]),
    ("nothing-expected-and-no-reason", _set(("entries", 1, "expected"), []),
     ["entries[1].unchecked", "must say why"]),
    ("unknown-erratum-target", _set(("errata", 0, "entries"), ["002-no-such-entry"]),
     ["errata[0].entries[0]", "not an entry of this file"]),
    ("id-of-another-document", _set(("entries", 1, "id"), "003-relu-example"),
     ["entries[1].id", "must start with its document key '002'"]),
]


@pytest.mark.parametrize(("change", "fragments"), [pytest.param(c, f, id=n) for n, c, f in MALFORMED])
def test_malformed_file_names_file_and_field(fixture_copy: Path, change: Mutation, fragments: list[str]) -> None:
    # the copy starts byte-identical to the packaged file, which loads (FILES above)
    _edit(fixture_copy, "doc_002.json", change)
    with pytest.raises(golden.FixtureError) as info:
        golden.load_file(fixture_copy / "doc_002.json")
    message = str(info.value)
    assert message.startswith("doc_002.json: "), message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in: {message}"


def _schema_required() -> list[tuple[str, str]]:
    schema = json.loads((PACKAGED / golden.SCHEMA_FILE).read_text(encoding="utf-8"))
    return [(d, f) for d in ("entry", "input", "step", "expectation", "erratum")
            for f in schema["$defs"][d]["required"]]


# where an object of each definition sits in doc_002.json
_LOCATION = {"entry": ("entries", 1), "input": ("entries", 1, "inputs", 0), "step": ("entries", 1, "steps", 0),
             "expectation": ("entries", 1, "expected", 0), "erratum": ("errata", 0)}


@pytest.mark.parametrize(("definition", "name"), _schema_required())
def test_every_required_field_is_enforced(fixture_copy: Path, definition: str, name: str) -> None:
    loc = _LOCATION[definition]
    _edit(fixture_copy, "doc_002.json", _delete((*loc, name)))
    with pytest.raises(golden.FixtureError) as info:
        golden.load_file(fixture_copy / "doc_002.json")
    where = "".join(f"[{k}]" if isinstance(k, int) else ("." if i else "") + k for i, k in enumerate(loc))
    assert str(info.value) == f"doc_002.json: {where}.{name}: required field is missing"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ('{"schema_version": 1, "schema_version": 1}', "duplicate key 'schema_version'"),
        ('{"schema_version": NaN}', "NaN is not a JSON number"),
        ("[]", "(top level): expected object, got array"),
    ],
    ids=["invalid-json", "duplicate-key", "nan", "not-an-object"],
)
def test_unparsable_file_is_named(fixture_copy: Path, text: str, fragment: str) -> None:
    (fixture_copy / "doc_003.json").write_text(text, encoding="utf-8")
    with pytest.raises(golden.FixtureError, match=r"^doc_003\.json: ") as info:
        golden.load_fixtures(fixture_copy)
    assert fragment in str(info.value)


def test_entry_ids_are_unique_across_files(fixture_copy: Path) -> None:
    def clash(data: dict[str, Any]) -> None:
        data["entries"][0]["id"] = "002-relu-example"
        data["entries"][0]["document"] = "002"
        data["document"] = "002"
    _edit(fixture_copy, "doc_001.json", clash)
    with pytest.raises(golden.FixtureError, match=r"entry id '002-relu-example' is also used in doc_001\.json"):
        golden.load_fixtures(fixture_copy)


def test_an_edited_schema_is_refused_naming_the_schema_and_the_folder(fixture_copy: Path) -> None:
    golden.load_schema(fixture_copy)  # a byte-identical copy of the shipped schema is the project's own
    path = fixture_copy / golden.SCHEMA_FILE
    schema = json.loads(path.read_text(encoding="utf-8"))
    schema["$defs"]["entry"]["properties"]["id"]["maxLength"] = -1
    path.write_text(json.dumps(schema), encoding="utf-8")
    with pytest.raises(golden.FixtureError, match=r"^schema\.json: the schema in .* is not the project's own") as info:
        golden.load_fixtures(fixture_copy)
    assert str(fixture_copy) in str(info.value)


# =========================================================================== manifest


def test_packaged_fixtures_match_the_manifest() -> None:
    assert golden.manifest_problems() == []
    golden.check_manifest()


def test_tampered_value_fails_the_manifest_naming_the_file(fixture_copy: Path) -> None:
    path = fixture_copy / "doc_002.json"
    text = path.read_text(encoding="utf-8")
    assert text.count("0.63705336") >= 2
    path.write_text(text.replace("0.63705336]", "0.63705337]", 1), encoding="utf-8")
    with pytest.raises(golden.ManifestError) as info:
        golden.check_manifest(fixture_copy)
    message = str(info.value)
    assert "doc_002.json: content differs from MANIFEST.json" in message
    assert "python -m reference_impl.golden update-manifest" in message
    assert all(f"doc_{k}.json" not in message for k in ("000", "001", "003", "004")), message


def test_accepting_an_edit_takes_the_documented_command(fixture_copy: Path) -> None:
    # Changing a printed number and regenerating the manifest makes the
    # manifest pass -- and the replay then fails on the changed number.
    def change(data: dict[str, Any]) -> None:
        _entry(data, RELU)["expected"][0]["value"][3] = 0.63705337
    _edit(fixture_copy, "doc_002.json", change)
    assert golden.manifest_problems(fixture_copy)
    assert golden.main(["update-manifest", "--dir", str(fixture_copy)]) == 0
    assert golden.manifest_problems(fixture_copy) == []
    problems = golden.verify(fixture_copy)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"doc_002.json: {RELU}: expected[0] (value of y, origin document")
    assert "worst element (3,)" in problems[0] and "0.63705337" in problems[0]


def test_missing_and_unlisted_files_are_named(fixture_copy: Path) -> None:
    (fixture_copy / "doc_001.json").unlink()
    (fixture_copy / "doc_005.json").write_text("{}", encoding="utf-8")
    problems = golden.manifest_problems(fixture_copy)
    assert problems == [
        "doc_001.json: listed in MANIFEST.json but missing from the fixtures",
        "doc_005.json: not listed in MANIFEST.json; if it is meant to ship, run: "
        "python -m reference_impl.golden update-manifest",
    ]


def test_schema_is_covered_by_the_manifest(fixture_copy: Path) -> None:
    path = fixture_copy / golden.SCHEMA_FILE
    path.write_text(path.read_text(encoding="utf-8").replace('"minItems": 1', '"minItems": 0', 1), encoding="utf-8")
    assert [p.split(":")[0] for p in golden.manifest_problems(fixture_copy)] == [golden.SCHEMA_FILE]


def test_line_endings_do_not_count_as_an_edit(fixture_copy: Path) -> None:
    path = fixture_copy / "doc_004.json"
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    assert golden.manifest_problems(fixture_copy) == []


# =========================================================================== regenerate and diff

CE = "002-first-output-cross-entropy"
LOGITS = "002-first-output-logit-gradient"


def test_packaged_derived_values_do_not_drift() -> None:
    drifts = golden.derived_drift()
    assert drifts == [], "\n".join(d.describe() for d in drifts)


@pytest.mark.usefixtures("decimal_fallback")
def test_derived_values_have_the_same_bits_in_the_decimal_fallback(fixture_copy: Path) -> None:
    """Regenerated where ``longdouble`` is plain float64 (Windows, Apple
    silicon: the reference computes float64 in decimal), every derived value
    keeps the shipped bits, the signs of zeros included."""
    drifts = golden.derived_drift(fixture_copy, all_changes=True)
    assert drifts == [], "\n".join(d.describe() for d in drifts)


def test_drifted_derived_value_is_reported_and_regenerated(fixture_copy: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    original = (fixture_copy / "doc_002.json").read_bytes()
    data = json.loads(original)
    i = _index(data, CE)
    stored = data["entries"][i]["expected"][0]["value"]
    assert stored == pytest.approx(-math.log(0.29228018), rel=IMPLEMENTATIONS * (ELEMENTARY_ULPS + 2) * U64)

    def drift(d: dict[str, Any]) -> None:
        d["entries"][i]["expected"][0]["value"] = stored * (1 + 1e-12)
    _edit(fixture_copy, "doc_002.json", drift)

    drifts = golden.derived_drift(fixture_copy)
    assert [(d.file, d.entry_id, d.field, d.within_tolerance) for d in drifts] == [
        ("doc_002.json", CE, f"entries[{i}].expected[0].value", False)]
    assert golden.main(["verify", "--dir", str(fixture_copy)]) == 1
    err = capsys.readouterr().err
    assert f"doc_002.json: entries[{i}].expected[0].value ({CE}): recomputed value differs, BEYOND tolerance" in err
    assert "doc_002.json: content differs from MANIFEST.json" in err
    assert golden.main(["regenerate-derived", "--dir", str(fixture_copy)]) == 1  # a diff only: nothing written
    assert golden.derived_drift(fixture_copy)

    assert golden.main(["regenerate-derived", "--write", "--dir", str(fixture_copy)]) == 0
    # The canonical writer reproduces the shipped bytes, so the manifest agrees again.
    assert (fixture_copy / "doc_002.json").read_bytes() == original
    assert golden.verify(fixture_copy) == []


def test_drifted_derived_input_is_reported(fixture_copy: Path) -> None:
    def drift(d: dict[str, Any]) -> None:
        _entry(d, LOGITS)["inputs"][1]["value"][0] = -1.2300424162
    _edit(fixture_copy, "doc_002.json", drift)
    drifts = golden.derived_drift(fixture_copy)
    # the stored loss and gradient no longer follow from the stored logits either
    assert [d.field.split(".", 1)[1] for d in drifts] == ["inputs[1].value", "expected[1].value", "expected[2].value"]
    assert {d.entry_id for d in drifts} == {LOGITS}


def test_regeneration_leaves_document_numbers_alone(fixture_copy: Path) -> None:
    def change(d: dict[str, Any]) -> None:
        _entry(d, "002-first-output-is-distribution")["inputs"][0]["value"][0] = 0.29228028
    _edit(fixture_copy, "doc_002.json", change)
    golden.regenerate_derived(fixture_copy, write=True)
    data = json.loads((fixture_copy / "doc_002.json").read_text(encoding="utf-8"))
    assert _entry(data, "002-first-output-is-distribution")["inputs"][0]["value"][0] == 0.29228028
    problems = golden.verify(fixture_copy)
    assert any("002-first-output-is-distribution: expected[0] (sum of o_output" in p for p in problems), problems


def test_command_line_entry_point_runs() -> None:
    r = subprocess.run([sys.executable, "-m", "reference_impl.golden", "verify"],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith("golden fixtures verified: 5 files,")


def test_loader_needs_numpy_and_jsonschema_only() -> None:
    code = ("import sys, reference_impl.golden as g; g.entries(); "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'jax', 'jaxlib', 'optax', "
            "'hypothesis')); print(','.join(bad)); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert r.returncode == 0, f"loading the fixtures pulled in: {r.stdout.strip()} {r.stderr[-500:]}"


# =========================================================================== what the fixtures hold
#
# Literals below are copied from the documents (or follow from them by
# arithmetic done here with the math module), never from the reference.


def _value(entry_id: str, name: str) -> np.ndarray:
    value = ENTRIES[entry_id].input(name).value
    assert value is not None
    return value


def _expected(entry_id: str, **match: Any) -> Any:
    hits = [x for x in ENTRIES[entry_id].expected if all(getattr(x, k) == v for k, v in match.items())]
    assert len(hits) == 1, f"{entry_id}: {len(hits)} expectations match {match}"
    return hits[0]


def test_document_002_worked_numbers_are_fixtures() -> None:
    np.testing.assert_array_equal(_value(RELU, "x"), [0.93412086, -0.89987134, 0.07139904, 0.63705336])
    np.testing.assert_array_equal(_expected(RELU, quantity="value").value, [0.93412086, 0.0, 0.07139904, 0.63705336])
    g = "002-chain-rule-g"
    assert [float(_value(g, n)) for n in ("x", "y", "z")] == [1.0, -5.0, 7.0]
    assert float(_expected(g, quantity="value", of="g").value) == -21.0
    assert float(_expected(g, quantity="value", of="inner").value) == -3.0
    net = "002-network-2-4-4-3"
    np.testing.assert_array_equal(_value(net, "x"), [0.2, 0.1])
    np.testing.assert_array_equal(_value(net, "target"), [1.0, 0.0, 0.0])
    assert float(_value(net, "lr")) == 0.01
    for entry_id in ("002-first-output-is-distribution", CE, LOGITS):
        np.testing.assert_array_equal(_value(entry_id, "o_output"), [0.29228018, 0.03001013, 0.67770969])
    gd = "002-gradient-descent-start"
    assert (float(_value(gd, "w0")), float(_value(gd, "step"))) == (10.0, 0.01)
    assert _expected("002-weight-matrix-convention", quantity="shape", of="W").value == (3, 4)
    assert _expected(net, quantity="size", of="W_ko").value == 12


def test_derived_values_match_closed_forms() -> None:
    # each closed form is the document's formula evaluated here, independently of the reference
    g = "002-chain-rule-g"
    x, z = 1.0, 7.0
    y = -5.0
    for wrt, want in (("x", 2 * z), ("y", z), ("z", 2 * x + y)):
        assert float(_expected(g, quantity="gradient", wrt=wrt).value) == want
    yhat = [0.29228018, 0.03001013, 0.67770969]
    loss = -math.log(yhat[0])
    p, t = np.array(yhat), np.array([1.0, 0.0, 0.0])
    one = np.ones(())

    def close(stored: Any, want: Any, tol: Any) -> None:
        comp = compare(np.asarray(stored, dtype=np.float64), np.asarray(want, dtype=np.float64), tol, np.float64)
        assert comp.ok, comp.describe()

    # cross-entropy on the printed probabilities: the ops' own error bounds
    close(_expected(CE, quantity="value").value, loss, forward_bound("cross_entropy", (p, t)).tolerance(np.float64))
    close(_expected(CE, quantity="gradient").value, [-1 / yhat[0], 0.0, 0.0],
          vjp_bound("cross_entropy", one, (p, t))[0].tolerance(np.float64))
    # logits z = ln(yhat): E ulps of log each; that error reaches the loss and
    # its gradient through |softmax - t| and the softmax Jacobian s (|dz| + sum s |dz|)
    z = np.log(p)
    dz = IMPLEMENTATIONS * ELEMENTARY_ULPS * U64 * np.abs(z)
    close(_value(LOGITS, "z"), z, dz)
    s = np.exp(z) / np.exp(z).sum()
    close(_expected(LOGITS, quantity="value", of="J").value, loss,
          forward_bound("softmax_cross_entropy", (z, t)).tolerance(np.float64) + np.sum(np.abs(s - t) * dz))
    close(_expected(LOGITS, quantity="gradient").value, [yhat[0] - 1, yhat[1], yhat[2]],
          vjp_bound("softmax_cross_entropy", one, (z, t))[0].tolerance(np.float64) + s * (dz + np.sum(s * dz)))
    np.testing.assert_array_equal(_expected(RELU, quantity="gradient").value, [1.0, 0.0, 1.0, 1.0])


def test_structural_setups_of_the_other_documents_are_fixtures() -> None:
    assert _expected("000-one-hidden-unit-network", quantity="gradient_count").value == 4
    assert _expected("000-one-hidden-unit-network", quantity="chain_length").value == 3
    assert {x.wrt for x in ENTRIES["001-sum-over-paths"].expected} == {"a", "w"}
    neuron = ENTRIES["003-logistic-neuron"]
    assert [s.op for s in neuron.steps] == ["multiply", "multiply", "add", "add", "sigmoid"]
    net = ENTRIES["004-network-2-3-1"]
    assert _expected(net.id, quantity="shape", of="z2").value == (1, 3)
    assert _expected(net.id, quantity="shape", of="z3").value == (1, 1)
    assert _expected(net.id, quantity="shape", of="X").value == (1, 2)  # n = 1 example
    assert [s.op for s in net.steps][-1] == "mse"


def test_lost_material_is_declared() -> None:
    for entry_id in ("002-network-2-4-4-3", "002-gradient-descent-start", "002-first-output-is-distribution"):
        assert ENTRIES[entry_id].lost and "image" in ENTRIES[entry_id].lost
    # inputs the documents never give are placeholders, never invented numbers
    net = ENTRIES["002-network-2-4-4-3"]
    assert {i.name for i in net.inputs if i.origin == "placeholder"} == {"W_ij", "b_j", "W_jk", "b_k", "W_ko", "b_o"}


def test_errata_are_recorded() -> None:
    found = {x.located_by for ff in FILES for x in ff.errata}
    for fragment in ("Softmax(o1_input), Softmax(o2_input), Softmax(o2_input)", "[o1_output1, o2_output, o3_output]",
                     "4 nodes in this j layer so four bias:", "Then the four last biases:", "B2-B2"):
        assert fragment in found, f"erratum at {fragment!r} is missing"
    by_id = {x.id: x for ff in FILES for x in ff.errata}
    assert "o3_input" in by_id["002-erratum-softmax-repeats-o2-input"].correction
