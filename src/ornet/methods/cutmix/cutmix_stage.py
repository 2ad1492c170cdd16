"""CutMix's one stage: the CAM stage on mixed training batches (wsolevaluation ``main.py``
``_wsol_training``: when ``cutmix_prob > U[0, 1)`` and ``cutmix_beta > 0``, the batch is mixed
and the loss is ``CE(logits, y) * lam + CE(logits, y[perm]) * (1 - lam)``; otherwise plain cross
entropy). Accuracy is logged against the unmixed labels, as there. Validation is not mixed."""

from __future__ import annotations

import torch

from ..cam.cam_stage import CamTask
from .box_mixing import cutmix_batch, draw_cutmix, mixed_cross_entropy


class CutMixTask(CamTask):
    stage = "cutmix"

    def logits_and_loss(self, images: torch.Tensor, labels: torch.Tensor, train: bool):
        s = self.stage_cfg
        draw = draw_cutmix(images.shape, s.beta, s.prob) if train else None  # global generator, reseeded per batch
        if draw is None:
            return super().logits_and_loss(images, labels, train)
        mixed, labels_b, lam = cutmix_batch(images, labels, draw)
        logits = self.model(mixed)
        return logits, mixed_cross_entropy(logits, labels, labels_b, lam)
