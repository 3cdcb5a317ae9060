"""Accurate float64 matrix products on float64 BLAS (Ozaki's splitting).

``matmul(a, b)`` returns ``a @ b`` for float64 ``a`` (``m x k``) and ``b``
(``k x n``, batch axes broadcast as ``np.matmul``): the exact product
rounded once, give or take ``ACCEPT = 2^-55`` of the larger of ``|C|`` and
``M = |a| @ |b|`` -- within 3/4 ulp where the terms do not cancel, within
1/2 ulp of ``C`` plus 1/4 ulp of ``M`` where they do. Every sum of products
of the reference (the ``matmul`` and ``dense`` forwards and VJPs, and through
``dense`` every layer of the networks) runs here for float64; float32 needs
none of it (its products are exact in float64 BLAS, and its sums there lose
nothing a float32 result can see).

The error-free transformation (Ozaki, Ogita, Oishi and Rump):

1. *Scale* row ``i`` of ``a`` by ``2^-t_i`` and column ``j`` of ``b`` by
   ``2^-f_j`` (powers of two, exact), so that every scaled entry has
   ``|x| < 1`` and each line's largest is at least 1/2.
2. *Split* each scaled matrix into slices ``A_1 + A_2 + ... + R_p``:
   ``A_p`` holds the bits of weight ``2^-((p-1) beta)`` down to
   ``2^-(p beta)``, truncated towards zero (so ``|A_p| <= min(|A|,
   2^-((p-1) beta))`` and the remainder ``|R_p| <= min(|A|, 2^-(p beta))``),
   ``beta = floor((53 - ceil(log2 k)) / 2)``.
3. *Multiply exactly*: a product of entries of ``A_p`` and ``B_q`` is an
   integer below ``2^(2 beta)`` times ``2^-((p+q) beta)``, and a sum of
   ``k`` of them stays below ``2^53`` such units, so ``A_p @ B_q`` on BLAS is
   exact whatever order or blocking BLAS sums in.

Two passes use it. The first, on every entry, takes three BLAS products:
``C = A_1 B_1 + (A_1 R^B_1 + R^A_1 B)``, the first exact, the second (terms
``2^-beta`` smaller) in plain float64 with a rounding error of at most
``gamma_(k+1) (|A_1| |R^B_1| + |R^A_1| |B|)`` (``gamma_n = n u / (1 - n u)``,
``u = 2^-53``), bounded without a product by line maxima times line sums.
Where that bound is not below ``ACCEPT |C|`` nor below ``ACCEPT M`` (``M`` by
one more BLAS product, taken as a lower bound after shrinking it by its own
``gamma_k``), the rows and columns of those entries go to the second pass,
``LEVELS = 3`` slices and the ``L(L+1)/2 = 6`` exact products ``A_p B_q``,
``p + q <= L + 1``, summed (the leading one plus the float64 sum of the
others). Its dropped part is, by telescoping, ``D = sum_{p<=L} A_p
R^B_{L+1-p} + R^A_L B``, so with ``a_p,i = max_k |A_p,ik|``

    |D_ij| <= sum_p a_p,i sum_k |R^B_{L+1-p},kj| + sum_k |R^A_L,ik| max_k |B_kj|,

plus ``gamma_6 3k 2^-beta`` for the float64 sum of the small partials.
Entries that this cannot certify either -- rows spanning so many binades
that three slices cannot hold them, such as ``[1, 1e-30] @ [1e-30, 1]``
behind a cancellation -- are summed exactly in rationals
(:class:`fractions.Fraction`) and rounded once. A bias joins the sum by a
TwoSum with the unscaled leading part. In subnormal results the unscaling may
round once more (at most half the smallest subnormal).

Small products (``m n (k + 25) <= 4096``) skip the passes: each product
of entries becomes the exact pair ``p + e`` (Dekker's TwoProduct on
Veltkamp's split, where no split overflows and no ``e`` underflows) and each
entry's terms are summed by :func:`math.fsum` (Shewchuk's exact partials),
correctly rounded.

Cost: three BLAS products and O(mk + kn + mn) work for the first pass,
a fourth product where some entry cancels, the second pass only on the
lines it needs.

References: K. Ozaki, T. Ogita, S. Oishi, S. M. Rump, "Error-free
transformations of matrix multiplication by using fast routines of matrix
multiplication and its applications", Numer. Algorithms 59 (2012) 95-118;
T. Ogita, S. M. Rump, S. Oishi, "Accurate sum and dot product", SIAM J. Sci.
Comput. 26 (2005) 1955-1988 (TwoSum); N. J. Higham, *Accuracy and
Stability of Numerical Algorithms*, 2nd ed. (2002), section 3.1
(``gamma_n``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction

import numpy as np

__all__ = ["ACCEPT", "LEVELS", "matmul", "slice_bits"]

LEVELS = 3
"""Slices per operand: partial products for ``p + q <= LEVELS + 1``."""

ACCEPT = 2.0**-55
"""An entry is kept where its error bound is below this times |C| (or M)."""

_U = 2.0**-53


def slice_bits(k: int) -> int:
    """``beta``: bits per slice for a contraction of length ``k``, so that a
    sum of ``k`` products of two slices is exact in float64."""
    return (53 - max(0, math.ceil(math.log2(max(k, 1))))) // 2


def matmul(a: np.ndarray, b: np.ndarray, bias: np.ndarray | None = None,
           shape: tuple[int, ...] | None = None) -> np.ndarray:
    """``a @ b (+ bias)`` of float64 arrays with ``np.matmul``'s semantics
    (a 1-D operand promoted and its axis removed, batch axes broadcast),
    summed over the batch axes that ``shape`` (the result's target shape, as
    ``unbroadcast`` takes it) broadcasts, within the bound above. ``bias``
    broadcasts against the product's last axis."""
    if a.ndim == 1 or b.ndim == 1:
        if bias is not None and b.ndim == 1:
            raise ValueError(f"bias: a product with a 1-D b has no output axis for it (b has shape {b.shape})")
        out = matmul(a[None, :] if a.ndim == 1 else a, b[:, None] if b.ndim == 1 else b, bias, shape)
        out = out[..., 0, :] if a.ndim == 1 else out
        return out[..., 0] if b.ndim == 1 else out
    if shape is not None:
        a, b = _fold_batch(a, b, shape)
    if b.ndim == 2 and a.ndim > 2:  # rows of every batch at once: one product
        return _product(np.ascontiguousarray(a.reshape(-1, a.shape[-1])), b, bias).reshape(*a.shape[:-1], -1)
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    out = np.empty((*batch, a.shape[-2], b.shape[-1]), dtype=np.float64)
    a = np.broadcast_to(a, (*batch, *a.shape[-2:]))
    b = np.broadcast_to(b, (*batch, *b.shape[-2:]))
    for idx in np.ndindex(*batch):
        out[idx] = _product(np.ascontiguousarray(a[idx]), np.ascontiguousarray(b[idx]), bias)
    return out


