"""The compiled kernels of the double-double format (reference_impl.dd_kernels)
give the NumPy path's bits: every kernel on values across the format's
exponent range (zeros, subnormal and huge inputs, infinities and nan
included) and every op's float64 forward and VJP on the truth tier's drawn
inputs, once with the kernels and once without. A nan compares equal to a
nan (its sign and payload are not part of any result). The NumPy path's
accuracy follows: the accuracy tests run on the kernels, which equal it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numba  # noqa: F401  (the test extra installs it: without it the comparison would be empty)
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parity_tests.accuracy.test_truth import cases
from reference_impl import OPS, dd_kernels, dd_tables, ops, wide
from reference_impl import dd_loops as K
from reference_impl import double_double as ddm

pytestmark = pytest.mark.numpy_only

_RNG = np.random.default_rng(21)
_EDGE = np.array([0.0, 5e-324, 2.2e-308, 1e-300, 1e-20, 2.0**-40, 1e-8, 0.3, 0.5, 0.55, 1.0, 1 + 2.0**-52, 2.0,
                  3.7, 17.0, 700.0, 709.78, 745.2, 1e4, 1e300, 1.7e308, np.inf, np.nan])
_X = np.concatenate([_EDGE, -_EDGE, _RNG.standard_normal(300) * 4, _RNG.uniform(-745.2, 709.8, 100),
                     10.0 ** _RNG.uniform(-320, 300, 100) * _RNG.choice([-1, 1], 100)])


def _values() -> list[ddm.DD]:
    """DD arrays with a nonzero low half and exponents far outside float64's range."""
    with np.errstate(all="ignore"):
        x = ddm.dd(_X) + ddm.dd(_RNG.standard_normal(_X.size)) * 2.0**-60 * ddm.dd(np.where(_X == 0, 1.0, _X))
    return [x, ddm.DD(x.hi, x.lo, x.e + 900), ddm.DD(x.hi, x.lo, x.e - 900), ddm.dd(_X)]


@pytest.fixture
def restore() -> Iterator[None]:
    was = ddm.use_kernels(True)
    yield
    ddm.use_kernels(was)


def _outcome(f: Callable[[], Any]) -> Any:
    try:
        return f()
    except ValueError as e:  # an op's refusal (a result beyond the dtype's range) must be the same too
        return f"ValueError: {e}"


def _both(f: Callable[[], Any]) -> tuple[Any, Any]:
    ddm.use_kernels(True)
    a = _outcome(f)
    ddm.use_kernels(False)
    try:
        b = _outcome(f)
    finally:
        ddm.use_kernels(True)
    return a, b


def _assert_same_bits(a: Any, b: Any, what: str) -> None:
    if isinstance(a, str) or isinstance(b, str):
        assert a == b, f"{what}: {a} (kernels) vs {b} (NumPy)"
        return
    parts = [(a.hi, b.hi), (a.lo, b.lo), (a.e, b.e)] if isinstance(a, ddm.DD) else [(a, b)]
    for name, (u, v) in zip(("hi", "lo", "e"), parts):
        u, v = np.asarray(u), np.asarray(v)
        assert u.dtype == v.dtype and u.shape == v.shape, f"{what}: {name} {u.dtype}{u.shape} vs {v.dtype}{v.shape}"
        same = (u.view(np.int64) == v.view(np.int64)) | (np.isnan(u) & np.isnan(v)) if u.dtype.kind == "f" else u == v
        bad = np.flatnonzero(~same.ravel())
        assert bad.size == 0, f"{what}: {name} differs at {bad.size} elements, first {u.ravel()[bad[0]]!r} " \
                              f"(kernels) vs {v.ravel()[bad[0]]!r} (NumPy)"


def test_the_kernels_are_in_use() -> None:
    assert ddm.KERNELS and ddm.exp is not ddm._NUMPY_PATH["exp"], "numba is installed, so double_double uses them"
    assert ddm._kernels() is K


@pytest.mark.parametrize("name", ["exp", "expm1", "log", "log1p", "tanh"])
def test_elementary_functions_give_the_numpy_bits(name: str, restore: None) -> None:
    for i, x in enumerate(_values()):
        arg = {"expm1": -abs(x), "log": abs(x), "log1p": abs(x) - 0.75}.get(name, x)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _assert_same_bits(*_both(lambda arg=arg: getattr(ddm, name)(arg)), f"{name} on value set {i}")


_ARITHMETIC: dict[str, Callable[[ddm.DD, ddm.DD], Any]] = {
    "add": lambda x, y: x + y, "sub": lambda x, y: x - y, "mul": lambda x, y: x * y, "div": lambda x, y: x / y,
    "sum": lambda x, y: (x * y).reshape(-1, 7).sum(axis=-1), "to_float": lambda x, y: (x * y).to_float(),
    "full_sum": lambda x, y: (x * y).sum(), "mean": lambda x, y: (x[::3] + y[::3]).mean(),
    "neg_zero": lambda x, y: (-ddm.dd(np.zeros(3)) + -ddm.dd(np.zeros(3))) * x[:3]}


