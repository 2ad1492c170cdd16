"""Run `cfg.stages` in order, handing each stage's checkpoint explicitly to the next.

    evaluator (stage 0)  ->  checkpoints/evaluator.ckpt
    coarse    (stage 1)  ->  checkpoints/coarse.ckpt      (init: nothing / model.backbone_weights)
    refine    (stage 2)  ->  checkpoints/refine.ckpt      (init: ORNet from coarse.ckpt,
                                                            evaluator from evaluator.ckpt)
    cam       (baseline) ->  checkpoints/cam.ckpt

`checkpoints/<stage>.ckpt` is written only when a stage has finished: it marks the stage
complete. `checkpoints/<stage>-last.ckpt` is rewritten after every epoch (with optimiser
state) so that `resume=True` continues an interrupted stage through Lightning's `ckpt_path`,
ending where an uninterrupted run would (`tasks/resume.py`). Every checkpoint is written
atomically (`resume.AtomicCheckpointIO`). Reading a checkpoint never unpickles objects
(`torch.load(weights_only=True)`). A NaN / Inf stops a stage without touching its last
checkpoint (`tasks/guards.py`); SIGTERM and Ctrl+C save it and stop with exit code 143 / 130
(`tasks/preemption.py`); a full disk stops the run with one line and leaves the last good
checkpoint (`diskspace`); a lost DDP process stops the others (`tasks/peers.py`). A finished
stage keeps `<stage>.ckpt` only (`tasks/disk_use.py`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch

from ..config.schema import RunConfig, to_dict
from ..errors import DiskFull, OrnetError, PeerLost, Preempted
from ..models.names import canonical
from ..registry import Registry

log = logging.getLogger("ornet")

STAGES: Registry = Registry("stage")
"""stage name -> LightningModule class (imported lazily)."""


def _lazy(module: str, cls: str):
    def factory(*args, **kwargs):
        import importlib

        return getattr(importlib.import_module(f"ornet.methods.{module}"), cls)(*args, **kwargs)

    return factory


STAGES.register("evaluator")(_lazy("ornet.evaluator_stage", "EvaluatorTask"))
STAGES.register("coarse")(_lazy("ornet.coarse_stage", "CoarseTask"))
STAGES.register("refine")(_lazy("ornet.refine_stage", "RefineTask"))
STAGES.register("cam")(_lazy("cam", "CamTask"))

MAP_STAGES = ("refine", "coarse", "cam")
"""Stages whose model produces maps, in order of preference for the final evaluation."""
METHOD_OF_STAGE = {"refine": "ornet", "coarse": "ornet-coarse", "cam": "cam"}


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


def checkpoint_path(out: Path, stage: str, last: bool = False) -> Path:
    return Path(out) / "checkpoints" / (f"{stage}-last.ckpt" if last else f"{stage}.ckpt")


def load_state(path: Path, prefix: str = "model.") -> dict[str, torch.Tensor]:
    """The network's state dict from a stage checkpoint (keys under `prefix`, prefix removed)."""
    path = Path(path)
    if not path.is_file():
        raise OrnetError(f"checkpoint {path} does not exist")
    from ..models.weights import safe_torch_load

    ckpt = safe_torch_load(path)  # weights_only=True; a pickled object is refused, naming the file
    if not isinstance(ckpt, dict):
        raise OrnetError(f"checkpoint {path} is not a Lightning checkpoint (expected a dict)")
    state = ckpt["state_dict"] if "state_dict" in ckpt else ckpt
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


@dataclass
class StagePlan:
    stage: str
    skip: bool = False
    """The stage's final checkpoint exists and `resume` was asked: nothing to do."""
    ckpt_path: Path | None = None
    """Continue from this `<stage>-last.ckpt`."""


