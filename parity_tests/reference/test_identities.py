"""Framework-free identities of the op derivatives, checked on random inputs.

Each right-hand side is evaluated in float64 from the definition, so the
identity holds for the VJP as implemented in either dtype, within the VJP's
error bound for one implementation.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference_impl import OPS
from reference_impl.accuracy.ops import vjp_bound
from reference_impl.dtypes import resolve
from reference_impl.frameworks.recipes import SPECS
from reference_impl.strategies import examples

from ..harness import check_exact

DTYPES = [np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16), resolve("bfloat16")]
IDENTITY_CASES = [
    pytest.param(op, name, dt, id=f"{name}-{np.dtype(dt).name}")
    for op in sorted(SPECS)
    for name in SPECS[op].identities
    for dt in DTYPES
]


def _ones_vjp(ex):  # cotangent of ones: the VJP is then the column sum of the Jacobian / the derivative
    g = np.ones_like(ex.cotangent)
    return g, OPS[ex.op].vjp(g, *ex.inputs, **ex.params)


def relu_derivative_is_step(ex) -> None:
    _, (dx,) = _ones_vjp(ex)
    (x,) = ex.inputs
    assert set(np.unique(dx).tolist()) <= {0.0, 1.0}, f"relu' takes values outside {{0, 1}}: {np.unique(dx)}"
    expected = (x > 0).astype(x.dtype)  # 0 at 0.0 and -0.0
    mismatch = np.argwhere(dx != expected)
    assert mismatch.size == 0, f"relu' != [x > 0] at {mismatch[:5].tolist()} (x = {x[tuple(mismatch[0])]!r})"


def tanh_derivative(ex) -> None:
    g, (dx,) = _ones_vjp(ex)
    y = np.tanh(ex.inputs[0].astype(np.float64))
    (b,) = vjp_bound("tanh", g, ex.inputs)
    check_exact("tanh' = 1 - tanh^2", dx, 1 - y * y, b, ex.dtype, ex.describe())


def sigmoid_derivative(ex) -> None:
    g, (dx,) = _ones_vjp(ex)
    x = ex.inputs[0].astype(np.float64)
    s = np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))
    (b,) = vjp_bound("sigmoid", g, ex.inputs)
    check_exact("sigma' = sigma (1 - sigma)", dx, s * (1 - s), b, ex.dtype, ex.describe())


def softmax_jacobian_rows_sum_to_zero(ex) -> None:
    (x,) = ex.inputs
    c = x.shape[-1]
    op = OPS["softmax"]
    for j in range(min(c, 8)):
        e = np.zeros(x.shape, dtype=x.dtype)
        e[..., j] = 1
        (row,) = op.vjp(e, x)  # row j of each Jacobian: d s_j / d x_i
        (b,) = vjp_bound("softmax", e, (x,))
        tol = b.tolerance(x.dtype).sum(axis=-1) / 2 + c * np.finfo(x.dtype).eps * np.abs(row).sum(axis=-1)
        sums = row.astype(np.float64).sum(axis=-1)
        worst = np.max(np.abs(sums) - tol)
        assert worst <= 0, (
            f"softmax Jacobian row {j} sums to {sums.flat[np.argmax(np.abs(sums) - tol)]!r}, not 0 "
            f"(tolerance {tol.max():.3e}); {ex.describe()}"
        )


def softmax_cross_entropy_gradient_is_softmax_minus_target(ex) -> None:
    z, t = ex.inputs
    g = np.ones((), dtype=z.dtype)
    dz, _ = OPS["softmax_cross_entropy"].vjp(g, z, t, reduction="sum")
    z64 = z.astype(np.float64)
    e = np.exp(z64 - z64.max(axis=-1, keepdims=True))
    expected = e / e.sum(axis=-1, keepdims=True) - t.astype(np.float64)
    b, _ = vjp_bound("softmax_cross_entropy", g, (z, t), {"reduction": "sum"})
    check_exact("d(softmax_cross_entropy)/dz = softmax(z) - target", dz, expected, b, z.dtype, ex.describe())


IDENTITIES = {f.__name__: f for f in (
    relu_derivative_is_step, tanh_derivative, sigmoid_derivative,
    softmax_jacobian_rows_sum_to_zero, softmax_cross_entropy_gradient_is_softmax_minus_target,
)}


def test_every_named_identity_exists() -> None:
    named = {n for s in SPECS.values() for n in s.identities}
    assert named <= set(IDENTITIES), f"spec names unknown identities: {sorted(named - set(IDENTITIES))}"
    assert set(IDENTITIES) <= named, f"identities no spec row uses: {sorted(set(IDENTITIES) - named)}"


@pytest.mark.numpy_only
@pytest.mark.parametrize(("op", "identity", "dtype"), IDENTITY_CASES)
@given(data=st.data())
def test_identity(op: str, identity: str, dtype: type, data: st.DataObject) -> None:
    ex = data.draw(examples(op, dtype), label="example")
    IDENTITIES[identity](ex)


