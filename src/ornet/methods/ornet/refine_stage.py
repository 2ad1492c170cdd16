"""Stage 2: online refinement of the map with the frozen evaluator (METHOD.md, Stage 2).

Only `generator.refine_parameters(method.refine_scope)` train (``release``, the default: the
last two up blocks, the output conv and its BN; ``decoder`` adds the first up block, ``generator``
the encoder too). Everything else - the stem F_c1, the rest of the generator, the attention head,
F_c2 and the evaluator F_e - is frozen *and kept in eval mode* during
training, so its batch-norm running statistics do not drift (`train()` is overridden: Lightning
calls it at the start of every training epoch). ``method.frozen_mode: train`` does what the
release does instead (``model.train()`` on everything: frozen BNs normalise with batch
statistics and update their running averages, the evaluator's dropout is active).
``method.mask_upsample`` picks how p_e reaches the image size (bilinear; the release: nearest).

Per batch (METHOD.md, Stage 2, steps 1-6):
    p_a = F_g(F_c1(I));  p_e = erase(p_a) (training only);
    L_e = CE(F_e(I_e * upsample(p_e)), y);  L_we = weighted entropy of p_a;
    L_a = mean(p_a) + sum of mean(f_a[k]) over the evaluator's ranks skip+1..topk;
    L = eval_weight * L_e + area_weight * L_a + entropy_weight * L_we
        (+ background_weight * L_bg, not in the paper: L_bg = the evaluator's softmax probability of
        the true class on I_e * upsample(1 - p_a), `method.losses.background_loss`).
I_e is the batch in the evaluator's own normalisation (`ORNet.to_evaluator`; the batch itself when
the stem and the evaluator share one), so the evaluator sees its normalised image times the map.

Not in the paper either, each off at weight 0 (issue 30; docs/method.md, "Constraints against
texture noise"): + gate_distill_weight * L_gd + tv_weight * L_tv + flip_consistency_weight * L_flip
+ scale_consistency_weight * L_scale, all on p_a before erasing (`_constraints`); with the learned
class gate (model.generator_objectness > 0; docs/method.md) p_a is the gated map, and
+ objectness_weight * BCE(sigmoid(o), minmax(CAM_y)) (on the logit o) trains its head on its own grid.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from ...config.schema import downscaled_side
from ...data.sample import Batch
from ..base import cross_entropy
from .coarse_stage import OrnetTask
from .losses import (
    area_loss,
    background_loss,
    flip_consistency,
    gate_distill_target,
    gate_distillation,
    scale_consistency,
    total_variation,
    weighted_entropy,
)


class RefineTask(OrnetTask):
    stage = "refine"

    def __init__(self, cfg: dict, num_classes: int, classes: list[str] | None = None):
        super().__init__(cfg, num_classes, classes)
        from .erasing import build_eraser

        m = self.method_cfg
        self.eraser = build_eraser(m.erasing, p=m.erase_p, f_max=m.f_max, min_half=m.min_half)
        self.freeze_for_stage()
        self.train(True)  # frozen parts in eval mode from the start
        from ...models.fold_bn import FoldedCache

        # `trainer.fold_frozen_bn`: F_e runs as a copy with its batch norms folded (frozen_mode
        # train: F_e's batch norms use batch statistics, so it runs as it is)
        self._evaluator = FoldedCache(self.model.evaluator, enabled=self.cfg.trainer.fold_frozen_bn)
        # the evaluator's GAP Linear for `method.gate_distill_weight` (a tuple: not registered as a
        # submodule of the task, so never in its state dict); refused here when there is none
        user = ("method.gate_distill_weight" if m.gate_distill_weight else
                "model.generator_objectness" if self.model.generator.obj_conv is not None else None)
        self._cam_fc = (self.model.cam_linear(user) if user else None,)
        self._objectness_on()

    def _objectness_on(self) -> None:
        """The learned class gate (model.generator_objectness > 0) is on from stage 2 on."""
        if self.model.generator.obj_conv is not None:
            self.model.generator.enable_objectness()

    def init_from(self, ornet_state: dict | None = None, evaluator_state: dict | None = None) -> None:
        super().init_from(ornet_state, evaluator_state)
        self._objectness_on()  # stage 1's weights carry it off

    def freeze_for_stage(self) -> None:
        """requires_grad only on the parameters METHOD.md trains in stage 2."""
        self.model.requires_grad_(False)
        self.model.generator.freeze_for_refine(self.method_cfg.refine_scope)

    def train(self, mode: bool = True):
        """Frozen parts stay in eval mode; only the refined modules (and the eraser) follow `mode`
        (``method.frozen_mode: train``: everything follows `mode`, as the release)."""
        if self.method_cfg.frozen_mode == "train":
            return super().train(mode)
        super().train(False)
        if mode:
            self.training = True
            for module in self.model.generator.refine_modules(self.method_cfg.refine_scope):
                module.train(True)
            self.eraser.train(True)
        return self

    def param_groups(self):
        """The refined up blocks at lr; the output conv and its BN (the map's calibration: out_bn's
        bias and weight set how much of a batch is on, since BN in train mode fixes the batch's
        pre-sigmoid mean and spread) at lr * `refine.head_lr_mult` (1: the release's single lr)."""
        g = self.model.generator
        out = [*g.out_conv.parameters(), *g.out_bn.parameters()]
        out_ids = {id(p) for p in out}
        blocks = [p for p in g.refine_parameters(self.method_cfg.refine_scope) if id(p) not in out_ids]
        return [(blocks, 1.0), (out, self.stage_cfg.head_lr_mult)]

    def _step(self, batch: Batch, split: str) -> torch.Tensor:
        m = self.method_cfg
        images, labels = batch.images, batch.labels
        out = self.model.maps(images)  # step 1
        p_e = self.eraser(out.p_a) if split == "train" else out.p_a  # step 2 (identity in eval mode)
        f_e = self._evaluator.get(lambda net: net(self.model.to_evaluator(images[:1])))  # probed when (re)built
        logits = self.model.evaluate_masked(images, p_e, m.mask_upsample, f_e)  # step 3: F_e(convert(I) * up(p_e))
        loss_e = cross_entropy(logits, labels)
        loss_we = weighted_entropy(out.p_a, m.mu, m.sigma, m.beta, eps=m.entropy_eps)  # step 4
        probs = logits.detach().float().softmax(dim=1)
        loss_a = area_loss(out.p_a, out.f_a, probs, m.area_topk, m.area_skip, m.area_form)  # step 5
        loss = m.eval_weight * loss_e + m.area_weight * loss_a + m.entropy_weight * loss_we  # step 6
        terms = {"loss_eval": loss_e, "loss_area": loss_a, "loss_entropy": loss_we, "map_mean": out.p_a.mean()}
        if m.background_weight:  # not in the paper: the evaluator must not find the class outside the map
            loss_bg = background_loss(self.model.evaluate_masked(images, 1 - out.p_a, m.mask_upsample, f_e), labels)
            loss = loss + m.background_weight * loss_bg
            terms["loss_background"] = loss_bg
        for name, (weight, term) in self._constraints(images, labels, out.p_a, f_e, out.obj_logit).items():
            loss = loss + weight * term
            terms[name] = term
        self.log_common(split, loss, logits, labels, terms)
        if split == "val":
            self.update_map_metrics(batch)
        return loss

    def _constraints(self, images: torch.Tensor, labels: torch.Tensor, p_a: torch.Tensor,
                     f_e: nn.Module, obj_logit: torch.Tensor | None = None) -> dict[str, tuple[float, torch.Tensor]]:
        """Issue 30's constraints against texture noise with a weight > 0: {log name: (weight, term)}.

        Their extra passes (the evaluator's CAM of the label on the clean batch, one forward for
        every constraint that reads it; stem + generator on the flipped and on the down-scaled batch)
        give targets: they run without gradient and leave every batch norm's running statistics as
        they were, so the maps used at inference are normalised with the training batches'
        statistics only (a down-scaled batch's differ)."""
        m = self.method_cfg
        out: dict[str, tuple[float, torch.Tensor]] = {}
        if m.tv_weight:
            out["loss_tv"] = (m.tv_weight, total_variation(p_a))
        grids = []  # where the evaluator's label CAM is read: the learned gate's head's grid, p_a's
        if obj_logit is not None:
            grids.append(obj_logit.shape[-2:])
        if m.gate_distill_weight:
            grids.append(p_a.shape[-2:])
        if not (grids or m.flip_consistency_weight or m.scale_consistency_weight):
            return out
        with torch.no_grad(), running_stats_kept(self.model):
            cams = self.model.label_cam(images, labels, grids, self._cam_fc[0], f_e) if grids else []
            if m.gate_distill_weight:
                target = gate_distill_target(p_a, cams[-1], m.gate_distill_alpha, m.gate_distill_form)
            if m.flip_consistency_weight:
                p_flipped = self.model.maps(images.flip(-1)).p_a
            if m.scale_consistency_weight:
                p_small = self.model.maps(downscale(images, m.scale_consistency_factor)).p_a
        if obj_logit is not None:  # the learned class gate's head, towards the evaluator's min-max CAM on its grid
            from ...models.cam_network import minmax_normalize

            obj_target = minmax_normalize(cams[0])
            # on the logit: the full (sigmoid(o) - T) gradient, also where the head saturates
            out["loss_objectness"] = (m.objectness_weight,
                                      F.binary_cross_entropy_with_logits(obj_logit, obj_target.to(obj_logit.dtype)))
        if m.gate_distill_weight:
            out["loss_gate_distill"] = (m.gate_distill_weight, gate_distillation(p_a, target, m.entropy_eps))
        if m.flip_consistency_weight:
            out["loss_flip"] = (m.flip_consistency_weight, flip_consistency(p_a, p_flipped))
        if m.scale_consistency_weight:
            out["loss_scale"] = (m.scale_consistency_weight, scale_consistency(p_a, p_small))
        return out


def downscale(images: torch.Tensor, factor: float) -> torch.Tensor:
    """The batch resized to `downscaled_side` of each side (bilinear, antialiased: a plain bilinear
    down-scale aliases fine texture into the coarse view instead of removing it)."""
    size = [downscaled_side(s, factor) for s in images.shape[-2:]]
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)


@contextmanager
def running_stats_kept(module: nn.Module):
    """Every batch norm of `module` that would update its running statistics (train mode) updates
    throw-away copies of them inside the block: extra passes must not move them. The originals are
    swapped out, not restored by a copy: the main pass's backward checks that they are unchanged."""
    stats = ("running_mean", "running_var", "num_batches_tracked")
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
             and m.training and m.track_running_stats]
    kept = [{name: getattr(m, name) for name in stats} for m in norms]
    for m, originals in zip(norms, kept):
        for name, t in originals.items():
            setattr(m, name, None if t is None else t.clone())
    try:
        yield
    finally:
        for m, originals in zip(norms, kept):
            for name, t in originals.items():
                setattr(m, name, t)
