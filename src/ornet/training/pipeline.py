"""The stage runner: a method's stages (`cfg.stages`) in order under Lightning, each stage's
checkpoint handed explicitly to the next by the method (`ornet.methods`, `Method.initialise`).

`checkpoints/<stage>.ckpt` is written only when a stage has finished: it marks the stage
complete. `checkpoints/<stage>-last.ckpt` is rewritten after every epoch (with optimiser
state) so that `resume=True` continues an interrupted stage through Lightning's `ckpt_path`,
ending where an uninterrupted run would (`runtime/resume.py`). Every checkpoint is written
atomically (`resume.AtomicCheckpointIO`). Reading a checkpoint never unpickles objects
(`torch.load(weights_only=True)`). A NaN / Inf stops a stage without touching its last
checkpoint (`runtime/guards.py`); SIGTERM and Ctrl+C save it and stop with exit code 143 / 130
(`runtime/preemption.py`); a full disk stops the run with one line and leaves the last good
checkpoint (`runtime/diskspace.py`); a lost DDP process stops the others (`runtime/peers.py`). A
finished stage keeps `<stage>.ckpt` only (`runtime/disk_use.py`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch

from ..config.schema import RunConfig
from ..errors import DiskFull, PeerLost, Preempted
from ..methods import STAGES, load_state, method_of
from ..models.dilated_phases import use_dilated_phases
from ..models.memory_format import use_channels_last
from ..runtime.stage_checkpoints import checkpoint_path

log = logging.getLogger("ornet")

__all__ = ["STAGES", "StagePlan", "build_task", "build_trainer", "checkpoint_path", "final_model", "final_stage",
           "global_rank", "load_state", "plan", "quiet_lightning_warnings", "run_stage", "run_stages"]


def quiet_lightning_warnings() -> None:
    """Silence Lightning warnings that are expected in our runs (and say nothing to a user)."""
    import warnings

    for pattern in (r"Checkpoint directory .* exists and is not empty",  # rerun / resume into OUT
                    r"Experiment logs directory .* exists and is not empty",  # TensorBoard + CSV share it
                    r"Found \d+ module\(s\) in eval mode",  # frozen parts (stages 1-2) are in eval on purpose
                    r"The number of training batches .* is smaller than the logging interval",
                    r".*does not have many workers.*",
                    r".*isinstance\(treespec, LeafSpec\).*",
                    # a SIGTERM checkpoint: ReproducibleEpochs makes the loader resume mid-epoch exactly
                    r"You're resuming from a checkpoint that ended before the epoch ended"):
        warnings.filterwarnings("ignore", message=pattern)


def global_rank() -> int:
    """This process's rank (0 before a distributed launch and in single-process runs)."""
    from lightning.fabric.utilities.rank_zero import _get_rank

    return _get_rank() or 0


@dataclass
class StagePlan:
    stage: str
    skip: bool = False
    """The stage's final checkpoint exists and `resume` was asked: nothing to do."""
    ckpt_path: Path | None = None
    """Continue from this `<stage>-last.ckpt`."""


def plan(cfg: RunConfig, out: Path, resume: bool) -> list[StagePlan]:
    """What to do for each stage; the method checks that the checkpoints a stage depends on will exist."""
    plans = []
    for stage in cfg.stages:
        p = StagePlan(stage)
        if resume and checkpoint_path(out, stage).is_file():
            p.skip = True
        elif resume and checkpoint_path(out, stage, last=True).is_file():
            p.ckpt_path = checkpoint_path(out, stage, last=True)
        plans.append(p)
    method_of(cfg).check_run(cfg, out)
    return plans


