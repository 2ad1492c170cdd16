"""A torch Dataset over `Record`s: load, transform jointly, return a `Sample`."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from .cache import ImageCache
from .io import load_image, load_mask
from .records import Record
from .sample import Sample


class WSOLDataset(Dataset):
    """Images of one split. Boxes become `BoundingBoxes` (XYXY, original pixels) before the transform."""

    def __init__(self, records: Sequence[Record], transform: Callable | None = None, with_masks: bool = True,
                 fixed: Callable | None = None, cache: ImageCache | None = None, cache_key: str = ""):
        """`fixed`: the first steps of the transform (those that draw nothing); `transform` then does
        the rest. With a `cache`, `fixed`'s output is kept under `(cache_key, image_id)` and later reads
        start from it (`ornet.data.cache`)."""
        self.records = list(records)
        self.transform = transform
        self.with_masks = with_masks
        self.fixed, self.cache, self.cache_key = fixed, cache, cache_key

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Sample:
        r = self.records[index]
        key = (self.cache_key, r.image_id)
        entry = self.cache.get(key) if self.cache is not None else None
        if entry is None:
            inputs, size = self._read(r)
            if self.fixed is not None:
                inputs = self.fixed(inputs)
                if self.cache is not None:
                    self.cache.put(key, (inputs, size))
        else:
            inputs, size = entry
            inputs = dict(inputs)  # the steps below make new tensors; the kept ones are never written
        out = self.transform(inputs) if self.transform is not None else inputs
        out_boxes = out["boxes"]
        keep = (out_boxes[:, 2] > out_boxes[:, 0]) & (out_boxes[:, 3] > out_boxes[:, 1])
        if keep.any() and not keep.all():  # a crop removed some objects entirely: drop those
            out_boxes = tv_tensors.wrap(out_boxes[keep], like=out_boxes)
        elif out_boxes is inputs["boxes"]:
            out_boxes = out_boxes.clone()  # not the cache's own tensor
        return Sample(image=out["image"], label=r.label, boxes=out_boxes, image_id=r.image_id,
                      orig_size=size, mask=_to_unit(out.get("mask")), ignore=_to_unit(out.get("ignore")))

    def _read(self, r: Record) -> tuple[dict, tuple[int, int]]:
        """The decoded image with its boxes and masks, and its size (height, width)."""
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
        return inputs, (h, w)


def _as_mask(pil) -> tv_tensors.Mask:
    return tv_tensors.Mask(F.pil_to_tensor(pil))  # 1 x H x W uint8; resized with nearest neighbour


def _to_unit(mask):
    if mask is None:
        return None
    return tv_tensors.wrap(mask.to(torch.float32) / 255.0, like=mask)
