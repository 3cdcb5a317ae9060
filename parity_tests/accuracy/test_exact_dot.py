"""``reference_impl.exact_dot`` against ball arithmetic, at its own bound.

The module states its bound: the exact ``a @ b (+ bias)`` rounded once,
plus ``ACCEPT`` (2^-55) times the larger of ``|C|`` and ``M = |a| @ |b| +
|bias|`` (and, in subnormal results, half the smallest subnormal). That is
at most 3/4 ulp elementwise where the terms do not cancel: far tighter than
the truth tier's 4 ulp, so that a slice one bit too wide, a dropped partial
product or a bound that certifies too much fails here. The truth is flint's,
from the same float64 inputs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reference_impl import exact_dot

from .test_truth import LONG_RANGES, _long

truth = pytest.importorskip("reference_impl.frameworks.truth", reason="python-flint (the truth extra) is not installed")

pytestmark = pytest.mark.numpy_only

F64 = np.dtype(np.float64)


def _assert_within_bound(what: str, actual: np.ndarray, exact: truth.Truth, magnitude: np.ndarray) -> None:
    ulps = exact.ulp_error(actual)
    spacing = np.maximum(np.spacing(np.abs(exact.rounded)), np.finfo(F64).smallest_subnormal)
    with np.errstate(over="ignore"):
        allowed = (0.5 + exact_dot.ACCEPT * np.maximum(np.abs(exact.value), magnitude) / spacing
                   + 0.5 * (np.finfo(F64).smallest_subnormal / spacing))
    worst = int(np.argmax(ulps - allowed))
    assert np.all(ulps <= allowed), (
        f"{what}: {np.ravel(ulps)[worst]:.3g} ulp from the truth at flat index {worst} "
        f"(the bound allows {np.ravel(allowed)[worst]:.3g}); got {np.ravel(actual)[worst]!r}, "
        f"exact {np.ravel(exact.value)[worst]!r}"
    )


def _hidden_cancellation(rng: np.random.Generator, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose leading slices cancel exactly and leave only terms far
    below a float64 ulp of the leading ones: ``1 * 1 + s * (-1/s) + sum eps``
    with ``s`` beyond the first slice and ``eps`` near ``u``. A plain float64
    sum of the remainders gives 0; the truth is ``sum eps``."""
    s = 2.0 ** -float(rng.integers(23, 40))  # one s for every row, so that b's second row cancels each
    a = np.empty((3, k))
    a[:, 0], a[:, 1] = 1.0, s
    a[:, 2:] = rng.uniform(0.2, 0.45, (3, k - 2)) * 2.0**-53
    b = rng.uniform(0.5, 1.0, (k, 2))
    b[0], b[1] = 1.0, -1 / s
    return a, b


@contextlib.contextmanager
def _path(path: str) -> Iterator[None]:
    """Small products take the TwoProduct + fsum path; ``"passes"`` sends
    them through the sliced passes instead, as large ones go."""
    saved = exact_dot._SMALL
    exact_dot._SMALL = saved if path == "few terms" else 0
    try:
        yield
    finally:
        exact_dot._SMALL = saved


@pytest.mark.parametrize("path", ["few terms", "passes"])
@given(seed=st.integers(0, 2**32 - 1), k=st.sampled_from([1, 2, 7, 64, 300, 1024, 3000]),
       names=st.tuples(*[st.sampled_from(LONG_RANGES)] * 2), bias=st.booleans())
@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
def test_products_within_the_stated_bound(path: str, seed: int, k: int, names: tuple[str, str], bias: bool) -> None:
    rng = np.random.default_rng(seed)
    a = _long(rng, (3, k), names[0], F64)
    b = _long(rng, (k, 2), names[1], F64)
    c = rng.standard_normal(2) * np.max(np.abs(a)) * np.max(np.abs(b)) if bias else None
    with np.errstate(over="ignore"):
        mag = np.abs(a) @ np.abs(b) + (0 if c is None else np.abs(c))
    exact = truth.forward("dense", (a, b, c)) if c is not None else truth.forward("matmul", (a, b))
    if not np.all(np.isfinite(exact.rounded)):
        return  # beyond float64: the ops refuse it (test_truth)
    with _path(path):
        got = exact_dot.matmul(a, b, c)
    _assert_within_bound(f"exact_dot.matmul [{path}, {'/'.join(names)}, k {k}, bias {bias}]", got, exact, mag)