def build_trainer(cfg: RunConfig, stage: str, out: Path, quiet: bool = False, callbacks: list | None = None,
                  epochs: int | None = None, logger: bool = True, validate: bool = True,
                  every_epoch: bool = False) -> L.Trainer:
    """A Trainer with cfg.trainer's settings; TensorBoard + CSV logs under OUT/logs/<stage>/.

    ``validate=False`` (no val split: ``data.val_per_class: 0``, or ``trainer.validate: never``) skips
    the validation loop; else it
    runs after the last epoch only (``trainer.validate: last_epoch``) or, with `every_epoch` or
    ``trainer.validate: every_epoch``, after every epoch."""
    t = cfg.trainer
    loggers = False
    if logger:
        from lightning.pytorch.loggers import TensorBoardLogger

        from ..runtime.logs import AtomicCSVLogger

        loggers = [AtomicCSVLogger(save_dir=str(Path(out) / "logs"), name=stage, version=""),
                   TensorBoardLogger(save_dir=str(Path(out) / "logs"), name=stage, version="", default_hp_metric=False)]
    from ..runtime.progress_bars import progress_callbacks
    from ..runtime.resume import AtomicCheckpointIO

    shown, bar = progress_callbacks(stage, t.progress and not quiet)
    from ..runtime.peers import strategy

    return L.Trainer(plugins=[AtomicCheckpointIO()],
        accelerator=t.accelerator, devices=t.devices, strategy=strategy(t.strategy), precision=t.precision,
        deterministic=t.deterministic, max_epochs=epochs, log_every_n_steps=t.log_every_n_steps,
        limit_train_batches=t.limit_train_batches, limit_val_batches=t.limit_val_batches if validate else 0,
        limit_test_batches=t.limit_test_batches, enable_progress_bar=bar,
        check_val_every_n_epoch=1 if every_epoch or t.validate == "every_epoch" or not epochs else epochs,
        enable_model_summary=not quiet, num_sanity_val_steps=0, logger=loggers,
        callbacks=[*(callbacks or []), *shown], default_root_dir=str(out), enable_checkpointing=bool(callbacks),
    )


def build_task(cfg: RunConfig, stage: str, num_classes: int, classes: list[str]):
    """The LightningModule of `stage` (of whichever method has it), from `model.*_weights` only."""
    return STAGES.get(stage).build_task(cfg, stage, num_classes, classes)


def run_stage(cfg: RunConfig, stage: str, datamodule, out: Path, ckpt_path: Path | None = None,
              quiet: bool = False) -> Path:
    """Train one stage; returns its final checkpoint `checkpoints/<stage>.ckpt`."""
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint

    from ..runtime.preemption import Preemption, requested
    from ..runtime.resume import ReproducibleEpochs, check_resume_checkpoint

    quiet_lightning_warnings()
    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    stage_cfg = getattr(cfg, stage)
    datamodule.batch_size = stage_cfg.batch_size or cfg.data.batch_size
    method = STAGES.get(stage)
    task = method.build_task(cfg, stage, datamodule.num_classes, datamodule.classes)
    if ckpt_path is None:
        method.initialise(task, cfg, stage, out)
    else:
        check_resume_checkpoint(ckpt_path, stage)
    use_channels_last(task, cfg.trainer.channels_last)
    use_dilated_phases(task, cfg.trainer.dilated_phases)
    ckpt_dir = Path(out) / "checkpoints"
    last_path = checkpoint_path(out, stage, last=True)
    last = ModelCheckpoint(dirpath=str(ckpt_dir), filename=f"{stage}-last", monitor=None, save_top_k=1,
                           every_n_epochs=1, save_on_train_epoch_end=True, enable_version_counter=False)
    # ReproducibleEpochs first: the other callbacks' checkpoints must see its state for this batch.
    callbacks = [ReproducibleEpochs(cfg.trainer.seed, stage), last, LearningRateMonitor(logging_interval="epoch"),
                 Preemption(stage, last_path)]
    callbacks += method.callbacks(cfg, stage, datamodule, out)  # e.g. ORNet's map snapshots
    keep = getattr(stage_cfg, "keep", "last")
    datamodule.val_split = "test" if keep == "best_test" else "val"
    best = None
    if keep != "last":  # the epoch with the best val/acc (on the split val_split names)
        best = ModelCheckpoint(dirpath=str(ckpt_dir), filename=f"{stage}-best", monitor="val/acc", mode="max",
                               save_top_k=1, save_weights_only=True, enable_version_counter=False)
        callbacks.insert(1, best)
    validate = bool(datamodule.index.splits.get(datamodule.val_split))
    validate = validate and (best is not None or cfg.trainer.validate != "never")
    trainer = build_trainer(cfg, stage, out, quiet, callbacks, epochs=stage_cfg.epochs, validate=validate,
                            every_epoch=best is not None)  # the best epoch is chosen among all
    try:
        trainer.fit(task, datamodule=datamodule, ckpt_path=str(ckpt_path) if ckpt_path else None,
                    weights_only=True)  # explicit: torch's default can be switched off by the environment
    except Exception as e:
        from ..runtime.stops import stage_stopped

        raise stage_stopped(e, stage, last_path, trainer.world_size) from None
    finally:
        datamodule.val_split = "val"
    chosen = best is not None and bool(best.best_model_path)
    if chosen:
        _keep_best(task, stage, keep, Path(best.best_model_path), best.best_model_score)
    final = checkpoint_path(out, stage)
    from ..runtime.stops import saving

    with saving(stage, last_path, trainer.world_size):  # weights + plain hyper-parameters, atomically
        trainer.save_checkpoint(str(final), weights_only=True)
    trainer.strategy.barrier("ornet.final_checkpoint")
    if global_rank() == 0:
        from ..runtime.disk_use import drop_last

        drop_last(out, stage, keep=cfg.trainer.keep_last_checkpoints)  # the stage is complete: not needed
        from .kept_epochs import record_kept

        # which split chose the kept epoch, for metrics.json's chosen_on_test (none: the last epoch)
        record_kept(out, stage, keep, ("test" if keep == "best_test" else "val") if chosen else None,
                    best.best_model_score if chosen else None)
    if requested():  # SIGTERM / Ctrl+C while the stage's last epoch ended: the stage is complete
        from ..runtime.preemption import STATE, error_for

        raise error_for(STATE.requested, f"{STATE.requested} during stage {stage}, which completed ({final})")
    return final


