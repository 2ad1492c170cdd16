"""Boxes at every level by OpenCV's own contours: the reference path, and the fallback of the tree.

``findContours(RETR_TREE, CHAIN_APPROX_SIMPLE)`` on the binary image of each level, as
wsolevaluation does, with three shortcuts that change no number: only distinct binary images
are traced (``boxes._group_levels``), each on the crop holding its pixels (``offset``), and
levels that provably form one region without holes are not traced at all (``_region_bounds``).
:mod:`.tree` gives the same boxes in one pass over the pixels; this module is what it is
tested against, what runs where the extension is not built, and what breaks its ties (equal
contour areas, where OpenCV's contour order decides).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

# Contour sets larger than this get their areas and boxes by vectorised numpy instead of a
# Python loop over cv2.contourArea / cv2.boundingRect (identical numbers, see _contour_areas).
_VECTORISE_ABOVE = 8


def find_contours(binary: np.ndarray, offset: tuple[int, int] = (0, 0)) -> Sequence[np.ndarray]:
    """OpenCV contours of a uint8 binary image (``RETR_TREE``, ``CHAIN_APPROX_SIMPLE``)."""
    return cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE, offset=offset)[-2]


def _contour_areas(contours: Sequence[np.ndarray]) -> list[float]:
    """``cv2.contourArea`` of each contour.

    Beyond a few contours, a vectorised shoelace formula on the integer points: cv2 sums
    ``prev.x * p.y - prev.y * p.x`` in double over integer coordinates, which is exact, so the
    two give the same numbers and the same ties (tested).
    """
    if len(contours) <= _VECTORISE_ABOVE:
        return [cv2.contourArea(c) for c in contours]
    pts, starts, ends = _stacked(contours)
    prev = np.roll(pts, 1, axis=0)
    prev[starts] = pts[ends]  # each contour closes on itself
    cross = prev[:, 0] * pts[:, 1] - prev[:, 1] * pts[:, 0]
    return (np.abs(np.add.reduceat(cross, starts)) / 2.0).tolist()


def _contour_boxes(contours: Sequence[np.ndarray], width: int, height: int) -> list[tuple[int, int, int, int]]:
    """boundingRect-convention boxes of contours, clipped to the image."""
    if len(contours) <= _VECTORISE_ABOVE:
        rects = [cv2.boundingRect(c) for c in contours]
        return [(x, y, min(x + w, width - 1), min(y + h, height - 1)) for x, y, w, h in rects]
    pts, starts, _ = _stacked(contours)
    lo = np.minimum.reduceat(pts, starts, axis=0)
    hi = np.maximum.reduceat(pts, starts, axis=0) + 1
    boxes = np.column_stack([lo, np.minimum(hi[:, 0], width - 1), np.minimum(hi[:, 1], height - 1)])
    return [tuple(b) for b in boxes.tolist()]


def _stacked(contours: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All contour points (N x 2 int64) with each contour's first and last row index."""
    sizes = np.fromiter((len(c) for c in contours), dtype=np.int64, count=len(contours))
    ends = np.cumsum(sizes) - 1
    return np.concatenate(contours).reshape(-1, 2).astype(np.int64), ends - sizes + 1, ends


def _binary(values: np.ndarray, level) -> np.ndarray:
    if values.dtype == np.uint8:
        return cv2.threshold(values, int(level), 255, cv2.THRESH_BINARY)[1]
    return (values > level).view(np.uint8)


_SQUARE = np.ones((3, 3), np.uint8)
_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))


