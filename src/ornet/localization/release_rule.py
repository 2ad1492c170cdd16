"""The ORNet release's box and IoU geometry, numpy only (docs/reproducing.md).

Used by the release's evaluation protocol (`ornet.evaluation.release_protocol`, which also
holds the counting below: GT-known / Top-k Loc and the threshold's choice, and what it writes).

Facts from Sierkinhane/ORNet: ``train_2nd_step.py`` (``test_multi_threshold``),
``utils/func_utils.py`` (``find_bbox``, ``intersect``) and ``dataset/cub.py`` (ground truth).
Per test image and threshold ``t_i = (i + 1) / 20``, i = 0..18 (0.05, 0.10, ..., 0.95;
``NUM_THRESHOLD: 20`` in ``config/CUB_200_2011.yaml``):

- the *raw* sigmoid map (h x w: 56 x 56 for a 224 x 224 input; not resized, not normalised) is
  compared with t: a cell survives when ``map > t``;
- one box around all surviving cells, cell indices times the stride (4; here ``W / w`` and
  ``H / h``): ``x0 = 4 * min column, y0 = 4 * min row, x1 = 4 * max column, y1 = 4 * max row``.
  x1, y1 are where the last cell *starts*: one cell gives a zero-area box, a full 56 x 56 map
  gives (0, 0, 220, 220);
- no cell above t: the box (0, 0, 224, 224), i.e. (0, 0, W, H);
- IoU on continuous coordinates without the +1 pixel convention, in float32 as the release
  computes it: ``inter = max(0, min(x1) - max(x0)) * max(0, min(y1) - max(y0))``,
  ``area = (x1 - x0) * (y1 - y0)``, ``IoU = inter / (area_p + area_g - inter)``; the best over
  the image's ground-truth boxes counts (``IOUFunciton_ILSRVC``; CUB has one);
- correct when ``IoU > 0.5`` (strictly);
- ground truth: ``x, y, x + w, y + h`` scaled by ``256 / W`` and ``256 / H`` (the 256 x 256
  resize) minus 16 (the 224 centre crop), in float32 and NOT clipped to the crop;
- GT-known Loc (the release's "Correct"): share of images correct; Top-1 / Top-5 Loc: correct
  and the true class is the evaluator's top-1 / in its top 5. The release prints
  ``(1 - accuracy) * 100`` as "Top1 Loc" / "Top5 Loc": error rates; ornet reports accuracies
  and, beside them, ``top1_loc_error`` / ``top5_loc_error``;
- the threshold is the first one with the highest GT-known Loc on the evaluated (test) split.

One divergence: a zero union (a zero-area box on a zero-area ground truth) is a NaN IoU that the
release's two ``torch.where`` calls count as correct; here it is IoU 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

NUM_THRESHOLD = 20
IOU_LEVEL = 0.5


def release_thresholds(num: int = NUM_THRESHOLD) -> np.ndarray:
    """``[(i + 1) / num for i in range(num - 1)]`` as float64 (0.05 .. 0.95 for num 20)."""
    if num < 2:
        raise ValueError(f"the release's NUM_THRESHOLD must be >= 2, got {num}")
    return np.array([(i + 1) / num for i in range(num - 1)], dtype=np.float64)


def release_boxes(scoremap: np.ndarray, thresholds: Sequence[float], image_size: Sequence[int]) -> np.ndarray:
    """T x 4 float64 boxes ``x0, y0, x1, y1`` (input pixels) of one raw h x w map, one per threshold.

    `image_size` is the network input (H, W); the stride is ``W / w`` and ``H / h``.
    """
    m = np.asarray(scoremap, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"a map must be 2-D (h x w), got shape {m.shape}")
    height, width = (float(s) for s in image_size)
    sy, sx = height / m.shape[0], width / m.shape[1]
    t = np.asarray(thresholds, dtype=np.float64)[:, None]
    rows = m.max(axis=1)[None, :] > t  # T x h: row r holds a cell above t
    cols = m.max(axis=0)[None, :] > t  # T x w
    found = rows.any(axis=1)
    first_r, last_r = rows.argmax(axis=1), m.shape[0] - 1 - rows[:, ::-1].argmax(axis=1)
    first_c, last_c = cols.argmax(axis=1), m.shape[1] - 1 - cols[:, ::-1].argmax(axis=1)
    boxes = np.stack([first_c * sx, first_r * sy, last_c * sx, last_r * sy], axis=1)
    boxes[~found] = (0.0, 0.0, width, height)
    return boxes


def release_ground_truth(boxes, image_width: int, image_height: int, resize: int = 256, crop: int = 224) -> np.ndarray:
    """G x 4 float32 ground truth of the centre crop, unclipped (``dataset/cub.py``).

    `boxes`: XYXY in original pixels (G x 4); the crop offset is torchvision's CenterCrop one,
    ``round((resize - crop) / 2)`` (16 for 256 -> 224).
    """
    b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    offset = np.float32(int(round((resize - crop) / 2.0)))
    scale = np.array([resize / image_width, resize / image_height] * 2, dtype=np.float32)
    return b * scale - offset


def release_iou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """P x G float32 IoU without the +1 convention (``intersect`` + areas, as the release)."""
    p = np.asarray(pred, dtype=np.float32).reshape(-1, 4)[:, None, :]
    g = np.asarray(gt, dtype=np.float32).reshape(-1, 4)[None, :, :]
    wh = np.maximum(np.minimum(p[..., 2:], g[..., 2:]) - np.maximum(p[..., :2], g[..., :2]), np.float32(0))
    inter = wh[..., 0] * wh[..., 1]
    area_p = (p[..., 2] - p[..., 0]) * (p[..., 3] - p[..., 1])
    area_g = (g[..., 2] - g[..., 0]) * (g[..., 3] - g[..., 1])
    union = area_p + area_g - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
    return np.where(union > 0, iou, np.float32(0)).astype(np.float32)


def image_scores(scoremap: np.ndarray, gt: np.ndarray, image_size: Sequence[int],
                 thresholds: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """(boxes T x 4, best IoU T float32) of one raw map against its unclipped ground truth."""
    boxes = release_boxes(scoremap, thresholds, image_size)
    return boxes, release_iou(boxes, gt).max(axis=1)
