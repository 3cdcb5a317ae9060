"""The catalog of hand-written torch Functions and jax custom_vjps
(``framework_catalog.py``), checked as they are with their own autograd:
every wrong one is caught, by the check named in its case, and no right one
is flagged, in float32 and float64, on fixed seeds."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("jax")

import reference_impl as ri

from .framework_catalog import CORRECT, WRONG, Case

pytestmark = [pytest.mark.torch, pytest.mark.jax]

SEED = 0
EXAMPLES = 2
"""Per dtype: the catalog's defects show on the first draws (each case's inputs
reach its defect's region), and two examples keep the file fast."""


@pytest.mark.parametrize("case", CORRECT, ids=lambda c: c.name)
def test_correct_rule_passes(case: Case) -> None:
    result = ri.check_vjp(case.fn, inputs=case.inputs, seed=SEED, **{"max_examples": EXAMPLES, **case.options})
    assert result.ok, result.report()
    assert set(result.dtypes) == {"float32", "float64"}


@pytest.mark.parametrize("case", WRONG, ids=lambda c: c.name)
def test_wrong_rule_is_caught(case: Case) -> None:
    # one dtype is enough to catch: float32 for a float32-only defect, else float64
    dtypes = ("float32",) if "float32 vs float64" in case.caught_by else ("float64",)
    options = {"max_examples": EXAMPLES, **case.options}  # a case whose defect is rare in its range asks for more
    result = ri.check_vjp(case.fn, inputs=case.inputs, seed=SEED, dtypes=dtypes, **options)
    assert not result.ok and result.counterexamples, result.report()
    checks = {c.check for c in result.counterexamples}
    assert all(c.startswith(case.caught_by) for c in checks), f"caught by {checks}, expected {case.caught_by}"


@pytest.mark.parametrize("case", [c for c in WRONG if c.rev_ok], ids=lambda c: c.name)
def test_a_defect_of_one_mode_passes_the_default_check(case: Case) -> None:
    # wrong only in forward mode, at second order or under vmap: the reverse-mode check alone passes it
    result = ri.check_vjp(case.fn, inputs=case.inputs, seed=SEED, max_examples=EXAMPLES, dtypes=("float64",))
    assert result.ok, result.report()


def test_catalog_size() -> None:
    assert len(WRONG) >= 15 and len(CORRECT) >= 10
    for cases in (WRONG, CORRECT):
        assert {c.framework for c in cases} == {"torch", "jax"}
        assert {c.mode for c in cases} == {"rev", "fwd", "order 2", "vmap"}