@pytest.mark.parametrize("name", sorted(_ARITHMETIC))
def test_arithmetic_gives_the_numpy_bits(name: str, restore: None) -> None:
    values = _values()
    for i, x in enumerate(values):
        for j, y in enumerate(values):
            y = y[::-1]
            with np.errstate(all="ignore"):
                _assert_same_bits(*_both(lambda x=x, y=y: _ARITHMETIC[name](x, y)), f"{name} on value sets {i}, {j}")


def test_broadcast_operands_give_the_numpy_bits(restore: None) -> None:
    x = ddm.dd(_RNG.standard_normal((6, 5))) * ddm.dd(1 / 3)
    row = ddm.dd(_RNG.standard_normal((1, 5)))
    _assert_same_bits(*_both(lambda: x / row.sum(axis=-1, keepdims=True) + 1), "a row-broadcast quotient plus 1")
    _assert_same_bits(*_both(lambda: ddm.dd(2.5) * ddm.exp(np.float64(0.5))), "0-d operands")


def test_conversion_from_float64_gives_the_numpy_bits(restore: None) -> None:
    for x in (_X, -_X, np.float64(-0.0), np.asarray(2.0**-1074), _X.reshape(3, -1)[:, ::2]):
        _assert_same_bits(*_both(lambda x=x: ddm.dd(x)), f"dd() of {np.shape(x)} values")


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 7, 8, 10, 17])
def test_row_sums_give_the_numpy_bits(n: int, restore: None) -> None:
    """Pairwise sums over the last axis (and over a middle one, transposed), and the exact
    full sum, on every value set: shifted exponents, zeros, infinities and nan included."""
    for i, x in enumerate(_values()):
        rows = x[:6 * n].reshape(6, n) if n else ddm.dd(np.zeros((6, 0)))
        with np.errstate(all="ignore"):
            _assert_same_bits(*_both(lambda r=rows: r.sum(axis=-1)), f"rows of {n} of value set {i}")
            _assert_same_bits(*_both(lambda r=rows: r.sum(axis=-1, keepdims=True)), f"rows of {n}, keepdims, set {i}")
            if n:
                cube = x[:12 * n].reshape(3, n, 4)
                _assert_same_bits(*_both(lambda c=cube: c.sum(axis=1)), f"axis 1 of (3, {n}, 4), set {i}")
                _assert_same_bits(*_both(lambda x=x: x[:n].sum()), f"the full sum of {n} of set {i}")


_FUSED = {"tanh": wide.tanh, "tanh_vjp": ops._tanh_vjp, "sigmoid": ops._sigmoid, "sigmoid_vjp": ops._sigmoid_vjp}


@pytest.mark.parametrize("name", sorted(_FUSED))
def test_the_fused_formulas_give_the_numpy_bits(name: str, restore: None) -> None:
    """Each fused formula (float64 inputs to the rounded result in one pass) against its
    spelling in DD operations: across tanh's switch at |x| = 0.55 (its neighbours included)
    and sigmoid's at 0, at zeros of both signs, subnormal and huge arguments, with cotangents
    from 5e-324 to 1e308, broadcast and 0-d."""
    assert set(_FUSED) == set(K.ROUNDED)
    near = np.array([0.55, np.nextafter(0.55, 0), np.nextafter(0.55, 1), 0.0, -0.0, 5e-324, 1e-300, 20.0, 400.0])
    x = np.concatenate([near, -near, _X[np.isfinite(_X)]])
    spec = _FUSED[name]
    cotangents = [np.ones(x.size), _RNG.choice([5e-324, 1e-300, 1e308, -3.0], x.size), np.float64(2.5)]
    for j, g in enumerate(cotangents):
        args = (x,) if not name.endswith("_vjp") else (g, x)
        with np.errstate(all="ignore"):
            _assert_same_bits(*_both(lambda args=args: wide.rounded(name, spec, *args)), f"{name}, cotangents {j}")
    one = (np.float64(-0.3),) if not name.endswith("_vjp") else (np.float64(1e308), np.float64(-0.3))
    _assert_same_bits(*_both(lambda: wide.rounded(name, spec, *one)), f"{name} of 0-d inputs")


