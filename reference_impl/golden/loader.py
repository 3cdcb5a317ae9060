"""Loading the fixtures: the rules that span fields, over the data model of :mod:`.model`.

:func:`load_file` reads a file (bounded, :mod:`.files`), checks its structure
against ``schema.json`` with ``jsonschema`` and then the rules no schema can
state: names that must exist, shapes that must agree with their values,
tolerances that must follow from the printed precision. Every problem is a
:class:`~reference_impl.golden.files.FixtureError` naming the file and the
field. Declared shapes are bounded (:data:`MAX_FIXTURE_ELEMENTS`) before any
array is built, so a placeholder cannot ask for gigabytes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from importlib.resources.abc import Traversable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from ..ops import OPS
from ..sources import SOURCES
from .files import (
    Directory,
    FixtureError,
    as_traversable,
    fixture_files,
    fixtures_dir,
    json_type,
    load_schema,
    read_json,
    short,
    trusted_validator,
    validate_structure,
)
from .model import (
    DTYPE,
    MAX_FIXTURE_ELEMENTS,
    Entry,
    Erratum,
    Expectation,
    FixtureFile,
    Input,
    Step,
    half_unit,
    printed_with,
    shape_of,
)

__all__ = [
    "load_file",
    "load_fixtures",
    "entries",
    "errata",
]

_INTEGER_QUANTITIES = ("shape", "size", "gradient_count", "op_count", "chain_length")


class _Checker:
    """Cross-field rules of one file, each failing with file and field named."""

    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, where: str, msg: str) -> FixtureError:
        return FixtureError(f"{self.file}: {where}: {msg}")

    def document(self, key: str, where: str) -> str:
        if key not in SOURCES:
            raise self.fail(where, f"unknown document {key!r}; known documents: {sorted(SOURCES)} "
                                   "(reference_impl.sources.SOURCES)")
        return key

    def shape(self, dims: Sequence[int], where: str) -> tuple[int, ...]:
        size = math.prod(dims)
        if size > MAX_FIXTURE_ELEMENTS:
            raise self.fail(where, f"{list(dims)} has {size} elements, more than the limit of {MAX_FIXTURE_ELEMENTS} "
                                   "for a fixture's array")
        return tuple(dims)

    def array(self, value: Any, shape: Sequence[int], where: str) -> np.ndarray:
        try:
            got = shape_of(value)
        except ValueError as e:
            raise self.fail(where, str(e)) from None
        if got != tuple(shape):
            raise self.fail(where, f"shape {got} does not match the declared 'shape' {tuple(shape)}")
        arr = np.asarray(value, dtype=DTYPE)
        arr.flags.writeable = False  # a loaded fixture must not change under a replay
        return arr

    def entry(self, raw: dict[str, Any], p: str, file_doc: str) -> Entry:
        doc = self.document(raw["document"], f"{p}.document")
        if doc != file_doc:
            raise self.fail(f"{p}.document", f"{doc!r} differs from the file's document {file_doc!r}")
        if not raw["id"].startswith(doc + "-"):
            raise self.fail(f"{p}.id", f"{raw['id']!r} must start with its document key {doc!r} and a dash")
        inputs: list[Input] = []
        names: dict[str, str] = {}
        for j, r in enumerate(raw["inputs"]):
            q = f"{p}.inputs[{j}]"
            inp = self.input(r, q, names, raw["id"])
            names[inp.name] = "input"
            inputs.append(inp)
        steps: list[Step] = []
        for j, r in enumerate(raw["steps"]):
            q = f"{p}.steps[{j}]"
            steps.append(self.step(r, q, names))
            names[r["output"]] = "step"
        by_name = {i.name: i for i in inputs}
        expected = tuple(self.expectation(r, f"{p}.expected[{k}]", k, names, by_name, steps)
                         for k, r in enumerate(raw["expected"]))
        if not expected and raw["unchecked"] is None:
            raise self.fail(f"{p}.unchecked", "an entry with nothing in 'expected' must say why in 'unchecked'")
        if expected and raw["unchecked"] is not None:
            raise self.fail(f"{p}.unchecked", "must be null when the entry has expected values")
        if steps:
            used = {n for s in steps for n in s.inputs}
            for e in expected:
                used.update(x for x in (e.of, e.wrt, e.equals) if x)
                used.update((e.seeds or {}).keys())
                used.update((e.seeds or {}).values())
            used.update(i.derivation[1] for i in inputs if i.derivation)
            for j, i in enumerate(inputs):
                if i.name not in used and i.role != "hyperparameter":
                    raise self.fail(f"{p}.inputs[{j}].name", f"input {i.name!r} is used by no step or expectation "
                                                             "(only a hyperparameter may be recorded unused)")
        return Entry(
            id=raw["id"], document=doc, section=raw["section"], description=raw["description"],
            inputs=tuple(inputs), steps=tuple(steps), expected=expected, lost=raw["lost"],
            stand_ins=tuple(raw["stand_ins"]), unchecked=raw["unchecked"], file=self.file,
        )

    def input(self, r: dict[str, Any], q: str, names: Mapping[str, str], entry_id: str) -> Input:
        name = r["name"]
        if name in names:
            raise self.fail(f"{q}.name", f"{name!r} is defined twice")
        origin = r["origin"]
        shape = self.shape(r["shape"], f"{q}.shape")
        allowed = {"document": {"decimals"}, "formula": set(), "derived": {"derivation"},
                   "placeholder": {"placeholder"}}[origin]
        for key in ("decimals", "derivation", "placeholder"):
            if key in r and key not in allowed:
                raise self.fail(f"{q}.{key}", f"not allowed for an input of origin {origin!r}")
            if key in allowed and key not in r:
                raise self.fail(f"{q}.{key}", f"required for an input of origin {origin!r}")
        value = None
        if origin == "placeholder":
            if r["value"] is not None:
                raise self.fail(f"{q}.value", "a placeholder has no value (it is generated); use null")
            if r["placeholder"] == "uniform" and (not shape or shape[-1] == 0):
                raise self.fail(f"{q}.shape", "a 'uniform' placeholder needs a non-empty last axis")
        else:
            if r["value"] is None:
                raise self.fail(f"{q}.value", f"an input of origin {origin!r} needs a value")
            value = self.array(r["value"], shape, f"{q}.value")
        if origin == "document" and value is not None and not printed_with(value, r["decimals"]):
            raise self.fail(f"{q}.decimals", f"the value has more than {r['decimals']} decimals")
        derivation = None
        if origin == "derived":
            d = r["derivation"]
            src = d["of"]
            if names.get(src) != "input":
                raise self.fail(f"{q}.derivation.of", f"{src!r} is not an input defined before {name!r}")
            derivation = (d["function"], src)
        return Input(name=name, role=r["role"], origin=origin, shape=shape, value=value,
                     decimals=r.get("decimals"), derivation=derivation, placeholder=r.get("placeholder"),
                     note=r.get("note"))

    def step(self, r: dict[str, Any], q: str, names: Mapping[str, str]) -> Step:
        op = r["op"]
        if op not in OPS:
            raise self.fail(f"{q}.op", f"unknown op {op!r}; known: {sorted(OPS)}")
        spec = OPS[op]
        if len(r["inputs"]) != len(spec.arg_names):
            raise self.fail(f"{q}.inputs", f"{op} takes {len(spec.arg_names)} input(s) {list(spec.arg_names)}, "
                                           f"got {len(r['inputs'])}")
        for k, n in enumerate(r["inputs"]):
            if n not in names:
                raise self.fail(f"{q}.inputs[{k}]", f"{n!r} is not an input or an earlier step's output")
        for k, v in r["params"].items():
            if k not in spec.params:
                raise self.fail(f"{q}.params.{k}", f"{op} has no parameter {k!r}; accepted: {sorted(spec.params)}")
            if v not in spec.params[k]:
                raise self.fail(f"{q}.params.{k}", f"{v!r} is not one of {list(spec.params[k])}")
        if r["output"] in names:
            raise self.fail(f"{q}.output", f"{r['output']!r} is already defined")
        return Step(op=op, inputs=tuple(r["inputs"]), params=MappingProxyType(dict(r["params"])), output=r["output"])

    def expectation(self, r: dict[str, Any], q: str, k: int, names: Mapping[str, str],
                    inputs: Mapping[str, Input], steps: Sequence[Step]) -> Expectation:
        quantity, origin, rule = r["quantity"], r["origin"], r["tolerance_rule"]
        needs = {
            "value": {"of"}, "gradient": {"wrt"}, "sum": {"of"}, "shape": {"of"}, "size": {"of"},
            "gradient_count": {"of"}, "op_count": {"ops"}, "chain_length": {"of", "wrt"},
        }[quantity]
        optional = {"gradient": {"of", "seeds"}}.get(quantity, set())
        for key in ("of", "seeds", "wrt", "ops"):
            if key in needs and key not in r:
                raise self.fail(f"{q}.{key}", f"required for quantity {quantity!r}")
            if key in r and key not in needs | optional:
                raise self.fail(f"{q}.{key}", f"not used by quantity {quantity!r}")
        if quantity == "gradient" and ("of" in r) == ("seeds" in r):
            raise self.fail(f"{q}.of", "a gradient needs exactly one of 'of' (a scalar output, seeded with 1) "
                                       "and 'seeds' (outputs -> cotangent inputs)")
        for key in ("of", "wrt"):
            if key in r and r[key] not in names:
                raise self.fail(f"{q}.{key}", f"{r[key]!r} is not an input or step output of this entry")
        for out, cot in r.get("seeds", {}).items():
            if out not in names:
                raise self.fail(f"{q}.seeds.{out}", f"{out!r} is not an input or step output of this entry")
            if cot not in inputs or inputs[cot].role != "cotangent":
                raise self.fail(f"{q}.seeds.{out}", f"{cot!r} is not an input of role 'cotangent'")
        for op in r.get("ops", []):
            if op not in OPS:
                raise self.fail(f"{q}.ops", f"unknown op {op!r}; known: {sorted(OPS)}")
        if "equals" in r and r["equals"] not in names:
            raise self.fail(f"{q}.equals", f"{r['equals']!r} is not an input or step output of this entry")

        # where the number comes from decides how it may be compared
        has_value, has_equals = "value" in r, "equals" in r
        if has_value == has_equals:
            raise self.fail(f"{q}.value", "exactly one of 'value' and 'equals' is required")
        if has_equals and (origin != "rule" or quantity not in ("value", "gradient")):
            raise self.fail(f"{q}.equals", "only a 'rule' value or gradient may be given as another variable")
        if origin == "derived" and quantity not in ("value", "gradient"):
            raise self.fail(f"{q}.origin", f"a {quantity!r} is read from the document, not derived")
        if quantity in _INTEGER_QUANTITIES and origin != "document":
            raise self.fail(f"{q}.origin", f"a {quantity!r} is a number of the document: origin must be 'document'")
        allowed_rules = {
            "document": ("half_unit", "exact"),
            "derived": ("error_model",),
            "rule": ("half_unit_per_term",) if quantity == "sum" else ("error_model",),
        }[origin]
        if quantity in _INTEGER_QUANTITIES:
            allowed_rules = ("exact",)
        if rule not in allowed_rules:
            raise self.fail(f"{q}.tolerance_rule", f"{rule!r} does not fit origin {origin!r} and quantity "
                                                   f"{quantity!r}; use one of {list(allowed_rules)}")
        if (origin == "document" or rule in ("half_unit", "half_unit_per_term")) != ("decimals" in r):
            raise self.fail(f"{q}.decimals", "printed precision is required for document numbers and "
                                             "half-unit tolerances, and only there")
        decimals = r.get("decimals")
        if quantity == "sum":
            src = inputs.get(r["of"])
            if src is None or src.origin != "document" or src.decimals is None:
                raise self.fail(f"{q}.of", "a sum is taken of an input printed in the document")
            if decimals != src.decimals:
                raise self.fail(f"{q}.decimals", f"must be the summed input's printed precision, {src.decimals}")
        want = {
            "half_unit": half_unit(decimals) if decimals is not None else None,
            "exact": 0.0,
            "half_unit_per_term": (math.prod(inputs[r["of"]].shape) * half_unit(decimals)
                                   if decimals is not None and quantity == "sum" else None),
            "error_model": None,
        }[rule]
        got = r["tolerance"]
        if want is None and got is not None:
            raise self.fail(f"{q}.tolerance", f"must be null: rule {rule!r} is computed by reference_impl.accuracy.ops "
                                              "when the value is checked")
        if want is not None and (got is None or not math.isclose(got, want, rel_tol=1e-12, abs_tol=0.0)):
            raise self.fail(f"{q}.tolerance", f"{got!r} does not follow from the printed precision: rule {rule!r} "
                                              f"with decimals {decimals} gives {want!r} (tolerances are never "
                                              "picked by hand)")

        shape = None
        value: Any = None
        if quantity in _INTEGER_QUANTITIES:
            if "shape" in r:
                raise self.fail(f"{q}.shape", f"not used by quantity {quantity!r} (its value is a count or a shape)")
            v = r["value"]
            if quantity == "shape":
                if not (isinstance(v, list) and all(json_type(d) == "integer" and d >= 0 for d in v)):
                    raise self.fail(f"{q}.value", f"a shape is a list of non-negative integers, got {short(v)}")
                value = tuple(v)
            else:
                if json_type(v) != "integer" or v < 0:
                    raise self.fail(f"{q}.value", f"a {quantity} is a non-negative integer, got {short(v)}")
                value = int(v)
            if quantity in ("shape", "size") and r["of"] in inputs:
                actual = inputs[r["of"]].shape
                if (value if quantity == "shape" else math.prod(actual)) != (actual if quantity == "shape" else value):
                    raise self.fail(f"{q}.value", f"{short(v)} disagrees with the declared shape {actual} of "
                                                  f"input {r['of']!r}")
        else:
            if "shape" not in r:
                raise self.fail(f"{q}.shape", f"required for quantity {quantity!r}")
            shape = self.shape(r["shape"], f"{q}.shape")
            if quantity == "sum" and shape != ():
                raise self.fail(f"{q}.shape", "a sum is a scalar: use []")
            target = str(r["wrt"] if quantity == "gradient" else r["of"])
            if target in inputs and quantity != "sum" and inputs[target].shape != shape:
                raise self.fail(f"{q}.shape", f"{shape} does not match the shape {inputs[target].shape} of "
                                              f"input {target!r}")
            if has_value:
                value = self.array(r["value"], shape, f"{q}.value")
                if origin == "document" and decimals is not None and not printed_with(value, decimals):
                    raise self.fail(f"{q}.decimals", f"the value has more than {decimals} decimals")
        return Expectation(
            index=k, quantity=quantity, origin=origin, note=r["note"], tolerance_rule=rule,
            tolerance=None if got is None else float(got), of=r.get("of"),
            seeds=MappingProxyType(dict(r["seeds"])) if "seeds" in r else None, wrt=r.get("wrt"),
            ops=tuple(r["ops"]) if "ops" in r else None, shape=shape, value=value, equals=r.get("equals"),
            decimals=decimals,
        )

    def erratum(self, r: dict[str, Any], q: str, file_doc: str, ids: set[str]) -> Erratum:
        if not r["id"].startswith(file_doc + "-"):
            raise self.fail(f"{q}.id", f"{r['id']!r} must start with the file's document key {file_doc!r}")
        for k, e in enumerate(r["entries"]):
            if e not in ids:
                raise self.fail(f"{q}.entries[{k}]", f"{e!r} is not an entry of this file")
        return Erratum(id=r["id"], document=file_doc, section=r["section"], located_by=r["located_by"],
                       correction=r["correction"], explanation=r["explanation"], entries=tuple(r["entries"]),
                       file=self.file)


def load_file(path: Traversable | str | os.PathLike[str], schema: Mapping[str, Any] | None = None) -> FixtureFile:
    """Read and validate one fixture file.

    ``path``: a ``str``, ``os.PathLike`` or ``Traversable``; ``schema``:
    ``None`` (the ``schema.json`` beside the file, which must be the
    project's own: :func:`~reference_impl.golden.files.load_schema`) or what
    :func:`load_schema` returned. Raises :class:`FixtureError` naming the
    file and the field for any malformation: invalid JSON, a missing or
    unknown field, a wrong type, an unknown document, op or variable, a
    value whose shape disagrees with its declared shape, or a tolerance that
    does not follow from its rule."""
    file = as_traversable(path, "path")
    trusted_validator(schema)  # the arguments first, then the file
    raw = read_json(file)  # the file before the schema beside it: a problem with it is named first
    if schema is None:
        parent = Path(file).parent if isinstance(file, Path) else None
        schema = load_schema(parent)
    validate_structure(raw, schema, file.name)
    chk = _Checker(file.name)
    doc = chk.document(raw["document"], "document")
    seen: set[str] = set()
    built: list[Entry] = []
    for i, r in enumerate(raw["entries"]):
        if r["id"] in seen:
            raise chk.fail(f"entries[{i}].id", f"{r['id']!r} is used twice")
        seen.add(r["id"])
        built.append(chk.entry(r, f"entries[{i}]", doc))
    err_ids: set[str] = set()
    errs: list[Erratum] = []
    for i, r in enumerate(raw["errata"]):
        if r["id"] in err_ids:
            raise chk.fail(f"errata[{i}].id", f"{r['id']!r} is used twice")
        err_ids.add(r["id"])
        errs.append(chk.erratum(r, f"errata[{i}]", doc, seen))
    return FixtureFile(name=file.name, document=doc, entries=tuple(built), errata=tuple(errs), raw=raw)


def load_fixtures(directory: Directory = None) -> tuple[FixtureFile, ...]:
    """Load and validate every fixture file (packaged ones by default)."""
    schema = load_schema(directory)
    files = tuple(load_file(f, schema) for f in fixture_files(directory))
    if not files:
        raise FixtureError(f"{fixtures_dir(directory)}: no fixture files found")
    owner: dict[str, str] = {}
    for ff in files:
        for e in ff.entries:
            if e.id in owner:
                raise FixtureError(f"{ff.name}: entry id {e.id!r} is also used in {owner[e.id]}")
            owner[e.id] = ff.name
    return files


def entries(directory: Directory = None) -> tuple[Entry, ...]:
    """Every entry of every fixture file."""
    return tuple(e for ff in load_fixtures(directory) for e in ff.entries)


def errata(directory: Directory = None) -> tuple[Erratum, ...]:
    """Every erratum recorded in the fixture files."""
    return tuple(x for ff in load_fixtures(directory) for x in ff.errata)

