"""ORNet (ICCV 2021): its registry entry (`OrnetMethod`, torch-free), its three stages
(`evaluator_stage`, `coarse_stage`, `refine_stage`) and its stage-2 pieces: weighted entropy
and area losses, the constraints against texture noise (issue 30), erasing strategies
(imported on first use, so that reading the registry does not import torch).
"""

from __future__ import annotations

import importlib

from .ornet_method import OrnetMethod

_LAZY = {
    **{name: "erasing" for name in ("ERASERS", "AttentiveEraser", "EraseMasks", "Eraser", "NoEraser",
                                    "RandomEraser", "RectangleEraser", "build_eraser")},
    **{name: "losses" for name in ("area_loss", "background_loss", "entropy_weight", "flip_consistency",
                                   "gate_distill_target", "gate_distillation", "scale_consistency",
                                   "total_variation", "weighted_entropy")},
}

__all__ = ["OrnetMethod", *sorted(_LAZY)]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
