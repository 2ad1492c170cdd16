"""Save the map of a few fixed images after every stage-2 epoch (the evolution figure).

`MapSnapshots` is a Lightning callback. At the start of training it writes
``OUT/snapshots/images.npz`` (the images, for display) and ``epoch_000.npz`` (the map before
refinement, i.e. stage 1's); after every ``every_n_epochs``-th training epoch it writes
``epoch_NNN.npz`` (NNN = epochs done, 1-based). Each epoch file holds ``maps``: ``N x h x w``
uint8 (map value x 255, rounded) and ``epoch``: the number of epochs done. ``images.npz``
holds ``images``: ``N x H x W x 3`` uint8 RGB (de-normalised with the given mean / std) and,
when given, ``image_ids``.

The maps come from ``model.maps(images)`` (ORNet: stem + generator only, METHOD.md,
Inference) run in eval mode without gradients; every submodule's train/eval flag is put back
exactly as it was afterwards (stage 2 keeps its frozen parts in eval mode on purpose). Only the
global-zero process writes. Files are written atomically (temporary name, then rename).
`runs.snapshots.load_snapshots(dir)` reads them back for `figures.evolution_grid`; `snapshot_batch(datamodule,
count)` picks the fixed images (the first `count` of the val split, test transform).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch

from ...data.transforms import IMAGENET_MEAN, IMAGENET_STD
from ...runtime.atomic import atomic_path


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: numpy adds no ".npz"
        np.savez_compressed(f, **arrays)


def map_tensor(out) -> torch.Tensor:
    """The B x 1 x h x w map in whatever `maps()` returns: a tensor, or an object / dict with `p_a`."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, dict):
        for key in ("p_a", "maps"):
            if key in out:
                return out[key]
    for key in ("p_a", "maps"):
        value = getattr(out, key, None)
        if isinstance(value, torch.Tensor):
            return value
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise TypeError(f"maps() returned {type(out).__name__}; expected a tensor or an object with p_a")


def maps_module(pl_module: torch.nn.Module) -> torch.nn.Module:
    """The network whose `maps` method to call: the task's `model` when it has one, else the task."""
    inner = getattr(pl_module, "model", None)
    if isinstance(inner, torch.nn.Module) and callable(getattr(inner, "maps", None)):
        return inner
    if callable(getattr(pl_module, "maps", None)):
        return pl_module
    raise TypeError(f"{type(pl_module).__name__} has no maps() method (neither has its .model)")


def to_uint8_maps(maps: torch.Tensor) -> np.ndarray:
    """B x 1 x h x w (or B x h x w) float in [0, 1] -> B x h x w uint8 (value x 255, rounded)."""
    m = maps.detach().float()
    if m.ndim == 4:
        if m.shape[1] != 1:
            raise ValueError(f"expected maps B x 1 x h x w, got {tuple(m.shape)}")
        m = m[:, 0]
    if m.ndim != 3:
        raise ValueError(f"expected maps B x 1 x h x w, got {tuple(maps.shape)}")
    return (m.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def to_uint8_images(images: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> np.ndarray:
    """Normalised B x 3 x H x W -> B x H x W x 3 uint8 RGB."""
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    x = (images.detach().float().cpu() * s + m).clamp(0, 1)
    return (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


class MapSnapshots(L.Callback):
    """Callback: maps of fixed images after every `every_n_epochs` training epochs.

    images: B x 3 x H x W, normalised with `mean` / `std` (as the model sees them).
    out_dir: the snapshots folder (``OUT/snapshots``).
    image_ids: optional names of the images (saved in images.npz, shown by the figure).
    """

    def __init__(self, images: torch.Tensor, out_dir: str | os.PathLike, every_n_epochs: int = 1,
                 mean=IMAGENET_MEAN, std=IMAGENET_STD, image_ids: Sequence[str] | None = None):
        super().__init__()
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"images must be a B x 3 x H x W tensor, got {shape}")
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs}")
        self.images = images.detach().cpu()
        self.out_dir = Path(out_dir)
        self.every_n_epochs = int(every_n_epochs)
        self.mean, self.std = tuple(mean), tuple(std)
        if image_ids is not None and len(image_ids) != len(images):
            raise ValueError(f"{len(image_ids)} image_ids for {len(images)} images")
        self.image_ids = None if image_ids is None else [str(i) for i in image_ids]

    def snapshot(self, pl_module: torch.nn.Module) -> np.ndarray:
        """Run maps() on the fixed images in eval mode, no grad; restore every module's mode."""
        model = maps_module(pl_module)
        modes = [(m, m.training) for m in pl_module.modules()]
        device = next((p.device for p in pl_module.parameters()), torch.device("cpu"))
        try:
            pl_module.eval()
            with torch.no_grad():
                maps = map_tensor(model.maps(self.images.to(device)))
        finally:
            for m, mode in modes:
                m.training = mode
        return to_uint8_maps(maps)

    def _write(self, trainer: L.Trainer, pl_module: L.LightningModule, epochs_done: int) -> None:
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        maps = self.snapshot(pl_module)
        _save_npz(self.out_dir / f"epoch_{epochs_done:03d}.npz", maps=maps, epoch=np.int64(epochs_done))

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        extra = {} if self.image_ids is None else {"image_ids": np.array(self.image_ids, dtype=str)}
        _save_npz(self.out_dir / "images.npz", images=to_uint8_images(self.images, self.mean, self.std), **extra)
        if trainer.current_epoch == 0:  # not when resuming: epoch 0 is the map before refinement
            self._write(trainer, pl_module, 0)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        done = trainer.current_epoch + 1
        if done % self.every_n_epochs == 0 or done == trainer.max_epochs:
            self._write(trainer, pl_module, done)


def snapshot_batch(datamodule, count: int, split: str = "val") -> tuple[torch.Tensor, list[str]]:
    """The first `count` images of `split` (test transform; train when `split` is missing or
    empty) as a normalised batch and their ids: the fixed images to hand to `MapSnapshots`."""
    from ...data.sample import collate

    splits = datamodule.index.splits
    name = split if splits.get(split) else "train"
    ds = datamodule.dataset(name, train_transform=False)
    batch = collate([ds[i] for i in range(min(int(count), len(ds)))])
    return batch.images, list(batch.image_ids)
