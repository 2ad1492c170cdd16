"""Training progress: Lightning's rich bar on a terminal, one plain line per epoch elsewhere."""

from __future__ import annotations

import sys
import time

import lightning as L
from lightning.pytorch.callbacks import Callback

SHOWN = ("train/loss", "train/acc", "val/loss", "val/acc", "val/gt_known_loc", "val/max_box_acc_v2")


class EpochLines(Callback):
    """Prints `<stage>: epoch e/E  train/loss ...  (s)` after each epoch: no control characters,
    so logs of batch jobs and CI stay readable."""

    def __init__(self, stage: str, stream=None):
        self.stage = stage
        self.stream = stream if stream is not None else sys.stderr
        self._start = time.perf_counter()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self._line(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.val_dataloaders or trainer.limit_val_batches == 0:
            self._line(trainer)  # no validation this run: report after training

    def _line(self, trainer: L.Trainer) -> None:
        if not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics
        parts = [f"{k} {float(metrics[k]):.4g}" for k in SHOWN if k in metrics]
        total = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else "?"
        self.stream.write(f"{self.stage}: epoch {trainer.current_epoch + 1}/{total}  " + "  ".join(parts)
                          + f"  ({time.perf_counter() - self._start:.1f} s)\n")
        self.stream.flush()


def progress_callbacks(stage: str, show: bool, stream=None) -> tuple[list[Callback], bool]:
    """(callbacks, enable_progress_bar) for a stage: a bar on a terminal, lines otherwise."""
    if not show:
        return [], False
    stream = stream if stream is not None else sys.stderr
    if getattr(stream, "isatty", lambda: False)():
        try:
            from lightning.pytorch.callbacks import RichProgressBar

            return [RichProgressBar(leave=True)], True
        except (ImportError, ModuleNotFoundError):  # rich missing: Lightning's default bar
            return [], True
    return [EpochLines(stage, stream)], False
