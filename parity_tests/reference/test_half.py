"""float16 and bfloat16 at their thresholds: the reference rounds the exact
value once, as IEEE 754 says, in the narrow ranges of the half dtypes.

The expected values come from the formats' definitions (the largest float16
is 65504 = (2 - 2**-10) 2**15; a tie rounds to even; the smallest float16
subnormal is 2**-24) and from mpmath at 50 digits, never from the reference.
"""

from __future__ import annotations

import math
from typing import Any

import mpmath
import numpy as np
import pytest

import reference_impl as ri
from reference_impl import OPS
from reference_impl.accuracy.acceptance import largest, tiny, unit_roundoff
from reference_impl.dtypes import info, resolve
from reference_impl.networks import MLP
from reference_impl.optim import sgd_step
from reference_impl.strategies import exp_thresholds
from reference_impl.wide import round_to

pytestmark = pytest.mark.numpy_only

F16 = np.dtype(np.float16)
BF16 = resolve("bfloat16")


def test_the_formats_parameters() -> None:
    assert (unit_roundoff(F16), tiny(F16), largest(F16)) == (2.0**-11, 2.0**-14, 65504.0)
    assert (unit_roundoff(BF16), tiny(BF16)) == (2.0**-8, 2.0**-126)
    assert largest(BF16) == (2 - 2.0**-7) * 2.0**127
    assert info(F16).subnormal == 2.0**-24 and info(BF16).subnormal == 2.0**-133


def test_float16_overflows_past_65504_as_ieee_says() -> None:
    big = np.array([65504.0], F16)
    # 65504 + 15 = 65519 is below the midpoint 65520 to the next power: 65504
    assert OPS["add"].evaluate(big, np.array([15.0], F16))[0] == 65504.0
    # 65520 is the tie: 65504's significand is odd, so it rounds up to 2**16, beyond the range: inf
    assert np.isinf(OPS["add"].evaluate(big, np.array([16.0], F16))[0])
    with pytest.raises(ValueError, match=r"a, b: the result of add is not representable in float16.*float32"):
        OPS["add"].forward(big, np.array([16.0], F16))


@pytest.mark.parametrize(("dtype", "x"), [(F16, 11.09), (F16, 11.1), (BF16, 88.72), (BF16, 88.8)])
def test_exp_overflows_where_the_dtype_ends(dtype: np.dtype, x: float) -> None:
    """exp(11.1) is 66171 > 65504 + 16: inf in float16; exp(11.09) = 65513 rounds to 65504.
    bfloat16 ends at 3.3895e38 (+ half its last spacing): exp(88.72) = 3.3851e38 is finite there."""
    exact = mpmath.exp(mpmath.mpf(x))
    beyond = exact >= mpmath.mpf(largest(dtype)) + mpmath.mpf(2.0) ** (127 - 8 if dtype == BF16 else 15 - 11)
    rounded = round_to(np.exp(np.float64(x)), np.zeros((), dtype))
    assert bool(np.isinf(rounded)) == beyond
    assert min(exp_thresholds(dtype)) <= x + 0.1 and (beyond or abs(float(rounded) - float(exact)) <= float(
        exact) * unit_roundoff(dtype))


def test_float16_subnormals_are_kept_and_round_to_even() -> None:
    s = np.array([2.0**-24], F16)  # the smallest subnormal
    assert OPS["add"].forward(s, s)[0] == 2.0**-23
    assert OPS["multiply"].forward(s, np.array([0.5], F16))[0] == 0.0  # 2**-25: a tie, rounds to even 0
    assert OPS["multiply"].forward(s, np.array([0.75], F16))[0] == 2.0**-24  # above the tie


