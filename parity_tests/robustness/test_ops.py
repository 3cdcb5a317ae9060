"""Robustness of every op entry point: the plain functions (``ri.softmax``,
``ri.softmax_vjp``, ...), ``OPS[...].forward`` / ``.vjp`` and ``unbroadcast``,
fed every class of input a caller may pass.

The contract: either a ``ValueError`` / ``TypeError`` whose message starts
with the name of an argument the caller passed, or a finite result equal to
an independent formula written here (exact rational arithmetic or mpmath,
never the code under test), in bounded time and memory (small shapes, a
hypothesis deadline per example). Networks, graph, paths, optim and examples
are in ``test_networks.py``; fixture files in
``test_golden.py``.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import ml_dtypes
import mpmath
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reference_impl as ri
from reference_impl import OPS, engine
from reference_impl.accuracy import ops as tolerances

OP_NAMES = sorted(OPS)
FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
FAST = settings(deadline=2000, suppress_health_check=[HealthCheck.too_slow], max_examples=60)


# --------------------------------------------------------------------------- valid inputs and the contract


def valid_inputs(op: str, dtype: np.dtype) -> list[np.ndarray]:
    """Small valid inputs of every op, built here (not from the suite's spec)."""
    x = np.array([[0.5, -1.25, 2.0], [0.0, 3.0, -0.75]], dtype=dtype)
    dist = np.array([[0.25, 0.25, 0.5], [0.5, 0.125, 0.375]], dtype=dtype)
    return {
        "add": [x, x[0]], "multiply": [x, x[0]], "matmul": [x, x.T.copy()],
        "dense": [x, x.T.copy(), np.array([0.5, -0.5], dtype=dtype)],
        "relu": [x], "tanh": [x], "sigmoid": [x], "softmax": [x],
        "cross_entropy": [dist, dist[::-1].copy()], "softmax_cross_entropy": [x, dist], "mse": [x, x[::-1].copy()],
    }[op]


def output_shape(op: str, dtype: np.dtype) -> tuple[int, ...]:
    return OPS[op].forward(*valid_inputs(op, dtype)).shape


def names_in(message: str) -> set[str]:
    """The argument names a message starts with: ``"a, b: ..."`` -> {a, b};
    ``"softmax(): ..."`` -> {softmax()}."""
    head = message.split(":", 1)[0]
    return {n.strip() for n in head.split(",")}


def assert_names_a_passed_argument(error: BaseException, passed: set[str]) -> None:
    assert isinstance(error, (ValueError, TypeError)), f"{type(error).__name__}: {error}"
    named = names_in(str(error))
    bare = {re.sub(r"\[.*$|\..*$", "", n) for n in named}
    assert (named | bare) & passed, f"message names {named}, the caller passed {sorted(passed)}: {error}"


Call = Callable[[list[Any], np.ndarray], Any]


def entry_points(op: str) -> dict[str, Call]:
    """Every way to call ``op``: the plain functions by position and by
    keyword, and the registry's ``forward`` / ``vjp``."""
    names = OPS[op].arg_names
    fwd, vjp = getattr(ri, op), getattr(ri, op + "_vjp")
    return {
        "plain": lambda args, g: fwd(*args),
        "plain-keywords": lambda args, g: fwd(**dict(zip(names, args))),
        "plain-vjp": lambda args, g: vjp(g, *args),
        "plain-vjp-keywords": lambda args, g: vjp(cotangent=g, **dict(zip(names, args))),
        "registry": lambda args, g: OPS[op].forward(*args),
        "registry-vjp": lambda args, g: OPS[op].vjp(g, *args),
    }


ENTRY_KINDS = sorted(entry_points("relu"))


def call_with_bad(op: str, kind: str, position: int, bad: Any, dtype: np.dtype) -> BaseException:
    """Replace one input (``position`` -1: the cotangent) by ``bad``; the
    call must raise a clear error naming that input."""
    args: list[Any] = list(valid_inputs(op, dtype))
    g: Any = np.ones(output_shape(op, dtype), dtype=dtype)
    if position < 0:
        as_vjp = {"plain": "plain-vjp", "plain-keywords": "plain-vjp-keywords", "registry": "registry-vjp"}
        kind = as_vjp.get(kind, kind)
        g = bad
        name = "cotangent"
    else:
        args[position] = bad
        name = OPS[op].arg_names[position]
    with pytest.raises((ValueError, TypeError)) as info:
        entry_points(op)[kind](args, g)
    assert_names_a_passed_argument(info.value, {name})
    return info.value


positions = st.shared(st.sampled_from(OP_NAMES), key="op").flatmap(
    lambda op: st.tuples(st.just(op), st.integers(-1, len(OPS[op].arg_names) - 1)))


# --------------------------------------------------------------------------- input classes


BAD_DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint64", "bool", "float8_e4m3fn", "float8_e5m2",
              "complex64", "complex128",
              "object", "datetime64[ns]", "timedelta64[s]", "U3", "S3"]


