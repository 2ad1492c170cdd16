"""Training order and augmentation as functions of (seed, stage, epoch, sample), not of history.

A run resumed from a checkpoint must draw exactly what the uninterrupted run drew. With
torch's `RandomSampler` and transforms drawing from the global generator, the draws depend on
everything the process did before (how many epochs it ran, when Lightning created the
iterator, worker processes kept alive between epochs). Here instead:

- `EpochSampler` yields the epoch's permutation from its own generator seeded with
  `derive_seed(seed, stream, epoch)` (`stream` is the stage's name), and can start part-way
  through it (`skip`), which is how a stage resumes in the middle of an epoch;
- each item it yields is `(index, sample_seed)`, and `SeededSamples` runs the dataset's
  `__getitem__` (the random crop and flip) under a CPU generator seeded with `sample_seed`,
  restoring the process's generator afterwards. Worker processes, persistent or not, and
  `num_workers` itself no longer change the augmentation.

`ornet.runtime.resume.ReproducibleEpochs` positions the sampler before each epoch.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Dataset, Sampler

from ..runtime.seeding import derive_seed

__all__ = ["EpochSampler", "SeededSamples", "derive_seed"]



class EpochSampler(Sampler):
    """Indices of a training epoch as `(index, sample_seed)` pairs (see the module docstring).

    `set_epoch` is Lightning's (DistributedSampler's) protocol; `start` also sets the stream
    and how many leading items to skip. The permutation is computed when iteration starts, so
    a change after that does not affect the epoch under way.
    """

    def __init__(self, size: int, shuffle: bool = True, seed: int = 0, stream: str = ""):
        self.size = int(size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.stream = stream
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int) -> None:
        if int(epoch) != self.epoch:
            self.epoch, self.skip = int(epoch), 0

    def start(self, epoch: int, skip: int = 0, seed: int | None = None, stream: str | None = None) -> None:
        self.epoch, self.skip = int(epoch), max(int(skip), 0)
        if seed is not None:
            self.seed = int(seed)
        if stream is not None:
            self.stream = stream

    def __len__(self) -> int:
        return self.size  # the full epoch: Lightning counts batches from it, skipped ones included

    def order(self, epoch: int | None = None) -> list[int]:
        """The epoch's permutation of 0..size-1 (identity without shuffling)."""
        epoch = self.epoch if epoch is None else epoch
        if not self.shuffle:
            return list(range(self.size))
        g = torch.Generator().manual_seed(derive_seed(self.seed, self.stream, epoch))
        return torch.randperm(self.size, generator=g).tolist()

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, skip = self.epoch, self.skip
        base = derive_seed(self.seed, self.stream, epoch, "sample")
        for index in self.order(epoch)[skip:]:
            yield index, derive_seed(base, index)


class SeededSamples(Dataset):
    """`dataset[index]` computed under a CPU generator seeded per sample (keys from `EpochSampler`).

    A plain int key is passed through unchanged (no reseeding).
    """

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        if not isinstance(key, tuple):
            return self.dataset[key]
        index, seed = key
        with torch.random.fork_rng(devices=[]):
            torch.random.default_generator.manual_seed(int(seed))
            return self.dataset[index]
