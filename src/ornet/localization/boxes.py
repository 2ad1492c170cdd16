"""Boxes from activation maps, and IoU, in wsolevaluation's conventions (numpy + OpenCV, no torch).

Box convention (METHOD.md, "Evaluation protocol and metrics"): a box is ``x0, y0, x1, y1`` in
integer pixels and counts *inclusively*: its area is ``(x1 - x0 + 1) * (y1 - y0 + 1)``.

- Ground-truth boxes given as float XYXY pixels become integers in one place,
  :func:`truncate_boxes` (``int()`` of each coordinate, as wsolevaluation's ``resize_bbox``).
- A predicted region's box is OpenCV's ``boundingRect`` ``x, y, w, h`` written
  ``x, y, x + w, y + h`` with ``x1, y1`` clipped to ``W - 1, H - 1``. (``x + w`` is one past the
  region's last column; wsolevaluation keeps that quirk and so do we, for parity.)
- A threshold with no pixel above it gives the box ``0, 0, 0, 0``.

Thresholding rule. A map is evaluated as ``values`` compared with ``levels``; a pixel survives
when ``value > level`` (``cv2.THRESH_BINARY``). :func:`map_levels` builds both:

- relative (wsolevaluation): ``values = uint8(map * 255)`` (truncated) and
  ``level = int(t * max(values))``: the threshold is a fraction of the map's maximum;
- absolute (the ORNet release): ``values = map`` and ``level = t``: ``map > t``.

Box modes (``MODES``): ``all`` = tight box of every surviving pixel; ``largest`` = box of the
OpenCV contour of largest ``cv2.contourArea`` (wsolevaluation MaxBoxAcc); ``multi`` = the box of
every contour (``RETR_TREE``, so holes count too), the best IoU counts (MaxBoxAccV2).

How the contours are found: :mod:`.tree` (all levels in one pass, a C extension) or
:mod:`.contours` (OpenCV level by level, the reference); :func:`sweep_boxes` picks.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence

import cv2
import numpy as np

from . import contours, tree
from .contours import find_contours  # noqa: F401  (public before contours.py existed)

MODES: tuple[str, ...] = ("all", "largest", "multi")
EMPTY_BOX = np.zeros(4, dtype=np.int64)

# From this many distinct levels on, the component tree (one pass over the pixels) is cheaper than
# tracing OpenCV contours level by level (benchmarks/results/evaluate_maps.md).
TREE_FROM_LEVELS = 32


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """IoU matrix (A x B, float64) of inclusive-pixel integer boxes ``x0, y0, x1, y1``.

    Areas and intersections count pixels (+1 on widths and heights); a degenerate union (never
    the case for valid boxes) gives IoU 0, as in wsolevaluation.
    """
    a = np.asarray(boxes_a, dtype=np.int64).reshape(-1, 4)
    b = np.asarray(boxes_b, dtype=np.int64).reshape(-1, 4)
    ix = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + 1
    iy = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + 1
    inter = np.maximum(0, ix) * np.maximum(0, iy)
    area_a = (a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1)
    area_b = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    union = area_a[:, None] + area_b[None, :] - inter
    degenerate = union <= 0
    iou = inter / np.where(degenerate, 1, union)
    iou[degenerate] = 0.0
    return iou


def truncate_boxes(boxes) -> np.ndarray:
    """Float XYXY pixel boxes (N x 4) -> int64 inclusive-pixel boxes, by ``int()`` truncation.

    The one place where ground-truth boxes become the integer convention. Truncation (not
    rounding) is what wsolevaluation's ``resize_bbox`` does after scaling a box to 224 x 224, so a
    box scaled in float by the data pipeline and truncated here gives wsolevaluation's box.
    Raises ValueError on a non-finite or negative coordinate or an inverted box.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not np.isfinite(b).all():
        raise ValueError("box coordinates must be finite")
    out = np.trunc(b).astype(np.int64)
    if (out < 0).any():
        raise ValueError(f"box coordinates must be non-negative, got {b[(out < 0).any(1)][0].tolist()}")
    if (out[:, 2] < out[:, 0]).any() or (out[:, 3] < out[:, 1]).any():
        raise ValueError("boxes must satisfy x0 <= x1 and y0 <= y1 (XYXY convention)")
    return out


