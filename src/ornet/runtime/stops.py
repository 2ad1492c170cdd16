"""Why a stage stopped, in one line: what `trainer.fit` raised, told with the state that is kept.

`pipeline.run_stage` hands every exception of `trainer.fit` to `stage_stopped`, which returns
the error to raise: SIGTERM / Ctrl+C (`tasks/preemption.py`), a NaN (`tasks/guards.py`), a full
disk (`diskspace`), a lost DDP process (`tasks/peers.py`) each name the stage and the
checkpoint `--resume` will continue from; anything else is returned as it is (a bug: the CLI
prints its traceback).
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from ..errors import DiskFull, Interrupted, Preempted, TrainingDiverged
from .diskspace import disk_full_error, is_disk_full


def epoch_of(path: Path) -> str:
    """The 1-based epoch a `-last` checkpoint was written after ("?" if unreadable)."""
    try:
        return str(int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["epoch"]) + 1)
    except (OSError, RuntimeError, KeyError, TypeError, ValueError, pickle.UnpicklingError):
        return "?"  # only decorates the message; the checkpoint itself is left alone


def kept(stage: str, last_path: Path) -> str:
    """What a stopped stage leaves for `--resume`."""
    if last_path.is_file():
        return f"{last_path} (written at the end of epoch {epoch_of(last_path)}) is left as it was"
    return f"no checkpoint of stage {stage} was written"


def stage_stopped(e: Exception, stage: str, last_path: Path, world_size: int) -> Exception:
    """The error to raise for `e`, raised by `trainer.fit` of `stage` (module docstring)."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from . import peers

    if isinstance(e, SIGTERMException):  # Lightning's handler saw SIGTERM before ours took over (fit's first moments)
        return Preempted(f"SIGTERM during stage {stage}: its state is in {last_path}"
                         if last_path.is_file() else f"SIGTERM at the start of stage {stage}")
    if isinstance(e, Interrupted) and getattr(e, "abrupt", False):  # a second Ctrl+C
        return Interrupted(f"{e} during stage {stage}; {kept(stage, last_path)}")
    if isinstance(e, TrainingDiverged):
        return TrainingDiverged(f"{e}; training stopped, {kept(stage, last_path)}")
    if isinstance(e, DiskFull):
        return DiskFull(f"{e} during stage {stage}; {kept(stage, last_path)}", e.path, e.needed, e.free)
    if is_disk_full(e):  # a log file (TensorBoard's writer raises the OS error as it is)
        full = disk_full_error(None, e)
        return DiskFull(f"{full} during stage {stage}; {kept(stage, last_path)}", full.path, full.needed, full.free)
    if peers.is_peer_failure(e, world_size):
        return peers.lost(f"during stage {stage}; {kept(stage, last_path)}", e)
    return e


@contextmanager
def saving(stage: str, last_path: Path, world_size: int) -> Iterator[None]:
    """Around the write of a stage's final checkpoint: a full disk names the stage and what is kept."""
    try:
        yield
    except DiskFull as e:
        raise stage_stopped(e, stage, last_path, world_size) from None
