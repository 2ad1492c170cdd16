"""HaS's one stage: the CAM stage with grid patches of each training image hidden (wsolevaluation
``main.py`` ``_wsol_training``: ``images = has(images, grid_size, drop_rate)``, then plain cross
entropy). Validation and evaluation see whole images."""

from __future__ import annotations

import torch

from ..cam.cam_stage import CamTask
from .hidden_patches import hide_patches


class HasTask(CamTask):
    stage = "has"

    def logits_and_loss(self, images: torch.Tensor, labels: torch.Tensor, train: bool):
        if train:  # the draws come from the global generator, reseeded before every training batch
            images = hide_patches(images, self.stage_cfg.grid_size, self.stage_cfg.drop_rate)
        return super().logits_and_loss(images, labels, train)