def plan(cfg: RunConfig, out: Path, resume: bool) -> list[StagePlan]:
    """What to do for each stage; checks that the checkpoints a stage depends on will exist."""
    plans = []
    for stage in cfg.stages:
        p = StagePlan(stage)
        if resume and checkpoint_path(out, stage).is_file():
            p.skip = True
        elif resume and checkpoint_path(out, stage, last=True).is_file():
            p.ckpt_path = checkpoint_path(out, stage, last=True)
        plans.append(p)
    if cfg.model.backbone_weights == "evaluator" and canonical(cfg.model.backbone) != canonical(cfg.model.evaluator):
        raise OrnetError(f"model.backbone_weights=evaluator needs model.evaluator == model.backbone "
                         f"({cfg.model.evaluator} != {cfg.model.backbone})")
    if ("coarse" in cfg.stages and cfg.model.backbone_weights == "evaluator"
            and "evaluator" not in cfg.stages[: cfg.stages.index("coarse")]
            and not checkpoint_path(out, "evaluator").is_file()):
        raise OrnetError(f"model.backbone_weights=evaluator needs the stage-0 checkpoint "
                         f"{checkpoint_path(out, 'evaluator')}: run the evaluator stage first")
    if "refine" in cfg.stages:
        done_before = cfg.stages[: cfg.stages.index("refine")]
        if "coarse" not in done_before and not checkpoint_path(out, "coarse").is_file():
            raise OrnetError(f"stage refine needs the stage-1 checkpoint {checkpoint_path(out, 'coarse')}: "
                             "run the coarse stage first (stages: [evaluator, coarse, refine])")
    return plans


def build_trainer(cfg: RunConfig, stage: str, out: Path, quiet: bool = False, callbacks: list | None = None,
                  epochs: int | None = None, logger: bool = True, validate: bool = True) -> L.Trainer:
    """A Trainer with cfg.trainer's settings; TensorBoard + CSV logs under OUT/logs/<stage>/.

    ``validate=False`` (no val split: ``data.val_per_class: 0``) skips the validation loop."""
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
        enable_model_summary=not quiet, num_sanity_val_steps=0, logger=loggers,
        callbacks=[*(callbacks or []), *shown], default_root_dir=str(out), enable_checkpointing=bool(callbacks),
    )


def build_task(cfg: RunConfig, stage: str, num_classes: int, classes: list[str]):
    return STAGES.get(stage)(to_dict(cfg), num_classes, classes)


def _initialise(task, cfg: RunConfig, stage: str, out: Path) -> None:
    """Hand earlier stages' weights to this stage (explicitly, never read inside a constructor)."""
    if stage == "coarse" and cfg.model.backbone_weights == "evaluator":
        task.init_backbone_from(load_state(checkpoint_path(out, "evaluator")))
        return
    if stage != "refine":
        return  # stage 0, stage 1 and CAM start from model.*_weights (loaded by the model builders)
    evaluator_ckpt = checkpoint_path(out, "evaluator")
    evaluator_state = load_state(evaluator_ckpt) if evaluator_ckpt.is_file() else None
    task.init_from(ornet_state=load_state(checkpoint_path(out, "coarse")), evaluator_state=evaluator_state)
    if evaluator_state is None:
        from ..models.weights import load_weights

        spec = cfg.model.evaluator_weights
        log.warning("no %s: the evaluator of stage 2 uses model.evaluator_weights=%s as it is",
                    evaluator_ckpt, spec)
        if spec != "none":
            load_weights(task.model.evaluator, spec, cfg.model.evaluator)