@FAST
@given(where=positions, kind=st.sampled_from(ENTRY_KINDS), bad=st.sampled_from(BAD_DTYPES),
       dtype=st.sampled_from(FLOATS))
def test_every_unsupported_dtype_is_a_type_error_naming_the_input(where: tuple[str, int], kind: str, bad: str,
                                                                  dtype: np.dtype) -> None:
    op, position = where
    shape = output_shape(op, dtype) if position < 0 else valid_inputs(op, dtype)[position].shape
    value = np.zeros(shape, dtype=bad) if bad != "object" else np.full(shape, 1.0, dtype=object)
    error = call_with_bad(op, kind, position, value, dtype)
    assert isinstance(error, TypeError) and ("dtype" in str(error) or "object array" in str(error)), error


@pytest.mark.parametrize("bad", ["float8_e4m3fn", "float8_e5m2", "int4"])
def test_the_other_ml_dtypes_formats_are_a_type_error_naming_the_input(bad: str) -> None:
    for op in OP_NAMES:
        for position, name in enumerate(OPS[op].arg_names):
            value = valid_inputs(op, FLOATS[1])[position].astype(getattr(ml_dtypes, bad))
            error = call_with_bad(op, "plain", position, value, FLOATS[1])
            assert isinstance(error, TypeError) and bad in str(error) and str(error).startswith(name + ":"), error


class _Subclass(np.ndarray):
    pass


def _matrix(a: np.ndarray) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)  # np.matrix is discouraged: that is the point
        return np.asmatrix(np.atleast_2d(a))


SUBCLASSES: dict[str, tuple[Callable[[np.ndarray], Any], str]] = {
    "masked": (lambda a: np.ma.array(a, mask=np.zeros(a.shape, bool)), "filled"),
    "masked-with-mask": (lambda a: np.ma.array(a, mask=np.ones(a.shape, bool)), "filled"),
    "matrix": (lambda a: _matrix(a), "np.asarray"),
    "custom": (lambda a: a.view(_Subclass), "np.asarray"),
}


@FAST
@given(where=positions, kind=st.sampled_from(ENTRY_KINDS), sub=st.sampled_from(sorted(SUBCLASSES)),
       dtype=st.sampled_from(FLOATS))
def test_ndarray_subclasses_that_change_meaning_are_refused_with_a_conversion(
        where: tuple[str, int], kind: str, sub: str, dtype: np.dtype) -> None:
    op, position = where
    base = np.ones(output_shape(op, dtype), dtype) if position < 0 else valid_inputs(op, dtype)[position]
    make, hint = SUBCLASSES[sub]
    error = call_with_bad(op, kind, position, make(base), dtype)
    assert isinstance(error, TypeError) and hint in str(error), error


def test_masked_relu_is_refused_not_computed_on_masked_data() -> None:
    with pytest.raises(TypeError, match=r"^x: got a masked array.*filled"):
        ri.relu(np.ma.array([1.0, -1.0], mask=[True, False]))


class _LooksLikeTorch:
    """A framework-tensor lookalike: recognised by its type's module alone."""

    def __init__(self, a: np.ndarray) -> None:
        self.a = a

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.a


_LooksLikeTorch.__module__ = "torch.fake"


@FAST
@given(where=positions, kind=st.sampled_from(ENTRY_KINDS), dtype=st.sampled_from(FLOATS))
def test_framework_tensor_lookalikes_are_refused_without_importing_the_framework(
        where: tuple[str, int], kind: str, dtype: np.dtype) -> None:
    op, position = where
    base = np.ones(output_shape(op, dtype), dtype) if position < 0 else valid_inputs(op, dtype)[position]
    error = call_with_bad(op, kind, position, _LooksLikeTorch(base), dtype)
    assert isinstance(error, TypeError) and "detach().cpu().numpy()" in str(error)


