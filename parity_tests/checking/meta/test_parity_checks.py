"""Meta-tests: the checks themselves fail on known-wrong gradients.

A parity suite that cannot fail proves nothing. Each test here feeds a
deliberately wrong VJP, a perturbed value or a silently downcast result into
the same checks the suite uses, and asserts that they report it.
"""

from __future__ import annotations

import numpy as np
import pytest

from reference_impl import OPS
from reference_impl.accuracy.ops import forward_bound, vjp_bound
from reference_impl.engine.comparison import compare
from reference_impl.frameworks.backends import get_backend
from reference_impl.strategies import Example

from ...harness import ParityFailure, check_adjoint, check_forward, check_vjp

rng = np.random.default_rng(20261123)


def _softmax_example(dtype=np.float64) -> Example:
    x = rng.standard_normal((4, 5)).astype(dtype)
    return Example("softmax", (x,), {}, rng.standard_normal((4, 5)).astype(dtype))


def _diagonal_softmax_vjp(g, x):
    (y,) = (OPS["softmax"].forward(x),)
    return (g * y * (1 - y),)  # keeps only the Jacobian's diagonal


def _dense_vjp_without_bias_sum(g, x, w, b):
    dx, dw, _ = OPS["dense"].vjp(g, x, w, b)
    return dx, dw, g[0]  # forgets to sum the bias gradient over the batch


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adjoint_catches_diagonal_softmax_vjp(dtype) -> None:
    ex = _softmax_example(dtype)
    assert check_adjoint(ex, seed=1) <= 1
    with pytest.raises(ParityFailure, match=r"adjoint test of op 'softmax'"):
        check_adjoint(ex, seed=1, vjp=_diagonal_softmax_vjp)


def test_adjoint_catches_unsummed_bias_gradient() -> None:
    x, w, b = rng.standard_normal((6, 3)), rng.standard_normal((3, 2)), rng.standard_normal(2)
    ex = Example("dense", (x, w, b), {}, rng.standard_normal((6, 2)))
    assert check_adjoint(ex, seed=2) <= 1
    with pytest.raises(ParityFailure, match=r"adjoint test of op 'dense'"):
        check_adjoint(ex, seed=2, vjp=_dense_vjp_without_bias_sum)


def test_adjoint_catches_tanh_derivative_off_by_square() -> None:
    x = rng.standard_normal(16)
    ex = Example("tanh", (x,), {}, rng.standard_normal(16))
    wrong = lambda g, x: (g * (1 - np.tanh(x)),)  # noqa: E731 -- 1 - tanh instead of 1 - tanh^2
    with pytest.raises(ParityFailure):
        check_adjoint(ex, seed=3, vjp=wrong)


@pytest.mark.torch
def test_torch_comparison_catches_diagonal_softmax_vjp() -> None:
    ex = _softmax_example(np.float32)
    _, theirs = get_backend("torch").vjp("softmax", ex.cotangent, ex.inputs, {})
    check_vjp(ex, "torch", theirs)  # the reference passes ...
    wrong = _diagonal_softmax_vjp(ex.cotangent, *ex.inputs)
    (b,) = vjp_bound("softmax", ex.cotangent, ex.inputs)
    comp = compare(wrong[0], theirs[0], b.tolerance(np.float32), np.float32)
    assert not comp.ok and comp.ratio > 1e3  # ... and the wrong rule misses by orders of magnitude


@pytest.mark.jax
def test_dtype_drop_is_a_failure() -> None:
    x = rng.standard_normal((3, 4))
    ex = Example("tanh", (x,), {}, np.ones((3, 4)))
    theirs = get_backend("jax").forward("tanh", ex.inputs, {})
    assert theirs.dtype == np.float64, "jax must run with x64 enabled: float64 in, float64 out"
    with pytest.raises(ParityFailure, match=r"dtype change: got float32, expected float64"):
        check_forward(ex, "jax", theirs.astype(np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bound_separates_rounding_from_a_wrong_digit(dtype) -> None:
    x = rng.standard_normal((8, 16)).astype(dtype)
    w = rng.standard_normal((16, 4)).astype(dtype)
    y = OPS["matmul"].forward(x, w)
    tol = forward_bound("matmul", (x, w)).tolerance(dtype)
    exact = (x.astype(np.longdouble) @ w.astype(np.longdouble)).astype(np.float64)
    assert compare(y, exact, tol, dtype).ok
    # one element off by 1e-4 relative: far beyond rounding in either dtype
    wrong = y.copy()
    wrong[3, 2] *= 1 + 1e-4 if dtype == np.float64 else 1 + 1e-3
    comp = compare(wrong, exact, tol, dtype)
    assert not comp.ok and comp.worst_index == (3, 2)


def test_failure_message_names_everything() -> None:
    ex = _softmax_example(np.float64)
    theirs = (ex.inputs[0] * 0,)
    with pytest.raises(ParityFailure) as info:
        check_vjp(ex, "torch", theirs)
    msg = str(info.value)
    for needle in ("VJP w.r.t. 'x' of op 'softmax' disagrees with torch", "float64", "x(4, 5)",
                   "worst element", "abs error", "rel error", "ulp error", "tolerance there", "reproduce:"):
        assert needle in msg, f"failure message lacks {needle!r}:\n{msg}"