def run_stage(cfg: RunConfig, stage: str, datamodule, out: Path, ckpt_path: Path | None = None,
              quiet: bool = False) -> Path:
    """Train one stage; returns its final checkpoint `checkpoints/<stage>.ckpt`."""
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint

    from ..runtime.preemption import Preemption, requested
    from ..runtime.resume import ReproducibleEpochs
    from .resume_check import check_resume_checkpoint

    quiet_lightning_warnings()
    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    stage_cfg = getattr(cfg, stage)
    datamodule.batch_size = stage_cfg.batch_size or cfg.data.batch_size
    task = build_task(cfg, stage, datamodule.num_classes, datamodule.classes)
    if ckpt_path is None:
        _initialise(task, cfg, stage, out)
    else:
        check_resume_checkpoint(ckpt_path, stage)
    ckpt_dir = Path(out) / "checkpoints"
    last_path = checkpoint_path(out, stage, last=True)
    last = ModelCheckpoint(dirpath=str(ckpt_dir), filename=f"{stage}-last", monitor=None, save_top_k=1,
                           every_n_epochs=1, save_on_train_epoch_end=True, enable_version_counter=False)
    # ReproducibleEpochs first: the other callbacks' checkpoints must see its state for this batch.
    callbacks = [ReproducibleEpochs(cfg.trainer.seed, stage), last, LearningRateMonitor(logging_interval="epoch"),
                 Preemption(stage, last_path)]
    if stage == "refine" and cfg.trainer.snapshot_images > 0:  # the evolution figure's source
        from ..methods.ornet.map_snapshots import MapSnapshots, snapshot_batch

        images, ids = snapshot_batch(datamodule, cfg.trainer.snapshot_images)
        norm = datamodule.normalization  # the images' normalisation, undone for display
        callbacks.append(MapSnapshots(images, Path(out) / "snapshots", image_ids=ids,
                                      mean=norm.mean, std=norm.std))
    keep = getattr(stage_cfg, "keep", "last")
    datamodule.val_split = "test" if keep == "best_test" else "val"
    best = None
    if keep != "last":  # the epoch with the best val/acc (on the split val_split names)
        best = ModelCheckpoint(dirpath=str(ckpt_dir), filename=f"{stage}-best", monitor="val/acc", mode="max",
                               save_top_k=1, save_weights_only=True, enable_version_counter=False)
        callbacks.insert(1, best)
    trainer = build_trainer(cfg, stage, out, quiet, callbacks, epochs=stage_cfg.epochs,
                            validate=bool(datamodule.index.splits.get(datamodule.val_split)))
    try:
        trainer.fit(task, datamodule=datamodule, ckpt_path=str(ckpt_path) if ckpt_path else None,
                    weights_only=True)  # explicit: torch's default can be switched off by the environment
    except Exception as e:
        from ..runtime.stops import stage_stopped

        raise stage_stopped(e, stage, last_path, trainer.world_size) from None
    finally:
        datamodule.val_split = "val"
    if best is not None and best.best_model_path:
        _keep_best(task, stage, keep, Path(best.best_model_path), best.best_model_score)
    final = checkpoint_path(out, stage)
    from ..runtime.stops import saving

    with saving(stage, last_path, trainer.world_size):  # weights + plain hyper-parameters, atomically
        trainer.save_checkpoint(str(final), weights_only=True)
    trainer.strategy.barrier("ornet.final_checkpoint")
    if global_rank() == 0:
        from ..runtime.disk_use import drop_last

        drop_last(out, stage, keep=cfg.trainer.keep_last_checkpoints)  # the stage is complete: not needed
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
        tidy_and_check_space(cfg, out, plans, datamodule.num_classes, resume)
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
    """The map-producing stage whose model the run evaluates and exports (refine > coarse > cam)."""
    for stage in MAP_STAGES:
        if stage in stages and checkpoint_path(out, stage).is_file():
            return stage
    return None


def final_model(cfg: RunConfig, stage: str, out: Path, num_classes: int) -> torch.nn.Module:
    """The localization model (predict(images, labels) -> maps, logits) of a finished run."""
    from ..normalization import model_normalizations

    input_norm, evaluator_norm = model_normalizations(cfg.model)
    if stage == "cam":
        from ..models.cam_network import CAMModel

        model = CAMModel(cfg.model.backbone, num_classes, "none")
        model.load_state_dict(load_state(checkpoint_path(out, "cam")))
        return model.eval()
    from ..models.ornet_network import ORNet

    m = cfg.model
    model = ORNet(m.backbone, num_classes, evaluator=m.evaluator, generator_width=m.generator_width,
                  backbone_weights="none", evaluator_weights="none", input_norm=input_norm,
                  evaluator_norm=evaluator_norm, generator_encoder=m.generator_encoder)
    model.load_state_dict(load_state(checkpoint_path(out, stage)))
    if stage == "coarse" and checkpoint_path(out, "evaluator").is_file():
        model.evaluator.load_state_dict(load_state(checkpoint_path(out, "evaluator")))
    return model.eval()
