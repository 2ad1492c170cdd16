"""The CAM baseline's one stage: a GAP-FC classifier trained with cross entropy (Zhou et al., CVPR 2016).

Evaluation uses the CAM of the ground-truth class, min-max normalised per image
(wsolevaluation's protocol); `CAMModel.predict` does both.
"""

from __future__ import annotations

import torch

from ...data.sample import Batch
from ...errors import OrnetError
from ..base import MapValidation, StageTask, cross_entropy, head_split
from . import NO_EVALUATOR_WEIGHTS


class CamTask(MapValidation, StageTask):
    stage = "cam"

    def __init__(self, cfg: dict, num_classes: int, classes: list[str] | None = None):
        super().__init__(cfg, num_classes, classes)
        from ...models.weights_spec import weights_spec

        if weights_spec(self.model_cfg, "backbone").from_evaluator:
            raise OrnetError(NO_EVALUATOR_WEIGHTS)
        self.model = self.build_model()
        self._init_map_metrics()

    def build_model(self):
        """The network, with `model.backbone_weights` (ADL: with its layers)."""
        from ...models.cam_network import CAMModel

        m = self.model_cfg
        return CAMModel(m.backbone, self.num_classes, m.backbone_weights)

    def localize(self, images: torch.Tensor, labels: torch.Tensor | None = None):
        return self.model.predict(images, labels)

    def param_groups(self):
        return head_split(self.model.net, self.stage_cfg.head_lr_mult)

    def stem(self):
        return self.model.net.stem

    def logits_and_loss(self, images: torch.Tensor, labels: torch.Tensor, train: bool):
        """The batch's logits and loss (a method that changes the training input, HaS or CutMix,
        overrides it; accuracy is logged against `labels` either way)."""
        logits = self.model(images)
        return logits, cross_entropy(logits, labels)

    def _step(self, batch: Batch, split: str) -> torch.Tensor:
        logits, loss = self.logits_and_loss(batch.images, batch.labels, split == "train")
        self.log_common(split, loss, logits, batch.labels)
        if split == "val":
            self.update_map_metrics(batch)
        return loss
