"""LightningDataModule over any reader: train / val (held out from train) / test."""

from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader

from ..config.schema import DataConfig
from ..models.normalization import IMAGENET, Normalization
from .cache import ImageCache
from .dataset import WSOLDataset
from .readers import read_index
from .records import DatasetIndex
from .sample import collate
from .sampling import EpochSampler, SeededSamples
from .transforms import fixed_steps, remaining_steps


def ignore_stop_signals(worker_id: int) -> None:
    """Loader processes ignore SIGTERM and SIGINT. Schedulers (SLURM) signal every process of a
    job, and Ctrl+C reaches every process of the terminal's foreground group: a worker that died
    of either would crash the main process, which instead saves the training state and stops
    (tasks/preemption.py); the workers then end with it."""
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class WSOLDataModule(L.LightningDataModule):
    """Reads the index once (raising the first problem found), then serves DataLoaders.

    Images are normalised with `normalization` (default ImageNet's): a run passes its input
    normalisation, the backbone's (`ornet.models.weights_spec.input_normalization`), evaluation the one
    model.json records. `batch_size` may be overridden per stage by the pipeline (StageConfig.batch_size). Training
    batches come from `train_sampler` (an `EpochSampler`: order and augmentation are functions
    of seed, stage and epoch, so a resumed stage draws what an uninterrupted one would).
    """

    def __init__(self, cfg: DataConfig, index: DatasetIndex | None = None,
                 normalization: Normalization | None = None):
        super().__init__()
        self.cfg = cfg
        self.index = index if index is not None else read_index(cfg)
        self.index.raise_problems()
        self.batch_size = cfg.batch_size
        self.normalization = normalization or IMAGENET
        mean, std = self.normalization.mean, self.normalization.std
        # each transform as its fixed steps (decode-time: to tensor, resize, the test's centre crop)
        # and the rest; `build_transform` is the two in a row
        self.steps = {train: (fixed_steps(train, cfg.resize, cfg.crop),
                              remaining_steps(train, cfg.crop, cfg.flip, mean, std)) for train in (True, False)}
        # `data.cache_mb`: the fixed steps' outputs kept for the run (ornet.data.cache), when the
        # loader runs in this process
        self.cache = ImageCache(cfg.cache_mb) if cfg.cache_mb > 0 and cfg.num_workers == 0 else None
        self.train_sampler = EpochSampler(len(self.index.split("train")))

    @property
    def num_classes(self) -> int:
        return self.index.num_classes

    @property
    def classes(self) -> list[str]:
        return self.index.classes

    def dataset(self, split: str, train_transform: bool | None = None) -> WSOLDataset:
        train_tf = split == "train" if train_transform is None else train_transform
        fixed, rest = self.steps[train_tf]
        return WSOLDataset(self.index.split(split), rest, with_masks=split != "train", fixed=fixed,
                           cache=self.cache, cache_key=f"{split}/{'train' if train_tf else 'test'}")

    def _loader(self, split: str, batch_size: int, drop_last: bool = False,
                sampler: EpochSampler | None = None) -> DataLoader:
        ds = self.dataset(split)
        if sampler is not None:
            ds = SeededSamples(ds)
        workers = self.cfg.num_workers
        return DataLoader(ds, batch_size=batch_size, sampler=sampler, num_workers=workers,
                          collate_fn=collate, drop_last=drop_last and len(ds) > batch_size,
                          persistent_workers=workers > 0, pin_memory=self._pin_memory(),
                          worker_init_fn=ignore_stop_signals if workers > 0 else None)

    def _pin_memory(self) -> bool:
        pin = self.cfg.pin_memory
        if pin is None:
            import torch

            return torch.cuda.is_available()
        return bool(pin)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, drop_last=True, sampler=self.train_sampler)

    val_split: str = "val"
    """The split of the validation loop (`StageConfig.keep: best_test` points it at test)."""

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_split, self.cfg.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.cfg.eval_batch_size)

    def loader(self, split: str) -> DataLoader:
        """An evaluation loader (test transform, no shuffle) for any split."""
        return self._loader(split, self.cfg.eval_batch_size)