@pytest.mark.parametrize("op", sorted(OPS))
@settings(max_examples=6, deadline=None)
@given(data=st.data())
def test_every_op_gives_the_same_bits_with_and_without_kernels(op: str, data: st.DataObject) -> None:
    xs, params, g, label = data.draw(cases(op, np.dtype(np.float64)))
    spec = OPS[op]
    with np.errstate(all="ignore"):
        fwd = _both(lambda: spec.evaluate(*xs, **params))
        vjp = _both(lambda: spec.vjp(g, *xs, **params))
    _assert_same_bits(*fwd, f"{op} forward on {label}")
    for k, (a, b) in enumerate(zip(*vjp)):
        _assert_same_bits(a, b, f"{op} VJP of input {k} on {label}")


def test_the_cached_loops_are_keyed_on_the_sources_of_their_kernels() -> None:
    """numba's disk cache checks only a loop's own file: each loop holds the digest of the
    kernels, tables and error-free transformations it is compiled from (an edit there
    must compile it anew, not load the old machine code)."""
    digest = hashlib.sha256()
    for name in ("dd_kernels.py", "dd_tables.py", "double_double.py"):
        digest.update((Path(ddm.__file__).parent / name).read_bytes())
    with np.load(dd_tables.TABLES) as tables:
        for table in ("exp", "log"):
            for half in range(2):
                digest.update(np.ascontiguousarray(tables[table][:, half]).tobytes())
    for loop in (*K.LOOPS.values(), *K.ROUNDED.values()):
        assert digest.hexdigest() in [c.cell_contents for c in loop.py_func.__closure__ or ()], loop


@pytest.mark.parametrize("start", [0.0, 0.5, 0.99])
def test_warming_from_any_start_runs_every_loop_once(start: float, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every loop is run once, beginning ``start`` of the way through the list and wrapping round."""
    calls: list[str] = []

    def recorded(fn: str, named: bool) -> Callable[..., Any]:
        f = getattr(K, fn)
        return lambda *a: (calls.append(a[0] if named else fn), f(*a))[1]

    for fn in ("run", "rounded", "to_float", "pairwise", "exact_sum"):
        monkeypatch.setattr(K, fn, recorded(fn, named=fn in ("run", "rounded")))
    K.warm(start)
    names = [*K.LOOPS, "to_float", "pairwise", "exact_sum", *K.ROUNDED]
    k = int(start * len(names))
    assert calls == names[k:] + names[:k]


@pytest.mark.parametrize("start", [1.0, -0.25, float("nan")])
def test_warming_from_outside_the_loops_names_the_argument(start: float) -> None:
    with pytest.raises(ValueError, match=r"start: .* is not in \[0, 1\)"):
        K.warm(start)


def test_the_kernels_compile_where_numba_has_no_cache_directory() -> None:
    """A read-only install without a writable user cache: numba has nowhere to cache, and the
    loops are compiled in the process instead of raising from inside numba. A function
    without a source file is in the same position."""
    namespace: dict[str, Any] = {}
    exec("def twice(x):\n    return 2.0 * x\n", namespace)
    assert dd_kernels._jit_cached(namespace["twice"])(1.5) == 3.0


_EXP_OF_A_COPY = """
import numpy as np
import reference_impl
from reference_impl import double_double as ddm, dd_loops as K
d = ddm.dd(np.array([0.3, 1.7, -2.2]))
compiled, numpy_path = K.run("exp", d.hi, d.lo, d.e)[0], ddm._NUMPY_PATH["exp"](d).hi
print(reference_impl.__file__, compiled.tolist() == numpy_path.tolist(), compiled.tolist())
"""


@pytest.mark.slow
def test_an_edit_of_the_tables_reaches_the_cached_loops(tmp_path: Path) -> None:
    """numba keys a cached function on its own file alone. A copy of the package with a cache
    of its own computes exp, its exp table is changed, and it computes exp again: the compiled
    exp follows the NumPy path both times (a kernel cached on its own would bring the old
    table into the loop compiled anew for the new digest)."""
    package = tmp_path / "reference_impl"
    shutil.copytree(Path(ddm.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(tmp_path)}

    def exp_of_the_copy() -> str:
        out = subprocess.run([sys.executable, "-c", _EXP_OF_A_COPY], env=env, cwd=tmp_path, capture_output=True,
                             text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
        where, same, values = out.stdout.split(" ", 2)
        assert Path(where).parent == package and same == "True", out.stdout
        return values

    before = exp_of_the_copy()
    tables = dict(np.load(package / "dd_tables.npz"))
    tables["exp"][:, 0] *= 1.5
    np.savez(package / "dd_tables.npz", exp=tables["exp"], log=tables["log"])
    assert exp_of_the_copy() != before


def test_asking_for_kernels_without_numba_names_the_argument(restore: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ddm.importlib.util, "find_spec", lambda name, *args: None)
    with pytest.raises(RuntimeError, match=r"on: .*numba"):
        ddm.use_kernels(True)
    assert ddm.KERNELS and ddm.use_kernels(False) is True and ddm.exp is ddm._NUMPY_PATH["exp"] and not ddm.KERNELS
