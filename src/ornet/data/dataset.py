"""A torch Dataset over `Record`s: load, transform jointly, return a `Sample`."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from .io import load_image, load_mask
from .records import Record
from .sample import Sample


class WSOLDataset(Dataset):
    """Images of one split. Boxes become `BoundingBoxes` (XYXY, original pixels) before the transform."""

    def __init__(self, records: Sequence[Record], transform: Callable | None = None, with_masks: bool = True):
        self.records = list(records)
        self.transform = transform
        self.with_masks = with_masks

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Sample:
        r = self.records[index]
        pil = load_image(r.path, r.crop_bottom)
        w, h = pil.size
        image = F.pil_to_tensor(pil)
        image = tv_tensors.Image(image)
        boxes = tv_tensors.BoundingBoxes(
            torch.tensor(r.boxes, dtype=torch.float32).reshape(-1, 4), format="XYXY", canvas_size=(h, w))
        mask = ignore = None
        if self.with_masks and r.mask_path is not None:
            mask = _as_mask(load_mask(r.mask_path, (w, h)))
            if r.ignore_path is not None:
                ignore = _as_mask(load_mask(r.ignore_path, (w, h)))
        inputs = {"image": image, "boxes": boxes}
        if mask is not None:
            inputs["mask"] = mask
        if ignore is not None:
            inputs["ignore"] = ignore
        out = self.transform(inputs) if self.transform is not None else inputs
        out_boxes = out["boxes"]
        keep = (out_boxes[:, 2] > out_boxes[:, 0]) & (out_boxes[:, 3] > out_boxes[:, 1])
        if keep.any() and not keep.all():  # a crop removed some objects entirely: drop those
            out_boxes = tv_tensors.wrap(out_boxes[keep], like=out_boxes)
        return Sample(image=out["image"], label=r.label, boxes=out_boxes, image_id=r.image_id,
                      orig_size=(h, w), mask=_to_unit(out.get("mask")), ignore=_to_unit(out.get("ignore")))


def _as_mask(pil) -> tv_tensors.Mask:
    return tv_tensors.Mask(F.pil_to_tensor(pil))  # 1 x H x W uint8; resized with nearest neighbour


def _to_unit(mask):
    if mask is None:
        return None
    return tv_tensors.wrap(mask.to(torch.float32) / 255.0, like=mask)
