"""The golden fixtures against the documents' own text.

The documents live outside the package (``shared/seeds/`` next to the
checkout, or the folder named by ``REFERENCE_IMPL_SEEDS``); where they are
absent these tests skip, and the rest of the golden suite still runs.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from reference_impl import golden
from reference_impl.sources import SOURCES

FILES = golden.load_fixtures()


def _seeds_dir() -> Path:
    configured = os.environ.get("REFERENCE_IMPL_SEEDS")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[3] / "shared" / "seeds"


def _text(key: str) -> str:
    path = _seeds_dir() / SOURCES[key].file_name
    if not path.is_file():
        pytest.skip(f"document {key} not found at {path}; set REFERENCE_IMPL_SEEDS to the folder holding it")
    return path.read_text(encoding="utf-8")


def _spaced(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def _printed_forms(value: float, decimals: int) -> set[str]:
    # numpy prints 0 in an array as "0."; plain text as "0.0" or "0"
    s = f"{value:.{decimals}f}"
    return {s, s.rstrip("0") if "." in s else s, s.rstrip("0").rstrip(".") if "." in s else s}


def _document_numbers(ff: golden.FixtureFile) -> list[tuple[str, float, int]]:
    out = []
    for e in ff.entries:
        for i in e.inputs:
            if i.origin == "document":
                assert i.value is not None and i.decimals is not None
                out += [(f"{e.id}: input {i.name}", float(v), i.decimals) for v in np.ravel(i.value)]
        for x in e.expected:
            if x.origin == "document" and x.quantity in ("value", "gradient"):
                assert x.decimals is not None
                out += [(f"{e.id}: expected[{x.index}]", float(v), x.decimals) for v in np.ravel(x.value)]
    return out


@pytest.mark.parametrize("ff", FILES, ids=[ff.document for ff in FILES])
def test_every_document_number_is_printed_in_the_document(ff: golden.FixtureFile) -> None:
    text = _text(ff.document)
    numbers = _document_numbers(ff)
    missing = [f"{where}: {value!r} ({decimals} decimals)" for where, value, decimals in numbers
               if not any(form in text for form in _printed_forms(value, decimals))]
    assert not missing, f"{ff.name}: numbers marked 'document' that the document does not print:\n" + "\n".join(
        missing)


@pytest.mark.parametrize("ff", FILES, ids=[ff.document for ff in FILES])
def test_errata_point_at_text_that_exists(ff: golden.FixtureFile) -> None:
    text = _spaced(_text(ff.document))
    for x in ff.errata:
        assert _spaced(x.located_by) in text, f"{ff.name}: {x.id}: {x.located_by!r} is not in the document"
        assert text.count(_spaced(x.located_by)) == 1, f"{ff.name}: {x.id}: {x.located_by!r} is ambiguous"


def _words(text: str) -> list[str]:
    # Numbers and short symbols carry over from the documents by design
    # (x, dl/dz, 0.2, o1_input); only the prose around them must be ours.
    return re.findall(r"[a-z]{3,}", text.lower())


RUN = 6
"""Six words in a row shared with the document count as copied text."""


@pytest.mark.parametrize("ff", FILES, ids=[ff.document for ff in FILES])
def test_descriptions_are_in_our_own_words(ff: golden.FixtureFile) -> None:
    doc = " " + " ".join(_words(_text(ff.document))) + " "
    copied = []
    for e in ff.entries:
        texts = [e.description, *(x.note for x in e.expected), *e.stand_ins, *([e.lost] if e.lost else [])]
        # an erratum's correction restates the document's formula, fixed: not prose
        texts += [x.explanation for x in ff.errata]
        for t in texts:
            w = _words(t)
            copied += [" ".join(w[i:i + RUN]) for i in range(len(w) - RUN + 1)
                       if f" {' '.join(w[i:i + RUN])} " in doc]
    assert not copied, f"{ff.name}: runs of {RUN} words copied from the document: {sorted(set(copied))}"


def test_the_words_check_would_notice_a_copied_sentence() -> None:
    doc = " " + " ".join(_words(_text("002"))) + " "
    copied = "We have three outputs and two inputs."  # a sentence of document 002
    w = _words(copied)
    assert any(f" {' '.join(w[i:i + RUN])} " in doc for i in range(len(w) - RUN + 1))
