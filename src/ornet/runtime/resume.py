"""What makes a resumed stage end exactly where the uninterrupted one would (CPU, same seed).

`ornet train --resume` continues a stage from `checkpoints/<stage>-last.ckpt` (rewritten at
the end of every epoch, and by SIGTERM mid-epoch). Lightning restores the weights, optimiser,
scheduler and loop counters; three more things are needed:

- **randomness that depends on position, not history** (`ReproducibleEpochs`): the data
  order and augmentation come from `data.sampling.EpochSampler` (seeded by seed, stage,
  epoch, sample), and the global generator (erasing, dropout) is reseeded before every
  training batch from (seed, stage, epoch, batch, rank). The callback's own state (epoch,
  batches done) travels in the checkpoint, so a stage stopped mid-epoch skips exactly the
  batches it had trained (single process; under DDP a mid-epoch resume restarts the epoch's
  order from its beginning).
- **checkpoints written atomically** (`AtomicCheckpointIO`): Lightning's own writer goes
  through a temporary file in the system temp folder and `shutil.move`, which copies - and
  so can truncate the destination - when that folder is on another file system; here the
  temporary file sits beside the checkpoint and is renamed (`ornet.runtime.atomic`).
- **a readable checkpoint** (`check_resume_checkpoint`): an unreadable `-last.ckpt` stops
  with a one-line error naming it instead of a traceback deep in Lightning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback

from ..errors import OrnetError
from .atomic import RecordingWriter, atomic_path
from .seeding import derive_seed


def tensor_bytes(obj: Any) -> int:
    """Bytes of the tensors in a (nested) checkpoint: what `torch.save` will write, less a few kB."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v) for v in obj)
    return 0


class AtomicCheckpointIO(TorchCheckpointIO):
    """`torch.save` into a temporary file beside the checkpoint, then `os.replace`.

    A full disk raises `DiskFull` naming the checkpoint, its size and the space free; the
    previous checkpoint stays (`fsutil.atomic_path`).
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        from .peers import writing

        with writing(), atomic_path(path, needed=tensor_bytes(checkpoint)) as tmp, open(tmp, "wb") as f:
            out = RecordingWriter(f)  # torch.save reports a failed write without its errno
            try:
                torch.save(checkpoint, out)
            except RuntimeError:
                out.raise_recorded()
                raise


class ReproducibleEpochs(Callback):
    """Positions the training sampler and reseeds the global generator (module docstring).

    State: `epoch` (the epoch under way or next) and `batches` (how many of its batches are
    trained). Callback hooks run before `ModelCheckpoint`'s, so a checkpoint written at the
    end of an epoch already says (next epoch, 0).
    """

    def __init__(self, seed: int, stage: str):
        self.seed = int(seed)
        self.stage = stage
        self.epoch = 0
        self.batches = 0

    @property
    def state_key(self) -> str:
        return f"ReproducibleEpochs[{self.stage}]"

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batches": self.batches}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.epoch, self.batches = int(state_dict["epoch"]), int(state_dict["batches"])

    def _sampler(self, trainer: L.Trainer):
        """The datamodule's `train_sampler` if it can be positioned (`data.sampling.EpochSampler`:
        a ``start(epoch, skip, seed=, stream=)`` method), else None."""
        sampler = getattr(trainer.datamodule, "train_sampler", None)
        return sampler if callable(getattr(sampler, "start", None)) else None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # After the checkpoint's callback states are loaded and before Lightning creates the first
        # iterator (which already fetches a batch): no epoch-start hook comes in between.
        sampler = self._sampler(trainer)
        if sampler is not None:
            batch_size = int(getattr(trainer.datamodule, "batch_size", 0) or 0)
            skip = self.batches * batch_size if trainer.world_size == 1 else 0
            sampler.start(self.epoch, skip, seed=self.seed, stream=self.stage)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epoch, self.batches = trainer.current_epoch, 0
        sampler = self._sampler(trainer)
        if sampler is not None:
            sampler.start(self.epoch, 0, seed=self.seed, stream=self.stage)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        torch.manual_seed(derive_seed(self.seed, self.stage, trainer.current_epoch, batch_idx, trainer.global_rank))

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self.batches = batch_idx + 1

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epoch, self.batches = trainer.current_epoch + 1, 0


def check_resume_checkpoint(path: Path, stage: str) -> None:
    """Raise a one-line OrnetError if `path` is not a readable training checkpoint of `stage`."""
    from .safe_load import safe_torch_load

    hint = f"delete it to restart stage {stage} from its beginning"
    try:
        ckpt = safe_torch_load(path)  # weights_only=True; truncated or pickled files are refused
    except OrnetError as e:
        raise OrnetError(f"cannot resume: {e}; {hint}") from None
    saved = ckpt.get("hyper_parameters", {}).get("stage") if isinstance(ckpt, dict) else None
    if saved != stage or "state_dict" not in ckpt or "optimizer_states" not in ckpt:
        raise OrnetError(f"cannot resume from {path}: not a stage-{stage} training checkpoint "
                         f"(stage {saved!r}); {hint}")