@pytest.mark.torch
@pytest.mark.parametrize("variant", ["plain", "requires_grad", "bfloat16"])
@pytest.mark.parametrize("op", OP_NAMES)
def test_torch_tensors_are_refused_with_a_conversion(op: str, variant: str) -> None:
    torch = pytest.importorskip("torch")
    base = torch.from_numpy(valid_inputs(op, FLOATS[1])[0].copy())
    tensor = {"plain": base, "requires_grad": base.clone().requires_grad_(True),
              "bfloat16": base.to(torch.bfloat16)}[variant]
    for kind in ("plain", "plain-keywords", "registry-vjp"):
        error = call_with_bad(op, kind, 0, tensor, FLOATS[1])
        assert isinstance(error, TypeError) and "t.detach().cpu().numpy()" in str(error)


@pytest.mark.jax
@pytest.mark.parametrize("op", OP_NAMES)
def test_jax_arrays_are_refused_with_a_conversion(op: str) -> None:
    jnp = pytest.importorskip("jax.numpy")
    array = jnp.asarray(valid_inputs(op, FLOATS[1])[0])
    for kind in ("plain", "registry", "plain-vjp"):
        error = call_with_bad(op, kind, 0, array, FLOATS[1])
        assert isinstance(error, TypeError) and "np.asarray(jax_array)" in str(error)


def test_python_lists_tuples_and_array_likes_are_accepted() -> None:
    class ArrayLike:
        def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
            return np.array([[0.5, -1.0]])

    for value in ([[0.5, -1.0]], ((0.5, -1.0),), ArrayLike()):
        np.testing.assert_array_equal(ri.relu(value), [[0.5, 0.0]])
        np.testing.assert_array_equal(ri.relu_vjp(value, value)[0], [[0.5, -0.0]])
    assert ri.tanh(0.0).shape == () and ri.tanh(np.float32(0.5)).dtype == np.float32


