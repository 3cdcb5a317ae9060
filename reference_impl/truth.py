"""Deprecated path: the truth moved to :mod:`reference_impl.frameworks.truth`."""

from __future__ import annotations

import warnings

from .frameworks.truth import *  # noqa: F403
from .frameworks.truth import __all__  # noqa: F401

warnings.warn("reference_impl.truth is deprecated; import reference_impl.frameworks.truth",
              DeprecationWarning, stacklevel=2)
