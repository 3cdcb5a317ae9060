"""Document 002's chain-rule examples.

* ``g(x, y, z) = (2x + y) z``, a function of three variables, and its three
  partial derivatives ("if you are deriving with respect to a variable, all
  other variables must be considered as constant"); the document evaluates
  ``g(1, -5, 7) = -21``.
* ``p(X) = h(g(f(X)))`` with ``f = relu``, ``g = tanh``, ``h = softmax``,
  whose derivative is the chain ``h'(g) . g'(f) . f'(X)``: "each function must
  be derived with respect to its input".

The partials of ``g`` follow the chain through the gates of ``q = 2x + y``
and ``g = q z``; ``p``'s VJP chains the registry's softmax, tanh and relu
rules; ``p``'s Jacobian is the document's product of the three local
Jacobians, formed explicitly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._validate import as_array, check_cotangent, check_same_dtype, overflow_remedy
from .ops import OPS
from .sources import fill_citations
from .wide import precision, round_to, wide

__all__ = ["g", "g_partials", "composite_p", "composite_p_vjp", "composite_p_jacobian", "JACOBIAN_LIMIT"]


def _xyz(x: Any, y: Any, z: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xs, ys, zs = as_array(x, "x"), as_array(y, "y"), as_array(z, "z")
    check_same_dtype(x=xs, y=ys, z=zs)
    if not xs.shape == ys.shape == zs.shape:
        raise ValueError(f"x, y, z: shapes {xs.shape}, {ys.shape}, {zs.shape} differ; g is evaluated elementwise")
    return xs, ys, zs


def _two_x_plus_y(xs: np.ndarray, ys: np.ndarray) -> Any:
    """``q = 2x + y`` in the wide format (``reference_impl.wide``), not yet
    rounded: ``2x`` alone may overflow the dtype where ``q`` or ``q z`` does not."""
    with precision():
        xw, yw = wide(xs, ys)
        return 2 * xw + yw


def _finite(value: np.ndarray, names: str, what: str) -> np.ndarray:
    """Results beyond the dtype's range are an error naming the arguments
    that produce them, never an inf."""
    if not np.all(np.isfinite(value)):
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(np.atleast_1d(value)))[0])
        remedy = overflow_remedy(value.dtype, "pass smaller inputs")
        raise ValueError(f"{names}: {what} overflows {value.dtype} at index {where if value.ndim else ()}; "
                         f"the true value is beyond the dtype's range ({remedy})")
    return value


def g(x: Any, y: Any, z: Any) -> np.ndarray:
    """``g(x, y, z) = (2x + y) z`` elementwise (002; ``g(1, -5, 7) = -21``).
    ``x``, ``y``, ``z``: float arrays of one shape and dtype (Python floats
    are float64). Source: {002}."""
    xs, ys, zs = _xyz(x, y, z)
    # as the truth: (2x + y) z in the wide format, rounded once; an intermediate 2x + y beyond the dtype
    # (x = y = 2e38 in float32) does not make a representable g (times z = 1e-30: 6e8) an error
    with precision():
        (zw,) = wide(zs)
        return _finite(round_to(_two_x_plus_y(xs, ys) * zw, xs), "x, y, z", "g = (2x + y) z")


def g_partials(x: Any, y: Any, z: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(dg/dx, dg/dy, dg/dz) = (2z, z, 2x + y)`` (002), elementwise.

    By the chain rule through ``q = 2x + y`` and ``g = q z``: the multiply
    gate sends ``z`` to ``q`` and ``q`` to ``z``; the add gate passes ``dg/dq``
    to ``2x`` and to ``y``; the scaling by 2 doubles it for ``x``. At
    ``(1, -5, 7)``: ``(14, 7, -3)``. Source: {002}."""
    xs, ys, zs = _xyz(x, y, z)
    q = _finite(round_to(_two_x_plus_y(xs, ys), xs), "x, y", "dg/dz = 2x + y")
    one = np.ones_like(q)
    with np.errstate(over="ignore"):
        dq, dz = OPS["multiply"].vjp_from_output(one, q * zs, q, zs)
        d2x, dy = OPS["add"].vjp_from_output(dq, q, q, ys)  # the add gate q = (2x) + y; its rule reads no values
        dx = _finite(np.asarray(2 * d2x), "z", "dg/dx = 2z")
    return dx, np.array(dy, copy=True), np.array(dz, copy=True)


