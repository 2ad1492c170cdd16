"""The records that flow from readers to models: `Sample` (one image) and `Batch`."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision import tv_tensors


@dataclass
class Sample:
    """One transformed image with its annotations.

    boxes: XYXY float pixels of the *current* image (after transforms), N x 4 (N may be 0).
    mask / ignore: 1 x H x W float in [0, 1] (foreground where > 0.5), when the dataset has masks.
    orig_size: (height, width) of the image as read from disk.
    """

    image: torch.Tensor
    label: int
    boxes: tv_tensors.BoundingBoxes
    image_id: str
    orig_size: tuple[int, int]
    mask: tv_tensors.Mask | None = None
    ignore: tv_tensors.Mask | None = None


@dataclass
class Batch:
    """A collated list of samples; Lightning moves its tensors to the device."""

    images: torch.Tensor
    labels: torch.Tensor
    boxes: list[torch.Tensor]
    image_ids: list[str]
    orig_sizes: torch.Tensor
    masks: torch.Tensor | None = None
    ignores: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.image_ids)


def collate(samples: list[Sample]) -> Batch:
    masks = None
    if all(s.mask is not None for s in samples):
        masks = torch.stack([s.mask.as_subclass(torch.Tensor) for s in samples])
    ignores = None
    if masks is not None and any(s.ignore is not None for s in samples):
        ignores = torch.stack([
            s.ignore.as_subclass(torch.Tensor) if s.ignore is not None else torch.zeros_like(s.mask.as_subclass(torch.Tensor))
            for s in samples])
    return Batch(
        images=torch.stack([s.image.as_subclass(torch.Tensor) for s in samples]),
        labels=torch.tensor([s.label for s in samples], dtype=torch.long),
        boxes=[s.boxes.as_subclass(torch.Tensor).reshape(-1, 4).float() for s in samples],
        image_ids=[s.image_id for s in samples],
        orig_sizes=torch.tensor([s.orig_size for s in samples], dtype=torch.long),
        masks=masks,
        ignores=ignores,
    )
