"""`StageConfig`: the optimisation settings every training stage has (its own section of
`RunConfig`, named after the stage). In a module of its own so that the method settings of
`zoo_settings` can subclass it without importing `schema` (which imports them). Torch-free."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class StageConfig:
    """Optimisation settings of one training stage."""

    epochs: int = 1
    lr: float = 1e-3
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    scheduler: Literal["cosine", "cosine_step", "none"] = "cosine"
    """cosine: per epoch; cosine_step: per iteration (the release's stage 2); none: constant."""
    batch_size: int | None = None
    """Overrides data.batch_size for this stage."""
    head_lr_mult: float = 1.0
    """Learning-rate multiplier of newly initialised layers (classifier heads, generator); in stage 2
    (refine), of the generator's output conv and its BN (the map's calibration)."""
    frozen_stem: bool = False
    """Train with the classifier's stem (its layers up to stride 4, `SplitClassifier.stem`) kept as it
    starts: its ImageNet weights and batch-norm statistics, no gradient through it. Stages that train a
    classifier (evaluator, cam, has, cutmix); stage 1's stem: `model.freeze_features`. Much of a CPU
    training step is the stem's backward at full resolution (docs/training.md)."""
    keep: Literal["last", "best_val", "best_test"] = "last"
    """Which epoch's weights the stage hands on: the last; the best `val/acc` on the val split; or
    the best on the TEST split (the release's evaluator rule, best_epoch.pth: selection on test)."""