@pytest.mark.parametrize("dtype", [F16, BF16], ids=["float16", "bfloat16"])
def test_sigmoid_underflows_to_zero_where_its_true_value_is_below_half_the_smallest_subnormal(dtype: np.dtype
                                                                                             ) -> None:
    fmt = info(dtype)
    edge = (fmt.bits - fmt.emin) * math.log(2.0)  # sigmoid(-edge) ~ exp(-edge) = half the smallest subnormal
    below, above = np.array([-(edge + 0.2)], dtype), np.array([-(edge - 0.5)], dtype)
    assert ri.sigmoid(below)[0] == 0.0
    value = float(ri.sigmoid(above)[0])
    exact = float(1 / (1 + mpmath.exp(-mpmath.mpf(float(above[0])))))
    assert value > 0 and abs(value - exact) <= fmt.subnormal / 2


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_networks_and_sgd_keep_the_half_dtype(dtype: str) -> None:
    net = MLP((3, 4, 2), ("tanh", "identity"), softmax=True, cost="cross_entropy")
    params = net.init_params(seed=1, dtype=dtype)
    x = np.linspace(-1, 1, 6).reshape(2, 3).astype(resolve(dtype))
    t = np.array([[1.0, 0.0], [0.0, 1.0]], resolve(dtype))
    g = net.value_and_grad(params, x, t)
    stepped = sgd_step(params, g, 0.1)
    assert all(a.dtype == resolve(dtype) for pair in stepped for a in pair)
    assert g.d_output.dtype == resolve(dtype) and net.loss(params, x, t).dtype == resolve(dtype)


@pytest.mark.parametrize("bad", ["float8_e4m3fn", "complex64", "int16"])
def test_other_dtypes_are_refused_naming_the_argument(bad: str) -> None:
    import ml_dtypes

    dt = getattr(ml_dtypes, bad, None) or np.dtype(bad)
    with pytest.raises(TypeError, match=rf"^x: dtype {np.dtype(dt).name} is not supported; use float16, bfloat16"):
        ri.tanh(np.zeros(2, dt))
    with pytest.raises(TypeError, match=r"^dtype: .*not supported"):
        MLP((2, 2), ("identity",)).init_params(dtype=dt)


def test_the_oracle_checks_user_code_in_the_half_dtypes() -> None:
    """``check_op`` accepts "float16" and "bfloat16": an unshifted softmax
    (exp of a logit of -1000 is 0 in every dtype: 0/0) fails in bfloat16, the
    shifted one, evaluated in float32 and rounded once, passes in both."""
    from reference_impl.oracle import check_op

    def naive(x: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            e = np.exp(x.astype(np.float32))
            return np.asarray(e / e.sum(-1, keepdims=True), dtype=x.dtype)

    def shifted(x: np.ndarray) -> np.ndarray:
        x32 = x.astype(np.float32)
        e = np.exp(x32 - x32.max(-1, keepdims=True))
        return np.asarray(e / e.sum(-1, keepdims=True), dtype=x.dtype)

    assert not check_op("softmax", forward=naive, dtypes=("bfloat16",), max_examples=20, seed=0).ok
    result = check_op("softmax", forward=shifted, dtypes=("float16", "bfloat16"), max_examples=10, seed=0)
    assert result.ok, str(result)


def test_the_network_oracle_checks_user_code_in_the_half_dtypes() -> None:
    """``check_network`` in float16 and bfloat16: the reference's own
    ``value_and_grad`` passes, one whose ``dW`` is doubled fails in bfloat16."""
    from reference_impl.oracle import check_network

    net = MLP((3, 4, 2), ("tanh", "identity"), cost="mse")

    def right(params: Any, x: np.ndarray, t: np.ndarray) -> Any:
        g = net.value_and_grad(params, x, t)
        return g.loss, g.params

    def doubled(params: Any, x: np.ndarray, t: np.ndarray) -> Any:
        g = net.value_and_grad(params, x, t)
        return g.loss, tuple((dw * 2, db) for dw, db in g.params)

    result = check_network(net, value_and_grad=right, dtypes=("float16", "bfloat16"), max_examples=5, seed=0)
    assert result.ok, str(result)
    assert not check_network(net, value_and_grad=doubled, dtypes=("bfloat16",), max_examples=5, seed=0).ok
