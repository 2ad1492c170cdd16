"""Decoded and resized images kept in memory for the rest of a run (`data.cache_mb`).

A training run reads every image once per epoch and per stage, and each read decodes the file and
resizes it before the random crop and flip. That first part is the same every time, so
`WSOLDataset` can keep its output: the image (uint8) with its boxes and masks after the
transform's fixed steps (`transforms.fixed_steps`), and apply only the remaining steps (random crop
and flip, or nothing, then the float conversion and normalisation) on each read. The operations and
their inputs are the same as without the cache, so are the samples, bit for bit
(tests/test_image_cache.py).

The cache lives in the process that reads the images. `WSOLDataModule` uses it only when the
loader runs in the main process (`data.num_workers: 0`, the CPU presets): worker processes would
each fill a copy of their own. Entries are added until `data.cache_mb` is reached, then the rest is
read from disk as before (no eviction: in a random order every entry is as likely to be read next).
"""

from __future__ import annotations

from collections.abc import Hashable

import torch


def _nbytes(value) -> int:
    if isinstance(value, torch.Tensor):
        return value.untyped_storage().nbytes()
    if isinstance(value, dict):
        return sum(_nbytes(v) for v in value.values())
    if isinstance(value, (tuple, list)):
        return sum(_nbytes(v) for v in value)
    return 0


class ImageCache:
    """A dict of entries bounded by the bytes of the tensors in them (`limit_mb` MiB)."""

    def __init__(self, limit_mb: float):
        if limit_mb < 0:
            raise ValueError(f"cache limit must be >= 0 MiB, got {limit_mb}")
        self.limit = int(limit_mb * 2**20)
        self.bytes = 0
        self.hits = self.misses = 0
        self._entries: dict[Hashable, object] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable):
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
        else:
            self.hits += 1
        return entry

    def put(self, key: Hashable, entry) -> bool:
        """Keep `entry` if it fits in what is left; returns whether it was kept."""
        if key in self._entries:
            return True
        size = _nbytes(entry)
        if self.bytes + size > self.limit:
            return False
        self._entries[key] = entry
        self.bytes += size
        return True
