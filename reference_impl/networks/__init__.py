"""The documents' networks: multilayer perceptrons composed from the
registry's ops (:mod:`.mlp`), the gradient-descent step on their
parameters (:mod:`.step`), and each document's network as a named preset
(:mod:`.presets`). NumPy only; imports the reference's ops and nothing
above them.
"""

from __future__ import annotations

from .mlp import (
    ACTIVATIONS,
    COSTS,
    MLP,
    LayerGradients,
    LayerRecord,
    NetworkGradients,
    Params,
    Tape,
)
from .presets import PRESETS, Preset, preset_000, preset_002, preset_003, preset_004, recursion_003
from .step import check_lr, step_pairs

__all__ = [
    "ACTIVATIONS", "COSTS", "MLP", "LayerRecord", "Tape", "LayerGradients", "NetworkGradients", "Params",
    "check_lr", "step_pairs",
    "Preset", "preset_000", "preset_002", "preset_003", "preset_004", "PRESETS", "recursion_003",
]
