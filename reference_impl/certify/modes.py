"""Which modes and devices a certify row runs in.

Op rows run each framework in every selected mode (``eager``; ``compiled``:
``torch.compile``, ``jax.jit``) on every selected device (``cpu``, ``cuda``).
The network, gradient-descent and golden rows run the frameworks' adapters as
they are -- torch eager, jax jitted (``frameworks.backends.DEFAULT_MODE``) --
on the CPU, and appear when that mode is selected. No selected mode means each
framework's usual one: the rows ``certify`` runs by default.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..frameworks.backends import DEFAULT_MODE

__all__ = ["usual_mode", "op_modes", "fixed_mode_selected", "suffix", "row_key", "RowKey"]


def usual_mode(backend: str) -> str:
    """``backend``'s usual mode; ``fd`` and ``reference`` run NumPy, eagerly."""
    return DEFAULT_MODE.get(backend, "eager")


def op_modes(modes: Sequence[str], backend: str) -> tuple[str, ...]:
    """The modes of ``backend``'s op rows when ``modes`` are selected."""
    if backend not in DEFAULT_MODE:
        return ("eager",) if not modes or "eager" in modes else ()
    return tuple(modes) or (DEFAULT_MODE[backend],)


def fixed_mode_selected(modes: Sequence[str], devices: Sequence[str], backend: str) -> bool:
    """Whether the rows that run ``backend`` only in its usual mode on the CPU are selected."""
    return "cpu" in devices and (not modes or usual_mode(backend) in modes)


def suffix(backend: str, mode: str, device: str) -> str:
    """``" compiled"``, ``" eager cuda"``, ...: what differs from ``backend``'s usual mode on the CPU."""
    parts = [mode] if mode != usual_mode(backend) else []
    return "".join(f" {p}" for p in [*parts, *([device] if device != "cpu" else [])])


RowKey = tuple[str, str, str, str, str, str]
"""``(section, subject, backend, dtype, mode, device)``: ``CertRow.key``."""


def row_key(row: Any) -> RowKey:
    """``CertRow.key`` of a row or of a serialised row; a row of a
    certificate that predates modes and devices ran in its framework's usual
    mode on the CPU."""
    def get(name: str) -> Any:
        return row.get(name) if isinstance(row, dict) else getattr(row, name, None)
    backend = str(get("backend"))
    return (str(get("section")), str(get("subject")), backend, str(get("dtype")),
            str(get("mode") or usual_mode(backend)), str(get("device") or "cpu"))
