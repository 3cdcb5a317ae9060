"""The truth tier: the reference against ball arithmetic on the same inputs.

For every op, its VJP and every dtype (float16 and bfloat16 with fewer
examples), on named ranges (normal, tiny and
subnormal, saturated, exp thresholds, large and near-overflow logits,
near-one-hot rows, probabilities near 1e-300, cancelling sums), the
reference must be the exact value rounded: float16, bfloat16 and float32
within 1 ulp, float64 within 4 ulp elementwise; where a result is a sum whose terms cancel, within
1 ulp of the terms' absolute sum (normwise). No NaN or inf where the exact
value is finite. Arrays are at most 8 x 8 so that the exact arithmetic stays
cheap.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reference_impl import OPS
from reference_impl.dtypes import info, resolve

truth = pytest.importorskip("reference_impl.frameworks.truth", reason="python-flint (the truth extra) is not installed")
pytest.importorskip("flint")

pytestmark = pytest.mark.numpy_only

ELEMENTWISE_ULPS = {"float16": 1.0, "bfloat16": 1.0, "float32": 1.0, "float64": 4.0}
HALF_EXAMPLES = 6
"""Examples per op for float16 and bfloat16 (12 for float32/float64)."""


def _exp_thresholds(dtype: np.dtype) -> list[float]:
    """Where exp overflows (``log max``) and rounds to 0 (half the smallest
    subnormal), for ``dtype`` and for float32 and float64."""
    out = [88.72, 103.97, 709.78, 745.13]
    if dtype.name in ("float16", "bfloat16"):
        fmt = info(dtype)
        out += [float(np.log(fmt.max)), float((fmt.bits - fmt.emin) * np.log(2.0))]
    return out
NORMWISE_ULPS = 1.0
SIDE = 8

REAL_RANGES = ("normal", "tiny", "saturated", "exp_thresholds", "cancelling")
LOGIT_RANGES = ("normal", "large", "near_overflow", "near_one_hot", "tiny")
PROB_RANGES = ("smooth", "near_one_hot", "near_1e-300")
TARGET_RANGES = ("smooth", "one_hot", "sparse")


def _real(rng: np.random.Generator, shape: tuple[int, ...], name: str, dtype: np.dtype) -> np.ndarray:
    sign = np.where(rng.random(shape) < 0.5, -1.0, 1.0)
    if name == "normal":
        return rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 3)
    if name == "tiny":
        return rng.standard_normal(shape) * info(dtype).tiny * 2.0 ** rng.uniform(-22, 4, shape)
    if name == "saturated":
        return sign * rng.uniform(8.0, 800.0 if dtype == np.float64 else 100.0, shape)
    if name == "exp_thresholds":
        return sign * (rng.choice(_exp_thresholds(dtype), shape) + rng.uniform(-1, 1, shape))
    # cancelling: pairs of nearly opposite large values along every axis' neighbours
    big, rel = (1e6, 1e-6) if dtype.itemsize >= 4 else (1e3, 16 * info(dtype).u)
    x = rng.standard_normal(shape) * big
    flat = x.reshape(-1)
    flat[1::2] = -flat[0::2][: flat[1::2].size] * (1 + rng.standard_normal(flat[1::2].size) * rel)
    return flat.reshape(shape)


def _logits(rng: np.random.Generator, shape: tuple[int, ...], name: str, dtype: np.dtype) -> np.ndarray:
    if name == "normal":
        return rng.standard_normal(shape) * 3
    if name == "large":
        top = 4 if dtype.itemsize >= 4 else 3.5  # float16 ends at 65504
        return (rng.standard_normal(shape) * 10.0 ** rng.uniform(2, top)
                + rng.choice([-1, 1]) * 10.0 ** rng.uniform(2, top))
    if name == "near_overflow":
        big = info(dtype).max
        return rng.choice([-1.0, -0.5, 0.0, 0.25, 1.0], shape) * big * rng.uniform(0.5, 0.99, shape)
    if name == "near_one_hot":
        x = rng.standard_normal(shape)
        idx = rng.integers(0, shape[-1], shape[:-1])[..., None]
        np.put_along_axis(x, idx, np.take_along_axis(x, idx, -1) + rng.uniform(15, 40), -1)
        return x
    return rng.standard_normal(shape) * info(dtype).tiny


def _distribution(rng: np.random.Generator, shape: tuple[int, ...], name: str, dtype: np.dtype) -> np.ndarray:
    if name == "one_hot":
        out = np.zeros(shape)
        np.put_along_axis(out, rng.integers(0, shape[-1], shape[:-1])[..., None], 1.0, -1)
        return out
    spread = {"smooth": 1.0, "sparse": 1.0, "near_one_hot": 1.0, "near_1e-300": 300.0}[name]
    z = rng.standard_normal(shape) * spread
    if name == "near_one_hot":
        np.put_along_axis(z, rng.integers(0, shape[-1], shape[:-1])[..., None], 30.0, -1)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    if name == "sparse":
        e[..., 1:][rng.random(e[..., 1:].shape) < 0.5] = 0.0
    p = e / e.sum(axis=-1, keepdims=True)
    p = p.astype(dtype)
    return np.asarray(p / p.sum(axis=-1, keepdims=True, dtype=np.float64), dtype=dtype)


def _shapes(op: str, rng: np.random.Generator) -> tuple[tuple[int, ...], ...]:
    m, k, n = (int(v) for v in rng.integers(1, SIDE + 1, 3))
    kind = OPS[op].domain.shapes
    if kind == "broadcast_pair":
        return [((m, n), (n,)), ((m, 1), (1, n)), ((m, n), (m, n))][int(rng.integers(3))]
    if kind == "matmul":
        return [((m, k), (k, n)), ((k,), (k, n)), ((m, k), (k,))][int(rng.integers(3))]
    if kind == "dense":
        return ((m, k), (k, n), (n,))
    if kind in ("row_pairs", "same_pair"):
        return ((m, n), (m, n))
    return ((m, n),)


@st.composite
def cases(draw: st.DrawFn, op: str, dtype: np.dtype) -> tuple[tuple[np.ndarray, ...], dict[str, Any], np.ndarray, str]:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    spec = OPS[op]
    names = []
    inputs = []
    for kind, shape in zip(spec.domain.values, _shapes(op, rng)):
        if kind in ("real", "kinked"):
            name = draw(st.sampled_from(REAL_RANGES))
            x = _real(rng, shape, name, dtype)
            if kind == "kinked":
                x[rng.random(shape) < 0.25] = 0.0
        elif kind == "logits":
            name = draw(st.sampled_from(LOGIT_RANGES))
            x = _logits(rng, shape, name, dtype)
        elif kind == "positive_distribution":
            name = draw(st.sampled_from(PROB_RANGES))
            x = np.maximum(_distribution(rng, shape, name, dtype), info(dtype).tiny)
        else:
            name = draw(st.sampled_from(TARGET_RANGES))
            x = _distribution(rng, shape, name, dtype)
        names.append(name)
        inputs.append(np.asarray(x, dtype=dtype))
    params = {k: draw(st.sampled_from(v)) for k, v in spec.params.items()}
    with np.errstate(over="ignore"):  # only the shape is needed: an overflowing result has one too
        out = spec.evaluate(*inputs, **params)
    g_range = draw(st.sampled_from(("normal", "normal", "huge")))
    # clipped at 4 sigma: a huge cotangent reaches the dtype's largest value and never overflows
    g = np.clip(rng.standard_normal(out.shape), -4, 4) * (info(dtype).max / 4 if g_range == "huge" else 1)
    return tuple(inputs), params, np.asarray(g, dtype=dtype), "/".join([*names, "g:" + g_range])


def _magnitudes(op: str, g: np.ndarray, xs: tuple[np.ndarray, ...], params: dict[str, Any]
                ) -> tuple[Any, list[Any]]:
    """Absolute sums of the terms of each result that is a sum (forward, VJPs); None elsewhere."""
    x64 = [np.abs(np.asarray(x, np.float64)) for x in xs]
    ag = np.abs(np.asarray(g, np.float64))
    if op in ("matmul", "dense", "add", "multiply"):
        fwd = np.matmul(x64[0], x64[1]) + (x64[2] if op == "dense" else 0) if op in ("matmul", "dense") else None
        # the VJPs are themselves matmuls / sums of |g| terms: bound them by the same op on |.|, in
        # float64; where even that is beyond float64 (the op refuses it) the magnitude allows anything
        try:
            grads = list(OPS[op].vjp(ag, *x64))
        except ValueError:
            grads = [np.full(x.shape, np.inf) for x in x64]
        return fwd, [np.asarray(v, np.float64) for v in grads]
    if op == "softmax":
        x = np.asarray(xs[0], np.float64)
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        s = e / e.sum(axis=-1, keepdims=True)
        return None, [s * (ag + (s * ag).sum(axis=-1, keepdims=True))]
    if op == "softmax_cross_entropy":
        # dJ/dz = (s T - y) g / rows: where the target is close to s T the two terms cancel
        z = np.asarray(xs[0], np.float64)
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        s = e / e.sum(axis=-1, keepdims=True)
        scale = ag / (z.size // z.shape[-1]) if params["reduction"] == "mean" else ag
        return None, [scale * (s * x64[1].sum(axis=-1, keepdims=True) + x64[1]), None]
    return None, [None] * len(xs)


def _assert_close(what: str, actual: np.ndarray, exact: Any, magnitude: Any, dtype: np.dtype, label: str) -> None:
    ulps = exact.ulp_error(actual)
    if not np.all(np.isfinite(np.asarray(exact.rounded, np.float64))):
        finite = np.isfinite(np.asarray(exact.rounded, np.float64))
        assert np.array_equal(np.asarray(actual)[~finite], exact.rounded[~finite]), f"{what}: overflow differs"
        ulps = np.where(finite, ulps, 0.0)
    allowed = np.full(np.shape(ulps), ELEMENTWISE_ULPS[dtype.name])
    if magnitude is not None:
        # normwise where the terms cancel: 1 ulp of the absolute sum, in ulps of the result
        with np.errstate(over="ignore", invalid="ignore"):  # a magnitude beyond the dtype allows anything
            norm_spacing = np.spacing(np.asarray(magnitude, dtype=dtype).astype(np.float64))
            res_spacing = np.maximum(np.spacing(np.abs(exact.rounded)).astype(np.float64),
                                     info(dtype).subnormal)
            allowed = np.maximum(allowed, np.nan_to_num(NORMWISE_ULPS * norm_spacing / res_spacing, posinf=np.inf))
    worst = int(np.argmax(ulps - allowed)) if np.size(ulps) else 0
    assert np.all(ulps <= allowed), (
        f"{what} [{label}] {dtype}: {float(np.ravel(ulps)[worst]):.3g} ulp from the truth at flat index {worst} "
        f"(allowed {float(np.ravel(allowed)[worst]):.3g}); got {np.ravel(actual)[worst]!r}, "
        f"exact {float(np.ravel(exact.value)[worst])!r}"
    )


def _beyond_range(*exacts: Any) -> bool:
    return not all(np.all(np.isfinite(np.asarray(e.rounded, np.float64))) for e in exacts)


@pytest.mark.parametrize(("dtype_name", "wide"), [("float16", "native"), ("bfloat16", "native"),
                                                  ("float32", "native"), ("float64", "native"),
                                                  ("float64", "plain-longdouble")],
                         ids=["float16", "bfloat16", "float32", "float64", "float64-plain-longdouble"])
@pytest.mark.parametrize("op", sorted(OPS))
def test_reference_is_the_truth_rounded(op: str, dtype_name: str, wide: str, request: pytest.FixtureRequest) -> None:
    dtype = resolve(dtype_name)
    if wide == "plain-longdouble":
        request.getfixturevalue("decimal_fallback")
    @settings(max_examples=HALF_EXAMPLES if dtype.itemsize == 2 else 12, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(cases(op, dtype))
    def check(case: tuple[tuple[np.ndarray, ...], dict[str, Any], np.ndarray, str]) -> None:
        inputs, params, g, label = case
        spec = OPS[op]
        # magnitudes of near-overflow inputs may overflow float64 (inf allows anything there), and a huge
        # cotangent times a zero probability is 0 * inf (NaN: the elementwise bound applies)
        with np.errstate(over="ignore", invalid="ignore"):
            fwd_mag, grad_mags = _magnitudes(op, g, inputs, params)
        exact_out = truth.forward(op, inputs, params)
        if _beyond_range(exact_out):
            # a result whose true value is beyond the dtype is refused by name, never returned as inf
            with pytest.raises(ValueError, match="not representable"):
                spec.forward(*inputs, **params)
        else:
            _assert_close(f"{op} forward", spec.forward(*inputs, **params), exact_out, fwd_mag, dtype, label)
        exact_grads = truth.vjp(op, g, inputs, params)
        if _beyond_range(*exact_grads):
            # a gradient whose true value is beyond the dtype is refused by name, never returned as inf
            with pytest.raises(ValueError, match="not representable"):
                spec.vjp(g, *inputs, **params)
            return
        grads = spec.vjp(g, *inputs, **params)
        for name, gr, exact, mag in zip(spec.arg_names, grads, exact_grads, grad_mags):
            _assert_close(f"{op} VJP w.r.t. {name}", gr, exact, mag, dtype, label)

    check()


@pytest.mark.parametrize("dtype_name", ["float16", "bfloat16", "float32", "float64"])
@given(seed=st.integers(0, 2**32 - 1))
@settings(max_examples=10, deadline=None, database=None)
def test_cancelling_dot_products(dtype_name: str, seed: int) -> None:
    """``a @ b`` where the large terms cancel pairwise and leave a small
    remainder: within 1 ulp of the absolute sum (normwise) and, with the
    exact accumulation, much closer."""
    dtype = resolve(dtype_name)
    rng = np.random.default_rng(seed)
    k = 2 * int(rng.integers(1, 5))
    a = rng.standard_normal((3, k)) * (1e4 if dtype.itemsize >= 4 else 30.0)
    a[:, 1::2] = -a[:, 0::2]
    b = rng.standard_normal((k, 2))
    b[1::2] = b[0::2] * (1 + rng.standard_normal(b[0::2].shape) * max(1e-5, 16 * info(dtype).u))
    a, b = a.astype(dtype), b.astype(dtype)
    exact = truth.forward("matmul", (a, b))
    mag = np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64))
    _assert_close("matmul forward", OPS["matmul"].forward(a, b), exact, mag, dtype, "cancelling")


def test_truth_rounds_exactly() -> None:
    """The truth's own rounding, on values whose rounding is known by hand."""
    exact = truth.forward("add", (np.array([1.0], np.float32), np.array([2.0**-24], np.float32)))
    assert exact.rounded[0] == np.float32(1.0)  # a tie rounds to even
    exact = truth.forward("add", (np.array([1.0], np.float32), np.array([3 * 2.0**-25], np.float32)))
    assert exact.rounded[0] == np.float32(1.0) + np.float32(2.0**-23)
    exact = truth.forward("sigmoid", (np.array([-800.0]),))
    assert exact.rounded[0] == 0.0 and exact.value[0] == 0.0
    exact = truth.forward("sigmoid", (np.array([-700.0]),))
    assert exact.rounded[0] == np.float64(9.85967654375977e-305)


