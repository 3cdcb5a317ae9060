"""Bad input to any public op: a clear exception naming the argument and the
problem, never a silently wrong number."""

from __future__ import annotations

import re

import ml_dtypes
import numpy as np
import pytest

import reference_impl as ri
from reference_impl import OPS
from reference_impl.frameworks.recipes import SPECS

OP_NAMES = sorted(OPS)


def valid(op: str, dtype=np.float64) -> tuple[np.ndarray, ...]:
    return SPECS[op].special[0].inputs(np.dtype(dtype))


def _params(op: str) -> dict:
    return dict(SPECS[op].special[0].params)


@pytest.mark.parametrize("op", OP_NAMES)
@pytest.mark.parametrize("bad_dtype", [np.int64, np.int32, np.bool_, ml_dtypes.float8_e4m3fn, np.complex128])
def test_non_float_dtype_is_rejected(op: str, bad_dtype: type) -> None:
    inputs = list(valid(op))
    inputs[0] = inputs[0].astype(bad_dtype)
    name = OPS[op].arg_names[0]
    with pytest.raises(TypeError, match=rf"^{re.escape(name)}: dtype .* not supported"):
        OPS[op].forward(*inputs, **_params(op))


@pytest.mark.parametrize("op", OP_NAMES)
@pytest.mark.parametrize(("value", "word"), [(np.nan, "NaN"), (np.inf, "inf"), (-np.inf, "inf")])
@pytest.mark.parametrize("position", [0, -1])
def test_non_finite_input_is_rejected(op: str, value: float, word: str, position: int) -> None:
    inputs = list(valid(op))
    x = inputs[position].copy()
    x.flat[0] = value
    inputs[position] = x
    name = OPS[op].arg_names[position]
    with pytest.raises(ValueError, match=rf"^{re.escape(name)}: contains 1 non-finite value\(s\) \(first: {word}"):
        OPS[op].forward(*inputs, **_params(op))
    with pytest.raises(ValueError, match=rf"^{re.escape(name)}: contains"):
        OPS[op].vjp(np.ones(()), *inputs, **_params(op))


@pytest.mark.parametrize("op", [o for o in OP_NAMES if len(OPS[o].arg_names) > 1])
def test_mixed_dtypes_are_rejected(op: str) -> None:
    inputs = list(valid(op))
    inputs[-1] = inputs[-1].astype(np.float32)
    with pytest.raises(TypeError, match=rf"^{OPS[op].arg_names[-1]}: dtype float32 differs from .*float64"):
        OPS[op].forward(*inputs, **_params(op))


@pytest.mark.parametrize("op", OP_NAMES)
def test_wrong_arity_and_unknown_parameter(op: str) -> None:
    inputs = valid(op)
    with pytest.raises(TypeError, match=rf"^{op}: expected {len(inputs)} input"):
        OPS[op].forward(*inputs, inputs[0])
    with pytest.raises(TypeError, match=rf"^{op}: unexpected parameter\(s\) \['axis'\]"):
        OPS[op].forward(*inputs, axis=0)


@pytest.mark.parametrize("op", OP_NAMES)
@pytest.mark.parametrize("bad", [None, "abc", [1, 2, 3], {"a": 1}])
def test_non_array_input_is_rejected(op: str, bad: object) -> None:
    inputs = list(valid(op))
    inputs[0] = bad
    with pytest.raises(TypeError, match=rf"^{OPS[op].arg_names[0]}: "):
        OPS[op].forward(*inputs, **_params(op))


@pytest.mark.parametrize("op", OP_NAMES)
def test_bad_cotangent_is_rejected(op: str) -> None:
    inputs, params = valid(op), _params(op)
    out = OPS[op].forward(*inputs, **params)
    with pytest.raises(ValueError, match=r"^cotangent: shape .* does not match the output shape"):
        OPS[op].vjp(np.ones((*out.shape, 2)), *inputs, **params)
    with pytest.raises(TypeError, match=r"^cotangent: dtype float32 differs from the inputs' float64"):
        OPS[op].vjp(np.ones(out.shape, np.float32), *inputs, **params)
    bad = np.ones(out.shape)
    bad.flat[0] = np.nan
    with pytest.raises(ValueError, match=r"^cotangent: contains 1 non-finite"):
        OPS[op].vjp(bad, *inputs, **params)


@pytest.mark.parametrize("op", [o for o in OP_NAMES if OPS[o].params])
def test_unknown_reduction_is_rejected(op: str) -> None:
    with pytest.raises(ValueError, match=r"^reduction: 'avg' is not one of \["):
        OPS[op].forward(*valid(op), reduction="avg")