def _keep_best(task, stage: str, keep: str, path: Path, score) -> None:
    """Load the best epoch's weights into `task` before the stage's final checkpoint is written."""
    task.model.load_state_dict(load_state(path))
    split = "TEST split (the release's rule: selection on test)" if keep == "best_test" else "val split"
    log.warning("stage %s: keeps %s (val/acc %.4f on the %s), not the last epoch", stage, path.name,
                float(score) if score is not None else float("nan"), split)


def run_stages(cfg: RunConfig, datamodule, out: Path, resume: bool = False, quiet: bool = False) -> dict[str, float]:
    """All stages of `cfg.stages` (skipping completed ones when resuming); seconds per stage."""
    from ..runtime import peers, preemption
    from ..runtime.disk_use import tidy_and_check_space
    from ..runtime.logs import quiet_writer_threads

    seconds: dict[str, float] = {}
    plans = plan(cfg, out, resume)
    if global_rank() == 0:  # stray temporaries, -last files of complete stages; will the checkpoints fit?
        from .stage_sizes import expected_sizes

        tidy_and_check_space(cfg, out, plans, resume,
                             estimate=lambda stages: expected_sizes(cfg, stages, datamodule.num_classes))
    resume_hint = f"continue with: ornet train --out {out} --resume"
    peers.report_as("ornet train", resume_hint)
    with preemption.handling(), quiet_writer_threads():
        try:
            for p in plans:
                if p.skip:
                    log.info("stage %s: complete in %s, skipped", p.stage, checkpoint_path(out, p.stage))
                    continue
                start = time.perf_counter()
                run_stage(cfg, p.stage, datamodule, out, p.ckpt_path, quiet)
                seconds[p.stage] = round(time.perf_counter() - start, 2)
        except BaseException as e:
            peers.kill_children()  # rank 0 stops (its own line): its DDP children end now, saying nothing more
            if isinstance(e, Preempted):  # SIGTERM, Ctrl+C
                raise type(e)(f"{e}; {resume_hint}") from None
            if isinstance(e, DiskFull):
                raise DiskFull(f"{e}; free space, then {resume_hint}", e.path, e.needed, e.free) from None
            if isinstance(e, PeerLost):
                raise peers.with_hint(e, resume_hint) from None
            raise
    return seconds


def final_stage(stages: list[str], out: Path) -> str | None:
    """The finished map-producing stage whose model the run evaluates and exports (the method's choice)."""
    return STAGES.get(stages[0]).final_stage(stages, out) if stages else None


def final_model(cfg: RunConfig, stage: str, out: Path, num_classes: int) -> torch.nn.Module:
    """The localization model (predict(images, labels) -> maps, logits) of a finished run."""
    return method_of(cfg).final_model(cfg, stage, out, num_classes)
