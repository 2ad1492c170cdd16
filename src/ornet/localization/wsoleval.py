"""wsolevaluation-format metadata and score maps, evaluated exactly as wsolevaluation does.

Metadata folder (one split of wsolevaluation's ``metadata/<dataset>/<split>``):
``image_ids.txt`` (one id a line), ``image_sizes.txt`` (``id,width,height``), ``localization.txt``
with boxes (``id,x0,y0,x1,y1`` in original pixels, one line per box) or masks
(``id,mask_path,ignore_path``, one line per mask, the ignore field of later lines empty);
``class_labels.txt`` is not needed here. Score maps: ``<root>/<image_id>.npy`` (wsolevaluation
saves ``a/b.jpg`` as ``a/b.jpg.npy``; ``a/b.npy`` is accepted too), 224 x 224 float arrays in
[0, 1]. Ground-truth boxes are scaled to 224 x 224 (``scale_boxes``, rule ``wsolevaluation``);
masks are read as grey, resized to 224 x 224 with nearest neighbour, and a pixel is foreground
when its grey value is > 0.5 (any non-zero value, as in wsolevaluation). No torch on this path.
The readers of these files are `wsoleval_io`; the scoring pool is `workers`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from .boxes import cam_thresholds, map_levels, sweep_best_iou
from .pxap import pxap_edges, pxap_from_histograms, score_histograms
from .sweep import count_hits
from .workers import in_pool
from .wsoleval_io import Metadata, find_scoremap, load_gt_mask, load_scoremap, read_metadata


@dataclass(frozen=True)
class _Job:
    """What every worker needs (small; sent with each chunk)."""

    scoremap_root: str
    thresholds: np.ndarray
    iou_thresholds: tuple[float, ...]
    modes: tuple[str, ...]
    mask_root: str | None


def _run_chunk(job: _Job, items: list[tuple]) -> tuple:
    """Counters for a chunk of images: (hits, positive hist, negative hist, error message or None)."""
    hits = np.zeros((len(job.modes), len(job.thresholds), len(job.iou_thresholds)), dtype=np.int64)
    edges = pxap_edges(job.thresholds)
    pos = np.zeros(len(edges) - 1, dtype=np.int64)
    neg = np.zeros_like(pos)
    try:
        for item in items:
            image_id = item[0]
            scoremap = load_scoremap(find_scoremap(job.scoremap_root, image_id), image_id)
            if job.mask_root is None:
                best = sweep_best_iou(*map_levels(scoremap, job.thresholds), item[1], job.modes, scoremap)
                hits += count_hits(best, job.iou_thresholds)
            else:
                fg, ignore = load_gt_mask(job.mask_root, item[1], item[2])
                p, n = score_histograms(scoremap, fg, ignore, edges)
                pos += p
                neg += n
    except DataError as e:
        return hits, pos, neg, str(e)
    return hits, pos, neg, None


def evaluate_scoremaps(metadata: str | Path | Metadata, scoremap_root: str | Path, *,
                       mask_root: str | Path | None = None, cam_curve_interval: float = 0.01,
                       iou_thresholds: Sequence[int] = (30, 50, 70), multi_contour: bool = False,
                       workers: int = 2, chunk_size: int | None = None) -> dict:
    """wsolevaluation's ``evaluate_wsol`` on saved score maps, with the same numbers.

    Boxes: MaxBoxAcc (largest contour) or, with multi_contour, the all-contours variant, per IoU
    level in percent, plus their mean (MaxBoxAccV2 when multi_contour). Masks (mask_root given):
    PxAP. Images are processed in chunks by ``workers`` processes; bad input raises DataError
    naming the file and image id (the first bad image in id order).
    """
    meta = metadata if isinstance(metadata, Metadata) else read_metadata(metadata, masks=mask_root is not None)
    if meta.has_masks != (mask_root is not None):
        raise ValueError("mask metadata needs mask_root, box metadata must not have one")
    thresholds = cam_thresholds(cam_curve_interval)
    iou_thresholds = tuple(iou_thresholds)
    mode = "multi" if multi_contour else "largest"
    job = _Job(str(scoremap_root), thresholds, iou_thresholds, (mode,),
               None if mask_root is None else str(mask_root))
    if mask_root is None:
        gt = meta.resized_boxes()
        items = [(i, gt[i]) for i in meta.image_ids]
    else:
        items = [(i, meta.mask_paths[i], meta.ignore_paths[i]) for i in meta.image_ids]
    workers = max(1, min(int(workers), len(items)))
    size = chunk_size or max(1, min(64, -(-len(items) // (workers * 32))))  # small chunks: even ends
    chunks = [items[k:k + size] for k in range(0, len(items), size)]
    hits = np.zeros((1, len(thresholds), len(iou_thresholds)), dtype=np.int64)
    pos = np.zeros(len(thresholds) + 2, dtype=np.int64)
    neg = np.zeros_like(pos)
    run = functools.partial(_run_chunk, job)
    results = map(run, chunks) if workers == 1 else in_pool(run, chunks, workers)
    try:
        for h, p, n, error in results:
            if error is not None:
                raise DataError(error)
            hits += h
            pos += p
            neg += n
    finally:
        if hasattr(results, "close"):
            results.close()  # a generator: stops the pool (see _in_pool)
    out: dict = {"num_images": len(items), "cam_curve_interval": float(cam_curve_interval)}
    if mask_root is not None:
        try:
            out["pxap"] = pxap_from_histograms(pos, neg)
        except ValueError as e:
            raise DataError(str(e), file=str(meta.root / "localization.txt")) from None
        return out
    accuracies = hits[0] * 100.0 / float(len(items))  # T x L, as wsolevaluation's compute()
    best = accuracies.max(axis=0)
    out["multi_contour"] = bool(multi_contour)
    out["iou_thresholds"] = list(iou_thresholds)
    out["max_box_acc"] = {f"{t:g}": float(a) for t, a in zip(iou_thresholds, best)}
    out["max_box_acc_mean"] = float(np.average(best))
    out["best_threshold"] = {f"{t:g}": float(thresholds[int(np.argmax(accuracies[:, k]))])
                             for k, t in enumerate(iou_thresholds)}
    return out