@pytest.mark.parametrize("wide", ["native", "plain-longdouble"])
@pytest.mark.parametrize("op", ["tanh", "sigmoid"])
def test_saturated_slopes(op: str, wide: str, request: pytest.FixtureRequest) -> None:
    """A huge cotangent times a slope far below float64's smallest number
    (tanh'(400) ~ 1e-347) is representable, with the platform's ``longdouble``
    and with ``longdouble`` forced to plain float64."""
    if wide == "plain-longdouble":
        request.getfixturevalue("decimal_fallback")
    x = np.array([40.5, -41.0, 79.9, 80.5, -300.0, 372.0, -400.0, 700.0, 745.0, -800.0, 1400.0, 0.3, -2.0, 20.0])
    sign = np.where(np.arange(x.size) % 3 == 0, -1.0, 1.0)
    for g in (sign * 1.7e308, sign * 3.1e300, sign * 1.0, sign * 2.0**-1000):
        exact = truth.vjp(op, g, (x,), {})[0]
        _assert_close(f"{op} VJP w.r.t. x", OPS[op].vjp(g, x)[0], exact, None, np.dtype(np.float64),
                      f"saturated, |g| {abs(g[0]):.2g}, {wide}")
    # beyond |x| ~ 1500 the product is below half the smallest subnormal for every g: exactly 0
    far = np.array([1e4, -1e6, 1.7e308])
    assert np.array_equal(OPS[op].vjp(np.full(3, 1.7e308), far)[0], np.zeros(3))


