"""The method's stage-2 pieces: weighted entropy and area losses, erasing strategies."""

from .erasing import (
    ERASERS,
    AttentiveEraser,
    EraseMasks,
    Eraser,
    NoEraser,
    RandomEraser,
    RectangleEraser,
    build_eraser,
)
from .losses import area_loss, background_loss, entropy_weight, weighted_entropy

__all__ = [
    "ERASERS",
    "AttentiveEraser",
    "EraseMasks",
    "Eraser",
    "NoEraser",
    "RandomEraser",
    "RectangleEraser",
    "area_loss",
    "background_loss",
    "build_eraser",
    "entropy_weight",
    "weighted_entropy",
]
