"""The double-double format of the float64 reference (reference_impl.double_double).

The error-free transformations are exact (checked in rational arithmetic),
the elementary functions are within the relative error their docstrings
state (checked against mpmath at 200 bits), the exponent of its own carries
products and sums far beyond float64's range, and no float64 result of any
op depends on the platform's ``longdouble``.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import mpmath
import numpy as np
import pytest

from reference_impl import OPS
from reference_impl import dd_tables as T
from reference_impl import double_double as ddm

mpmath.mp.prec = 200

_RNG = np.random.default_rng(20)
_POINTS = np.concatenate([
    _RNG.standard_normal(200) * 4, _RNG.uniform(-745.2, 709.8, 100), 10.0 ** _RNG.uniform(-320, -1, 60),
    [0.5, 0.55, -0.549, 1e-5, 2.0**-40, 2.0**-20, 709.78, -745.13, -744.4, 5e-324, 2.2e-308, 1e-310],
])


def _value(x: ddm.DD) -> list[mpmath.mpf]:
    return [mpmath.ldexp(mpmath.mpf(float(h)) + mpmath.mpf(float(lo)), int(e)) if h != 0 else mpmath.mpf(0)
            for h, lo, e in zip(x.hi.ravel(), x.lo.ravel(), x.e.ravel())]


def _worst_relative(got: ddm.DD, f: object, xs: np.ndarray) -> float:
    worst = 0.0
    for v, x in zip(_value(got), xs):
        exact = f(mpmath.mpf(float(x)))  # type: ignore[operator]
        worst = max(worst, float(abs(v - exact) / abs(exact)) if exact != 0 else (0.0 if v == 0 else math.inf))
    return worst


@pytest.mark.parametrize(("name", "f", "points", "bound"), [
    ("exp", mpmath.exp, _POINTS, 2.0**-91),
    ("expm1", mpmath.expm1, _POINTS[np.abs(_POINTS) < 2], 2.0**-78),
    ("tanh", mpmath.tanh, np.concatenate([_POINTS, -_POINTS]), 2.0**-76),
    ("log", mpmath.log, np.concatenate([np.abs(_POINTS[_POINTS != 0]), 1 + _RNG.standard_normal(40) * 1e-6,
                                        [1.0, 1 - 2.0**-53, 1 + 2.0**-52, 1.7e308]]), 2.0**-78),
    ("log1p", mpmath.log1p, np.concatenate([np.abs(_POINTS), -np.abs(_POINTS[np.abs(_POINTS) < 1]) * 0.999]),
     2.0**-78),
])
def test_elementary_functions_within_their_bounds(name: str, f: object, points: np.ndarray, bound: float) -> None:
    got = getattr(ddm, name)(points)
    worst = _worst_relative(got, f, points)
    assert worst <= bound, f"{name}: relative error 2**{math.log2(worst):.1f} beyond 2**{math.log2(bound):.0f}"


def test_error_free_transformations_are_exact() -> None:
    a = _RNG.standard_normal(500) * 10.0 ** _RNG.integers(-30, 30, 500)
    b = _RNG.standard_normal(500) * 10.0 ** _RNG.integers(-30, 30, 500)
    s, t = ddm.two_sum(a, b)
    p, q = ddm.two_prod(a, b)
    big, small = np.where(np.abs(a) >= np.abs(b), a, b), np.where(np.abs(a) >= np.abs(b), b, a)
    fs, ft = ddm.fast_two_sum(big, small)
    for i in range(a.size):
        fa, fb = Fraction(float(a[i])), Fraction(float(b[i]))
        assert Fraction(float(s[i])) + Fraction(float(t[i])) == fa + fb and float(s[i]) == float(a[i] + b[i])
        assert Fraction(float(fs[i])) + Fraction(float(ft[i])) == fa + fb
        assert Fraction(float(p[i])) + Fraction(float(q[i])) == fa * fb and float(p[i]) == float(a[i] * b[i])


def test_squares_and_presplit_products_are_exact_and_give_two_prods_bits() -> None:
    """``two_sqr`` and the product with a table's halves split once are the
    exact products, bit for bit what ``two_prod`` gives."""
    a = _RNG.standard_normal(500) * 10.0 ** _RNG.integers(-30, 30, 500)
    b = _RNG.standard_normal(500) * 10.0 ** _RNG.integers(-30, 30, 500)
    p, q = ddm.two_sqr(a)
    for i in range(a.size):
        assert Fraction(float(p[i])) + Fraction(float(q[i])) == Fraction(float(a[i])) ** 2
    np.testing.assert_array_equal(np.stack([p, q]), np.stack(ddm.two_prod(a, a)))
    j = _RNG.integers(0, T.EXP_N, 500)
    th = T.EXP_TH[j]
    np.testing.assert_array_equal(np.stack(ddm.two_prod(th, b, (T.EXP_THH[j], T.EXP_THL[j]))),
                                  np.stack(ddm.two_prod(th, b)))
    n = _RNG.integers(-1100, 1100, 500).astype(np.float64)
    np.testing.assert_array_equal(np.stack(ddm.two_prod(T.LN2_HI, n, (T.LN2_HH, T.LN2_HL))),
                                  np.stack(ddm.two_prod(n, T.LN2_HI)))


def test_the_shipped_tables_are_their_definition_bit_for_bit(tmp_path: Path) -> None:
    """``dd_tables.npz`` holds the pairs that 60-digit decimals give (rewrite it with
    ``dd_tables.write_tables()`` after a change to ``build_tables``); without the file
    (or with a damaged one) the pairs are built at import."""
    built = T.build_tables()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(T, "build_tables", lambda: pytest.fail(f"{T.TABLES} was not read"))
        shipped = T._load_tables()
    for name, loaded in (("exp", shipped["exp"]), ("log", shipped["log"])):
        assert loaded.shape == built[name].shape, name
        assert np.array_equal(loaded.view(np.uint64), built[name].view(np.uint64)), \
            f"dd_tables.npz[{name!r}] differs from build_tables(): run reference_impl.dd_tables.write_tables()"
    missing, corrupt, cut, short = (tmp_path / f"{name}.npz" for name in ("missing", "corrupt", "cut", "short"))
    corrupt.write_bytes(b"not a table")
    cut.write_bytes(T.TABLES.read_bytes()[:2000])
    np.savez(short, exp=built["exp"][:10], log=built["log"])
    for path in (missing, corrupt, cut, short):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(T, "TABLES", path)
            mp.setattr(T, "build_tables", lambda: built)
            assert T._load_tables() is built, path.name


def test_the_exponent_carries_what_float64_cannot() -> None:
    """Sums through 2e308, a slope of exp(-1400) times 1.7e308, a subnormal
    result rounded once from all its bits, the sign of zero."""
    x = ddm.dd(np.array([1e308, -1e308, 1.7e308]))
    assert np.array_equal((x + x - x).to_float(), np.array([1e308, -1e308, 1.7e308]))
    got = (ddm.dd(1.7e308) * ddm.exp(np.array([-800.0, -1400.0, 709.78])) * ddm.exp(-709.78)).to_float()
    exact = [float(mpmath.mpf(1.7e308) * mpmath.exp(v) * mpmath.exp(mpmath.mpf(-709.78)))
             for v in (-800.0, -1400.0, 709.78)]
    assert np.array_equal(got, np.array(exact))
    sub = ddm.exp(np.array([-740.0, -744.0, -745.13])).to_float()
    assert np.array_equal(sub, np.array([float(mpmath.exp(v)) for v in (-740.0, -744.0, -745.13)]))
    zeros = ddm.dd(np.array([-0.0, 0.0]))
    assert np.array_equal(np.signbit((zeros * 3.0).to_float()), [True, False])
    assert np.array_equal(np.signbit((zeros + zeros).to_float()), [True, False])
    assert np.array_equal(np.signbit(ddm.tanh(np.array([-0.0, 0.0])).to_float()), [True, False])


def _cases() -> dict[str, tuple[np.ndarray, ...]]:
    rng = np.random.default_rng(3)
    z = rng.standard_normal((4, 5)) * np.array([[1.0], [30.0], [400.0], [1e-3]])
    t = rng.dirichlet(np.ones(5), size=4)
    x = np.array([0.3, -2.0, 40.5, -400.0, 745.0, 1e-310, -0.0, 19.0, 1400.0, 3e-8])
    return {"tanh": (x,), "sigmoid": (x,), "softmax": (z,), "softmax_cross_entropy": (z, t),
            "cross_entropy": (np.exp(z - z.max(-1, keepdims=True)) / np.exp(z - z.max(-1, keepdims=True)).sum(-1,
                              keepdims=True), t),
            "mse": (z, z[::-1]), "add": (z, z[0]), "multiply": (z, z[:, :1] * 1e300), "relu": (x,)}


@pytest.mark.parametrize("op", sorted(_cases()))
def test_results_do_not_depend_on_longdouble(op: str, request: pytest.FixtureRequest) -> None:
    """Every float64 result, forward and VJP with cotangents from 1e-300 to
    1.7e308, has the same bits with the platform's ``longdouble`` and with it
    forced to plain float64 (as on Windows and Apple silicon)."""
    xs = _cases()[op]
    gs = [np.full(OPS[op].forward(*xs).shape, c) for c in (1.0, 1.7e308, -3e-300)]

    def run() -> list[np.ndarray | str]:
        out: list[np.ndarray | str] = [OPS[op].forward(*xs)]
        for g in gs:
            try:
                out += OPS[op].vjp(g, *xs)
            except ValueError as err:  # a gradient beyond float64's range is refused by name: the same refusal
                out.append(str(err))
        return out

    native = run()
    request.getfixturevalue("decimal_fallback")
    forced = run()
    assert sum(isinstance(a, np.ndarray) for a in native) >= 2
    for i, (a, b) in enumerate(zip(native, forced, strict=True)):
        if isinstance(a, str) or isinstance(b, str):
            assert a == b, f"{op} result {i} differs"
        else:
            assert a.dtype == b.dtype == np.float64 and np.array_equal(a, b), f"{op} result {i} differs"


@pytest.mark.parametrize("shape", [(700, 7), (500,)])
@pytest.mark.parametrize("op", ["tanh", "sigmoid", "softmax", "cross_entropy"])
def test_blocks_give_the_bits_of_one_call(op: str, shape: tuple[int, ...], monkeypatch: pytest.MonkeyPatch) -> None:
    """Formulas cut into blocks (``wide.blockwise``) give the same bits as
    one call over the whole array, forward and VJP, rows kept whole (a
    single row, 1-D, is one block whatever its length)."""
    from reference_impl import wide

    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape) * 40
    g = rng.standard_normal(x.shape) * 1e300
    if op == "cross_entropy":
        p = np.exp(x / 40 - np.log(np.exp(x / 40).sum(axis=-1, keepdims=True)))
        x, g = (p / p.sum(axis=-1, keepdims=True), rng.dirichlet(np.ones(shape[-1]), size=shape[:-1])), 3.0
    xs = x if isinstance(x, tuple) else (x,)
    for name in ("BLOCK", "KERNEL_BLOCK"):  # the latter where the kernels are in use
        monkeypatch.setattr(wide, name, 64)
    cut = [OPS[op].forward(*xs), *OPS[op].vjp(g, *xs)]
    for name in ("BLOCK", "KERNEL_BLOCK"):
        monkeypatch.setattr(wide, name, 10**9)
    whole = [OPS[op].forward(*xs), *OPS[op].vjp(g, *xs)]
    assert all(np.array_equal(a, b) for a, b in zip(cut, whole, strict=True))


def test_rounding_to_float64_is_correct_near_and_below_the_normal_range() -> None:
    """``to_float`` rounds all 106 bits once, also where the low half alone
    would fall on the subnormal grid (a result just above 2.2e-308) or the
    whole value is subnormal: against Python's correctly rounded
    ``float(Fraction)``."""
    rng = np.random.default_rng(8)
    hi = rng.uniform(0.5, 1.0, 3000) * np.where(rng.random(3000) < 0.5, -1, 1)
    lo = hi * 2.0**-53 * rng.uniform(-0.5, 0.5, 3000)
    e = rng.integers(-1080, -1010, 3000)
    got = ddm.DD(hi, lo, e).to_float()
    for h, lo_, k, g in zip(hi, lo, e, got):
        exact = (Fraction(float(h)) + Fraction(float(lo_))) * Fraction(2) ** int(k)
        assert g == float(exact), (h, lo_, k, g, float(exact))


@pytest.mark.parametrize("n", [1, 2, 3, 7, 10, 33])
def test_sums_within_their_bounds(n: int) -> None:
    """``DD.sum`` of float64 values spanning 1e-300 to 1.7e308 (sums beyond
    float64's range on the way): over every axis the exact sum rounded
    (within ``u**2`` of it), over the last axis within the pairwise bound
    ``3 u**2 ceil(log2 n) sum |x|``; checked in rational arithmetic."""
    rng = np.random.default_rng(n)
    x = rng.uniform(-1, 1, (5, n)) * 10.0 ** rng.choice([-300, 0, 300, 308], (5, n))
    x[0, :] = 1.7e308  # a row whose sum overflows float64
    d = ddm.dd(x)

    def value(v: ddm.DD, i: int) -> Fraction:
        h, lo, e = float(v.hi.ravel()[i]), float(v.lo.ravel()[i]), int(v.e.ravel()[i])
        return (Fraction(h) + Fraction(lo)) * Fraction(2) ** e

    rows = d.sum(axis=-1)
    for i, row in enumerate(x):
        exact = sum(Fraction(float(v)) for v in row)
        bound = 3 * Fraction(2) ** -106 * max(1, math.ceil(math.log2(n))) * sum(abs(Fraction(float(v))) for v in row)
        assert abs(value(rows, i) - exact) <= bound, f"row {i}"
    total = sum(Fraction(float(v)) for v in x.ravel())
    assert abs(value(d.sum(), 0) - total) <= Fraction(2) ** -105 * abs(total)
    assert abs(value(d.mean(), 0) - total / x.size) <= Fraction(2) ** -104 * abs(total / x.size)
