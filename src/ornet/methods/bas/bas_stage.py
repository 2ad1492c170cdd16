"""BAS's one stage: one forward with the label, the three loss terms (`bas_losses`, CUB/train.py).
Validation scores the test-time map (`BasModel.predict`: the top-k classes' foreground maps), as
BAS_inference.py. BAS's optimiser: `wsoleval_stage.configure_optimizers` with its groups
(`BasModel.lr_groups`) and its step decay (`decay_factor`)."""

from __future__ import annotations

import torch

from ...data.sample import Batch
from ..base import MapValidation, StageTask
from ..wsoleval_stage import configure_optimizers, refuse_evaluator_weights
from .bas_losses import bas_losses


def decay_factor(epoch: int, every: int) -> float:
    """utils/lr.py ``poly_lr_scheduler``, called before each epoch (counted from 0): x0.1 when the
    epoch is a positive multiple of `every`, so the factor during `epoch` is 0.1 ** (epoch // every)."""
    return 0.1 ** (epoch // every)


class BasTask(MapValidation, StageTask):
    stage = "bas"

    def __init__(self, cfg: dict, num_classes: int, classes: list[str] | None = None):
        super().__init__(cfg, num_classes, classes)
        from ...models.bas_network import BasModel

        refuse_evaluator_weights(self.cfg, "BAS")
        s, m = self.stage_cfg, self.model_cfg
        self.model = BasModel(m.backbone, self.num_classes, m.backbone_weights, s.head_width, s.top_k)
        self._init_map_metrics()

    def localize(self, images: torch.Tensor, labels: torch.Tensor | None = None):
        return self.model.predict(images, labels)

    def param_groups(self):
        return self.model.lr_groups(self.stage_cfg.head_lr_mult, self.stage_cfg.bias_lr_mult)

    def configure_optimizers(self):
        return configure_optimizers(self, decay_factor)

    def _step(self, batch: Batch, split: str) -> torch.Tensor:
        s = self.stage_cfg
        out = self.model(batch.images, batch.labels)
        terms = bas_losses(out, batch.labels, s.area_weight, s.fg_weight)
        loss = terms.pop("loss")
        self.log_common(split, loss, out.logits, batch.labels, extra=terms)
        if split == "val":
            self.update_map_metrics(batch)
        return loss
