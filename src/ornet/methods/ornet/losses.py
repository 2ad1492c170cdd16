"""Stage-2 losses (METHOD.md, Stage 2, steps 4 and 5).

`weighted_entropy` and `area_loss` reduce to scalars; the stage-2 total is
``L = L_e + 0.02 * L_a + 1.5 * L_we`` (MethodConfig.area_weight / entropy_weight), with
L_e = CE(F_e(I * upsample(p_e)), y) computed by the task.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor


def entropy_weight(p: Tensor, mu: float = 0.5, sigma: float = 0.1, beta: float = 0.0) -> Tensor:
    """w(p) = exp(-(p - mu)^2 / (2 sigma^2)) + beta (METHOD.md, Stage 2, step 4)."""
    return torch.exp(-((p - mu) ** 2) / (2 * sigma**2)) + beta


def weighted_entropy(p: Tensor, mu: float = 0.5, sigma: float = 0.1, beta: float = 0.0,
                     eps: float = 1e-6, detach_weight: bool = False) -> Tensor:
    """L_we = - mean over all elements of w(p) * [p log p + (1 - p) log(1 - p)].

    `p`: map in [0, 1] of any shape (B x 1 x h x w). `eps` guards the logs:
    log(p + eps), log(1 - p + eps). `beta` is added to the Gaussian weight, so beta > 0 adds
    plain entropy minimisation at every value (the release's ``_gaussian(p) + beta``).
    The weight is not detached by default, as in the release: its gradient
    -(p - mu) / sigma^2 * w * H(p) has the same sign as the entropy's around mu = 0.5, so
    both push p away from 0.5. ``detach_weight=True`` treats w as a constant.
    """
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    weight = entropy_weight(p, mu, sigma, beta)
    if detach_weight:
        weight = weight.detach()
    plogp = p * torch.log(p + eps) + (1 - p) * torch.log(1 - p + eps)
    return -(weight * plogp).mean()


def area_loss(p_a: Tensor, f_a: Tensor, eval_probs: Tensor, topk: int = 25, skip: int = 3,
              form: Literal["bounded", "faithful"] = "bounded") -> Tensor:
    """L_a = mean(p_a) + sum over classes ranked skip+1 .. topk of mean(f_a[k]).

    Shapes: `p_a` B x 1 x h x w, `f_a` B x K x h x w, `eval_probs` B x K (the evaluator's
    softmax; any monotone score works, only the per-sample ranking is used, without
    gradient). Ranks count from 1 per sample; topk is min(topk, K); when skip >= that there
    is no second term. Means run over batch and pixels, i.e. each selected channel adds
    sum(f_a[b, k_b]) / (B h w), as in the release.

    form ``"faithful"`` uses f_a as it is (the release: f_a is a LeakyReLU output, so this
    term is unbounded below and can be driven to -inf); ``"bounded"`` uses relu(f_a)
    (>= 0, minimised by silencing those channels).
    """
    if form not in ("bounded", "faithful"):
        raise ValueError(f"area loss form must be 'bounded' or 'faithful', got {form!r}")
    if f_a.dim() != 4 or eval_probs.shape != f_a.shape[:2] or p_a.shape[0] != f_a.shape[0]:
        raise ValueError(f"area_loss shapes do not agree: p_a {tuple(p_a.shape)}, "
                         f"f_a {tuple(f_a.shape)}, eval_probs {tuple(eval_probs.shape)}")
    loss = p_a.mean()
    b, k, h, w = f_a.shape
    kk = min(topk, k)
    if skip >= kk:
        return loss
    ranked = eval_probs.detach().topk(kk, dim=1).indices[:, skip:]  # B x (kk - skip)
    chosen = torch.gather(f_a, 1, ranked[:, :, None, None].expand(-1, -1, h, w))
    if form == "bounded":
        chosen = F.relu(chosen)
    if chosen.dtype in (torch.float16, torch.bfloat16):  # under autocast: summed in float32
        chosen = chosen.float()
    return loss + chosen.sum() / (b * h * w)


def background_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean over the batch of softmax(logits)[label]: the evaluator's confidence in the true class
    on the image with the map's complement kept (I * (1 - p_a)). Not in the paper: it charges a
    map that leaves class evidence outside it (an incomplete map), which lets the area loss press
    the background out without shrinking the map to the most discriminative part. In [0, 1]."""
    if logits.dim() != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(f"background_loss shapes do not agree: logits {tuple(logits.shape)}, "
                         f"labels {tuple(labels.shape)}")
    return logits.float().softmax(dim=1).gather(1, labels[:, None].long()).mean()
