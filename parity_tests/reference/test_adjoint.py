"""Framework-free: the adjoint (dot-product) test against central finite
differences in float64, for every op, with the VJP in float32 and float64.

For inputs ``x``, a direction ``u`` and a cotangent ``v``::

    <u, VJP(v)>  ==  <v, (f(x + h u) - f(x - h u)) / 2h>  + O(h^2)

Error model of the right-hand side (all in float64):

* the step: ``x +- h u`` is rounded, so the test uses the exact chord
  ``(x+ - x-) / 2h`` as the direction on the left-hand side; no input
  rounding enters;
* truncation: ``c h^2``, estimated a posteriori by Richardson as
  ``|D(2h) - D(h)| / 3`` and counted twice (the estimate is asymptotic);
* rounding of ``f``: ``sum |v| (b(x+) + b(x-)) / 2h`` with ``b`` the forward
  bound of ``tolerances.py`` for one implementation.

The left-hand side carries the VJP's own bound in the example's dtype.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference_impl.dtypes import resolve
from reference_impl.frameworks.recipes import SPECS
from reference_impl.strategies import examples

from ..harness import check_adjoint

DTYPES = [np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16), resolve("bfloat16")]
CASES = [pytest.param(op, dt, id=f"{op}-{np.dtype(dt).name}") for op in sorted(SPECS) for dt in DTYPES]


@pytest.mark.numpy_only
@pytest.mark.parametrize(("op", "dtype"), CASES)
@given(data=st.data())
def test_adjoint_vs_finite_differences(op: str, dtype: type, data: st.DataObject) -> None:
    ex = data.draw(examples(op, dtype), label="example")
    seed = data.draw(st.integers(0, 2**32 - 1), label="direction_seed")
    check_adjoint(ex, seed)
