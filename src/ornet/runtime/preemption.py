"""SIGTERM = pre-emption, Ctrl+C = interruption: save the stage's state, say how to resume, exit.

Batch schedulers (SLURM, Kubernetes, spot instances) send SIGTERM some seconds before they
kill a job; a user stops a run with Ctrl+C (SIGINT). `handling()` installs one handler for
both over the stages of `ornet train`, and puts back the handlers it found when it ends (the
library leaves the host process as it found it: a notebook's Ctrl+C works as before):

- during `trainer.fit` the handler only records the request (`Preemption` replaces
  Lightning's own SIGTERM handler, which would stop in the middle of a validation pass); the
  `Preemption` callback acts at the next safe point:
  * after a training batch: it writes `<stage>-last.ckpt` (atomically, with the callback
    states that let `--resume` skip exactly the batches already trained) and stops;
  * at the start of an epoch (the signal came during validation): the end-of-epoch
    `<stage>-last.ckpt` just written is the state; it stops without writing;
  * if the stage's last epoch ended meanwhile, the stage completes and the run stops before
    the next one.
- outside `fit` (reading data, between stages) it stops at once: every file is written
  atomically, so nothing is left half-written.
- a second Ctrl+C stops at once, wherever the run is (a checkpoint being written is left
  as it was before: `fsutil.atomic_path`).

`errors.Preempted` (SIGTERM, exit code 143) or `errors.Interrupted` (SIGINT, 130) propagates;
the CLI prints its one line. Lightning's own reaction to a KeyboardInterrupt (ignore SIGINT for
good, then `exit(1)`) is never reached. Under DDP the request is combined across ranks after
every batch, so all ranks stop at the same batch.
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

from ..errors import Interrupted, Preempted
from .guards import check_parameters, where


class _State:
    active = False  # handling() is installed
    requested: str | None = None  # "SIGTERM" or "SIGINT": the signal received
    in_fit = False  # inside trainer.fit: defer to the Preemption callback


STATE = _State()
SIGNALS = (signal.SIGTERM, signal.SIGINT)
NAMES = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "Ctrl+C"}


def error_for(name: str | None, message: str) -> Preempted:
    """`Interrupted` (exit 130) for Ctrl+C, `Preempted` (143) for SIGTERM."""
    return Interrupted(message) if name == "Ctrl+C" else Preempted(message)


def _handler(signum: int, frame: Any) -> None:
    name = NAMES.get(signum, "SIGTERM")
    if name == "Ctrl+C" and STATE.requested == "Ctrl+C":
        e = Interrupted("a second Ctrl+C: stopped at once")
        e.abrupt = True  # run_stage says which checkpoint is kept
        raise e
    STATE.requested = STATE.requested or name
    if not STATE.in_fit:
        raise error_for(name, f"{name} outside training (completed stages are kept)")


@contextmanager
def handling() -> Iterator[None]:
    """Install the SIGTERM / SIGINT handler for the block (main thread only; a no-op elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    for s in SIGNALS:
        signal.signal(s, _handler)
    STATE.active, STATE.requested, STATE.in_fit = True, None, False
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        STATE.active, STATE.requested, STATE.in_fit = False, None, False


def requested() -> bool:
    return STATE.requested is not None


class Preemption(Callback):
    """Acts on a recorded SIGTERM / Ctrl+C at the next safe point of a stage (module docstring)."""

    def __init__(self, stage: str, last_checkpoint: Path):
        self.stage = stage
        self.last_checkpoint = Path(last_checkpoint)

    def _stop_requested(self, trainer: L.Trainer) -> bool:
        if trainer.world_size > 1:
            return bool(trainer.strategy.reduce_boolean_decision(requested(), all=False))
        return requested()

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        STATE.in_fit = STATE.active

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning registered its SIGTERM handler after on_fit_start; ours replaces it for the fit
        # (Lightning restores the handler it found, ours, when the fit ends).
        if STATE.active and threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                signal.signal(s, _handler)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if not self._stop_requested(trainer):
            return
        at = where(self.stage, trainer.current_epoch, trainer.max_epochs, trainer.global_step - 1)
        agree = getattr(pl_module, "_agree", lambda: None)()
        check_parameters(pl_module, at, agree=agree)  # never save a diverged state
        trainer.save_checkpoint(str(self.last_checkpoint))
        name = STATE.requested or "SIGTERM"  # None: another DDP process received it
        raise error_for(name, f"{name} during {at} (batch {batch_idx + 1} of the epoch): saved {self.last_checkpoint}")

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._stop_requested(trainer) and trainer.current_epoch > 0:
            name = STATE.requested or "SIGTERM"
            raise error_for(name, f"{name} during stage {self.stage}, after epoch {trainer.current_epoch}: "
                                  f"its state is in {self.last_checkpoint}")

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        STATE.in_fit = False

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        STATE.in_fit = False
