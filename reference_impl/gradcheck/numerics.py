"""Deprecated path, kept for one release: see :mod:`reference_impl.engine.differences`."""

from __future__ import annotations

import warnings

from ..engine.differences import *  # noqa: F403
from ..engine.differences import __all__  # noqa: F401

warnings.warn("reference_impl.gradcheck.numerics is deprecated; import reference_impl.engine.differences",
              DeprecationWarning, stacklevel=2)
