"""SPG's one stage: the classification loss and the three guidance losses (`spg_losses`), all
from one forward pass with the label (wsolevaluation's ``spg.get_loss``). Validation scores the
class map of the label (`SpgModel.predict`), as wsolevaluation's evaluator."""

from __future__ import annotations

import torch

from ...data.sample import Batch
from ..base import MapValidation, StageTask
from ..wsoleval_stage import configure_optimizers, refuse_evaluator_weights
from .spg_losses import spg_losses


class SpgTask(MapValidation, StageTask):
    stage = "spg"

    def __init__(self, cfg: dict, num_classes: int, classes: list[str] | None = None):
        super().__init__(cfg, num_classes, classes)
        from ...models.spg_network import SpgModel

        refuse_evaluator_weights(self.cfg, "SPG")
        s, m = self.stage_cfg, self.model_cfg
        self.model = SpgModel(m.backbone, self.num_classes, m.backbone_weights, s.branch_width, s.c_width)
        self._init_map_metrics()

    def localize(self, images: torch.Tensor, labels: torch.Tensor | None = None):
        return self.model.predict(images, labels)

    def param_groups(self):
        return self.model.lr_groups(self.stage_cfg.head_lr_mult)

    def configure_optimizers(self):
        return configure_optimizers(self)

    def _step(self, batch: Batch, split: str) -> torch.Tensor:
        out = self.model(batch.images)
        terms = spg_losses(out, batch.labels, tuple(batch.images.shape[-2:]), self.stage_cfg.thresholds())
        loss = terms.pop("loss")
        self.log_common(split, loss, out.logits, batch.labels, extra=terms)
        if split == "val":
            self.update_map_metrics(batch)
        return loss
