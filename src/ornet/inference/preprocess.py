"""Inference preprocessing: the WHOLE image resized to crop x crop.

A decision (docs/figures.md): for your own images the whole image is resized to crop x crop
(model.json ``preprocessing.crop``), with no centre crop, so that objects near the border are
seen; boxes found on that input are scaled back to the original width and height
(`localization.boxes.scale_boxes`, rule ``cover``). Evaluation
instead resizes to resize x resize and centre-crops (the benchmark protocol, `data.transforms`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch


class Preprocess:
    """Image -> 3 x crop x crop float tensor, normalised with the model's mean and std.

    Accepts a PIL image, a file path (decoded with EXIF rotation to RGB, `data.io.load_image`)
    or a 3 x H x W uint8 tensor (RGB). Resizing is bilinear with antialiasing, on uint8 values,
    before scaling to [0, 1] (as torchvision's ``Resize`` then ``ToDtype(scale=True)``).
    """

    def __init__(self, crop: int, mean: Sequence[float], std: Sequence[float]):
        self.crop, self.mean, self.std = int(crop), [float(m) for m in mean], [float(s) for s in std]

    def __repr__(self) -> str:
        return (f"Preprocess(whole image resized to {self.crop}x{self.crop}, bilinear antialias; "
                f"normalize mean={self.mean}, std={self.std})")

    def __call__(self, image) -> torch.Tensor:
        return self.from_uint8(to_uint8(image))

    def from_uint8(self, pixels: torch.Tensor) -> torch.Tensor:
        """3 x H x W uint8 RGB -> 3 x crop x crop float32, normalised."""
        from torchvision.transforms.v2 import functional as F

        x = F.resize(pixels, [self.crop, self.crop], antialias=True).float().div_(255.0)
        return F.normalize(x, mean=self.mean, std=self.std)


def to_uint8(image) -> torch.Tensor:
    """A PIL image, a path or a 3 x H x W uint8 tensor -> 3 x H x W uint8 RGB tensor."""
    from torchvision.transforms.v2 import functional as F

    if isinstance(image, (str, os.PathLike)):
        from ..data.io import load_image

        image = load_image(image)
    if isinstance(image, torch.Tensor):
        if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"an image tensor must be 3 x H x W uint8 RGB, got {image.dtype} "
                             f"{tuple(image.shape)}")
        return image
    if not hasattr(image, "convert"):
        raise TypeError(f"expected a PIL image, a path or a uint8 tensor, got {type(image).__name__}")
    return F.pil_to_tensor(image.convert("RGB") if image.mode != "RGB" else image)


def image_size(image) -> tuple[int, int]:
    """(height, width) of a PIL image or a ... x H x W tensor."""
    if isinstance(image, torch.Tensor):
        return int(image.shape[-2]), int(image.shape[-1])
    return int(image.size[1]), int(image.size[0])

