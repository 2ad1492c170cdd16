"""SIGTERM = pre-emption: save the stage's state, say how to resume, exit with code 143.

Batch schedulers (SLURM, Kubernetes, spot instances) send SIGTERM some seconds before they
kill a job. `handling()` installs a handler for the stages of `ornet train`:

- during `trainer.fit` the handler only records the request (`Preemption` replaces
  Lightning's own handler, which would stop in the middle of a validation pass); the
  `Preemption` callback acts at the next safe point:
  * after a training batch: it writes `<stage>-last.ckpt` (atomically, with the callback
    states that let `--resume` skip exactly the batches already trained) and stops;
  * at the start of an epoch (the signal came during validation): the end-of-epoch
    `<stage>-last.ckpt` just written is the state; it stops without writing;
  * if the stage's last epoch ended meanwhile, the stage completes and the run stops before
    the next one.
- outside `fit` (reading data, between stages) it stops at once: every file is written
  atomically, so nothing is left half-written.

Either way `errors.Preempted` propagates; the CLI prints its one line and returns 143.
Under DDP the request is combined across ranks after every batch, so all ranks stop at the
same batch.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from ..errors import Preempted
from .guards import check_parameters, where


class _State:
    active = False  # handling() is installed
    requested = False  # SIGTERM received
    in_fit = False  # inside trainer.fit: defer to the Preemption callback


STATE = _State()


def _handler(signum: int, frame: Any) -> None:
    STATE.requested = True
    if not STATE.in_fit:
        raise Preempted("SIGTERM outside training (completed stages are kept)")


@contextmanager
def handling() -> Iterator[None]:
    """Install the SIGTERM handler for the block (main thread only; a no-op elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _handler)
    STATE.active, STATE.requested, STATE.in_fit = True, False, False
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        STATE.active, STATE.requested, STATE.in_fit = False, False, False


def requested() -> bool:
    return STATE.requested


class Preemption(Callback):
    """Acts on a recorded SIGTERM at the next safe point of a stage (module docstring)."""

    def __init__(self, stage: str, last_checkpoint: Path):
        self.stage = stage
        self.last_checkpoint = Path(last_checkpoint)

    def _stop_requested(self, trainer: L.Trainer) -> bool:
        if trainer.world_size > 1:
            return bool(trainer.strategy.reduce_boolean_decision(STATE.requested, all=False))
        return STATE.requested

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        STATE.in_fit = STATE.active

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning registered its handler after on_fit_start; ours replaces it for the fit (Lightning
        # restores the handler it found, ours, when the fit ends).
        if STATE.active and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _handler)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if not self._stop_requested(trainer):
            return
        at = where(self.stage, trainer.current_epoch, trainer.max_epochs, trainer.global_step - 1)
        agree = getattr(pl_module, "_agree", lambda: None)()
        check_parameters(pl_module, at, agree=agree)  # never save a diverged state
        trainer.save_checkpoint(str(self.last_checkpoint))
        raise Preempted(f"SIGTERM during {at} (batch {batch_idx + 1} of the epoch): saved {self.last_checkpoint}")

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._stop_requested(trainer) and trainer.current_epoch > 0:
            raise Preempted(f"SIGTERM during stage {self.stage}, after epoch {trainer.current_epoch}: "
                            f"its state is in {self.last_checkpoint}")

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        STATE.in_fit = False

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        STATE.in_fit = False