@pytest.mark.usefixtures("decimal_fallback")
def test_results_ignore_the_callers_decimal_context() -> None:
    """No result depends on the caller's decimal context: a caller's 3-digit
    context with every trap set changes no bit of any op's result."""
    import decimal

    rng = np.random.default_rng(7)
    cases = {"tanh": (rng.standard_normal((3, 4)),), "softmax": (rng.standard_normal((3, 4)),),
             "dense": (rng.standard_normal((3, 4)), rng.standard_normal((4, 2)), rng.standard_normal(2)),
             "softmax_cross_entropy": (rng.standard_normal((3, 4)), np.full((3, 4), 0.25))}
    expected = {op: (OPS[op].forward(*xs), OPS[op].vjp(np.ones_like(OPS[op].forward(*xs)), *xs))
                for op, xs in cases.items()}
    caller = decimal.Context(prec=3, traps=list(decimal.Context().flags))  # every signal raises
    with decimal.localcontext(caller):
        for op, xs in cases.items():
            out = OPS[op].forward(*xs)
            grads = OPS[op].vjp(np.ones_like(out), *xs)
            assert np.array_equal(out, expected[op][0])
            assert all(np.array_equal(a, b) for a, b in zip(grads, expected[op][1]))


LONG_RANGES = ("normal", "spread", "cancelling", "far_apart", "tiny_products")


