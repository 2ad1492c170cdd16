"""`Renormalize`: convert a batch from one input normalisation to another (`models.normalization`).

x_own = (x * std_in + mean_in - mean_own) / std_own, per channel, i.e. x * scale + shift with
scale = std_in / std_own and shift = (mean_in - mean_own) / std_own. Used where a network whose
weights expect another normalisation than the run's input (the evaluator F_e beside a stem of
other weights) receives the batch: stage 0, stage 2 (before the map is applied: METHOD.md,
Stage 2, step 3 feeds F_e(convert(I) * upsample(p))) and the evaluator's class predictions.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .normalization import IMAGENET, Normalization


class Renormalize(nn.Module):
    """B x 3 x H x W normalised with `source` -> the same images normalised with `target`.

    The identity (no arithmetic) when both are equal. Its buffers are not saved in state dicts:
    the conversion is part of the architecture (model.json / config.yaml record both ends).
    """

    def __init__(self, source: Normalization | None = None, target: Normalization | None = None):
        super().__init__()
        self.source = source or IMAGENET
        self.target = target or IMAGENET
        self.identity = self.source == self.target
        src_m, src_s = torch.tensor(self.source.mean), torch.tensor(self.source.std)
        dst_m, dst_s = torch.tensor(self.target.mean), torch.tensor(self.target.std)
        self.register_buffer("scale", (src_s / dst_s).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", ((src_m - dst_m) / dst_s).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if self.identity:
            return x
        return x * self.scale.to(x.dtype) + self.shift.to(x.dtype)

    def extra_repr(self) -> str:
        return "identity" if self.identity else f"{self.source} -> {self.target}"
