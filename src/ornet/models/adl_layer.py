"""The Attention-based Dropout Layer (ADL; Choe and Shim, CVPR 2019) as wsolevaluation writes it
(``wsol/method/adl.py``, from github.com/junsukchoe/ADL).

On a feature map x (B x C x h x w), in training only:
- attention A = mean of x over channels (B x 1 x h x w);
- importance map = sigmoid(A);
- drop mask = 1 where A < gamma * max(A) (the maximum per image), else 0;
- one draw u ~ U[0, 1) per layer and forward (not per image): with b = floor(u + drop_rate)
  (1 with probability drop_rate), the output is x * ((1 - b) * importance + b * mask).
At evaluation the layer passes x through unchanged.

u is drawn as wsolevaluation draws it, ``torch.rand([])`` from the global CPU generator (reseeded
before every training batch by `runtime.resume.ReproducibleEpochs`), so for a given seed the
layers here and there take the same branch. Gradients flow through the importance map, as there.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def adl_attention(x: Tensor) -> Tensor:
    """B x C x h x w -> B x 1 x h x w: the mean over channels."""
    return x.mean(dim=1, keepdim=True)


def importance_map(attention: Tensor) -> Tensor:
    return torch.sigmoid(attention)


def drop_mask(attention: Tensor, drop_threshold: float) -> Tensor:
    """1.0 where the attention is below `drop_threshold` x its maximum over the image, else 0.0."""
    peak = attention.flatten(1).amax(dim=1).view(-1, 1, 1, 1)
    return (attention < peak * drop_threshold).to(attention.dtype)


def adl_forward(x: Tensor, u: Tensor, drop_rate: float, drop_threshold: float) -> Tensor:
    """The training output for the draw `u` (a 0-dim float32 tensor in [0, 1))."""
    attention = adl_attention(x)
    use_mask = (u + drop_rate).floor()  # float32 arithmetic, as ``torch.rand([]) + drop_rate`` there
    selected = (1.0 - use_mask) * importance_map(attention) + use_mask * drop_mask(attention, drop_threshold)
    return x.mul(selected)


class ADL(nn.Module):
    """The layer (module docstring); no parameters, no buffers: a network with ADL layers has the
    state dict of the same network without them."""

    def __init__(self, drop_rate: float = 0.75, drop_threshold: float = 0.9):
        super().__init__()
        if not 0.0 <= drop_rate <= 1.0:
            raise ValueError(f"ADL drop_rate must be in [0, 1], got {drop_rate}")
        if not 0.0 <= drop_threshold <= 1.0:
            raise ValueError(f"ADL drop_threshold must be in [0, 1], got {drop_threshold}")
        self.drop_rate = float(drop_rate)
        self.drop_threshold = float(drop_threshold)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return x
        return adl_forward(x, torch.rand((), dtype=torch.float32), self.drop_rate, self.drop_threshold)

    def extra_repr(self) -> str:
        return f"drop_rate={self.drop_rate}, drop_threshold={self.drop_threshold}"