def _long(rng: np.random.Generator, shape: tuple[int, ...], name: str, dtype: np.dtype) -> np.ndarray:
    """Operands of a long contraction: ``normal``; ``spread`` (every entry in
    its own binade, 2^-60..2^60 for float64, so that a row's slices cannot
    hold its small entries); ``cancelling`` (neighbours nearly opposite);
    ``far_apart`` (2^-500..2^500 for float64: rows of unrelated magnitudes
    and products far below their rows' largest); ``tiny_products``
    (2^-545..2^-515 for float64, 2^-85..2^-70 for float32: products and
    results about the smallest normal, rounded in the subnormal range).
    float32 spans a sixth of the other exponents (its range is an eighth of
    float64's)."""
    x = rng.standard_normal(shape)
    reach = 1 if dtype == np.float64 else 1 / 6
    if name == "spread":
        return x * 2.0 ** rng.uniform(-60 * reach, 60 * reach, shape)
    if name == "far_apart":
        return x * 2.0 ** rng.uniform(-500 * reach, 500 * reach, shape)
    if name == "tiny_products":
        low, high = (-545, -515) if dtype == np.float64 else (-85, -70)
        return x * 2.0 ** rng.uniform(low, high, shape)
    if name == "cancelling":
        flat = (x * 1e6).reshape(-1)
        flat[1::2] = -flat[0::2][: flat[1::2].size] * (1 + rng.standard_normal(flat[1::2].size) * 1e-9)
        return flat.reshape(shape)
    return x * 10.0 ** rng.integers(-3, 3)


