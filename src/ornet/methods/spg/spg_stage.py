"""SPG's one stage: the classification loss and the three guidance losses (`spg_losses`), all
from one forward pass with the label (wsolevaluation's ``spg.get_loss``). Validation scores the
class map of the label (`SpgModel.predict`), as wsolevaluation's evaluator."""

from __future__ import annotations

import torch

from ...data.sample import Batch
from ..wsoleval_task import WsolevalTask
from .spg_losses import spg_losses


class SpgTask(WsolevalTask):
    stage = "spg"
    method_title = "SPG"

    def build_model(self):
        from ...models.spg_network import SpgModel

        s, m = self.stage_cfg, self.model_cfg
        return SpgModel(m.backbone, self.num_classes, m.backbone_weights, s.branch_width, s.c_width)

    def _step(self, batch: Batch, split: str) -> torch.Tensor:
        out = self.model(batch.images)
        terms = spg_losses(out, batch.labels, tuple(batch.images.shape[-2:]), self.stage_cfg.thresholds())
        loss = terms.pop("loss")
        self.log_common(split, loss, out.logits, batch.labels, extra=terms)
        if split == "val":
            self.update_map_metrics(batch)
        return loss