SCALINGS: tuple[str, ...] = ("pixels", "cover", "wsolevaluation")


def scale_boxes(boxes, from_size: Sequence[float], to_size: Sequence[float], rule: str = "pixels") -> np.ndarray:
    """The package's one box rescaling: ``N x 4`` XYXY boxes (or one box) on an image of
    ``from_size`` -> on that image resized to ``to_size`` (sizes (width, height); up or down).
    Boxes are inclusive pixels: ``x0 .. x1`` are the columns covered, ``[x0, x1 + 1)`` of the
    continuous image. ``rule`` says how the scaled box is written (``s = new / old`` per axis):
    - ``pixels`` (float64, for drawing): ``x0 * new / old`` and ``(x1 + 1) * new / old - 1``,
      neither rounded nor clipped (`viz.draw` rounds when it draws);
    - ``cover`` (int64, predictions back to the photo): the target pixels the scaled span
      touches, ``floor(x0 * s)`` and ``ceil((x1 + 1) * s) - 1`` (1e-9 of slack: an exact edge
      does not spill over), clipped to the target image with ``x1 >= x0``; inputs truncated to int;
    - ``wsolevaluation`` (int64, ground-truth boxes): each coordinate as a point, ``c * new / old``
      truncated by `truncate_boxes` (wsolevaluation's ``resize_bbox``; not clipped).
    Each rule keeps its callers' arithmetic; e.g. (1, 2, 4, 3) from (10, 20) to (35, 10) gives
    (3.5, 1, 16.5, 1), [3, 1, 17, 1] and [3, 1, 14, 1].
    """
    if rule not in SCALINGS:
        raise ValueError(f"unknown box scaling {rule!r}; rules: {', '.join(SCALINGS)}")
    (w, h), (new_w, new_h) = from_size, to_size
    if rule == "cover":  # s computed first, as `inference` always did
        b = np.asarray(boxes).reshape(-1, 4).astype(np.int64)
        sx, sy = int(new_w) / int(w), int(new_h) / int(h)
        x0 = np.minimum(np.maximum(np.floor(b[:, 0] * sx), 0), new_w - 1)
        y0 = np.minimum(np.maximum(np.floor(b[:, 1] * sy), 0), new_h - 1)
        x1 = np.minimum(np.maximum(np.ceil((b[:, 2] + 1) * sx - 1e-9) - 1, x0), new_w - 1)
        y1 = np.minimum(np.maximum(np.ceil((b[:, 3] + 1) * sy - 1e-9) - 1, y0), new_h - 1)
        return np.column_stack([x0, y0, x1, y1]).astype(np.int64)
    b, end = np.asarray(boxes, dtype=np.float64).reshape(-1, 4), 1 if rule == "pixels" else 0
    (w, h), (new_w, new_h) = (float(w), float(h)), (float(new_w), float(new_h))  # c * new / old, in that order
    out = np.column_stack([b[:, 0] * new_w / w, b[:, 1] * new_h / h,  # pixels: the span's end x1 + 1, minus 1
                           (b[:, 2] + end) * new_w / w - end, (b[:, 3] + end) * new_h / h - end])
    return out if rule == "pixels" else truncate_boxes(out)


def cam_thresholds(interval: float) -> np.ndarray:
    """The swept map thresholds: ``numpy.arange(0, 1, interval)`` exactly as NumPy computes it."""
    interval = float(interval)
    if not 0.0 < interval < 1.0:
        raise ValueError(f"threshold interval must be in (0, 1), got {interval}")
    return np.arange(0, 1, interval)


def scoremap_to_uint8(scoremap: np.ndarray) -> np.ndarray:
    """``uint8(map * 255)`` with truncation, computed in float64 (wsolevaluation's conversion)."""
    return (np.asarray(scoremap, dtype=np.float64) * 255).astype(np.uint8)


