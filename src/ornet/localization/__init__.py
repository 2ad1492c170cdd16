"""Maps -> boxes, IoU and WSOL metrics with wsolevaluation's exact conventions (docs/metrics.md).

Torch-free modules: ``boxes`` (thresholding, contours, IoU), ``sweep`` (counters, summary,
threshold choice), ``pxap`` (pixel AP from histograms), ``wsoleval`` (wsolevaluation files and
``evaluate_scoremaps``). ``metrics`` holds the torchmetrics classes and is the only module that
imports torch; its names are loaded here on first use only.
"""

from __future__ import annotations

from .boxes import (
    MODES,
    box_iou,
    boxes_from_map,
    cam_thresholds,
    level_boxes,
    map_levels,
    scale_boxes,
    scoremap_to_uint8,
    sweep_best_iou,
    truncate_boxes,
)
from .pxap import pxap_edges, pxap_from_histograms, score_histograms
from .sweep import SweepResult, choose_threshold, count_hits, summarize

_TORCH_NAMES = ("BoxAccuracySweep", "PxAP")

__all__ = [
    "MODES", "box_iou", "boxes_from_map", "cam_thresholds", "level_boxes", "map_levels", "scale_boxes",
    "scoremap_to_uint8", "sweep_best_iou", "truncate_boxes", "pxap_edges", "pxap_from_histograms",
    "score_histograms", "SweepResult", "choose_threshold", "count_hits", "summarize", *_TORCH_NAMES,
]


def __getattr__(name: str):
    if name in _TORCH_NAMES:
        from . import metrics

        return getattr(metrics, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
