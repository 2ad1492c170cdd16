"""wsolevaluation's protocol (`eval.protocol: wsolevaluation`, the default).

METHOD.md, "Evaluation protocol and metrics"; Choe et al., wsolevaluation: the map (resized to
the input, min-max normalised unless ``eval.normalize: none``) is swept over
``numpy.arange(0, 1, eval.cam_curve_interval)``; a box per ``eval.box_mode``; IoU on inclusive
pixels (+1), correct at IoU >= 0.5 (> with ``eval.iou_strict``); GT-known / Top-k Loc,
MaxBoxAcc, MaxBoxAccV2 and PxAP. The threshold (and ORNet's class gate) is chosen on the
held-out ``val`` split by GT-known Loc and applied to the test split; ``eval.threshold_split:
test`` chooses it on the test split itself (the paper's practice) and the outputs say so.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import OrnetError
from .protocols import Protocol, register_protocol

_BOX_KEYS = frozenset({"gt_known_loc", "max_box_acc", "max_box_acc_v2", "threshold", "threshold_index",
                       "threshold_split", "box_mode", "iou_strict", "normalize", "cam_curve_interval",
                       "num_images", "split", "protocol", "maps"})


@register_protocol
class WsolEvaluation(Protocol):
    name = "wsolevaluation"
    summary = ("wsolevaluation: the eval settings' box rule on the resized, normalised map, IoU on inclusive "
               "pixels, threshold chosen on val")
    metric_keys = _BOX_KEYS
    optional_metric_keys = frozenset({"top1_cls", "top5_cls", "top1_loc", "top5_loc", "pxap", "cam_gate",
                                      "cam_gate_split", "cam_gate_scores", "maps_network", "val_gt_known_loc"})

    def thresholds(self, eval_cfg) -> np.ndarray:
        from ..localization.boxes import cam_thresholds

        return cam_thresholds(eval_cfg.cam_curve_interval)

    def model_localization(self, eval_cfg) -> dict:
        e = eval_cfg
        return {"protocol": self.name, "threshold_split": e.threshold_split, "box_mode": e.box_mode,
                "normalize": e.normalize, "cam_curve_interval": float(e.cam_curve_interval),
                "iou_strict": bool(e.iou_strict)}

    def evaluate(self, model, datamodule, cfg, split, quiet, scoremap_dir, stored):
        """With threshold_split `val` and an empty val split, model.json's threshold (`stored`) is
        used when this protocol chose it, and ``threshold_split`` reads ``model``; else an error."""
        from ..localization.sweep import choose_threshold, summarize
        from .class_gate import choose_gate
        from .outputs import EvalResult
        from .split_runner import eval_trainer
        from .sweep_pass import PassResult, curves, folded_model, run_gate_passes
        from .sweep_pass import run_pass as one_pass

        folded = folded_model(model, cfg.trainer.fold_frozen_bn)  # one folded copy for every pass below

        def run_pass(*args, **kwargs):
            return one_pass(*args, folded=folded, **kwargs)

        e = cfg.eval
        model.eval()
        trainer = eval_trainer(cfg, quiet)
        if not getattr(datamodule.index, "has_boxes", True):
            # No boxes (the re-id sets): box metrics are skipped and the output says so.
            only = run_pass(trainer, model, datamodule, split, e, scoremap_dir=scoremap_dir)
            metrics = {**only.classification, "split": split, "threshold": None, "threshold_split": None,
                       "box_metrics": "skipped: the dataset has no boxes"}
            return EvalResult(metrics=metrics, rows=[], curves={})
        chooser: PassResult | None = None
        threshold_split = e.threshold_split
        index: int | None = None
        with_val = bool(datamodule.index.splits.get("val"))
        # the class gate is chosen where the threshold is (none without val: the model's own)
        gate_split = split if e.threshold_split != "val" else "val" if with_val else None
        gate = choose_gate(model, e.cam_gate, e.cam_gate_margin, gate_split,
                           lambda where, alphas: run_gate_passes(trainer, model, datamodule, where, e, alphas,
                                                                 folded=folded))
        if e.threshold_split == "val" and split != "val":
            if with_val:
                chooser = gate.passes.get(gate.alpha) or run_pass(trainer, model, datamodule, "val", e)
                index = choose_threshold(chooser.sweep)
            elif stored is not None and stored.get("threshold_index") is not None:
                index, threshold_split = self.stored_threshold_index(stored, e), "model"
            else:
                raise OrnetError("eval.threshold_split is val but the val split is empty: set data.val_per_class > 0, "
                                 "or eval.threshold_split=test to choose the threshold on the test split (and say so)")
        elif e.threshold_split == "val":
            threshold_split = "val"
        test = run_pass(trainer, model, datamodule, split, e, threshold_index=index, scoremap_dir=scoremap_dir)
        if index is None:  # chosen on the evaluated split itself: a second pass for the per-image rows
            chooser = test
            index = choose_threshold(test.sweep)
            test = run_pass(trainer, model, datamodule, split, e, threshold_index=index)
        metrics = summarize(test.sweep, index, threshold_split=threshold_split, pxap=test.pxap)
        metrics.update(split=split, protocol=self.name, **gate.metrics())
        if threshold_split == "val" and chooser is not None and chooser is not test:
            # the val figure behind the choice, for every method: what a setting is chosen on
            metrics["val_gt_known_loc"] = summarize(chooser.sweep, index)["gt_known_loc"]
        for key, value in list(metrics.items()):
            if isinstance(value, float) and not math.isfinite(value):
                metrics[key] = None
        curve = curves(chooser if chooser is not None else test, index)
        if threshold_split == "model":
            curve["split"] = "model"
        return EvalResult(metrics=metrics, rows=test.rows or [], curves=curve)
