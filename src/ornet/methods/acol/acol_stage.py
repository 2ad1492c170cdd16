"""ACoL's one stage: both heads trained with cross entropy on the label, head B on the features
erased by head A's map of the label (wsolevaluation's ``acol.get_loss``: the sum of the two).
Validation scores the combined map (`AcolModel.predict`), as wsolevaluation's evaluator."""

from __future__ import annotations

import torch

from ...data.sample import Batch
from ..base import cross_entropy
from ..wsoleval_task import WsolevalTask


class AcolTask(WsolevalTask):
    stage = "acol"
    method_title = "ACoL"

    def build_model(self):
        from ...models.acol_network import AcolModel

        s, m = self.stage_cfg, self.model_cfg
        return AcolModel(m.backbone, self.num_classes, m.backbone_weights, s.erase_threshold, s.head_width)

    def _step(self, batch: Batch, split: str) -> torch.Tensor:
        out = self.model(batch.images, batch.labels)
        loss_a = cross_entropy(out.logits, batch.labels)
        loss_b = cross_entropy(out.logits_b, batch.labels)
        loss = loss_a + loss_b
        self.log_common(split, loss, out.logits, batch.labels, extra={"loss_a": loss_a, "loss_b": loss_b})
        if split == "val":
            self.update_map_metrics(batch)
        return loss
