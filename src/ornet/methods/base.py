"""What every training stage shares: hyper-parameters, optimiser and scheduler, one `_step`.

A stage is a `StageTask` (a LightningModule) holding one network in `self.model`. Subclasses
implement `_step(batch, split) -> loss` (STYLE.md, habit 8) and `param_groups()`; stages that
produce maps also inherit `MapValidation`, which streams the shared localization metric over
the held-out `val` split and logs `val/gt_known_loc` and `val/max_box_acc_v2`.

Every training step's loss terms (the total and each `loss_*` passed to `log_common`) are
checked here, before the backward pass; a NaN or Inf stops the stage (`tasks/guards.py`).

Hyper-parameters are saved as plain types (the run config as a nested dict, class names as a
list of str) so that checkpoints load with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from ..config.schema import EvalConfig, MethodConfig, ModelConfig, RunConfig, StageConfig, from_dict
from ..data.sample import Batch
from ..errors import ConfigError, OrnetError
from ..runtime.guards import check_loss_terms, check_parameters, where


def run_config(cfg: dict | RunConfig) -> RunConfig:
    """A `RunConfig` from the plain dict stored in a checkpoint (or the config itself)."""
    return cfg if isinstance(cfg, RunConfig) else from_dict(RunConfig, cfg)


def build_optimizer(stage: StageConfig, groups: list[tuple[list[nn.Parameter], float]]) -> torch.optim.Optimizer:
    """Optimiser of a stage; each group is (parameters, lr multiplier). Frozen parameters are skipped."""
    param_groups = []
    for params, mult in groups:
        params = [p for p in params if p.requires_grad]
        if params:
            param_groups.append({"params": params, "lr": stage.lr * mult})
    if not param_groups:
        raise ConfigError("this stage has no trainable parameter")
    if stage.optimizer == "sgd":
        return torch.optim.SGD(param_groups, lr=stage.lr, momentum=stage.momentum, weight_decay=stage.weight_decay)
    if stage.optimizer == "adam":
        return torch.optim.Adam(param_groups, lr=stage.lr, weight_decay=stage.weight_decay)
    if stage.optimizer == "adamw":
        return torch.optim.AdamW(param_groups, lr=stage.lr, weight_decay=stage.weight_decay)
    raise ConfigError(f"unknown optimizer {stage.optimizer!r}; known: sgd, adam, adamw")


def build_scheduler(stage: StageConfig, optimizer: torch.optim.Optimizer, total_steps: int) -> dict | None:
    """cosine: annealed once per epoch over `epochs`; cosine_step: per iteration (the release's
    stage 2); none: constant learning rate."""
    if stage.scheduler == "none":
        return None
    if stage.scheduler == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(stage.epochs, 1))
        return {"scheduler": sched, "interval": "epoch"}
    if stage.scheduler == "cosine_step":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(int(total_steps), 1))
        return {"scheduler": sched, "interval": "step"}
    raise ConfigError(f"unknown scheduler {stage.scheduler!r}; known: cosine, cosine_step, none")


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Top-1 accuracy as a 0-dim tensor (no host sync)."""
    return (logits.argmax(dim=1) == labels).float().mean()