def map_levels(scoremap: np.ndarray, thresholds, relative: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(values, levels)`` for a map in [0, 1]: a pixel survives threshold i iff ``values > levels[i]``.

    relative=True is wsolevaluation's rule (uint8 map, ``level = int(t * max)``); relative=False
    compares the float map with ``t`` itself.
    """
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if relative:
        values = scoremap_to_uint8(scoremap)
        return values, (thresholds * int(values.max())).astype(np.int64)
    return np.asarray(scoremap, dtype=np.float64), thresholds


def _extents(values: np.ndarray, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Extents of the surviving pixels at each level: (U x 4) first column, first row, last
    column, last row (inclusive), and whether any pixel survives (U,).

    The first row with a pixel above L is where the running maximum of the row maxima first
    exceeds L: a binary search per level instead of a pass over the image.
    """
    def first_and_last(maxima: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        first = np.searchsorted(np.maximum.accumulate(maxima), levels, side="right")
        last = len(maxima) - 1 - np.searchsorted(np.maximum.accumulate(maxima[::-1]), levels, side="right")
        return first, last

    y0, y1 = first_and_last(values.max(axis=1))
    x0, x1 = first_and_last(values.max(axis=0))
    return np.column_stack([x0, y0, x1, y1]).astype(np.int64), y0 < values.shape[0]


def _hist256(values: np.ndarray) -> np.ndarray:
    """Counts of each uint8 value (int64, 256)."""
    if values.size < 2**24:  # float32 histogram counts are exact below 2**24 pixels
        return cv2.calcHist([np.ascontiguousarray(values)], [0], None, [256], [0, 256]).ravel().astype(np.int64)
    return np.bincount(values.ravel(), minlength=256)


def _group_levels(values: np.ndarray, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Representative levels and, per level, the index of its representative.

    Two levels leave the same pixels (hence the same contours and boxes) when no pixel value lies
    between them; on a uint8 map that is read off the value histogram, so only distinct binary
    images are traced. Float maps are grouped by equal level only.
    """
    if values.dtype == np.uint8:
        if levels.size and (levels.min() < 0 or levels.max() > 255):
            raise ValueError("levels of a uint8 map must be in [0, 255]")
        at_or_below = np.cumsum(_hist256(values))
        _, first, inverse = np.unique(at_or_below[levels], return_index=True, return_inverse=True)
        return levels[first], inverse.reshape(-1)
    reps, inverse = np.unique(levels, return_inverse=True)
    return reps, inverse.reshape(-1)


def level_boxes(values: np.ndarray, level, mode: str = "largest") -> np.ndarray:
    """Boxes (K x 4 int64) of one thresholded map (pixels with ``values > level``) in ``mode``.

    ``all`` and ``largest`` give one box, ``multi`` one per contour; no pixel -> ``[[0,0,0,0]]``.
    """
    _, boxes, _ = sweep_boxes(values, np.asarray([level]), (mode,))[mode]
    return boxes


def boxes_from_map(scoremap: np.ndarray, threshold: float, mode: str = "largest", relative: bool = True) -> np.ndarray:
    """Boxes of a [0, 1] map at one threshold (see :func:`map_levels` for ``relative``)."""
    values, levels = map_levels(scoremap, [threshold], relative)
    return level_boxes(values, levels[0], mode)


def sweep_boxes(values: np.ndarray, levels: np.ndarray, modes: Sequence[str] = MODES,
                source: np.ndarray | None = None) -> dict[str, tuple]:
    """Boxes of ``values > level`` for every level, per mode.

    Returns ``{mode: (inverse, boxes, owner)}``: ``boxes`` (K x 4) belong to representative level
    ``owner[k]`` (sorted, every representative owns at least one box) and level ``i`` uses
    representative ``inverse[i]``; two levels with no pixel value between them leave the same
    pixels and share a representative. With ``TREE_FROM_LEVELS`` representatives or more, the
    component tree (:mod:`.tree`, one pass over the pixels) gives every level's contour boxes,
    and OpenCV only breaks ties for the largest area; with fewer, or where the extension is not
    built, OpenCV traces each representative level on the crop holding its pixels
    (:mod:`.contours`; ``source``, the float map ``values`` came from, lets it skip levels that
    are provably one region). Both give wsolevaluation's boxes (tests/test_tree.py).
    """
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise ValueError(f"unknown box mode {unknown[0]!r}; modes: {', '.join(MODES)}")
    values = np.asarray(values)
    if values.ndim != 2 or values.size == 0:
        raise ValueError(f"a map must be a non-empty 2-D array, got shape {values.shape}")
    height, width = values.shape
    levels = np.asarray(levels).reshape(-1)
    reps, inverse = _group_levels(values, levels)
    n = len(reps)
    want_largest, want_multi = "largest" in modes, "multi" in modes
    use_tree = (want_largest or want_multi) and n >= TREE_FROM_LEVELS and tree.supports(values, reps)
    out: dict[str, tuple] = {}
    if "all" in modes or not use_tree:
        ext, present = _extents(values, reps)
        # The `all` box: tight extents in the boundingRect convention (x1 = last column + 1, clipped).
        tight = np.column_stack([ext[:, 0], ext[:, 1], np.minimum(ext[:, 2] + 1, width - 1),
                                 np.minimum(ext[:, 3] + 1, height - 1)])
        tight[~present] = 0
        if "all" in modes:
            out["all"] = (inverse, tight, np.arange(n))
    if not (want_largest or want_multi):
        return out
    if use_tree:
        largest, boxes, owners = _from_tree(values, reps, want_largest, want_multi)
    else:
        if n >= TREE_FROM_LEVELS and not tree.AVAILABLE:
            _warn_no_tree()
        largest, boxes, owners = contours.trace_levels(values, reps, ext, present, tight, want_largest,
                                                       want_multi, source)
    if want_largest:
        out["largest"] = (inverse, largest, np.arange(n))
    if want_multi:
        order = np.argsort(owners, kind="stable")
        out["multi"] = (inverse, boxes[order], owners[order])
    return out


@functools.cache
def _warn_no_tree() -> None:
    warnings.warn("ornet.localization._ctree is not built (no C compiler at install?): box metrics use "
                  "OpenCV threshold by threshold, with the same numbers but several times slower", RuntimeWarning,
                  stacklevel=3)


def _from_tree(values: np.ndarray, reps: np.ndarray, want_largest: bool, want_multi: bool) -> tuple:
    """What ``contours.trace_levels`` returns, from the component tree; levels where regions tie
    for the largest contour area are traced by OpenCV, whose contour order breaks the tie."""
    largest_rows, multi_rows = tree.sweep_tree(values, reps, want_largest, want_multi)
    largest = boxes = owners = None
    if want_largest:
        largest = largest_rows[:, :4].astype(np.int64)
        for u in np.flatnonzero(largest_rows[:, 4] == 2).tolist():
            above = values > reps[u]  # a tie: rare, so the crop is found here rather than for every level
            rows, cols = np.flatnonzero(above.any(1)), np.flatnonzero(above.any(0))
            largest[u] = contours.largest_at(values, reps[u], (cols[0], rows[0], cols[-1], rows[-1]))
    if want_multi:
        empty = np.flatnonzero(reps >= values.max())  # no pixel above the level: box 0, 0, 0, 0
        boxes = np.concatenate([np.zeros((len(empty), 4), np.int64), multi_rows[:, 1:].astype(np.int64)])
        owners = np.concatenate([empty, multi_rows[:, 0].astype(np.int64)])
    return largest, boxes, owners


def sweep_best_iou(values: np.ndarray, levels, gt_boxes, modes: Sequence[str] = MODES,
                   source: np.ndarray | None = None) -> np.ndarray:
    """Best IoU with any ground-truth box at every level, per mode: (len(modes), len(levels)).

    ``gt_boxes`` are inclusive-pixel integer boxes (at least one). In ``multi`` mode the best pair
    over the level's boxes and the ground truth counts (MaxBoxAccV2); otherwise the level's one
    box against its best-matching ground-truth box.
    """
    gt = np.asarray(gt_boxes, dtype=np.int64).reshape(-1, 4)
    if len(gt) == 0:
        raise ValueError("an image needs at least one ground-truth box")
    swept = sweep_boxes(values, levels, modes, source)
    out = np.empty((len(modes), np.asarray(levels).size), dtype=np.float64)
    for i, mode in enumerate(modes):
        inverse, boxes, owner = swept[mode]
        best = box_iou(boxes, gt).max(1)
        starts = np.flatnonzero(np.concatenate(([True], owner[1:] != owner[:-1])))
        out[i] = np.maximum.reduceat(best, starts)[inverse]
    return out