a3, a4 = np.ones(3), np.ones(4)
p_ok = np.array([[0.2, 0.3, 0.5]])
t_ok = np.array([[1.0, 0.0, 0.0]])

SPECIFIC = [
    ("add", (a3, a4), {}, ValueError, r"^a, b: shapes \(3,\) and \(4,\) do not broadcast"),
    ("multiply", (np.ones((2, 3)), np.ones((3, 2))), {}, ValueError, r"^a, b: shapes .* do not broadcast"),
    ("matmul", (np.ones((2, 3)), np.ones((4, 5))), {}, ValueError, r"^a, b: inner dimensions differ"),
    ("matmul", (np.ones(()), np.ones(3)), {}, ValueError, r"^a, b: matmul needs at least 1 dimension"),
    ("matmul", (np.ones((2, 2, 3)), np.ones((3, 3, 4))), {}, ValueError, r"^a, b: batch axes"),
    ("dense", (np.ones((2, 3)), np.ones((4, 5)), np.ones(5)), {}, ValueError, r"^W: has 4 rows .* x has 3 features"),
    ("dense", (np.ones((2, 3)), np.ones((3, 5)), np.ones(4)), {}, ValueError, r"^b: has 4 entries but W has 5"),
    ("dense", (np.ones((2, 3)), np.ones(3), np.ones(1)), {}, ValueError, r"^W: expected a 2-D"),
    ("dense", (np.ones((2, 3)), np.ones((3, 5)), np.ones((1, 5))), {}, ValueError, r"^b: expected a 1-D"),
    ("dense", (np.ones(()), np.ones((1, 5)), np.ones(5)), {}, ValueError, r"^x: expected at least 1 dimension"),
    ("softmax", (np.ones(()),), {}, ValueError, r"^x: expected at least 1 dimension"),
    ("softmax", (np.ones((3, 0)),), {}, ValueError, r"^x: the class axis \(last\) is empty"),
    ("cross_entropy", (np.array([[0.0, 0.5, 0.5]]), t_ok), {}, ValueError, r"^probs: probabilities must be > 0"),
    ("cross_entropy", (np.array([[0.2, 0.3, 0.6]]), t_ok), {}, ValueError, r"^probs: each row .* must sum to 1"),
    ("cross_entropy", (np.array([[1.5, -0.2, -0.3]]), t_ok), {}, ValueError, r"^probs: probabilities must be > 0"),
    ("cross_entropy", (p_ok, np.array([[1.2, -0.2, 0.0]])), {}, ValueError, r"^target: a distribution has no negative"),
    ("cross_entropy", (p_ok, np.array([[0.5, 0.0, 0.0]])), {}, ValueError,
     r"^target: each row .* row \(0,\) sums to 0.5"),
    ("cross_entropy", (p_ok, np.array([1.0, 0.0, 0.0])), {}, ValueError, r"^target: shape \(3,\) does not match probs"),
    ("softmax_cross_entropy", (np.ones((2, 3)), np.full((2, 3), 0.5)), {}, ValueError, r"^target: each row"),
    ("softmax_cross_entropy", (np.ones((1, 3)), np.array([[2.0, -1.0, 0.0]])), {}, ValueError,
     r"^target: a distribution has no negative"),
    ("softmax_cross_entropy", (np.ones((1, 3)), np.array([[0.5, 0.5]])), {}, ValueError,
     r"^target: shape \(1, 2\) does not match logits"),
    ("softmax_cross_entropy", (np.ones((0, 3)), np.ones((0, 3))), {}, ValueError, r"^logits: empty batch"),
    ("mse", (a3, a4), {}, ValueError, r"^target: shape \(4,\) does not match prediction's shape \(3,\)"),
    ("mse", (np.ones(0), np.ones(0)), {}, ValueError, r"^prediction: empty"),
]


@pytest.mark.parametrize(("op", "inputs", "params", "exc", "pattern"), SPECIFIC,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(SPECIFIC)])
def test_specific_bad_input(op: str, inputs, params, exc, pattern) -> None:
    with pytest.raises(exc, match=pattern):
        OPS[op].forward(*inputs, **params)
    with pytest.raises(exc, match=pattern):
        OPS[op].vjp(np.ones(()), *inputs, **params)


def test_plain_functions_validate_too() -> None:
    with pytest.raises(ValueError, match=r"^target: each row"):
        ri.softmax_cross_entropy_vjp(np.ones(()), np.ones((2, 3)), np.full((2, 3), 0.5))
    with pytest.raises(TypeError, match=r"^x: dtype int64"):
        ri.relu(np.arange(3))


def test_ops_mapping_is_read_only() -> None:
    with pytest.raises(TypeError):
        OPS["relu"] = OPS["tanh"]  # type: ignore[index]
