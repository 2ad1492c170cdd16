"""`MethodConfig`: ORNet's stage-2 losses, erasing and the constraints against texture noise (the
``method`` section of `RunConfig`), with the down-scale helper those constraints use. In a module
of its own to keep `schema` short; `schema` re-exports all three. Torch-free."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class MethodConfig:
    """Stage-2 losses and erasing (METHOD.md, Stage 2)."""

    erasing: str = "attentive"
    """attentive (AE), random (RE), rectangle (ER) or none."""
    erase_p: float = 0.5
    """Probability that a sample is erased."""
    f_max: float = 0.5
    """Upper bound of f ~ U(0, f_max) that sets the region threshold."""
    min_half: int = 4
    """Smallest half size of the erasing rectangle (map pixels)."""
    eval_weight: float = 1.0
    area_weight: float = 0.02
    entropy_weight: float = 1.5
    mu: float = 0.5
    sigma: float = 0.1
    beta: float = 0.0
    entropy_eps: float = 1e-6
    """eps in log(p + eps) of the weighted entropy (the release: float32's eps, 1.1920928955078125e-07)."""
    area_topk: int = 25
    area_skip: int = 3
    area_form: Literal["faithful", "bounded"] = "bounded"
    """faithful: mean(f_a[k]) as in the release (unbounded below); bounded: mean(relu(f_a[k]))."""
    frozen_mode: Literal["eval", "train"] = "eval"
    """Stage 2's frozen parts: eval (fixed BN statistics, no dropout) or train (the release's
    model.train(): frozen BNs normalise with batch statistics and update them, VGG dropout is on)."""
    mask_upsample: Literal["bilinear", "nearest"] = "bilinear"
    """How the stage-2 map is upsampled to the image before the evaluator (the release: nearest)."""
    background_weight: float = 0.0
    """Not in the paper: weight of stage 2's background loss, the evaluator's probability of the
    true class on I * (1 - p_a) (method/losses.py, background_loss; 0: the paper's stage 2)."""
    refine_scope: Literal["release", "decoder", "generator"] = "release"
    """What stage 2 trains: release (the last two up blocks, output conv and BN), decoder (every
    up block too) or generator (the encoder too; never the stem, F_c2 or the evaluator)."""
    gate_distill_weight: float = 0.0
    """Not in the paper (issue 30; docs/method.md, "Constraints against texture noise"): weight of the
    class gate distilled into stage 2, the binary cross-entropy between p_a and a target T made of the
    frozen evaluator's CAM of the true label on the clean image (method/losses.py, gate_distillation).
    Costs one evaluator forward without gradient per batch. 0: off."""
    gate_distill_alpha: float = 0.5
    """Exponent of the CAM in the product target T = minmax(p_a) * minmax(CAM_y) ** alpha (>= 0; as
    eval.cam_gate's exponent); unused by gate_distill_form cam."""
    gate_distill_form: Literal["product", "cam"] = "product"
    """The distillation target: product (minmax(p_a) * minmax(CAM_y) ** alpha, the class gate's map)
    or cam (minmax(CAM_y) alone)."""
    objectness_weight: float = 1.0
    """Weight of the binary cross-entropy between the generator's objectness head (model.generator_objectness
    > 0) and the evaluator's min-max CAM of the label, on the head's grid (stage 2; one evaluator forward
    without gradient per batch). Unused without the head; with it, it must be > 0."""
    tv_weight: float = 0.0
    """Not in the paper (issue 30): weight of the total-variation prior on p_a, the mean absolute
    difference of horizontally plus that of vertically adjacent map pixels (losses.total_variation).
    No extra pass. 0: off."""
    flip_consistency_weight: float = 0.0
    """Not in the paper (issue 30): weight of the mean squared difference between p_a and the map of
    the horizontally flipped batch, flipped back (losses.flip_consistency; that map is a target, without
    gradient). Costs one stem + generator forward without gradient per batch. 0: off."""
    scale_consistency_weight: float = 0.0
    """Not in the paper (issue 30): weight of the mean squared difference between p_a and the map of
    the batch down-scaled by scale_consistency_factor, resized to p_a's grid (losses.scale_consistency;
    a target, without gradient). Costs one stem + generator forward on the smaller batch. 0: off."""
    scale_consistency_factor: float = 0.75
    """Side ratio of the down-scaled batch, in (0, 1); its side is rounded to a multiple of 4
    (`downscaled_side`) and must stay >= 32 px (the generator's smallest input: an 8 x 8 stem map)."""


def downscaled_side(side: int, factor: float) -> int:
    """The side of stage 2's down-scaled batch (`method.scale_consistency_factor`): side * factor
    rounded to a multiple of 4, so that its 1/4 map covers the image as exactly as p_a does."""
    return 4 * round(side * factor / 4)


MIN_SIDE = 32
"""The smallest image side the generator takes: its input, the stem's 1/4 map, must be >= 8 x 8."""
