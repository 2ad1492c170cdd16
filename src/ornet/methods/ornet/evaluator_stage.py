"""Stage 0: fine-tune the evaluator F_e with cross entropy (METHOD.md, Stage 0)."""

from __future__ import annotations

import torch

from ...data.sample import Batch
from ..base import StageTask, cross_entropy, head_split


class EvaluatorTask(StageTask):
    """An ordinary image classifier; its weights become ORNet's frozen evaluator in stage 2."""

    stage = "evaluator"

    def __init__(self, cfg: dict, num_classes: int, classes: list[str] | None = None):
        super().__init__(cfg, num_classes, classes)
        from ...models.evaluator import build_evaluator
        from ...models.renormalize import Renormalize
        from ...models.weights_spec import model_normalizations

        m = self.model_cfg
        self.model = build_evaluator(m.evaluator, self.num_classes, m.evaluator_weights)
        # Batches arrive in the run's input normalisation (the backbone's); the evaluator is
        # trained on its own, as it will see them in stage 2 (`ORNet.to_evaluator`).
        self.to_model = Renormalize(*model_normalizations(m))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(self.to_model(images))

    def param_groups(self):
        return head_split(self.model, self.stage_cfg.head_lr_mult)

    def stem(self):
        return self.model.stem

    def _step(self, batch: Batch, split: str) -> torch.Tensor:
        logits = self(batch.images)
        loss = cross_entropy(logits, batch.labels)
        self.log_common(split, loss, logits, batch.labels)
        return loss
