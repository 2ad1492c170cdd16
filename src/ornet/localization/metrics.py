"""Streaming WSOL metrics as torchmetrics classes (the only torch module of ``localization``).

``BoxAccuracySweep`` keeps per-threshold counters (never the maps) for every box mode, so one
pass gives GT-known / Top-k Loc (``box_mode``), MaxBoxAcc (largest region) and MaxBoxAccV2
(every region); ``PxAP`` keeps two score histograms. All states are summed across processes
(``dist_reduce_fx="sum"``), so DDP evaluation gives single-process numbers. The per-image work
(contours) runs in numpy / OpenCV on the CPU: the same code as ``ornet evaluate-maps``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from .boxes import MODES, cam_thresholds, map_levels, sweep_best_iou, truncate_boxes
from .pxap import pxap_edges, pxap_from_histograms, score_histograms
from .sweep import GT_KNOWN_IOU, SweepResult, count_hits

NORMALIZE = ("minmax", "none")
_INTERPOLATION = ("bilinear", "bicubic")


def _as_maps(maps: torch.Tensor) -> torch.Tensor:
    if maps.ndim == 3:
        maps = maps[:, None]
    if maps.ndim != 4 or maps.shape[1] != 1:
        raise ValueError(f"maps must be B x 1 x h x w or B x h x w, got {tuple(maps.shape)}")
    return maps


def prepare_maps(maps: torch.Tensor, size: Sequence[int] | None, normalize: str,
                 interpolation: str = "bilinear") -> np.ndarray:
    """B x h x w float64 numpy maps: resized to ``size`` (H, W) and normalised.

    ``minmax``: per image ``(m - min) / (max - min)`` after resizing; a constant or NaN map
    becomes all zeros (wsolevaluation's ``normalize_scoremap``). ``none``: the map as it is,
    which must lie in [0, 1] (bicubic overshoot is clipped).
    """
    maps = _as_maps(maps).detach()
    if size is not None and tuple(maps.shape[-2:]) != tuple(size):
        maps = F.interpolate(maps.float(), size=tuple(int(s) for s in size), mode=interpolation,
                             align_corners=False)
    arr = maps[:, 0].to("cpu", torch.float64).numpy()
    if normalize == "minmax":
        flat = arr.reshape(len(arr), -1)
        lo, hi = flat.min(1), flat.max(1)
        bad = ~np.isfinite(flat).all(1) | (hi == lo)
        span = np.where(bad, 1.0, hi - lo)
        arr = np.where(bad[:, None, None], 0.0, (arr - lo[:, None, None]) / span[:, None, None])
        return np.clip(arr, 0.0, 1.0)
    if interpolation == "bicubic":  # bicubic overshoots a little around [0, 1]
        arr = np.clip(arr, 0.0, 1.0)
    if not np.isfinite(arr).all() or arr.min() < 0.0 or arr.max() > 1.0:
        raise ValueError("with normalize='none' maps must be finite and in [0, 1] (probabilities, not logits)")
    return arr


class BoxAccuracySweep(Metric):
    """Box accuracy at every map threshold and IoU level, for the three box modes at once.

    update(maps, boxes, image_size=None, labels=None, logits=None):
      maps: B x 1 x h x w (or B x h x w) float, resized bilinearly to ``image_size`` (H, W)
        before thresholding (None: already the image size);
      boxes: list of B float tensors N_i x 4, XYXY pixels of the H x W image (N_i >= 1),
        converted to wsolevaluation's inclusive integer boxes by ``truncate_boxes``;
      labels (B,) and logits (B x K): optional, for Top-1/5 Cls and Loc.
    compute() -> SweepResult (numpy); see ``sweep.summarize`` / ``sweep.choose_threshold``.

    ``box_mode`` (all / largest / multi) is the box for GT-known and Top-k Loc; MaxBoxAcc and
    MaxBoxAccV2 use largest and multi whatever it is. ``normalize``: ``minmax`` (wsolevaluation:
    thresholds are fractions of the map's max, uint8 maps) or ``none`` (the ORNet release: the
    map is compared with the threshold itself). ``iou_strict``: IoU > level instead of >=.
    ``keep_per_image`` also keeps each image's best IoU at every threshold (N x T, box_mode), in
    update order (under DDP, gathered rank by rank). ``sweep_threads``: images of a batch swept
    at once (the contour work runs in C without the GIL); default ``min(2, cores)``.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, cam_curve_interval: float = 0.01, iou_thresholds: Sequence[float] = (30, 50, 70),
                 box_mode: str = "largest", iou_strict: bool = False, normalize: str = "minmax",
                 keep_per_image: bool = False, interpolation: str = "bilinear", sweep_threads: int | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        if box_mode not in MODES:
            raise ValueError(f"unknown box_mode {box_mode!r}; modes: {', '.join(MODES)}")
        if normalize not in NORMALIZE:
            raise ValueError(f"unknown normalize {normalize!r}; choices: {', '.join(NORMALIZE)}")
        if interpolation not in _INTERPOLATION:
            raise ValueError(f"unknown interpolation {interpolation!r}; choices: {', '.join(_INTERPOLATION)}")
        self.iou_thresholds = tuple(iou_thresholds)
        if GT_KNOWN_IOU not in self.iou_thresholds:
            raise ValueError(f"iou_thresholds must include {GT_KNOWN_IOU} (GT-known Loc, MaxBoxAcc)")
        self.cam_curve_interval = float(cam_curve_interval)
        self.thresholds = cam_thresholds(cam_curve_interval)
        self.box_mode, self.iou_strict, self.normalize = box_mode, bool(iou_strict), normalize
        self.keep_per_image, self.interpolation = keep_per_image, interpolation
        self.sweep_threads = max(1, int(sweep_threads if sweep_threads is not None else min(2, os.cpu_count() or 1)))
        shape = (len(MODES), len(self.thresholds), len(self.iou_thresholds))
        for name in ("hits", "hits_top1", "hits_top5"):
            self.add_state(name, torch.zeros(shape, dtype=torch.long), dist_reduce_fx="sum")
        for name in ("num_images", "num_with_logits", "cls_top1", "cls_top5"):
            self.add_state(name, torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        if keep_per_image:
            self.add_state("per_image_iou", [], dist_reduce_fx="cat")

    def update(self, maps: torch.Tensor, boxes: Sequence[torch.Tensor], image_size: Sequence[int] | None = None,
               labels: torch.Tensor | None = None, logits: torch.Tensor | None = None) -> None:
        arr = prepare_maps(maps, image_size, self.normalize, self.interpolation)
        if len(boxes) != len(arr):
            raise ValueError(f"{len(arr)} maps but {len(boxes)} box lists")
        gts = [truncate_boxes(torch.as_tensor(b).detach().cpu().numpy()) for b in boxes]
        relative = self.normalize == "minmax"

        def one(job: tuple) -> np.ndarray:
            return sweep_best_iou(*map_levels(job[0], self.thresholds, relative=relative), job[1], MODES)

        threads = min(self.sweep_threads, len(arr))
        if threads > 1:  # per batch: the threads end with it (no thread outlives update, e.g. across forks)
            with ThreadPoolExecutor(threads) as pool:
                best = np.stack(list(pool.map(one, zip(arr, gts))))  # B x modes x T
        else:
            best = np.stack([one(job) for job in zip(arr, gts)])
        hits = count_hits(best, self.iou_thresholds, self.iou_strict)  # B x modes x T x L
        self.hits += torch.from_numpy(hits.sum(0)).to(self.hits.device)
        self.num_images += len(arr)
        if logits is not None:
            if labels is None:
                raise ValueError("logits need labels")
            top5 = logits.detach().topk(min(5, logits.shape[1]), dim=1).indices
            in_top5 = (top5 == labels.view(-1, 1).to(top5.device)).any(1).cpu().numpy()
            in_top1 = (top5[:, 0] == labels.to(top5.device)).cpu().numpy()
            self.hits_top1 += torch.from_numpy(hits[in_top1].sum(0)).to(self.hits.device)
            self.hits_top5 += torch.from_numpy(hits[in_top5].sum(0)).to(self.hits.device)
            self.num_with_logits += len(arr)
            self.cls_top1 += int(in_top1.sum())
            self.cls_top5 += int(in_top5.sum())
        if self.keep_per_image:  # float64 keeps IoU == 0.5 exact (MPS has no float64)
            dtype = torch.float32 if self.hits.device.type == "mps" else torch.float64
            self.per_image_iou.append(torch.from_numpy(best[:, MODES.index(self.box_mode)]).to(self.hits.device, dtype))

    def compute(self) -> SweepResult:
        per_image = None
        if self.keep_per_image:
            state = self.per_image_iou
            per_image = (dim_zero_cat(state).cpu().numpy() if (not isinstance(state, list) or state)
                         else np.zeros((0, len(self.thresholds))))
        return SweepResult(
            thresholds=self.thresholds, iou_thresholds=self.iou_thresholds,
            hits=self.hits.cpu().numpy(), hits_top1=self.hits_top1.cpu().numpy(),
            hits_top5=self.hits_top5.cpu().numpy(), num_images=int(self.num_images),
            num_with_logits=int(self.num_with_logits), cls_top1=int(self.cls_top1), cls_top5=int(self.cls_top5),
            box_mode=self.box_mode, iou_strict=self.iou_strict, normalize=self.normalize,
            cam_curve_interval=self.cam_curve_interval, per_image_iou=per_image)


class PxAP(Metric):
    """Pixel average precision (percent) against masks, from streamed score histograms.

    update(maps, masks, ignores=None): maps B x 1 x h x w (or B x h x w), resized bilinearly
    to the masks' H x W and normalised as in BoxAccuracySweep; masks / ignores B x 1 x H x W
    (or B x H x W) in [0, 1], a pixel counts when > 0.5; ignored pixels (ignore minus foreground)
    are left out. compute() -> float, wsolevaluation's PxAP.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, cam_curve_interval: float = 0.01, normalize: str = "minmax",
                 interpolation: str = "bilinear", **kwargs):
        super().__init__(**kwargs)
        if normalize not in NORMALIZE:
            raise ValueError(f"unknown normalize {normalize!r}; choices: {', '.join(NORMALIZE)}")
        self.normalize, self.interpolation = normalize, interpolation
        self.cam_curve_interval = float(cam_curve_interval)
        self.edges = pxap_edges(cam_thresholds(cam_curve_interval))
        for name in ("positive", "negative"):
            self.add_state(name, torch.zeros(len(self.edges) - 1, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, maps: torch.Tensor, masks: torch.Tensor, ignores: torch.Tensor | None = None) -> None:
        masks = _as_maps(masks)
        arr = prepare_maps(maps, masks.shape[-2:], self.normalize, self.interpolation)
        fg = (masks[:, 0] > 0.5).cpu().numpy()
        ign = None if ignores is None else (_as_maps(ignores)[:, 0] > 0.5).cpu().numpy()
        if len(fg) != len(arr) or (ign is not None and ign.shape != fg.shape):
            raise ValueError("maps, masks and ignores must have the same batch size and mask size")
        pos, neg = score_histograms(arr, fg, ign, self.edges)
        self.positive += torch.from_numpy(pos).to(self.positive.device)
        self.negative += torch.from_numpy(neg).to(self.negative.device)

    def compute(self) -> float:
        return pxap_from_histograms(self.positive.cpu().numpy(), self.negative.cpu().numpy())
