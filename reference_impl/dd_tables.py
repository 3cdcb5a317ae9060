"""The constants and tables of :mod:`reference_impl.double_double`, in one
place for its NumPy path and its compiled kernels (:mod:`reference_impl.dd_kernels`).

Each value is computed in 60-digit decimals and rounded to a float64 pair
``(hi, lo)`` (``hi = fl(d)``, ``lo = fl(d - hi)``), so that ``hi + lo`` is
within ``2**-106`` of the value relative. The constants are computed at
import; the two tables (2048 and 6145 pairs, half a second of decimal
arithmetic) are read from ``dd_tables.npz`` beside this file, which
:func:`build_tables` wrote and which the test suite checks bit for bit
against it (:func:`write_tables` writes it anew)."""

from __future__ import annotations

import decimal
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

SPLITTER = 134217729.0
"""``2**27 + 1``: Veltkamp's splitting into two 26-bit halves."""
ZERO_E = -(1 << 40)
"""The exponent of a zero: below every nonzero value's, so that aligning a
sum to the larger exponent never scales a nonzero term away."""
TINY = float(np.finfo(np.float64).tiny)
ALIGN = -1022
"""A term more than 1022 binades below the other is below its last bit's
``2**-900``: scaled no further than float64's range allows."""

_CTX = decimal.Context(prec=60)


def _pair(d: decimal.Decimal) -> tuple[float, float]:
    hi = float(d)
    return hi, float(_CTX.subtract(d, decimal.Decimal(hi)))


def _chop(d: decimal.Decimal, bits: int) -> float:
    """``d`` rounded to ``bits`` significant bits (so that ``k`` times it is exact for ``|k| < 2**(53-bits)``)."""
    m, k = np.frexp(float(d))
    return float(np.ldexp(np.round(np.ldexp(m, bits)), int(k) - bits))


def veltkamp(a: Any) -> tuple[Any, Any]:
    """Veltkamp: ``a = h + l`` with each half of at most 26 bits (``|a| < 2**995``)."""
    c = SPLITTER * a
    h = c - (c - a)
    return h, a - h


_LN2 = _CTX.ln(decimal.Decimal(2))
EXP_N = 2048
"""``exp`` reduces by ``ln2 / 2048``: ``2**(j/2048)`` tabulated, ``|r| < 2**-12.5``."""
LOG_N = 4096
"""``log`` reduces by the nearest ``c = j/4096`` in ``[1/sqrt2, sqrt2]``: ``log c`` tabulated, ``|r| < 2**-11.5``."""
TABLES = Path(__file__).with_name("dd_tables.npz")


def build_tables() -> dict[str, np.ndarray]:
    """The tables from their definition: ``exp`` the pairs of ``2**(j/2048)``, ``j = 0..2047``;
    ``log`` the pairs of ``log(j/4096)``, ``j = 2048..8192``."""
    return {"exp": np.array([_pair(_CTX.power(decimal.Decimal(2), _CTX.divide(decimal.Decimal(j), EXP_N)))
                             for j in range(EXP_N)]),
            "log": np.array([_pair(_CTX.ln(_CTX.divide(decimal.Decimal(j), LOG_N)))
                             for j in range(LOG_N // 2, 2 * LOG_N + 1)])}


def _load_tables() -> dict[str, np.ndarray]:
    """The tables from ``dd_tables.npz``; where it is missing or unreadable, from
    :func:`build_tables` (the same bits, half a second later)."""
    try:
        with open(TABLES, "rb") as fh, np.load(fh, allow_pickle=False) as f:  # closed on a damaged file too
            tables = {k: np.ascontiguousarray(f[k], dtype=np.float64) for k in ("exp", "log")}
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        return build_tables()
    if tables["exp"].shape != (EXP_N, 2) or tables["log"].shape != (3 * LOG_N // 2 + 1, 2):
        return build_tables()
    return tables


_TABLES = _load_tables()
_EXP_T = _TABLES["exp"]
EXP_TH, EXP_TL = np.ascontiguousarray(_EXP_T[:, 0]), np.ascontiguousarray(_EXP_T[:, 1])
EXP_THH, EXP_THL = veltkamp(EXP_TH)  # the table's Veltkamp halves, for the product with eps
_L = _CTX.divide(_LN2, EXP_N)
L1 = _chop(_L, 28)
L2 = _chop(_CTX.subtract(_L, decimal.Decimal(L1)), 28)
L3 = float(_CTX.subtract(_CTX.subtract(_L, decimal.Decimal(L1)), decimal.Decimal(L2)))
INV_L = float(_CTX.divide(1, _L))
LN2_HI, LN2_LO = _pair(_LN2)
LN2_HH, LN2_HL = (float(h) for h in veltkamp(np.float64(LN2_HI)))
_LOG_T = _TABLES["log"]
LOG_TH, LOG_TL = np.ascontiguousarray(_LOG_T[:, 0]), np.ascontiguousarray(_LOG_T[:, 1])
SQRT_HALF = 0.7071067811865476


def write_tables() -> Path:
    """Write :data:`TABLES` from :func:`build_tables` (after a change to their definition)."""
    tables = build_tables()
    np.savez(TABLES, exp=tables["exp"], log=tables["log"])
    return TABLES
