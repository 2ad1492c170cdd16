"""The ORNet release's protocol (`eval.protocol: release`; docs/reproducing.md).

Its geometry is `ornet.localization.release_rule` (thresholds 0.05..0.95 on the raw map, one
box around all cells above x the stride, IoU on continuous coordinates without +1, correct when
IoU > 0.5, ground truth of the centre crop unclipped). This module holds the protocol's entry
(`Release`) and its counting (`ReleaseResult`: GT-known / Top-k Loc per threshold, the
threshold chosen on the evaluated split itself as the release does, metrics.json and
curves.json); the pass over a dataset is `release_pass.evaluate_release`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..localization.release_rule import IOU_LEVEL, release_boxes, release_thresholds
from .protocols import Protocol, register_protocol

NAME = "release"
PROTOCOL_NOTE = ("ORNet release (train_2nd_step.py): thresholds 0.05..0.95 on the raw map, one box around all "
                 "cells above, x stride, IoU without +1, correct when IoU > 0.5, ground truth of the centre "
                 "crop not clipped; the threshold is chosen on the evaluated split itself")


@register_protocol
class Release(Protocol):
    name = NAME
    summary = ("the ORNet release's scoring: thresholds 0.05..0.95 on the raw map, one box around all cells "
               "above, IoU without +1, IoU > 0.5, threshold chosen on the evaluated (test) split")
    reuses_stored_threshold = False
    iou_plus_one = False
    metric_keys = frozenset({"protocol", "top1_cls", "top5_cls", "top1_loc", "top5_loc", "gt_known_loc",
                             "top1_loc_error", "top5_loc_error", "threshold", "threshold_index", "threshold_split",
                             "box_mode", "iou_strict", "normalize", "thresholds", "num_images", "protocol_note",
                             "split", "maps"})
    optional_metric_keys = frozenset({"maps_network"})

    def thresholds(self, eval_cfg) -> np.ndarray:
        return release_thresholds()

    def iou_strict(self, eval_cfg) -> bool:
        return True

    def box_rule(self, box_mode: str) -> str:
        """``release`` in box mode ``all`` (raw map > threshold, one box around those cells x the
        stride; no cell above: no box), else the evaluation rule."""
        return "release" if box_mode == "all" else "evaluation"

    def map_boxes(self, raw_map, scoremap, threshold, box_mode, input_size, relative) -> list[list[int]]:
        if self.box_rule(box_mode) != "release":
            return super().map_boxes(raw_map, scoremap, threshold, box_mode, input_size, relative)
        raw = raw_map.detach().cpu().numpy() if hasattr(raw_map, "detach") else np.asarray(raw_map)
        if not (raw > threshold).any():
            return []
        return [[int(round(v)) for v in release_boxes(raw, [threshold], input_size)[0]]]

    def model_localization(self, eval_cfg) -> dict:
        """The release's rule: map > t on the raw grid, one box around all; the grid's step as interval."""
        steps = np.diff(self.thresholds(eval_cfg))
        return {"protocol": self.name, "threshold_split": self.settings.threshold_split, "box_mode": "all",
                "normalize": "none", "cam_curve_interval": float(round(steps[0], 6)), "iou_strict": True}

    def evaluate(self, model, datamodule, cfg, split, quiet, scoremap_dir, stored):
        """The threshold is chosen on `split` itself; a stored one is never reused."""
        from .release_pass import evaluate_release

        return evaluate_release(model, datamodule, cfg, split, quiet=quiet, scoremap_dir=scoremap_dir)

    def command_note(self, metrics) -> str:
        return (f", ORNet release protocol; the release prints Top-1 Loc error {metrics['top1_loc_error']:.2f}"
                f" as 'Top1 Loc'")

    def train_note(self, metrics) -> str:
        return " under the ORNet release's protocol"

    def report_lines(self, metrics) -> list[str]:
        return ["Scored with the ORNet release's protocol (thresholds 0.05-0.95 on the raw map, one box "
                "around all cells above, IoU > 0.5 without the +1 convention, unclipped ground truth). "
                "Accuracies are shown; the release prints the Top-1 / Top-5 Loc error (100 - accuracy) "
                "as 'Top1 Loc' / 'Top5 Loc'."]


@dataclass
class ReleaseResult:
    """Per-image results at every threshold (N images, T thresholds); counts derive from them."""

    thresholds: np.ndarray
    iou: np.ndarray
    """N x T float32 best IoU."""
    top1: np.ndarray
    """N bool: the true class is the evaluator's top-1."""
    top5: np.ndarray
    """N bool: the true class is in the evaluator's top 5 (top K when K < 5)."""

    @property
    def num_images(self) -> int:
        return int(len(self.iou))

    def correct(self) -> np.ndarray:
        """N x T bool: IoU > 0.5."""
        return self.iou > np.float32(IOU_LEVEL)

    def accuracy(self, counts: str = "gt_known") -> np.ndarray:
        """T percentages: GT-known (``gt_known``), ``top1`` or ``top5`` Loc at each threshold."""
        if self.num_images == 0:
            raise ValueError("no image was scored")
        hit = self.correct()
        if counts == "top1":
            hit = hit & self.top1[:, None]
        elif counts == "top5":
            hit = hit & self.top5[:, None]
        elif counts != "gt_known":
            raise ValueError(f"unknown counts {counts!r}; known: gt_known, top1, top5")
        return hit.sum(axis=0) * 100.0 / self.num_images

    def choose(self) -> int:
        """The first threshold with the highest GT-known Loc (the release's ``>`` update rule)."""
        return int(np.argmax(self.accuracy("gt_known")))

    def summarize(self, index: int | None = None, split: str | None = None) -> dict:
        """metrics.json keys (percentages 0-100) at threshold `index` (default: chosen here)."""
        i = self.choose() if index is None else int(index)
        top1_loc = float(self.accuracy("top1")[i])
        top5_loc = float(self.accuracy("top5")[i])
        return {
            "protocol": NAME,
            "top1_cls": float(self.top1.mean() * 100.0),
            "top5_cls": float(self.top5.mean() * 100.0),
            "top1_loc": top1_loc,
            "top5_loc": top5_loc,
            "gt_known_loc": float(self.accuracy("gt_known")[i]),
            "top1_loc_error": 100.0 - top1_loc,
            "top5_loc_error": 100.0 - top5_loc,
            "threshold": float(self.thresholds[i]),
            "threshold_index": i,
            "threshold_split": split,
            "box_mode": "all",
            "iou_strict": True,
            "normalize": "none",
            "thresholds": [round(float(t), 6) for t in self.thresholds],
            "num_images": self.num_images,
            "protocol_note": PROTOCOL_NOTE,
        }

    def curves(self, index: int, split: str | None = None) -> dict:
        """curves.json in the layout `ornet figures threshold-curve` reads (one IoU level, 50)."""
        return {
            "protocol": NAME,
            "split": split,
            "thresholds": [round(float(t), 6) for t in self.thresholds],
            "chosen_index": int(index),
            "chosen_threshold": float(self.thresholds[index]),
            "box_mode": "all",
            "iou_thresholds": [50],
            "iou_strict": True,
            "accuracy": {"50": [round(float(v), 4) for v in self.accuracy("gt_known")]},
            "num_images": self.num_images,
        }
