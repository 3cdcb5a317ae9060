"""The one check engine under every checker of the project.

One comparison in one direction (:mod:`.comparison`: actual against expected,
the errors, the verdicts, the worst-error accumulator, the finding and its
counterexample; its accuracy grades in :mod:`.grades`), one way to run code under test (:mod:`.calls`), one search
(:mod:`.search`), the finite-difference numerics (:mod:`.differences`: Taylor
remainder order, Ridders' extrapolation, the rounding floor), the adjoint
tests built on them (:mod:`.adjoint`) and read below kinks (:mod:`.kinks`),
arrays as pasteable literals (:mod:`.literals`), where two networks part first
(:mod:`.divergence`), the rows and reports every checker returns
(:mod:`.results`) and the hypothesis profiles (:mod:`.profiles`).

May import the strategies, the frameworks, the reference and the accuracy
model; never the checkers above it (``golden``, ``oracle``, ``certify``). This face
imports :mod:`.comparison` only, which needs NumPy; :mod:`.search`,
:mod:`.calls` and :mod:`.profiles` import hypothesis.
"""

from __future__ import annotations

from .comparison import (
    STRICT_ULP_LIMIT,
    VERDICTS,
    WRONG_RATIO,
    Comparison,
    Counterexample,
    Finding,
    Worst,
    compare,
    op_comparisons,
    ulp_error,
)

__all__ = [
    "WRONG_RATIO", "STRICT_ULP_LIMIT", "VERDICTS", "ulp_error", "Comparison", "compare", "Worst",
    "op_comparisons", "Finding", "Counterexample",
]
