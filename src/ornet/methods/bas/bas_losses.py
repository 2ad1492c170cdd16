"""BAS's training loss (Wu et al., CVPR 2022; github.com/wpy1999/BAS ``CUB/train.py`` and
``CUB/Model/resnet.py`` ``bas_loss``), from one `BasOutputs`:

- ``loss_cls``: cross entropy of ``score_1`` (the classification);
- ``loss_fg``: cross entropy of ``score_2`` (the class maps weighted by the foreground map), times
  `fg_weight` (train.py: 0.5 for ResNet, Inception and MobileNet, 0 for VGG);
- ``loss_bas`` (the paper's background activation suppression and area constraint, Section 3):
  per image, the background ratio = the erased features' activation of the label over the
  unerased one (``x_erase_sum / (x_sum + 1e-8)``, ``x_sum`` detached; 0 where the background's is
  at least as large: ``res[x_res >= x_sum] = 0``) plus `area_weight` x the foreground map's mean
  (the area term), averaged over the batch.

``loss = loss_cls + fg_weight * loss_fg + loss_bas``. ``background`` and ``area`` are the two parts
of ``loss_bas`` (batch means), logged beside it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...models.bas_network import BasOutputs
from ..base import cross_entropy


def bas_losses(out: BasOutputs, labels: Tensor, area_weight: float, fg_weight: float) -> dict[str, Tensor]:
    rows = torch.arange(labels.shape[0], device=labels.device)
    activation = out.logits.detach()[rows, labels]  # x_sum
    background = out.logits_erased[rows, labels]  # x_erase_sum
    ratio = background / (activation + 1e-8)
    ratio = torch.where(background >= activation, torch.zeros_like(ratio), ratio)
    area = out.foreground.flatten(1).mean(dim=1)
    loss_bas = (ratio + area * area_weight).mean()
    loss_cls = cross_entropy(out.logits, labels)
    loss_fg = cross_entropy(out.logits_fg, labels)
    return {"loss": loss_cls + loss_fg * fg_weight + loss_bas, "loss_cls": loss_cls, "loss_fg": loss_fg,
            "loss_bas": loss_bas, "background": ratio.mean(), "area": area.mean()}