@pytest.mark.parametrize("path", ["few terms", "passes"])
@given(seed=st.integers(0, 2**32 - 1), k=st.sampled_from([16, 100, 1000]))
@settings(max_examples=10, deadline=None, database=None)
def test_small_terms_behind_a_cancellation(path: str, seed: int, k: int) -> None:
    """Where the leading terms cancel exactly, the terms below a float64 ulp
    of them are the whole result and must survive."""
    a, b = _hidden_cancellation(np.random.default_rng(seed), k)
    exact = truth.forward("matmul", (a, b))
    with _path(path):
        got = exact_dot.matmul(a, b)
    _assert_within_bound(f"exact_dot.matmul [{path}, hidden cancellation, k {k}]", got, exact,
                         np.abs(a) @ np.abs(b))


def test_batch_axes_summed_inside_the_accurate_sum() -> None:
    """``shape`` folds the summed batch axes into the contraction: the
    batch sum of products that cancel across the batch is the truth rounded."""
    rng = np.random.default_rng(3)
    a = rng.standard_normal((4, 3, 5)) * 1e8
    a[1] = -a[0] * (1 + 1e-12)
    b = rng.standard_normal((4, 5, 2))
    b[1] = b[0]
    summed = exact_dot.matmul(a, b, shape=(3, 2))
    flat_a = np.concatenate(list(a), axis=1)
    flat_b = np.concatenate(list(b), axis=0)
    exact = truth.forward("matmul", (flat_a, flat_b))
    _assert_within_bound("exact_dot.matmul, batch summed", summed, exact, np.abs(flat_a) @ np.abs(flat_b))
    assert exact_dot.matmul(a, b).shape == (4, 3, 2)
    assert exact_dot.matmul(a[0, 0], b[0]).shape == (2,)
    assert exact_dot.matmul(a[0], b[0, :, 0]).shape == (3,)


@pytest.mark.parametrize("op", ["matmul", "dense"])
def test_sums_of_products_do_not_depend_on_longdouble(op: str, request: pytest.FixtureRequest) -> None:
    """The float64 products run on BLAS whatever ``longdouble`` is: the same
    bits, forward and VJPs, with the platform's ``longdouble`` and with it
    forced to plain float64."""
    from reference_impl import OPS

    rng = np.random.default_rng(11)
    shapes = {"matmul": [((5, 40), (40, 3)), ((40,), (40, 3)), ((2, 5, 40), (40,)), ((2, 1, 5, 7), (3, 7, 4))],
              "dense": [((5, 40), (40, 3), (3,)), ((40,), (40, 3), (3,)), ((2, 5, 40), (40, 3), (3,))]}[op]
    cases = [tuple(rng.standard_normal(s) * 10.0 ** rng.integers(-3, 3, s) for s in shape) for shape in shapes]

    def run() -> list[np.ndarray]:
        results = []
        for xs in cases:
            out = OPS[op].forward(*xs)
            results += [out, *OPS[op].vjp(rng_g(out.shape), *xs)]
        return results

    def rng_g(shape: tuple[int, ...]) -> np.ndarray:
        return np.random.default_rng(len(shape)).standard_normal(shape)

    native = run()
    request.getfixturevalue("decimal_fallback")
    forced = run()
    for i, (x, y) in enumerate(zip(native, forced, strict=True)):
        assert x.dtype == y.dtype == F64 and np.array_equal(x, y), f"{op} result {i}: bits differ without longdouble"


def test_rational_entries_round_once_and_beyond_range_to_inf() -> None:
    """The last resort rounds the exact sum once; a sum beyond float64 is
    +-inf (as IEEE rounding says; the ops then refuse it by name)."""
    row, col = np.array([1e308, 1e308, -1e308]), np.array([10.0, 10.0, 1.0])
    assert exact_dot._exact_entry(row, col, None) == np.inf
    assert exact_dot._exact_entry(-row, col, None) == -np.inf
    assert exact_dot._exact_entry(np.array([1.0, 2.0**-60]), np.array([1.0, 1.0]), -1.0) == 2.0**-60
    assert exact_dot._exact_entry(np.array([1.0, 2.0**-53]), np.array([1.0, 1.0]), None) == 1.0  # a tie: to even
