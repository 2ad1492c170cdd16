"""The component-tree sweep against OpenCV's own contours, level by level, on thousands of maps.

The reference is wsolevaluation's rule written out: threshold the whole map, findContours
(RETR_TREE, CHAIN_APPROX_SIMPLE), boundingRect of every contour (multi), and the box of the first
contour of largest contourArea (largest). The tree must give exactly the same boxes and the same
number of boxes at every level.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ornet.localization import boxes as B
from ornet.localization import tree
from ornet.localization.boxes import map_levels, sweep_boxes


def test_extension_is_built():
    assert tree.AVAILABLE, "ornet.localization._ctree is not built: reinstall with `pip install -e .` (needs a C compiler)"


def opencv_levels(values: np.ndarray, reps) -> tuple[list, list]:
    """Per level: (largest box or None, its area, the runner-up area) and the sorted boxes of every contour."""
    h, w = values.shape
    largest, multi = [], []
    for level in reps:
        binary = (values > level).astype(np.uint8)
        contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[-2]
        boxes = []
        for c in contours:
            x, y, bw, bh = cv2.boundingRect(c)
            boxes.append((x, y, min(x + bw, w - 1), min(y + bh, h - 1)))
        multi.append(sorted(boxes))
        if not contours:
            largest.append(None)
            continue
        areas = [cv2.contourArea(c) for c in contours]
        largest.append(boxes[areas.index(max(areas))])
    return largest, multi


def random_map(rng: np.random.Generator, kind: str) -> np.ndarray:
    """A small uint8 map of one kind (sides 1..40, 1..24 for the busy kinds, so one-pixel, one-row
    and one-column maps occur)."""
    h, w = (int(v) for v in rng.integers(1, 25 if kind in ("noise", "checker", "rings") else 41, 2))
    if kind == "blobs":  # smooth hills, touching and merging as the level falls
        yy, xx = np.mgrid[0:h, 0:w]
        m = np.zeros((h, w))
        for _ in range(rng.integers(1, 6)):
            cy, cx, s = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(1, 8)
            m += rng.uniform(0.2, 1) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
        m += rng.uniform(0, 0.2) * rng.random((h, w))  # noise: many small regions and holes
    elif kind == "noise":  # every pixel its own value: speckle, diagonal touches, holes
        m = rng.random((h, w))
    elif kind == "levels":  # few values: plateaus, ties in area, many equal values
        m = rng.integers(0, rng.integers(2, 5), (h, w)).astype(np.float64)
    elif kind == "rings":  # nested rings: holes inside regions inside holes
        yy, xx = np.mgrid[0:h, 0:w]
        r = np.hypot(yy - rng.uniform(0, h), xx - rng.uniform(0, w))
        m = np.cos(r * rng.uniform(0.5, 2)) + rng.uniform(0, 0.3) * rng.random((h, w))
    elif kind == "lines":  # one-pixel-wide strokes: contours of zero area, self-touching outlines
        m = np.zeros((h, w))
        for _ in range(rng.integers(1, 8)):
            if rng.random() < 0.5:
                m[rng.integers(0, h), rng.integers(0, w):rng.integers(0, w + 1)] = rng.random()
            else:
                m[rng.integers(0, h):rng.integers(0, h + 1), rng.integers(0, w)] = rng.random()
        m = np.maximum(m, (rng.random((h, w)) < 0.05) * rng.random())
    elif kind == "checker":  # diagonal-only contacts everywhere
        m = ((np.add.outer(np.arange(h), np.arange(w)) % 2) * rng.random((h, w))
             + (rng.random((h, w)) < 0.1) * rng.random((h, w)))
    elif kind == "shapes":  # a few random-walk shapes of similar size: compact ones against thin
        m = np.zeros((h, w))  # ones, where contour area and pixel count disagree on the largest
        for _ in range(rng.integers(2, 6)):
            y, x, value = int(rng.integers(0, h)), int(rng.integers(0, w)), rng.integers(1, 3)
            for _ in range(rng.integers(3, 15)):
                m[y, x] = value
                y = int(np.clip(y + rng.integers(-1, 2), 0, h - 1))
                x = int(np.clip(x + rng.integers(-1, 2), 0, w - 1))
    else:  # "flat": all-equal maps
        m = np.full((h, w), rng.random())
    m = m - m.min()
    m = m / m.max() if m.max() > 0 else m
    return (m * 255).astype(np.uint8)


KINDS = ("blobs", "noise", "levels", "rings", "lines", "checker", "shapes", "flat")


def check_map(values: np.ndarray, reps: np.ndarray) -> int:
    """Compares the tree with OpenCV at every level of ``reps``; returns the number of tied levels."""
    ref_largest, ref_multi = opencv_levels(values, reps)
    largest, multi = tree.sweep_tree(values, reps, True, True)
    for i, level in enumerate(reps.tolist()):
        rows = multi[multi[:, 0] == i, 1:]
        assert sorted(map(tuple, rows.tolist())) == ref_multi[i], f"multi boxes at level {level}"
        flag = int(largest[i, 4])
        assert (flag != 0) == (ref_largest[i] is not None), f"flag {flag} at level {level}"
        if flag == 1:
            assert tuple(largest[i, :4].tolist()) == ref_largest[i], f"largest box at level {level}"
    # what sweep_boxes makes of it, ties included (traced by OpenCV), equals the reference
    out = sweep_boxes(values, reps, ("largest", "multi"))
    inverse, boxes, _ = out["largest"]
    for i in range(len(reps)):
        assert tuple(boxes[inverse[i]].tolist()) == (ref_largest[i] or (0, 0, 0, 0))
    return int((largest[:, 4] == 2).sum())


@pytest.mark.parametrize("kind", KINDS)
def test_tree_equals_opencv_at_every_level(kind):
    rng = np.random.default_rng(KINDS.index(kind))
    ties = levels = 0
    for _ in range(300):
        values = random_map(rng, kind)
        reps = np.unique(values)[:-1].astype(np.int64)  # every distinct binary image but the empty one
        if rng.random() < 0.3:  # and some levels above the maximum (no pixel: box 0, no contour)
            reps = np.concatenate([reps, [int(values.max()), 255]])
            reps = np.unique(reps)
        ties += check_map(values, reps)
        levels += len(reps)
    if kind in ("levels", "noise", "lines"):
        assert ties > 0  # ties do occur, and are resolved by OpenCV
    assert levels > 300 or kind == "flat"


def test_largest_is_by_contour_area_not_pixel_count():
    """The largest region is the one of largest contourArea (a 2 x 2 window inside counts 1, one
    with three pixels inside 1/2), not the one with most pixels; equal areas are ties."""
    m = np.zeros((12, 16), np.uint8)
    m[1:4, 1:4] = 200  # 3 x 3 square: 9 pixels, area 4 (four whole windows)
    for i in range(5):  # staircase of width 2: 10 pixels, area 4 (eight half windows)
        m[6 + i, 6 + i:8 + i] = 200
    reps = np.array([0, 100])
    contours = cv2.findContours((m > 0).astype(np.uint8), cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[-2]
    assert sorted(cv2.contourArea(c) for c in contours) == [4.0, 4.0]
    largest, _ = tree.sweep_tree(m, reps, True, False)
    assert largest[:, 4].tolist() == [2, 2]  # a tie, for OpenCV's contour order to break
    check_map(m, reps)
    m[10, 10:12] = 0  # the staircase loses a row: 8 pixels, area 3 (six half windows)
    m[11, 0:12] = 200  # a 12-pixel line: area 0
    largest, _ = tree.sweep_tree(m, reps, True, False)
    assert largest.tolist() == [[1, 1, 4, 4, 1]] * 2  # the square
    check_map(m, reps)


def test_float_maps_and_absolute_levels():
    """relative=False: the float map itself against the thresholds (``map > t``)."""
    rng = np.random.default_rng(7)
    thresholds = np.arange(0, 1, 0.05)
    for _ in range(100):
        m = random_map(rng, "blobs").astype(np.float64) / 255
        values, levels = map_levels(m, thresholds, relative=False)
        reps = np.unique(levels)
        check_map(values, reps)


def test_realistic_map_with_many_regions():
    """A 224 x 224 CAM-like map (blobs, distractors, noise, speckle) at wsolevaluation's 100 thresholds."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:224, 0:224]
    m = np.zeros((224, 224))
    for _ in range(5):
        cy, cx, s = rng.uniform(0, 224, 3) / [1, 1, 8]
        m += rng.uniform(0.2, 1) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (s + 5) ** 2))
    m += 0.05 * cv2.resize(rng.standard_normal((14, 14)), (224, 224), interpolation=cv2.INTER_CUBIC)
    m[rng.random((224, 224)) < 0.002] += 0.3
    m = (m - m.min()) / (m.max() - m.min())
    values, levels = map_levels(m, np.arange(0, 1, 0.01))
    reps, _ = B._group_levels(values, levels)
    check_map(values, reps)
    counts = np.bincount(tree.sweep_tree(values, reps, False, True)[1][:, 0], minlength=len(reps))
    assert counts.max() >= 10  # the map is cluttered: many contours at some levels


def test_band_image_and_limits():
    values = np.array([[0, 5, 9], [10, 255, 3]], dtype=np.uint8)
    reps = np.array([4, 9, 200])
    assert tree.band_image(values, reps).tolist() == [[0, 1, 1], [2, 3, 0]]  # above level i iff band > i
    assert tree.band_image(values.astype(np.float64), reps.astype(np.float64)).tolist() == [[0, 1, 1], [2, 3, 0]]
    with pytest.raises(ValueError, match="band"):
        tree._ctree.sweep(np.zeros(5, np.uint16).tobytes(), 2, 3, 4, True, True)  # wrong size
    with pytest.raises(ValueError, match="<= n"):
        tree._ctree.sweep(np.full(6, 9, np.uint16).tobytes(), 2, 3, 4, True, True)  # band above n
