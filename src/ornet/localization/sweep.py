"""Threshold-sweep results, counting and the flat metrics summary (numpy only, no torch).

A sweep evaluates every image at every map threshold (``cam_thresholds(interval)``) and keeps
counters only: for each box mode (``MODES``: all, largest, multi), threshold and IoU level, the
number of images whose box is correct; the same counts restricted to images whose class is
right at top-1 / top-5; and the classification counts. Everything in METHOD.md's "Evaluation
protocol and metrics" derives from these counters:

- GT-known Loc at threshold i: ``hits[box_mode, i, IoU 50] / num_images``;
- Top-1 / Top-5 Loc: the same with ``hits_top1`` / ``hits_top5``;
- MaxBoxAcc: ``max_i hits[largest, i, IoU 50] / num_images``;
- MaxBoxAccV2: mean over IoU levels of ``max_i hits[multi, i, level] / num_images``.

A box is correct when its IoU with some ground-truth box is ``>= level / 100`` (``>`` with
``iou_strict``, the ORNet release's rule).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from .boxes import MODES

GT_KNOWN_IOU = 50


def count_hits(best_iou: np.ndarray, iou_thresholds: Sequence[float], strict: bool = False) -> np.ndarray:
    """Correctness (bool, ``best_iou.shape + (L,)``) of best IoUs against IoU levels in percent.

    A level ``t`` is compared as ``iou >= t / 100`` (wsolevaluation) or ``iou > t / 100``.
    """
    cuts = np.array([t / 100 for t in iou_thresholds], dtype=np.float64)
    best = np.asarray(best_iou, dtype=np.float64)[..., None]
    return best > cuts if strict else best >= cuts


@dataclass
class SweepResult:
    """Counters of a threshold sweep (what ``BoxAccuracySweep.compute()`` returns).

    ``hits``, ``hits_top1`` and ``hits_top5`` are int arrays (len(MODES), T, L) indexed by
    ``MODES``, the thresholds and ``iou_thresholds``. ``per_image_iou`` (N x T, optional) is the
    best IoU of each image's ``box_mode`` box at every threshold, in update order.
    """

    thresholds: np.ndarray
    iou_thresholds: tuple[float, ...]
    hits: np.ndarray
    hits_top1: np.ndarray
    hits_top5: np.ndarray
    num_images: int
    num_with_logits: int = 0
    cls_top1: int = 0
    cls_top5: int = 0
    box_mode: str = "largest"
    iou_strict: bool = False
    normalize: str = "minmax"
    cam_curve_interval: float = 0.01
    per_image_iou: np.ndarray | None = field(default=None, repr=False)

    def accuracy(self, mode: str, iou: float = GT_KNOWN_IOU, counts: str = "hits") -> np.ndarray:
        """Percentage of images (T,) correct at each threshold, for a box mode and IoU level."""
        if self.num_images == 0:
            raise ValueError("the sweep saw no image")
        table = getattr(self, counts)
        return table[MODES.index(mode), :, self._iou_index(iou)] * 100.0 / float(self.num_images)

    def _iou_index(self, iou: float) -> int:
        if iou not in self.iou_thresholds:
            raise ValueError(f"IoU level {iou} was not swept; levels: {list(self.iou_thresholds)}")
        return list(self.iou_thresholds).index(iou)

    def to_dict(self) -> dict:
        """JSON-ready dict (lists instead of arrays); :meth:`from_dict` reads it back."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, np.ndarray):
                out[key] = value.tolist()
        out["iou_thresholds"] = list(self.iou_thresholds)
        out["modes"] = list(MODES)
        return out

    @classmethod
    def from_dict(cls, data: Mapping) -> SweepResult:
        data = dict(data)
        if data.pop("modes", list(MODES)) != list(MODES):
            raise ValueError(f"sweep counters must be indexed by modes {list(MODES)}")
        arrays = {k: np.asarray(data[k], dtype=np.int64) for k in ("hits", "hits_top1", "hits_top5")}
        per_image = data.get("per_image_iou")
        return cls(**{**data, **arrays, "thresholds": np.asarray(data["thresholds"], dtype=np.float64),
                      "iou_thresholds": tuple(data["iou_thresholds"]),
                      "per_image_iou": None if per_image is None else np.asarray(per_image, dtype=np.float64)})


def _as_result(result: SweepResult | Mapping) -> SweepResult:
    return result if isinstance(result, SweepResult) else SweepResult.from_dict(result)


CRITERIA = ("gt_known", "top1_loc", "max_box_acc")


def choose_threshold(result: SweepResult | Mapping, criterion: str = "gt_known") -> int:
    """Index of the threshold that maximises ``criterion`` over the sweep (the first on ties).

    ``gt_known``: GT-known Loc (IoU 50) with the sweep's box mode (the paper's and
    wsolevaluation's choice); ``top1_loc``: Top-1 Loc; ``max_box_acc``: largest-region boxes.
    Run it on the validation split and pass the index to :func:`summarize` on the test split.
    """
    r = _as_result(result)
    if criterion == "gt_known":
        curve = r.accuracy(r.box_mode)
    elif criterion == "top1_loc":
        if r.num_with_logits != r.num_images:
            raise ValueError("criterion 'top1_loc' needs logits for every image")
        curve = r.accuracy(r.box_mode, counts="hits_top1")
    elif criterion == "max_box_acc":
        curve = r.accuracy("largest")
    else:
        raise ValueError(f"unknown criterion {criterion!r}; criteria: {', '.join(CRITERIA)}")
    return int(np.argmax(curve))


def summarize(result: SweepResult | Mapping, threshold_index: int | None = None, *,
              threshold_split: str | None = None, pxap: float | None = None,
              criterion: str = "gt_known") -> dict:
    """The flat metrics.json dict (percentages 0-100) at one threshold, plus the settings.

    threshold_index: from :func:`choose_threshold` on another split (the validation split, by
    the protocol); None chooses it on ``result`` itself by ``criterion``. threshold_split names
    the split that chose it and is always written (null when the caller does not say).
    Classification and Top-k Loc keys appear only when every image came with logits; pxap only
    when given. MaxBoxAcc needs IoU level 50 in the sweep.
    """
    r = _as_result(result)
    if threshold_index is None:
        threshold_index = choose_threshold(r, criterion)
    t = len(r.thresholds)
    if not -t <= threshold_index < t:
        raise ValueError(f"threshold_index {threshold_index} is out of range for {t} thresholds")
    i = int(threshold_index) % t
    out: dict = {}
    if r.num_with_logits == r.num_images:
        out["top1_cls"] = r.cls_top1 * 100.0 / r.num_images
        out["top5_cls"] = r.cls_top5 * 100.0 / r.num_images
        out["top1_loc"] = float(r.accuracy(r.box_mode, counts="hits_top1")[i])
        out["top5_loc"] = float(r.accuracy(r.box_mode, counts="hits_top5")[i])
    out["gt_known_loc"] = float(r.accuracy(r.box_mode)[i])
    out["max_box_acc"] = float(r.accuracy("largest").max())
    out["max_box_acc_v2"] = float(np.mean([r.accuracy("multi", iou).max() for iou in r.iou_thresholds]))
    if pxap is not None:
        out["pxap"] = float(pxap)
    out.update(threshold=float(r.thresholds[i]), threshold_index=i, threshold_split=threshold_split,
               box_mode=r.box_mode, iou_strict=bool(r.iou_strict), normalize=r.normalize,
               cam_curve_interval=float(r.cam_curve_interval), num_images=int(r.num_images))
    return out
