"""SPG's self-produced guidance and its losses, as wsolevaluation computes them
(``wsol/method/spg.py``: ``compute_attention``, ``get_mask``, ``get_loss``).

Every map is first resized (bilinear, ``align_corners=False``) to the image size: wsolevaluation
resizes to a fixed 224 x 224, the size of its crops, so at 224 px the two agree (the parity tests);
at other sizes ornet follows the image (STYLE.md: no size hard-coded). The masks:

- attention: the class map of the label, detached, min-max normalised per image;
- fused attention: (sigmoid(B1) + sigmoid(B2)) / 2, detached;
- a guidance mask from a map and (high, low): 1 where map > high (where fewer than 30 pixels are,
  map > 0.7 x its maximum instead), then 0 where map < low, else ignored (255).

Loss = CE(logits) + BCE(B2 | mask(attention, 1h, 1l)) + BCE(B1 | mask(sigmoid(B2), 2h, 2l))
+ BCE(C | mask(fused, 3h, 3l)), each BCE-with-logits the mean over the pixels the mask does not
ignore, over the whole batch. Departure: a mask that ignores every pixel of the batch gives a
BCE of 0 (wsolevaluation: the mean of nothing, NaN, which would stop the stage here).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ...models.cam_network import minmax_normalize
from ...models.spg_network import SpgOutputs
from ..base import wide

IGNORE = 255.0
"""A mask's value for pixels no loss reads (``get_mask``'s fill)."""
MIN_FOREGROUND = 30
"""``mask_fg``: with fewer foreground pixels than this, the threshold becomes 0.7 x the map's maximum."""
FALLBACK_RATIO = 0.7


def upsample(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """``nn.Upsample(size, mode='bilinear')``, in float32 at least (`wide`)."""
    return F.interpolate(wide(maps), size=size, mode="bilinear", align_corners=False)


def class_attention(class_maps: Tensor, labels: Tensor, size: tuple[int, int]) -> Tensor:
    """``get_attention(upsample(feat_map), labels)``: B x 1 x H x W in [0, 1], detached."""
    up = upsample(class_maps.detach(), size)
    return minmax_normalize(up[torch.arange(up.shape[0], device=up.device), labels].unsqueeze(1))


def fused_attention(logits_b1: Tensor, logits_b2: Tensor, size: tuple[int, int]) -> Tensor:
    """``_get_fused_attention``: (sigmoid(B1) + sigmoid(B2)) / 2 at the image size, detached."""
    return (torch.sigmoid(upsample(logits_b1.detach(), size)) + torch.sigmoid(upsample(logits_b2.detach(), size))) / 2


def guidance_mask(attention: Tensor, high: float, low: float) -> Tensor:
    """``get_mask`` (``mask_fg`` then ``mask_bg``), vectorised over the batch: B x 1 x H x W of 1
    (foreground), 0 (background) and `IGNORE`."""
    att = attention.detach()
    flat = att.flatten(1)
    count = (flat > high).sum(dim=1)
    fallback = flat.amax(dim=1) * FALLBACK_RATIO
    thr = torch.where(count < MIN_FOREGROUND, fallback, torch.full_like(fallback, high))
    mask = torch.full_like(att, IGNORE)
    mask = mask.masked_fill(att > thr.view(-1, *([1] * (att.dim() - 1))), 1.0)
    return mask.masked_fill(att < low, 0.0)


def masked_bce(logits: Tensor, mask: Tensor) -> Tensor:
    """``loss_attention``: BCE with logits over the pixels the mask does not ignore (their mean)."""
    keep = mask < IGNORE
    if not bool(keep.any()):
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logits[keep], mask[keep])


def spg_losses(out: SpgOutputs, labels: Tensor, size: tuple[int, int],
               thresholds: tuple[tuple[float, float], ...]) -> dict[str, Tensor]:
    """``get_loss``: {"loss": the sum, "loss_cls", "loss_b2", "loss_b1", "loss_c"} (module docstring)."""
    (h1, l1), (h2, l2), (h3, l3) = thresholds
    b1, b2, c = (upsample(t, size) for t in (out.logits_b1, out.logits_b2, out.logits_c))
    terms = {
        "loss_cls": F.cross_entropy(wide(out.logits), labels),
        "loss_b2": masked_bce(b2, guidance_mask(class_attention(out.class_maps, labels, size), h1, l1)),
        "loss_b1": masked_bce(b1, guidance_mask(torch.sigmoid(b2), h2, l2)),
        "loss_c": masked_bce(c, guidance_mask(fused_attention(out.logits_b1, out.logits_b2, size), h3, l3)),
    }
    return {"loss": sum(terms.values()), **terms}


def guidance(out: SpgOutputs, labels: Tensor, size: tuple[int, int],
             thresholds: tuple[tuple[float, float], ...]) -> dict[str, Tensor]:
    """The three masks and the two attentions of one pass (what the parity tests compare)."""
    (h1, l1), (h2, l2), (h3, l3) = thresholds
    att = class_attention(out.class_maps, labels, size)
    fused = fused_attention(out.logits_b1, out.logits_b2, size)
    b2i = torch.sigmoid(upsample(out.logits_b2.detach(), size))
    return {"attention": att, "fused_attention": fused, "mask_b2": guidance_mask(att, h1, l1),
            "mask_b1": guidance_mask(b2i, h2, l2), "mask_c": guidance_mask(fused, h3, l3)}