class StageTask(L.LightningModule):
    """Base of the stages. `stage` names the StageConfig section (evaluator, coarse, refine, cam)."""

    stage: str = ""

    def __init__(self, cfg: dict, num_classes: int, classes: list[str] | None = None):
        super().__init__()
        if not isinstance(cfg, dict):
            raise TypeError(f"cfg must be a plain dict (to_dict(RunConfig)), got {type(cfg).__name__}")
        classes = [str(c) for c in classes] if classes is not None else [str(i) for i in range(num_classes)]
        if len(classes) != num_classes:
            raise ValueError(f"{len(classes)} class names for {num_classes} classes")
        self.save_hyperparameters({"cfg": cfg, "num_classes": int(num_classes), "classes": classes, "stage": self.stage})
        self.cfg = run_config(cfg)
        self.num_classes = int(num_classes)
        self._loss_terms: dict[str, torch.Tensor] = {}  # this training step's loss_* terms (log_common)

    # --- configuration views ---------------------------------------------------------------
    @property
    def stage_cfg(self) -> StageConfig:
        return getattr(self.cfg, self.stage)

    @property
    def model_cfg(self) -> ModelConfig:
        return self.cfg.model

    @property
    def method_cfg(self) -> MethodConfig:
        return self.cfg.method

    @property
    def eval_cfg(self) -> EvalConfig:
        return self.cfg.eval

    # --- to implement -------------------------------------------------------------------------
    def param_groups(self) -> list[tuple[list[nn.Parameter], float]]:
        """(parameters, lr multiplier) pairs; new layers get `head_lr_mult`."""
        return [(list(self.parameters()), 1.0)]

    def _step(self, batch: Batch, split: str) -> torch.Tensor:
        raise NotImplementedError

    def stem(self) -> nn.Module | None:
        """The classifier's stem that `<stage>.frozen_stem` keeps fixed (stages whose registry entry
        has ``frozen_stem``); None: the stage has none."""
        return None

    def fixed_modules(self) -> list[nn.Module]:
        """Modules this stage keeps as they start: no gradient, out of the optimiser, batch norms in
        eval mode (their statistics kept). Here the stem when `<stage>.frozen_stem`; a stage adds its own."""
        if not getattr(self.stage_cfg, "frozen_stem", False):
            return []
        stem = self.stem()
        if stem is None:  # the config check refuses it first (methods._check_frozen_stem)
            raise OrnetError(f"{self.stage}.frozen_stem: stage {self.stage} has no classifier stem to keep fixed")
        return [stem]

    def _fix(self) -> list[nn.Module]:
        modules = self.fixed_modules()
        for module in modules:
            module.requires_grad_(False)
        return modules

    def train(self, mode: bool = True):
        super().train(mode)
        for module in self._fix():
            module.eval()
        return self

    # --- Lightning hooks ---------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        # Lightning does not call `train()` on the module at the start of an epoch (it restores
        # each submodule's own mode after validation); stages that keep frozen parts in eval
        # mode override `train()`, so apply it here.
        self.train(True)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        self._loss_terms = {}
        loss = self._step(batch, "train")
        check_loss_terms({"loss": loss, **self._loss_terms}, self.position(), agree=self._agree())
        return loss

    def on_train_epoch_end(self) -> None:
        # Runs before ModelCheckpoint rewrites <stage>-last.ckpt: a diverged state must not replace it.
        check_parameters(self, self.position(done=True), agree=self._agree())

    def _agree(self):
        """Under DDP: combine a verdict across processes (all must be fine); None otherwise."""
        t = self._trainer
        if t is None or t.world_size <= 1:
            return None
        return lambda ok: bool(t.strategy.reduce_boolean_decision(ok, all=True))

    def position(self, done: bool = False) -> str:
        """`stage refine, epoch 2/3, step 17`: the step under way (or the last one, `done`)."""
        t = self._trainer
        if t is None:
            return f"stage {self.stage}"
        return where(self.stage, t.current_epoch, t.max_epochs, t.global_step - 1 if done else t.global_step)

    def validation_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "test")

    def configure_optimizers(self) -> Any:
        self._fix()  # fixed modules leave the optimiser (build_optimizer skips frozen parameters)
        optimizer = build_optimizer(self.stage_cfg, self.param_groups())
        total = self.trainer.estimated_stepping_batches if self._trainer is not None else self.stage_cfg.epochs
        scheduler = build_scheduler(self.stage_cfg, optimizer, total)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": scheduler}

    def log_common(self, split: str, loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor,
                   extra: dict[str, torch.Tensor] | None = None) -> None:
        """Log `<split>/loss`, `<split>/acc` and any extra terms (per step in training, per epoch otherwise)."""
        train = split == "train"
        values = {f"{split}/loss": loss.detach(), f"{split}/acc": accuracy(logits.detach(), labels)}
        for k, v in (extra or {}).items():
            values[f"{split}/{k}"] = v.detach()
            if train and k.startswith("loss"):
                self._loss_terms[k] = v  # checked by training_step
        self.log_dict(values, on_step=train, on_epoch=not train, prog_bar=False, sync_dist=not train,
                      batch_size=labels.shape[0])
        self.log(f"{split}/loss_prog", loss.detach(), on_step=train, on_epoch=not train, prog_bar=True,
                 logger=False, sync_dist=not train, batch_size=labels.shape[0])


class MapValidation:
    """Mixin for stages with maps: localization accuracy on `val` through the shared metric.

    The host class must define `localize(images, labels) -> (maps, logits)`.
    """

    def _init_map_metrics(self) -> None:
        from ..localization.metrics import BoxAccuracySweep

        e = self.eval_cfg
        self.val_loc = BoxAccuracySweep(cam_curve_interval=e.cam_curve_interval, iou_thresholds=list(e.iou_thresholds),
                                        box_mode=e.box_mode, iou_strict=e.iou_strict, normalize=e.normalize)

    def update_map_metrics(self, batch: Batch) -> None:
        has_box = [len(b) > 0 for b in batch.boxes]
        if not any(has_box):  # a dataset without boxes (re-id): no localization accuracy to log
            return
        with torch.no_grad():
            maps, logits = self.localize(batch.images, batch.labels)
        keep = torch.tensor(has_box, device=maps.device)
        self.val_loc.update(maps[keep].float(), [b for b, k in zip(batch.boxes, has_box) if k],
                            labels=batch.labels[keep], logits=logits[keep].float(),
                            image_size=tuple(batch.images.shape[-2:]))

    def on_validation_epoch_end(self) -> None:
        from ..localization.sweep import summarize

        if not self.val_loc.update_called:  # limit_val_batches=0 or no val split
            return
        summary = summarize(self.val_loc.compute())
        self.val_loc.reset()
        for key in ("gt_known_loc", "max_box_acc_v2", "top1_loc"):
            if key in summary:
                self.log(f"val/{key}", float(summary[key]), prog_bar=key == "gt_known_loc")


def wide(t: torch.Tensor) -> torch.Tensor:
    """`t` in float32 at least: half precision (autocast) widened, float64 kept (the zoo's parity
    tests run both sides in float64, benchmarks/zoo_oracle_acol_spg.py)."""
    return t if t.dtype == torch.float64 else t.float()


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(wide(logits), labels)


def trainable(params: Iterable[nn.Parameter]) -> list[nn.Parameter]:
    return [p for p in params if p.requires_grad]


def head_split(model: nn.Module, mult: float) -> list[tuple[list[nn.Parameter], float]]:
    """Pretrained body at lr, the classifier head (`model.head`, if any) at lr * mult."""
    head = getattr(model, "head", None)
    if head is None or mult == 1.0:
        return [(list(model.parameters()), 1.0)]
    head_ids = {id(p) for p in head.parameters()}
    body = [p for p in model.parameters() if id(p) not in head_ids]
    return [(body, 1.0), (list(head.parameters()), mult)]