def _fold_batch(a: np.ndarray, b: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The batch axes that the target ``shape`` sums over moved into the
    contraction: ``sum_r a[r] @ b[r] = [a[r1] ... a[rR]] @ [b[r1]; ...; b[rR]]``."""
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    kept = (1,) * (len(batch) + 2 - len(shape)) + tuple(shape)
    summed = [i for i, n in enumerate(batch) if kept[i] == 1 and n != 1]
    if not summed:
        return a, b
    others = [i for i in range(len(batch)) if i not in summed]
    nb = len(batch)
    a = np.broadcast_to(a, (*batch, *a.shape[-2:])).transpose(*others, nb, *summed, nb + 1)
    b = np.broadcast_to(b, (*batch, *b.shape[-2:])).transpose(*others, *summed, nb, nb + 1)
    keep = [batch[i] if kept[i] != 1 else 1 for i in others]
    a = a.reshape(*keep, a.shape[len(others)], -1)
    b = b.reshape(*keep, -1, b.shape[-1])
    return a, b


def _split(x: np.ndarray, beta: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Slices ``x_1..x_L`` of a scaled matrix (``|x| < 1``) and the remainders
    ``R_1..R_L`` after each, all exact (truncation of the high bits; the
    scalings by ``2^(p beta)`` stay far from overflow and underflow)."""
    slices, rests = [], []
    r = x
    for p in range(1, LEVELS + 1):
        up = 2.0 ** (p * beta)
        s = np.trunc(r * up) * (1 / up)
        r = r - s
        slices.append(s)
        rests.append(r)
    return slices, rests


def _scale(x: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x 2^-t, t, lost)`` with ``t`` per row (``axis=1``) or column
    (``axis=0``): the largest scaled entry in [1/2, 1); ``lost`` marks lines
    where an entry far below its line's largest may lose bits to underflow."""
    ax = np.abs(x)
    _, t = np.frexp(np.max(ax, axis=axis, keepdims=True))
    with np.errstate(under="ignore"):
        scaled = _times_power(x, -t)
    smallest = np.min(ax, where=ax > 0, initial=np.inf)
    if smallest >= np.ldexp(1.0, min(int(np.max(t, initial=0)), 1023) - 1021):
        return scaled, t, np.zeros(t.shape, dtype=bool)  # the common case: no line scales an entry that far down
    smallest_line = np.min(ax, axis=axis, keepdims=True, where=ax > 0, initial=np.inf)
    lost = (t > 0) & (smallest_line < np.ldexp(1.0, np.minimum(t, 1023) - 1021))
    return scaled, t, lost


def _unscaler(ta: np.ndarray, tb: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """``x -> x 2^(ta_i + tb_j)`` rounded once: where every exponent is within
    +-511 a product by the table ``2^ta 2^tb`` (exact, normal), else ``np.ldexp``."""
    if max(int(np.max(np.abs(ta), initial=0)), int(np.max(np.abs(tb), initial=0))) <= 511:
        table = np.ldexp(1.0, ta) * np.ldexp(1.0, tb)
        return lambda x: np.asarray(x * table)
    shift = ta + tb
    return lambda x: np.asarray(np.ldexp(x, shift))


def _times_power(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``x 2^t`` (``t`` an integer array broadcasting against ``x``), rounded
    once: a product by the power where it and every ``2^t`` are normal
    numbers, ``np.ldexp`` (slower) otherwise."""
    if t.size and int(t.min()) >= -1022 and int(t.max()) <= 1023:
        return np.asarray(x * np.ldexp(1.0, t))
    return np.asarray(np.ldexp(x, t))


def _product(a: np.ndarray, b: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """One 2-D product ``a @ b (+ bias)``, float64, within the module's bound:
    the two-slice pass, then the three-level pass on the rows and columns of
    the entries it could not certify, then rationals for what is left."""
    m, k = a.shape
    n = b.shape[1]
    if m * n == 0 or k == 0:
        return np.zeros((m, n)) + (0.0 if bias is None else bias)
    if m * n * (k + 25) <= _SMALL:
        small = _few_terms(a, b, bias)
        if small is not None:
            return small
    out, bad = _two_slices(a, b, bias)
    if np.any(bad):
        rows, cols = np.nonzero(np.any(bad, axis=1))[0], np.nonzero(np.any(bad, axis=0))[0]
        sub_bias = None if bias is None else np.broadcast_to(bias, (n,))[cols]
        sub, sub_bad = _levels(a[rows], b[:, cols], sub_bias)
        pick = bad[np.ix_(rows, cols)]
        out[np.ix_(rows, cols)] = np.where(pick, sub, out[np.ix_(rows, cols)])
        for i, j in zip(*np.nonzero(pick & sub_bad)):
            out[rows[i], cols[j]] = _exact_entry(a[rows[i]], b[:, cols[j]],
                                                 None if sub_bias is None else sub_bias[j])
    return out


_SMALL = 4096
"""Products with ``m n (k + 25)`` at most this take :func:`_few_terms`: it
costs about a microsecond per entry and 0.04 per term, the passes about 200
microseconds whatever the size below it."""

_SPLIT = 2.0**27 + 1
"""Veltkamp's splitter for float64: ``x = hi + lo`` with 26 and 27 bits."""


def _few_terms(a: np.ndarray, b: np.ndarray, bias: np.ndarray | None) -> np.ndarray | None:
    """A small product correctly rounded: every product ``a_ik b_kj`` as the
    exact pair ``p + e`` (Dekker's TwoProduct on Veltkamp's split), then each
    entry's ``2k (+1)`` terms summed by :func:`math.fsum` (Shewchuk's exact
    partials, rounded once). None where a split could overflow, a product
    overflows or its error term could underflow (then it is not exact), or
    ``fsum`` overflows in between: the general passes take those."""
    if max(float(np.max(np.abs(a))), float(np.max(np.abs(b)))) > 2.0**995:
        return None
    x, y = a[:, :, None], b[None, :, :]
    p = x * y
    with np.errstate(under="ignore", over="ignore", invalid="ignore"):
        exact = np.isfinite(p) & ((np.abs(p) >= 2.0**-966) | (x == 0) | (y == 0))
        if not np.all(exact):
            return None
        cx, cy = _SPLIT * x, _SPLIT * y
        xh, yh = cx - (cx - x), cy - (cy - y)
        xl, yl = x - xh, y - yh
        e = ((xh * yh - p) + xh * yl + xl * yh) + xl * yl
    m, n = a.shape[0], b.shape[1]
    terms = np.concatenate([p, e], axis=1).transpose(0, 2, 1).reshape(m * n, -1)
    if bias is not None:
        terms = np.concatenate([terms, np.broadcast_to(bias, (m, n)).reshape(-1, 1)], axis=1)
    try:
        out = np.array([math.fsum(row) for row in terms.tolist()]).reshape(m, n)
    except OverflowError:
        return None
    # IEEE's sign of an exact zero: -0 only where every term is -0 (fsum returns +0)
    negative_zero = np.all((terms == 0) & np.signbit(terms), axis=1).reshape(m, n)
    return np.where(negative_zero, -0.0, out)


Bound = tuple[list[tuple[np.ndarray, np.ndarray]], float]
"""An error bound in the scaled units, ``sum_r u_r v_r^T + c``: rank-one
terms (a column of ``m`` and a row of ``n``) and a constant, so that it is
formed once, on the entries it is compared at."""


def _two_slices(a: np.ndarray, b: np.ndarray, bias: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """``A_1 B_1`` exactly plus ``A_1 R^B_1 + R^A_1 B`` in float64 BLAS:
    three products. The second term's rounding is at most
    ``gamma_(k+1) (|A_1| |R^B_1| + |R^A_1| |B|)``, each bounded by a line's
    largest entry times the other's line sum."""
    k = a.shape[1]
    beta = slice_bits(k)
    sa, ta, lost_a = _scale(a, 1)
    sb, tb, lost_b = _scale(b, 0)
    a1 = np.trunc(sa * 2.0**beta) * 2.0**-beta
    b1 = np.trunc(sb * 2.0**beta) * 2.0**-beta
    ra, rb = sa - a1, sb - b1
    lead = a1 @ b1
    small = a1 @ rb + ra @ sb
    g = _gamma(k + 1) * (1 + _gamma(k + 2))  # and the line sums' own rounding
    terms = [(g * _line(a1, np.max, 1), _line(rb, np.sum, 0)), (g * _line(ra, np.sum, 1), _line(sb, np.max, 0))]
    return _finish(a, b, sa, sb, ta, tb, _with_lost((terms, 0.0), lost_a, lost_b, k), lead, small, bias)


def _line(x: np.ndarray, reduce: Callable[..., np.ndarray], axis: int) -> np.ndarray:
    """``reduce(|x|)`` along ``axis``, kept as a column (axis 1) or a row (axis 0)."""
    return np.asarray(reduce(np.abs(x), axis=axis, keepdims=True))


def _with_lost(bound: Bound, lost_a: np.ndarray, lost_b: np.ndarray, k: int) -> Bound:
    """``bound`` plus ``2^-1074 k`` on the lines where the scaling rounded
    an entry (each by at most half the smallest subnormal)."""
    terms, const = bound
    if np.any(lost_a):
        terms = [*terms, (2.0**-1074 * k * lost_a, np.ones((1, lost_b.shape[1])))]
    if np.any(lost_b):
        terms = [*terms, (np.ones((lost_a.shape[0], 1)), 2.0**-1074 * k * lost_b)]
    return terms, const


def _formed(bound: Bound, factor: float = 1.0) -> np.ndarray:
    """``factor`` times the bound as a matrix (``factor`` a power of two: exact)."""
    terms, const = bound
    out = (factor * terms[0][0]) * terms[0][1] + factor * const
    for u, v in terms[1:]:
        out += (factor * u) * v
    return np.asarray(out)


def _gamma(n: int) -> float:
    """``gamma_n = n u / (1 - n u)``: the relative error bound of a float64 sum of ``n`` terms."""
    return n * _U / (1 - n * _U)


def _levels(a: np.ndarray, b: np.ndarray, bias: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The ``LEVELS``-slice pass (``L(L+1)/2`` exact products; see the module docstring)."""
    k = a.shape[1]
    beta = slice_bits(k)
    sa, ta, lost_a = _scale(a, 1)
    sb, tb, lost_b = _scale(b, 0)
    a_sl, a_rest = _split(sa, beta)
    b_sl, b_rest = _split(sb, beta)
    lead = a_sl[0] @ b_sl[0]
    small = np.zeros(lead.shape)
    for total in range(LEVELS + 1, 2, -1):  # the smallest partials first
        for p in range(1, total):
            small += a_sl[p - 1] @ b_sl[total - p - 1]
    bound = _with_lost(_bound(a_sl, a_rest, b_rest, sb, k, beta), lost_a, lost_b, k)
    return _finish(a, b, sa, sb, ta, tb, bound, lead, small, bias)


def _finish(a: np.ndarray, b: np.ndarray, sa: np.ndarray, sb: np.ndarray, ta: np.ndarray, tb: np.ndarray,
            bound: Bound, lead: np.ndarray, small: np.ndarray,
            bias: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """``lead + small (+ bias)`` unscaled and rounded once, and the entries
    whose error bound is certified neither elementwise nor normwise. Without
    a bias the comparisons are made in the scaled units (the same power of
    two scales an entry and its bound), first against each column's largest
    bound (one pass), then, on the entries that fails for, their own."""
    k = a.shape[1]
    unscale = _unscaler(ta, tb)
    inv = 1 / ACCEPT  # the bound times ACCEPT's reciprocal, against |C| or M
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        if bias is None:
            scaled = lead + small
            out = unscale(scaled)
            size = np.abs(scaled)
            terms, const = bound
            column = sum((np.max(u) * v for u, v in terms), np.full((1, size.shape[1]), const))
            i, j = np.nonzero(~(inv * column <= size))
            if i.size == 0:  # the common case: every entry certified by its column's largest bound
                return out, np.zeros(out.shape, dtype=bool)
            limit = inv * (sum((u[i, 0] * v[0, j] for u, v in terms), np.zeros(i.size)) + const)
        else:
            hi = unscale(lead)
            s = hi + bias
            bb = s - hi
            err = (hi - (s - bb)) + (bias - bb)  # TwoSum: hi + bias = s + err exactly
            low = unscale(small)
            out = np.where(np.isfinite(s), s + (err + low), s)
            size = np.abs(out)
            # the rounding of the low parts' sum joins the bound
            full = inv * (unscale(_formed(bound)) + _U * (np.abs(err) + np.abs(low)))
            i, j = np.nonzero(~(full <= size))
            limit = full[i, j]
        still = ~(limit <= size[i, j])
    i, j, limit = i[still], j[still], limit[still]
    bad = np.zeros(out.shape, dtype=bool)
    if i.size == 0:
        return out, bad
    # |a| @ |b| rounded is within gamma_k of the true M: shrunk by that, it is a lower bound
    raw = (np.abs(sa) @ np.abs(sb))[i, j]
    with np.errstate(over="ignore", under="ignore"):
        mag = raw * (1 - k * 2.0**-52) - k * 2.0**-1074
        if bias is not None:
            mag = np.minimum(np.ldexp(mag, ta[i, 0] + tb[0, j]), np.finfo(np.float64).max) \
                + np.abs(np.broadcast_to(bias, out.shape)[i, j])
    still = ~(limit <= mag)
    if np.any(still) and _smallest(sa) * _smallest(sb) >= 2.0**-1022:
        # no product of nonzero entries underflows, so M = 0 means every product is 0: the sum
        # (and the bias) is then exact -- a zero line meets a zero line, as a relu leaves them
        still &= raw != 0
    bad[i[still], j[still]] = True
    return out, bad


def _smallest(x: np.ndarray) -> float:
    """The smallest nonzero ``|x|`` (1 where every entry is 0)."""
    ax = np.abs(x)
    return float(np.min(ax, where=ax > 0, initial=1.0))


def _bound(a_sl: list[np.ndarray], a_rest: list[np.ndarray], b_rest: list[np.ndarray], sb: np.ndarray,
           k: int, beta: int) -> Bound:
    """``E_ij`` of the module docstring (the dropped part plus the rounding
    of the small partials' sum), inflated for its own rounding."""
    f = 1 + _gamma(k + 4)
    terms = [(f * _line(a_rest[-1], np.sum, 1), _line(sb, np.max, 0))]
    terms += [(f * _line(a_sl[p - 1], np.max, 1), _line(b_rest[LEVELS - p], np.sum, 0))
              for p in range(1, LEVELS + 1)]
    count = LEVELS * (LEVELS + 1) // 2
    return terms, _gamma(count) * 3 * k * 2.0**-beta


def _exact_entry(row: np.ndarray, col: np.ndarray, bias: float | None) -> float:
    """``row . col (+ bias)`` in rationals, rounded once (+-inf beyond range)."""
    total = sum((Fraction(float(x)) * Fraction(float(y)) for x, y in zip(row, col)), Fraction(0))
    if bias is not None:
        total += Fraction(float(bias))
    try:
        return float(total)
    except OverflowError:
        return math.inf if total > 0 else -math.inf