def test_ragged_lists_and_failing_array_conversions_name_the_input() -> None:
    with pytest.raises(ValueError, match=r"^x: cannot be read as an array"):
        ri.relu([[1.0, 2.0], [3.0]])

    class Broken:
        def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
            raise RuntimeError("no array here")

    with pytest.raises(TypeError, match=r"^b: converting the Broken to an array failed: RuntimeError: no array"):
        ri.add(np.ones(2), Broken())
    with pytest.raises(TypeError, match=r"^a: .*object array"):
        ri.add([1.0, None], np.ones(2))
    with pytest.raises(TypeError, match=r"^x: .*dtype int64"):
        ri.relu(10**30 // 10**12)


# --------------------------------------------------------------------------- keyword inputs


@pytest.mark.parametrize("op", OP_NAMES)
def test_plain_functions_take_keywords_and_have_real_signatures(op: str) -> None:
    import inspect

    args = valid_inputs(op, FLOATS[1])
    names = OPS[op].arg_names
    fwd, vjp = getattr(ri, op), getattr(ri, op + "_vjp")
    assert tuple(inspect.signature(fwd).parameters)[: len(names)] == names
    assert tuple(inspect.signature(vjp).parameters)[: len(names) + 1] == ("cotangent", *names)
    np.testing.assert_array_equal(fwd(**dict(zip(names, args))), OPS[op].forward(*args))
    g = np.ones(output_shape(op, FLOATS[1]))
    for a, b in zip(vjp(cotangent=g, **dict(zip(names, args))), OPS[op].vjp(g, *args)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(TypeError, match=rf"^nope: {op}\(\) has no argument 'nope'"):
        fwd(*args, nope=1)
    with pytest.raises(TypeError, match=rf"^{op}\(\): multiple values for argument '{names[0]}'"):
        fwd(*args, **{names[0]: args[0]})
    with pytest.raises(TypeError, match=rf"^{op}\(\): missing a required argument: '{names[-1]}'"):
        fwd(*args[:-1])


def test_softmax_by_keyword() -> None:
    a = np.array([[1.0, 2.0]])
    np.testing.assert_array_equal(ri.softmax(x=a), ri.softmax(a))
    dx, dw, db = ri.dense_vjp(np.ones((1, 3)), x=a, W=np.ones((2, 3)), b=np.zeros(3))
    np.testing.assert_array_equal(dx, [[3.0, 3.0]])
    np.testing.assert_array_equal(dw, [[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]])
    np.testing.assert_array_equal(db, [1.0, 1.0, 1.0])


# --------------------------------------------------------------------------- shapes: 0-d, empty, huge, broadcast


def test_huge_broadcast_view_is_a_size_error_naming_x() -> None:
    huge = np.broadcast_to(np.float64(0.25), (10**6, 10**6))
    with pytest.raises(ValueError, match=r"^x: shape \(1000000, 1000000\) has 1000000000000 elements, more than"):
        ri.relu(huge)
    with pytest.raises(ValueError, match=r"^x: shape"):
        OPS["tanh"].vjp(huge, huge)


@pytest.mark.parametrize(("op", "inputs", "names", "size"), [
    ("add", (np.ones((10**5, 1)), np.ones((1, 10**5))), "a, b", 10**10),
    ("multiply", (np.ones((10**5, 1, 1)), np.ones((1, 10**5))), "a, b", 10**10),
    ("matmul", (np.ones((10**5, 1)), np.ones((1, 10**5))), "a, b", 10**10),
    ("matmul", (np.ones((10**4, 1, 2, 1)), np.ones((10**4, 1, 10))), "a, b", 2 * 10**9),
    ("dense", (np.ones((10**5, 1)), np.ones((1, 10**5)), np.zeros(10**5)), "x, W, b", 10**10),
])
def test_a_result_over_the_size_limit_from_small_inputs_is_a_size_error(op: str, inputs: tuple[np.ndarray, ...],
                                                                        names: str, size: int) -> None:
    # each input is far under the limit (2**26); the result (10**10 elements, 80 GB) is refused before it is built
    for entry in (getattr(ri, op), OPS[op].forward, lambda *xs: OPS[op].vjp(np.ones(1), *xs)):
        with pytest.raises(ValueError, match=rf"^{names}: the result of {op}: shape \(.*\) has {size} elements, "
                                              r"more than the limit of"):
            entry(*inputs)
    with pytest.raises(ValueError, match=r"the result of") as info:
        getattr(ri, op)(*inputs)
    assert_names_a_passed_argument(info.value, set(names.split(", ")))


def test_a_result_just_at_the_size_limit_is_computed() -> None:
    previous = ri.set_max_elements(12)
    try:
        assert ri.add(np.ones((3, 1)), np.ones((1, 4))).shape == (3, 4)
        assert ri.matmul(np.ones((3, 1)), np.ones((1, 4))).shape == (3, 4)
        with pytest.raises(ValueError, match=r"^a, b: the result of add: shape \(3, 5\) has 15 elements"):
            ri.add(np.ones((3, 1)), np.ones((1, 5)))
    finally:
        ri.set_max_elements(previous)


def test_size_limit_is_configurable() -> None:
    previous = ri.set_max_elements(10)
    try:
        with pytest.raises(ValueError, match=r"^x: shape \(11,\) has 11 elements, more than the limit of 10"):
            ri.relu(np.ones(11))
        assert ri.relu(np.ones(10)).shape == (10,)
    finally:
        ri.set_max_elements(previous)
    assert ri.max_elements() == previous
    with pytest.raises(ValueError, match=r"^limit: expected a positive int"):
        ri.set_max_elements(0)


def test_finite_check_reads_a_broadcast_view_without_a_full_size_copy() -> None:
    import tracemalloc

    view = np.broadcast_to(np.float64(np.nan), (4096, 4096))  # 128 MiB logically, 8 bytes stored
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"^x: contains 16777216 non-finite value\(s\) \(first: NaN at index"):
            ri.relu(view)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # the count is taken on a boolean mask (1 byte per element), never on a float temporary
    assert peak < 4096 * 4096 * 2, peak
    finite = np.broadcast_to(np.float64(0.5), (2, 3))
    np.testing.assert_array_equal(ri.relu(finite), np.full((2, 3), 0.5))


@pytest.mark.parametrize("op", ["relu", "tanh", "sigmoid", "add", "multiply"])
def test_zero_dimensional_and_empty_inputs(op: str) -> None:
    n = len(OPS[op].arg_names)
    for shape in [(), (0,), (2, 0)]:
        args = [np.full(shape, 0.5)] * n
        out = getattr(ri, op)(*args)
        assert out.shape == shape
        grads = getattr(ri, op + "_vjp")(np.ones(shape), *args)
        assert all(g.shape == shape for g in grads)


@pytest.mark.parametrize("op", ["softmax", "cross_entropy", "softmax_cross_entropy"])
def test_class_ops_refuse_scalars_and_empty_class_axes_naming_the_input(op: str) -> None:
    first = OPS[op].arg_names[0]
    n = len(OPS[op].arg_names)
    for shape in [(), (2, 0)]:
        with pytest.raises(ValueError, match=r"^\w+: ") as info:
            getattr(ri, op)(*[np.full(shape, 0.5)] * n)
        assert_names_a_passed_argument(info.value, set(OPS[op].arg_names) | {first})


def test_unbroadcast_refuses_a_shape_the_gradient_was_not_broadcast_from() -> None:
    grad = np.arange(6.0).reshape(2, 3)
    with pytest.raises(ValueError, match=r"^\w+: ") as info:
        ri.unbroadcast(grad, (3, 2))
    assert_names_a_passed_argument(info.value, {"grad", "shape"})


def test_unbroadcast_sums_broadcast_axes() -> None:
    grad = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(ri.unbroadcast(grad, (3,)), [3.0, 5.0, 7.0])
    np.testing.assert_array_equal(ri.unbroadcast(grad, (2, 1)), [[3.0], [12.0]])
    np.testing.assert_array_equal(ri.unbroadcast(grad, ()), 15.0)


@pytest.mark.parametrize(("grad", "shape", "exc", "argument", "fragment"), [
    (np.ones((2, 3)), None, TypeError, "shape", "expected a tuple of ints"),
    (np.ones((2, 3)), 3, TypeError, "shape", "got int 3"),
    (np.ones((2, 3)), (3.0,), TypeError, "shape[0]", "expected an int"),
    (np.ones((2, 3)), (-3,), ValueError, "shape[0]", "must be >= 0"),
    (np.ones((2, 3)), "3", TypeError, "shape", "got str"),
    (None, (2,), TypeError, "grad", "got None"),
    (None, (), TypeError, "grad", "got None"),
    (np.array([np.nan, 1.0]), (), ValueError, "grad", "non-finite"),
    (np.ones((2, 3), np.int64), (3,), TypeError, "grad", "dtype int64"),
    ([[1.0, None]], (), TypeError, "grad", "object array"),
])
def test_unbroadcast_checks_both_arguments(grad: Any, shape: Any, exc: type[Exception], argument: str,
                                           fragment: str) -> None:
    with pytest.raises(exc) as info:
        ri.unbroadcast(grad, shape)
    assert str(info.value).startswith(f"{argument}: "), info.value
    assert fragment in str(info.value), info.value
    assert_names_a_passed_argument(info.value, {argument.split("[")[0]})


def test_unbroadcast_sums_wide_and_rounds_once() -> None:
    # float32: 1e8 + 1 is 1e8 in float32, so a float32 sum of (1e8, 1, -1e8) is 0; the true sum is 1
    grad = np.array([[1e8, 1.0, -1e8]], np.float32)
    got = ri.unbroadcast(grad, ())
    assert got.dtype == np.float32
    assert Fraction(float(got)) == sum(Fraction(float(v)) for v in grad.ravel()) == 1
    # float64: (1, 2^-60, -1) sums to 2^-60 exactly; in float64 to 0
    grad64 = np.array([1.0, 2.0**-60, -1.0])
    assert float(ri.unbroadcast(grad64, (1,))[0]) == float(sum(Fraction(v) for v in grad64)) == 2.0**-60


def test_unbroadcast_whose_sum_overflows_names_grad() -> None:
    with pytest.raises(ValueError, match=r"^grad: its sum over the broadcast axes is not representable in float32"):
        ri.unbroadcast(np.full((2, 1), 3e38, np.float32), (1,))
    # the same sum is representable in float64 (6e38): exact
    assert float(ri.unbroadcast(np.full((2, 1), 3e38), (1, 1))[0, 0]) == 6e38


@pytest.mark.parametrize(("key", "exc"), [("999", ValueError), ([1], ValueError), (None, ValueError),
                                          (2, ValueError), ("002\n", ValueError)])
def test_cite_of_an_unknown_key_names_key(key: Any, exc: type[Exception]) -> None:
    with pytest.raises(exc, match=r"^key: .* is not one of \['000', '001', '002', '003', '004'\]") as info:
        ri.cite(key)
    assert_names_a_passed_argument(info.value, {"key"})
    assert ri.cite("002").startswith("[002] Demystified Back-Propagation")


# --------------------------------------------------------------------------- values: NaN, inf, extremes


@FAST
@given(where=positions, kind=st.sampled_from(ENTRY_KINDS), value=st.sampled_from([np.nan, np.inf, -np.inf]),
       dtype=st.sampled_from(FLOATS), index=st.integers(0, 5))
def test_non_finite_values_are_value_errors_naming_the_input(where: tuple[str, int], kind: str, value: float,
                                                            dtype: np.dtype, index: int) -> None:
    op, position = where
    base = np.ones(output_shape(op, dtype), dtype) if position < 0 else valid_inputs(op, dtype)[position]
    bad = np.array(base, copy=True)
    bad.flat[index % max(bad.size, 1)] = value
    error = call_with_bad(op, kind, position, bad, dtype)
    assert isinstance(error, ValueError) and "non-finite" in str(error)


def _extremes(dtype: np.dtype) -> list[float]:
    info = np.finfo(dtype)
    return [0.0, -0.0, float(info.smallest_subnormal), -float(info.smallest_subnormal), float(info.tiny),
            float(info.max), -float(info.max), float(info.max) / 2, 1.0, -1.0, 20.0, -20.0, 88.5, -88.5, 710.0]


def extreme_arrays(dtype: np.dtype, shape: tuple[int, ...] = (3,), cap: float | None = None
                   ) -> st.SearchStrategy[np.ndarray]:
    width = 32 if dtype == np.float32 else 64
    cap = float(np.finfo(dtype).max) if cap is None else cap
    element = st.one_of(st.sampled_from([v for v in _extremes(dtype) if abs(v) <= cap]),
                        st.floats(-cap, cap, allow_nan=False, allow_infinity=False, width=width))
    return st.lists(element, min_size=int(np.prod(shape)), max_size=int(np.prod(shape))).map(
        lambda xs: np.array(xs, dtype=dtype).reshape(shape))


def _rounded(values: list[Any], dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray | None:
    """Exact or high-precision values rounded to ``dtype``; ``None`` when one
    is beyond the dtype's range (the policy then requires an error)."""
    def to_float(v: Any) -> float:
        try:
            return float(v)  # one correct rounding (Fraction, mpf)
        except OverflowError:
            return np.inf

    out = np.array([to_float(v) for v in values], dtype=np.float64)
    with np.errstate(over="ignore"):
        rounded = out.astype(dtype)
    return rounded.reshape(shape) if np.all(np.isfinite(rounded)) else None


def _truth_binary(op: str, a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    fa, fb = [Fraction(float(v)) for v in a.ravel()], [Fraction(float(v)) for v in b.ravel()]
    exact = [x + y if op == "add" else x * y for x, y in zip(fa, fb)]
    # a Fraction converts with one correct rounding to float64, then to float32: for float32
    # operands the float64 value is exact (sum or product of two float32 values fits), so
    # the second rounding is the only one
    return _rounded(exact, a.dtype, a.shape)


@settings(deadline=2000, max_examples=80)
@given(data=st.data(), op=st.sampled_from(["add", "multiply"]), dtype=st.sampled_from(FLOATS))
def test_add_and_multiply_at_extreme_magnitudes_are_correctly_rounded_or_refused(data: st.DataObject, op: str,
                                                                                 dtype: np.dtype) -> None:
    a, b = data.draw(extreme_arrays(dtype)), data.draw(extreme_arrays(dtype))
    truth = _truth_binary(op, a, b)
    if truth is None:
        with pytest.raises(ValueError, match=r"^a, b: the result of .* not representable"):
            getattr(ri, op)(a, b)
        return
    got = getattr(ri, op)(a, b)
    np.testing.assert_array_equal(got, truth)
    assert got.dtype == dtype


def _compare(got: np.ndarray, truth: np.ndarray, tol: np.ndarray, dtype: np.dtype) -> Any:
    # the ulp column of the report reads np.spacing, which warns at the dtype's largest value
    with np.errstate(over="ignore"):
        return engine.compare(got, truth, tol, dtype, model="error model against mpmath")


def _mp_truth(op: str, x: np.ndarray, g: np.ndarray | None) -> np.ndarray | None:
    mpmath.mp.dps = 50
    xs = [mpmath.mpf(float(v)) for v in x.ravel()]
    if op == "tanh":
        vals = [mpmath.tanh(v) for v in xs] if g is None else [
            mpmath.mpf(float(gv)) * mpmath.sech(v) ** 2 for v, gv in zip(xs, g.ravel())]
    elif op == "sigmoid":
        sig = [1 / (1 + mpmath.exp(-v)) for v in xs]
        vals = sig if g is None else [mpmath.mpf(float(gv)) * s * (1 - s) for s, gv in zip(sig, g.ravel())]
    else:  # relu
        vals = [max(v, 0) for v in xs] if g is None else [
            mpmath.mpf(float(gv)) if v > 0 else mpmath.mpf(0) for v, gv in zip(xs, g.ravel())]
    return _rounded(vals, x.dtype, x.shape)


@settings(deadline=3000, max_examples=60)
@given(data=st.data(), op=st.sampled_from(["relu", "tanh", "sigmoid"]), dtype=st.sampled_from(FLOATS),
       backward=st.booleans())
def test_activations_at_extreme_magnitudes_match_mpmath(data: st.DataObject, op: str, dtype: np.dtype,
                                                        backward: bool) -> None:
    x = data.draw(extreme_arrays(dtype))
    g = data.draw(extreme_arrays(dtype)) if backward else None
    truth = _mp_truth(op, x, g)
    call = (lambda: getattr(ri, op + "_vjp")(g, x)[0]) if g is not None else (lambda: getattr(ri, op)(x))
    if truth is None:
        with pytest.raises(ValueError, match=r"not representable"):
            call()
        return
    try:
        got = call()
    except ValueError as e:
        # the policy's error is only for results beyond the dtype's range; this one is not
        pytest.fail(f"{op} refused inputs whose true result {truth} is representable: {e}")
    bound = (tolerances.forward_bound(op, [x]) if g is None else tolerances.vjp_bound(op, g, [x])[0])
    tol = bound.tolerance(dtype)
    assert np.all(np.isfinite(tol)), f"the error model overflows at {x}, {g}"
    c = _compare(got, truth, tol, dtype)
    assert c.ok, c.describe()


_LIMIT_SHAPES = {"add": [(3,), (3,)], "multiply": [(3,), (3,)], "matmul": [(2, 3), (3, 2)],
                 "dense": [(2, 3), (3, 2), (2,)], "relu": [(3,)], "tanh": [(3,)], "sigmoid": [(3,)],
                 "softmax": [(2, 3)], "softmax_cross_entropy": [(2, 3)], "cross_entropy": [], "mse": [(3,), (3,)]}


@settings(deadline=3000, max_examples=100)
@given(data=st.data(), op=st.sampled_from(sorted(_LIMIT_SHAPES)), dtype=st.sampled_from(FLOATS))
def test_error_model_is_finite_at_the_dtype_limits(data: st.DataObject, op: str, dtype: np.dtype) -> None:
    """Inputs up to the dtype's largest value (products of such values overflow
    float64): every tolerance the acceptance rule gives is finite, or the check
    it feeds could never fail."""
    xs = [data.draw(extreme_arrays(dtype, shape)) for shape in _LIMIT_SHAPES[op]]
    if op in ("softmax_cross_entropy", "cross_entropy"):
        dist = np.array([[0.25, 0.5, 0.25], [1.0, 0.0, 0.0]], dtype)
        xs = [*xs, dist] if op == "softmax_cross_entropy" else [np.array([[0.5, 2**-20, 0.5 - 2**-20]] * 2, dtype),
                                                                 dist]
    with np.errstate(all="ignore"):
        y = OPS[op].impl(*xs)
    g = data.draw(extreme_arrays(dtype, np.shape(y))) if np.ndim(y) else np.asarray(data.draw(
        extreme_arrays(dtype, (1,)))[0])
    bounds = [tolerances.forward_bound(op, xs), *tolerances.vjp_bound(op, g, xs)]
    for b in bounds:
        tol = b.tolerance(dtype)
        assert np.all(np.isfinite(tol)), f"{op}: the error model is not finite at {xs}, {g}: {b.model}"


@settings(deadline=3000, max_examples=60)
@given(data=st.data(), dtype=st.sampled_from(FLOATS))
def test_softmax_at_extreme_magnitudes_matches_mpmath(data: st.DataObject, dtype: np.dtype) -> None:
    x = data.draw(extreme_arrays(dtype, (1, 3)))
    mpmath.mp.dps = 50
    row = [mpmath.mpf(float(v)) for v in x.ravel()]
    top = max(row)
    e = [mpmath.exp(v - top) for v in row]
    truth = _rounded([v / sum(e) for v in e], dtype, x.shape)
    assert truth is not None  # a softmax is in [0, 1]
    got = ri.softmax(x)
    c = _compare(got, truth, tolerances.forward_bound("softmax", [x]).tolerance(dtype), dtype)
    assert c.ok, c.describe()


# Finite true values from inputs at float32's limit: every entry point returns
# them (no error: they are representable), never a NaN from an intermediate.
@pytest.mark.parametrize("entry", ["plain", "registry"])
def test_softmax_vjp_with_huge_cotangents_is_never_nan(entry: str) -> None:
    g = np.array([[3e38, -3e38]], np.float32)
    x = np.array([[0.0, 1000.0]], np.float32)
    call = ri.softmax_vjp if entry == "plain" else OPS["softmax"].vjp
    (dx,) = call(g, x)
    # s = (e, 1 - e) with e = e^-1000 / (1 + e^-1000); <g, s> = 3e38 (2e - 1), so
    # dx_0 = s_0 (g_0 - <g, s>) = 6e38 e (1 - e) and dx_1 = -6e38 e (1 - e): about
    # 3e-396 in magnitude, far below float32's smallest subnormal (1.4e-45), so both
    # round to zero
    np.testing.assert_array_equal(dx, [[0.0, 0.0]])
    assert dx.dtype == np.float32


@pytest.mark.parametrize("entry", ["plain", "registry"])
def test_mse_vjp_scaling_is_never_nan(entry: str) -> None:
    g = np.array(3e38, np.float32)
    p = t = np.array([1.0], np.float32)
    call = ri.mse_vjp if entry == "plain" else OPS["mse"].vjp
    dp, dt = call(g, p, t, reduction="sum")
    # d/dp sum (p - t)^2 = 2 (p - t) = 0 exactly (the residual is zero), times g: 0,
    # however large g is; d/dt = -d/dp
    np.testing.assert_array_equal(dp, [0.0])
    np.testing.assert_array_equal(dt, [0.0])
    assert dp.dtype == dt.dtype == np.float32


# --------------------------------------------------------------------------- results never alias


@pytest.mark.parametrize("op", OP_NAMES)
def test_results_never_alias_inputs_or_each_other(op: str) -> None:
    args = valid_inputs(op, FLOATS[1])
    for a in args:
        a.flags.writeable = False  # read-only inputs: results must still be writable copies
    g = np.ones(output_shape(op, FLOATS[1]))
    out = getattr(ri, op)(*args)
    grads = getattr(ri, op + "_vjp")(g, *args)
    results = [out, *grads]
    for r in results:
        assert r.flags.writeable
        assert not any(np.may_share_memory(r, x) for x in [*args, g])
    for i, r in enumerate(results):
        for other in results[i + 1:]:
            assert not np.may_share_memory(r, other)


def test_add_vjp_gradients_are_independent_arrays() -> None:
    g = np.ones(3)
    da, db = ri.add_vjp(g, np.ones(3), np.ones(3))
    da[0] = 5.0
    assert db[0] == 1.0 and g[0] == 1.0


def test_registry_and_plain_functions_share_the_overflow_policy() -> None:
    """A true value beyond float32's range is the same clear error through
    ``OPS[...]`` as through the plain functions; a VJP whose forward overflows
    but whose gradients are representable returns them."""
    big = np.array([3e38], np.float32)
    one = np.array([1.0], np.float32)
    for call in (lambda: OPS["multiply"].forward(big, big), lambda: ri.multiply(big, big)):
        with pytest.raises(ValueError, match=r"^a, b: the result of multiply is not representable in float32"):
            call()
    for call in (lambda: OPS["multiply"].vjp(big, big, big), lambda: ri.multiply_vjp(big, big, big)):
        with pytest.raises(ValueError, match=r"^cotangent, a, b: the gradient w\.r\.t\. a of multiply_vjp"):
            call()
    # forward 3e38 * 3e38 overflows, the gradients g * b = 1 * 3e38 and g * a do not: exact by IEEE
    da, db = OPS["multiply"].vjp(one, big, big)
    assert da.tolist() == [np.float32(3e38)] and db.tolist() == [np.float32(3e38)]