def _check_rows(X: Any, name: str = "X") -> np.ndarray:
    xs = as_array(X, name)
    if xs.ndim < 1 or xs.shape[-1] < 1:
        raise ValueError(
            f"{name}: expected at least 1 dimension with a non-empty last axis (softmax's), got {xs.shape}"
        )
    return xs


def composite_p(X: Any) -> np.ndarray:
    """``p(X) = softmax(tanh(relu(X)))`` over the last axis (002's
    ``h(g(f(X)))``). Source: {002}."""
    xs = _check_rows(X)
    return OPS["softmax"].forward(OPS["tanh"].forward(OPS["relu"].forward(xs)))


def composite_p_vjp(cotangent: Any, X: Any) -> np.ndarray:
    """``dX = f'(X) * (g'(f) * h'(g)^T cotangent)``: the softmax VJP, then
    tanh's (``1 - tanh^2``), then relu's (``[X > 0]``), i.e. the cotangent
    times 002's chain ``dp/dX = h'(g) . g'(f) . f'(X)``. Source: {002}."""
    xs = _check_rows(X)
    f = OPS["relu"].forward(xs)
    gv = OPS["tanh"].forward(f)
    p = OPS["softmax"].forward(gv)
    ct = check_cotangent(cotangent, p.shape, p.dtype)
    d_g = OPS["softmax"].vjp_from_output(ct, p, gv)[0]
    d_f = OPS["tanh"].vjp_from_output(d_g, gv, f)[0]
    return OPS["relu"].vjp_from_output(d_f, f, xs)[0]


JACOBIAN_LIMIT = 4096
"""Longest row :func:`composite_p_jacobian` forms the dense Jacobian of:
``n^2`` entries, 128 MiB in float64 at this length."""


def composite_p_jacobian(x: Any) -> np.ndarray:
    """The full Jacobian ``dp_i/dx_j`` of ``p`` at a single row ``x`` (1-D),
    as the document's product of the three local Jacobians:
    ``J = (diag(s) - s s^T) . diag(1 - tanh(relu(x))^2) . diag([x > 0])``
    with ``s = p(x)``. A product with a diagonal matrix scales the columns,
    so the two diagonal factors are applied that way (the same roundings as
    the matrix products, in ``n^2`` instead of ``n^3`` operations). Rows
    longer than :data:`JACOBIAN_LIMIT` are refused. Source: {002}."""
    xs = _check_rows(x, "x")
    if xs.ndim != 1:
        raise ValueError(f"x: the Jacobian is formed for one row (1-D), got shape {xs.shape}")
    if xs.shape[0] > JACOBIAN_LIMIT:
        raise ValueError(
            f"x: a row of {xs.shape[0]} elements has a {xs.shape[0]} x {xs.shape[0]} Jacobian, longer than "
            f"JACOBIAN_LIMIT = {JACOBIAN_LIMIT}; use composite_p_vjp for products with it"
        )
    f = np.where(xs > 0, xs, np.zeros((), dtype=xs.dtype))
    gv = np.tanh(f)
    e = np.exp(gv - gv.max())
    s = e / e.sum()
    softmax_jac = np.diag(s) - np.outer(s, s)
    tanh_diag = 1 - gv * gv
    relu_diag = (xs > 0).astype(xs.dtype)
    return np.asarray(softmax_jac * tanh_diag[None, :] * relu_diag[None, :])


for _fn in (g, g_partials, composite_p, composite_p_vjp, composite_p_jacobian):
    fill_citations(_fn)