@pytest.mark.parametrize("dtype", [np.dtype(np.float32), np.dtype(np.float64)], ids=["float32", "float64"])
@pytest.mark.parametrize("op", ["matmul", "dense"])
@given(seed=st.integers(0, 2**32 - 1), long=st.sampled_from([64, 300, 1024, 3000]),
       axis=st.integers(0, 2), names=st.tuples(*[st.sampled_from(LONG_RANGES)] * 3))
@settings(max_examples=8, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
def test_long_sums_of_products(op: str, dtype: np.dtype, seed: int, long: int, axis: int,
                               names: tuple[str, str, str]) -> None:
    """The sums of products of ``matmul`` and ``dense`` (forward, VJPs) with
    one long axis -- the contraction of the forward (``axis`` 0), of ``g @
    W^T`` (1) or of ``x^T @ g`` (2) -- where the accurate float64 products
    slice their operands by the length: the truth rounded, elementwise or
    normwise, on rows of any spread of magnitudes."""
    rng = np.random.default_rng(seed)
    rows, inner, outer = [(3, long, 2), (3, 2, long), (long, 2, 3)][axis]
    x = np.asarray(_long(rng, (rows, inner), names[0], dtype), dtype=dtype)
    w = np.asarray(_long(rng, (inner, outer), names[1], dtype), dtype=dtype)
    g = np.asarray(_long(rng, (rows, outer), names[2], dtype), dtype=dtype)
    inputs = (x, w) if op == "matmul" else (x, w, np.asarray(_long(rng, (outer,), names[2], dtype), dtype=dtype))
    label = "/".join(names) + f"/axis {axis}, length {long}"
    with np.errstate(over="ignore", invalid="ignore"):
        fwd_mag, grad_mags = _magnitudes(op, g, inputs, {})
    spec = OPS[op]
    exact_out = truth.forward(op, inputs)
    if _beyond_range(exact_out):
        with pytest.raises(ValueError, match="not representable"):
            spec.forward(*inputs)
    else:
        _assert_close(f"{op} forward", spec.forward(*inputs), exact_out, fwd_mag, dtype, label)
    exact_grads = truth.vjp(op, g, inputs, {})
    if _beyond_range(*exact_grads):
        with pytest.raises(ValueError, match="not representable"):
            spec.vjp(g, *inputs)
        return
    for name, gr, exact, mag in zip(spec.arg_names, spec.vjp(g, *inputs), exact_grads, grad_mags):
        _assert_close(f"{op} VJP w.r.t. {name}", gr, exact, mag, dtype, label)