def _region_bounds(source: np.ndarray, values: np.ndarray) -> tuple[float, float, np.ndarray]:
    """What proves that ``values > L`` is one contour (one region, no hole) without tracing it.

    ``values`` must be a non-decreasing function of ``source`` (uint8 of the float map, or the
    map itself). Returns ``lo``, ``hi`` and the sorted distinct ``values`` of the local-maximum
    pixels (``source`` >= its 8 neighbours), from which:

    - each 8-connected region of ``values > L`` holds a local-maximum pixel (its own maximum) with
      ``values > L``, so once L reaches ``lo``, the second-highest such value counted with
      multiplicity, there is at most one region;
    - going down from a level known to be one region, a second region needs a local maximum
      with a value between the two levels: with no such value the pixels stay one region;
    - each hole (a 4-connected background component off the image border) holds a pixel off the
      border whose ``source`` is <= its 4 neighbours, with ``values <= L``: no hole below ``hi``,
      the lowest ``values`` of such pixels.

    One region without holes is exactly one OpenCV contour, whose box is the tight box of the
    pixels (tested against full tracing).
    """
    src = np.asarray(source, dtype=np.float32)  # a monotone cast: the argument still holds
    peaks = values[src >= cv2.dilate(src, _SQUARE, borderType=cv2.BORDER_REPLICATE)]
    lo = float(np.partition(peaks, peaks.size - 2)[-2]) if peaks.size >= 2 else -np.inf
    pits = (src <= cv2.erode(src, _CROSS, borderType=cv2.BORDER_REPLICATE))[1:-1, 1:-1]
    hi = float(values[1:-1, 1:-1][pits].min()) if pits.any() else np.inf
    return lo, hi, np.unique(peaks)


def _pick_largest(contours: Sequence[np.ndarray], boxes: list) -> tuple[int, int, int, int]:
    """The box of the first contour of largest ``cv2.contourArea`` (what ``max(contours, key=...)``
    picks), given every contour's box."""
    if len(boxes) == 1:
        return boxes[0]
    areas = _contour_areas(contours)
    return boxes[areas.index(max(areas))]


def largest_at(values: np.ndarray, level, extent: Sequence[int]) -> tuple[int, int, int, int]:
    """The largest-contour box of ``values > level``, traced on the crop ``extent`` (x0, y0, x1, y1
    inclusive) that holds every pixel above the level."""
    height, width = values.shape
    x0, y0, xl, yl = (int(v) for v in extent)
    contours = find_contours(_binary(values[y0:yl + 1, x0:xl + 1], level), offset=(x0, y0))
    return _pick_largest(contours, _contour_boxes(contours, width, height))


def trace_levels(values: np.ndarray, reps: np.ndarray, ext: np.ndarray, present: np.ndarray, tight: np.ndarray,
                 want_largest: bool, want_multi: bool, source: np.ndarray | None = None) -> tuple:
    """Largest-contour boxes (n x 4, or None) and every contour's box with its level's index (K x 4, K),
    for the sorted representative levels ``reps``.

    ``ext`` / ``present`` / ``tight``: each level's pixel extents, whether it has a pixel, and its
    tight box (``boxes._extents``); a level without pixels keeps ``tight`` (0, 0, 0, 0), and so does
    a level proven to be one region (every mode agrees there). Levels are traced from the top down.
    """
    height, width = values.shape
    n = len(reps)
    lo, hi, peak_values = _region_bounds(values if source is None else source, values)
    peaks_above = (len(peak_values) - np.searchsorted(peak_values, reps, side="right")).tolist()
    largest = tight.copy()
    traced: list[int] = []
    multi: list[tuple] = []
    owner: list[int] = []
    anchor = -1  # peaks_above of the last level known to be one region (-1: none)
    reps_l, present_l = reps.tolist(), present.tolist()  # Python scalars: cheaper in this loop
    for u in range(n - 1, -1, -1):
        if not present_l[u]:
            continue
        level = reps_l[u]
        if level < hi and (level >= lo or peaks_above[u] == anchor):
            anchor = peaks_above[u]
            continue
        x0, y0, xl, yl = ext[u].tolist()
        contours = find_contours(_binary(values[y0:yl + 1, x0:xl + 1], level), offset=(x0, y0))
        anchor = peaks_above[u] if len(contours) == 1 else -1
        traced.append(u)
        boxes = _contour_boxes(contours, width, height)
        if want_largest:
            largest[u] = _pick_largest(contours, boxes)
        if want_multi:
            multi.extend(boxes)
            owner.extend([u] * len(boxes))
    single = np.setdiff1d(np.arange(n), traced)
    boxes = np.concatenate([tight[single], np.array(multi, dtype=np.int64).reshape(-1, 4)])
    owners = np.concatenate([single, np.array(owner, dtype=np.int64)])
    return (largest if want_largest else None), boxes, owners
