"""ACoL's one stage: both heads trained with cross entropy on the label, head B on the features
erased by head A's map of the label (wsolevaluation's ``acol.get_loss``: the sum of the two).
Validation scores the combined map (`AcolModel.predict`), as wsolevaluation's evaluator."""

from __future__ import annotations

import torch

from ...data.sample import Batch
from ..base import MapValidation, StageTask, cross_entropy
from ..wsoleval_stage import configure_optimizers, refuse_evaluator_weights


class AcolTask(MapValidation, StageTask):
    stage = "acol"

    def __init__(self, cfg: dict, num_classes: int, classes: list[str] | None = None):
        super().__init__(cfg, num_classes, classes)
        from ...models.acol_network import AcolModel

        refuse_evaluator_weights(self.cfg, "ACoL")
        s, m = self.stage_cfg, self.model_cfg
        self.model = AcolModel(m.backbone, self.num_classes, m.backbone_weights, s.erase_threshold, s.head_width)
        self._init_map_metrics()

    def localize(self, images: torch.Tensor, labels: torch.Tensor | None = None):
        return self.model.predict(images, labels)

    def param_groups(self):
        return self.model.lr_groups(self.stage_cfg.head_lr_mult)

    def configure_optimizers(self):
        return configure_optimizers(self)

    def _step(self, batch: Batch, split: str) -> torch.Tensor:
        out = self.model(batch.images, batch.labels)
        loss_a = cross_entropy(out.logits, batch.labels)
        loss_b = cross_entropy(out.logits_b, batch.labels)
        loss = loss_a + loss_b
        self.log_common(split, loss, out.logits, batch.labels, extra={"loss_a": loss_a, "loss_b": loss_b})
        if split == "val":
            self.update_map_metrics(batch)
        return loss
