"""The LightningModule skeleton ACoL's and SPG's stages share: a network built by `build_model`
(after refusing ``backbone_weights: evaluator``), its own ``predict`` as the validated map, its
``lr_groups`` and wsolevaluation's optimiser and schedule (`wsoleval_stage.configure_optimizers`).
A subclass sets `stage` and `method_title` and implements `build_model` and `_step`."""

from __future__ import annotations

import torch

from .base import MapValidation, StageTask
from .wsoleval_stage import configure_optimizers, refuse_evaluator_weights


class WsolevalTask(MapValidation, StageTask):
    method_title: str = ""
    """The method's name in error messages (``ACoL``)."""

    def __init__(self, cfg: dict, num_classes: int, classes: list[str] | None = None):
        super().__init__(cfg, num_classes, classes)
        refuse_evaluator_weights(self.cfg, self.method_title)
        self.model = self.build_model()
        self._init_map_metrics()

    def build_model(self) -> torch.nn.Module:
        raise NotImplementedError

    def localize(self, images: torch.Tensor, labels: torch.Tensor | None = None):
        return self.model.predict(images, labels)

    def param_groups(self):
        return self.model.lr_groups(self.stage_cfg.head_lr_mult)

    def configure_optimizers(self):
        return configure_optimizers(self)
