"""The accuracy grades of a comparison (reference_impl.engine.grades): ulps
where the result is a normal number, a normwise figure against the error
model's scale, and subnormals one side flushed to zero counted apart.

The arrays are built so that every expected figure is known by construction:
an element one ulp off is ``np.nextafter`` of the reference, a flushed
subnormal is the reference's sum with that subnormal left out.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from reference_impl.accuracy.acceptance import tiny, unit_roundoff
from reference_impl.engine import Worst, compare, op_comparisons
from reference_impl.engine.grades import FLUSH_MIN_SUBNORMALS, grade

pytestmark = pytest.mark.numpy_only

F64 = np.float64
SUB = 3e-310
"""A float64 subnormal (below tiny = 2.2e-308)."""
SMALL = 1e-306
"""A normal float64 well above the underflow floor of the tolerances below, so that it is resolved."""


def test_one_ulp_off_is_graded_one_ulp() -> None:
    expected = np.array([1.0, 3.0, -7.5])
    actual = expected.copy()
    actual[1] = np.nextafter(3.0, 4.0)
    comp = compare(actual, expected, 1e-12, F64)
    assert comp.ok and comp.max_ulp_error == 1.0 and comp.flushed == 0
    # normwise: one spacing at 3 (2 u * 2) over u * max |expected| (7.5)
    assert comp.normwise == pytest.approx(float(np.spacing(3.0)) / (unit_roundoff(F64) * 7.5), rel=1e-12)


def test_a_flushed_subnormal_is_counted_and_not_graded_in_ulps() -> None:
    x = np.array([SMALL, 1.0])
    y = np.array([SUB, 2.0])
    expected = x + y
    actual = np.array([x[0], np.nextafter(3.0, 4.0)])  # the subnormal y[0] read as 0; 3 one ulp off
    floor = np.full(2, tiny(F64) * 2)  # what an op's bound admits for underflow
    tol = floor + np.array([4 * unit_roundoff(F64) * SMALL, 4 * unit_roundoff(F64) * 3.0])
    comp = compare(actual, expected, tol, F64, floor=floor)
    assert comp.ok
    assert comp.flushed == 1
    assert comp.max_ulp_error == 1.0, "only the element computed normally is graded"
    # without the floor nothing is classified, and the flushed element grades at its ulps
    plain = compare(actual, expected, tol, F64)
    assert plain.flushed == 0
    assert plain.max_ulp_error == pytest.approx((expected[0] - SMALL) / float(np.spacing(expected[0])), rel=1e-12)
    assert plain.max_ulp_error > 1e12


def test_a_subnormal_result_is_never_graded_in_ulps() -> None:
    expected = np.array([8 * 5e-324, 1.0])
    actual = np.array([9 * 5e-324, 1.0])  # one subnormal off: far below any tolerance with a floor
    comp = compare(actual, expected, 1e-300, F64)
    assert comp.ok and comp.max_ulp_error == 0.0, "the normal element (exact) is the only one graded"


def test_rounding_of_a_subnormal_result_is_not_a_flush() -> None:
    expected = np.array([100 * 5e-324])
    actual = np.array([101 * 5e-324])
    floor = np.array([tiny(F64)])
    comp = compare(actual, expected, floor, F64, floor=floor)
    assert FLUSH_MIN_SUBNORMALS > 1 and comp.flushed == 0


def test_an_error_beyond_the_tolerance_is_graded_not_excused_as_a_flush() -> None:
    expected = np.array([1.0])
    actual = np.array([1.0 + 1e-6])
    floor = np.array([tiny(F64)])
    comp = compare(actual, expected, 1e-12, F64, floor=floor)
    assert not comp.ok and comp.flushed == 0
    assert comp.max_ulp_error == pytest.approx(1e-6 / float(np.spacing(1.0)), rel=1e-9)


def test_normwise_is_measured_against_the_scale_given() -> None:
    # 1 - tanh^2 in the tail: the result is 0 where the truth is 1e-30, the terms are of size 1
    expected = np.array([1e-30, 1e-31])
    actual = np.zeros(2)
    tol = np.full(2, 8 * unit_roundoff(F64))
    comp = compare(actual, expected, tol, F64, scale=np.ones(2))
    assert comp.ok and math.isnan(comp.max_ulp_error), "no element is resolved: nothing graded in ulps"
    assert comp.normwise == pytest.approx(1e-30 / unit_roundoff(F64), rel=1e-12)
    own = compare(actual, expected, tol, F64)  # against the result's own size: all of it lost
    assert own.normwise == pytest.approx(1 / unit_roundoff(F64), rel=1e-12)


def test_normwise_of_an_all_subnormal_reference_is_finite() -> None:
    g = grade(np.array([5e-324]), np.array([5e-324]), np.array([1e-300]), np.array([1.0]), np.array([False]), F64)
    assert math.isfinite(g.normwise) and g.normwise == pytest.approx(1.0)


def test_the_accumulator_keeps_the_worst_grades_and_sums_flushed() -> None:
    w = Worst()
    floor = np.full(2, tiny(F64) * 2)
    tol = floor + 4 * unit_roundoff(F64) * np.array([SMALL, 1.0])
    w.fold(compare(np.array([SMALL, 1.0]), np.array([SMALL + SUB, 1.0]), tol, F64, floor=floor))
    w.fold(compare(np.array([SMALL, np.nextafter(1.0, 2.0)]), np.array([SMALL + SUB, 1.0]), tol, F64, floor=floor))
    assert w.flushed == 2 and w.ulp_error == 1.0
    assert w.normwise == pytest.approx(float(np.spacing(1.0)) / unit_roundoff(F64), rel=1e-12)


def test_op_comparisons_classify_a_flushed_add_input() -> None:
    """The bound of ``add`` admits a flushed subnormal through its floor: an
    implementation that reads the subnormal as 0 passes, counted flushed."""
    a = np.array([SMALL, 1.5])
    b = np.array([SUB, 0.25])
    flushed_sum = np.array([SMALL, 1.75])  # what flush-to-zero hardware returns
    (check, comp), = op_comparisons("add", (a, b), {}, None, forward=flushed_sum)
    assert check == "forward" and comp.ok
    assert comp.flushed == 1 and comp.max_ulp_error == 0.0


@pytest.mark.jax
def test_jax_on_this_cpu_flushes_and_is_named_so() -> None:
    import jax

    jax.config.update("jax_enable_x64", True)
    a = np.array([SMALL, 1.5])
    b = np.array([SUB, 0.25])
    out = np.asarray(jax.jit(lambda u, v: u + v)(a, b))
    (_, comp), = op_comparisons("add", (a, b), {}, None, forward=out)
    assert comp.ok
    if out[0] == a[0] + b[0]:  # an XLA build that keeps subnormals: nothing to name
        assert comp.flushed == 0
    else:
        assert out[0] == a[0], "a flush leaves the normal addend"
        assert comp.flushed == 1 and comp.max_ulp_error == 0.0
