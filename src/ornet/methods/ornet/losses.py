"""Stage-2 losses (METHOD.md, Stage 2, steps 4 and 5).

`weighted_entropy` and `area_loss` reduce to scalars; the stage-2 total is
``L = L_e + 0.02 * L_a + 1.5 * L_we`` (MethodConfig.area_weight / entropy_weight), with
L_e = CE(F_e(I * upsample(p_e)), y) computed by the task.

Not in the paper: `background_loss`, and the constraints against texture noise of issue 30
(docs/method.md, "Constraints against texture noise"): `gate_distillation`, `total_variation`,
`flip_consistency`, `scale_consistency`. Each is a scalar; their weights are `method.*` keys, 0 by
default (the paper's stage 2). They compute in float32 at least (half-precision maps under
autocast are widened).
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



# ---------------------------------------------------------------- constraints against texture noise (issue 30)
def gate_distill_target(p_a: Tensor, cam: Tensor, alpha: float = 0.5,
                        form: Literal["product", "cam"] = "product") -> Tensor:
    """T, the class gate's map (docs/method.md, "The class gate") as a target for p_a, without gradient:

        product: T = minmax(p_a) * minmax(cam) ** alpha
        cam:     T = minmax(cam)

    `p_a` B x 1 x h x w in [0, 1]; `cam` B x 1 x h x w, the evaluator's raw CAM of each image's label
    already on p_a's grid. minmax is per image ((x - min) / (max - min); a flat map -> 0, as
    `models.cam_network.minmax_normalize`). T is in [0, 1]; alpha = 0 gives minmax(p_a) (0 ** 0 = 1).
    """
    from ...models.cam_network import minmax_normalize

    if form not in ("product", "cam"):
        raise ValueError(f"gate distillation form must be 'product' or 'cam', got {form!r}")
    if cam.shape != p_a.shape:
        raise ValueError(f"gate_distill_target shapes do not agree: p_a {tuple(p_a.shape)}, cam {tuple(cam.shape)}")
    gate = minmax_normalize(_wide(cam.detach()))
    if form == "cam":
        return gate
    return minmax_normalize(_wide(p_a.detach())) * gate ** alpha


def gate_distillation(p_a: Tensor, target: Tensor, eps: float = 1e-6) -> Tensor:
    """L_gd = - mean over all elements of [T log(p_a + eps) + (1 - T) log(1 - p_a + eps)], T = `target`
    (`gate_distill_target`, detached here too): the binary cross-entropy of p_a against T.

    Cross-entropy, not squared error, because p_a is a sigmoid and the weighted entropy drives it to
    saturation: on the pre-sigmoid logit the cross-entropy's gradient is (p_a - T) / N, full size on
    a saturated pixel that fires on texture (p_a ~ 1, T ~ 0), where the squared error's,
    2 (p_a - T) p_a (1 - p_a) / N, vanishes. Its minimum over p_a is at p_a = T (the value there is
    mean H(T), not 0).
    """
    if target.shape != p_a.shape:
        raise ValueError(f"gate_distillation shapes do not agree: p_a {tuple(p_a.shape)}, target {tuple(target.shape)}")
    p, t = _wide(p_a), _wide(target.detach())
    return -(t * torch.log(p + eps) + (1 - t) * torch.log(1 - p + eps)).mean()


def total_variation(p: Tensor) -> Tensor:
    """L_tv = mean |p[..., i, j+1] - p[..., i, j]| + mean |p[..., i+1, j] - p[..., i, j]|.

    Anisotropic total variation of a B x 1 x h x w map: the mean absolute difference of horizontally
    adjacent pixels plus that of vertically adjacent ones, each mean over its own pairs (a direction
    without pairs, w = 1 or h = 1, adds 0). It charges the map's edges, i.e. its perimeter: speckle
    fired on texture (many small islands) costs far more than one blob of the same area.
    """
    if p.dim() != 4:
        raise ValueError(f"total_variation expects a B x 1 x h x w map, got {tuple(p.shape)}")
    p = _wide(p)
    loss = p.new_zeros(())
    if p.shape[-1] > 1:
        loss = loss + (p[..., :, 1:] - p[..., :, :-1]).abs().mean()
    if p.shape[-2] > 1:
        loss = loss + (p[..., 1:, :] - p[..., :-1, :]).abs().mean()
    return loss


def flip_consistency(p_a: Tensor, p_flipped: Tensor) -> Tensor:
    """L_flip = mean over all elements of (p_a - flip(p_flipped))^2.

    `p_flipped`: the map of the horizontally flipped batch (B x 1 x h x w); flip(.) mirrors it back
    (last dim), so a map that is equivariant under the flip scores 0. `p_flipped` is a target:
    detached, only p_a gets the gradient (docs/method.md: over flip-symmetric data the gradient of
    both branches is twice this one in expectation, at twice the cost).
    """
    if p_flipped.shape != p_a.shape:
        raise ValueError(f"flip_consistency shapes do not agree: p_a {tuple(p_a.shape)}, "
                         f"p_flipped {tuple(p_flipped.shape)}")
    return (_wide(p_a) - _wide(p_flipped.detach()).flip(-1)).pow(2).mean()


def scale_consistency(p_a: Tensor, p_small: Tensor) -> Tensor:
    """L_scale = mean over all elements of (p_a - up(p_small))^2.

    `p_small`: the map of the down-scaled batch (B x 1 x h' x w'); up(.) resizes it bilinearly
    (align_corners=False) to p_a's h x w. `p_small` is a target: detached, only p_a gets the gradient
    (the coarser view, which resolves less fine texture, teaches the map that is used).
    """
    if p_small.dim() != 4 or p_small.shape[:2] != p_a.shape[:2]:
        raise ValueError(f"scale_consistency shapes do not agree: p_a {tuple(p_a.shape)}, "
                         f"p_small {tuple(p_small.shape)}")
    up = F.interpolate(_wide(p_small.detach()), size=tuple(p_a.shape[-2:]), mode="bilinear", align_corners=False)
    return (_wide(p_a) - up).pow(2).mean()


def _wide(t: Tensor) -> Tensor:
    """float16 / bfloat16 (autocast) as float32; float32 and float64 as they are."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t
