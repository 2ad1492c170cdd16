"""CutMix's batch and loss (wsolevaluation ``wsol/method/cutmix.py``, from
github.com/clovaai/CutMix-PyTorch, and ``main.py`` ``_wsol_training``).

For a batch of B images of H x W pixels:
1. with probability `prob` (wsolevaluation: ``cutmix_prob > np.random.rand(1)``) and only when
   ``beta > 0``, the batch is mixed; else it trains as it is;
2. lambda ~ Beta(beta, beta); a permutation of the batch; a box centre (row ~ U{0..H-1}, then
   column ~ U{0..W-1});
3. the box: ``cut = sqrt(1 - lambda)``, its height ``int(H * cut)`` and width ``int(W * cut)``;
   rows ``clip(row - height // 2, 0, H)`` to ``clip(row + height // 2, 0, H)`` (end exclusive),
   columns likewise with the width (wsolevaluation names the row axis ``x``: ``size[2]``);
4. the box of every image is replaced by the same box of image ``perm[i]``;
5. lambda' = 1 - box area / (H * W), the share of the image kept; the loss is
   ``CE(logits, y) * lambda' + CE(logits, y[perm]) * (1 - lambda')`` (batch means).

The draws (wsolevaluation: NumPy's and torch's global generators) come here from torch's global
CPU generator, which `runtime.resume.ReproducibleEpochs` reseeds before every training batch, so
resuming gives the uninterrupted run's batches; in this order: U[0, 1) (step 1), lambda, the
permutation, the row, the column. `cut_box`, `cutmix_batch` and `mixed_cross_entropy` are the
deterministic parts, equal to wsolevaluation's for a given lambda, permutation and centre
(tests/test_zoo_parity.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class CutMixDraw:
    """The random part of one mixed batch."""

    lam: float
    """lambda ~ Beta(beta, beta): sets the box size."""
    perm: Tensor
    """B long (CPU): image i takes its box from image perm[i]."""
    box: tuple[int, int, int, int]
    """(row0, col0, row1, col1), ends exclusive (`cut_box`)."""


def cut_box(height: int, width: int, lam: float, row: int, col: int) -> tuple[int, int, int, int]:
    """The box of step 3 (module docstring) around (row, col): (row0, col0, row1, col1)."""
    cut = math.sqrt(1.0 - lam)
    half_h, half_w = int(height * cut) // 2, int(width * cut) // 2
    return (min(max(row - half_h, 0), height), min(max(col - half_w, 0), width),
            min(max(row + half_h, 0), height), min(max(col + half_w, 0), width))


def draw_cutmix(shape: tuple[int, ...], beta: float, prob: float) -> CutMixDraw | None:
    """Steps 1-3 from the global CPU generator; None when the batch is not mixed."""
    b, _, h, w = shape
    if not (prob > float(torch.rand(())) and beta > 0):
        return None
    concentration = torch.tensor(float(beta), dtype=torch.float64)
    lam = float(torch.distributions.Beta(concentration, concentration).sample())
    perm = torch.randperm(b)
    row, col = int(torch.randint(h, ())), int(torch.randint(w, ()))
    return CutMixDraw(lam, perm, cut_box(h, w, lam, row, col))


def cutmix_batch(images: Tensor, labels: Tensor, draw: CutMixDraw) -> tuple[Tensor, Tensor, float]:
    """Steps 4-5: (mixed images, the labels of the pasted boxes, lambda'). `images` is not changed."""
    h, w = images.shape[-2:]
    r0, c0, r1, c1 = draw.box
    perm = draw.perm.to(images.device)
    mixed = images.clone()
    mixed[:, :, r0:r1, c0:c1] = images[perm, :, r0:r1, c0:c1]
    kept = 1.0 - ((r1 - r0) * (c1 - c0) / (w * h))
    return mixed, labels[perm], kept


def mixed_cross_entropy(logits: Tensor, labels_a: Tensor, labels_b: Tensor, lam: float) -> Tensor:
    """CE(logits, a) * lam + CE(logits, b) * (1 - lam), each the batch mean (float32)."""
    logits = logits.float()
    return F.cross_entropy(logits, labels_a) * lam + F.cross_entropy(logits, labels_b) * (1.0 - lam)
