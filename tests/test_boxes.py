"""Boxes from maps and IoU: wsolevaluation's golden values and a plain per-threshold reference."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ornet.localization import boxes as B
from ornet.localization import contours as C
from ornet.localization import tree
from ornet.localization.boxes import (
    MODES,
    box_iou,
    boxes_from_map,
    cam_thresholds,
    level_boxes,
    map_levels,
    scale_boxes,
    scoremap_to_uint8,
    sweep_best_iou,
    sweep_boxes,
    truncate_boxes,
)

UNIMODAL = np.array([[0.0, 0.0, 0.0, 0.0, 0.0],
                     [0.0, 0.4, 0.4, 0.4, 0.6],
                     [0.0, 0.4, 1.0, 0.8, 0.6],
                     [0.0, 0.4, 0.4, 0.4, 0.6]])
MULTIMODAL = np.array([[0.4, 0.0, 0.2, 0.2, 0.2],
                       [0.4, 0.4, 0.0, 0.4, 0.0],
                       [0.0, 0.0, 0.0, 0.4, 0.0],
                       [1.0, 0.6, 0.8, 0.2, 0.2]])


# ---- golden values (wsolevaluation's evaluation_test.py) --------------------------------------

def test_iou_golden_value():
    assert box_iou([[1, 2, 5, 6]], [[3, 1, 4, 5]])[0, 0] == pytest.approx(8 / 27, abs=1e-12)


def test_iou_shape_identity_disjoint_and_zero_boxes():
    a = np.array([[1, 1, 3, 3], [4, 4, 5, 5]])
    assert (box_iou(a, a) == np.eye(2)).all()
    assert box_iou(np.zeros((3, 4)), np.zeros((5, 4))).shape == (3, 5)
    assert (box_iou(np.zeros((3, 4)), np.zeros((5, 4))) == 1.0).all()  # one pixel each
    assert box_iou([[0, 0, 1, 1]], [[5, 5, 6, 6]])[0, 0] == 0.0


def test_scale_boxes_wsolevaluation_golden_value_sizes_are_width_height():
    assert scale_boxes((1, 2, 4, 3), (10, 20), (35, 10), "wsolevaluation").tolist() == [[3, 1, 14, 1]]
    assert scale_boxes((1, 2, 1, 2), (3, 3), (3, 3), "wsolevaluation").tolist() == [[1, 2, 1, 2]]


def test_scale_boxes_each_rule_by_hand_up_and_down():
    """Inclusive pixels: a box covers [x0, x1 + 1); hand-computed values for the three rules."""
    up = [[2, 1, 5, 3]]  # on 8 x 4 -> 16 x 12: x2, y3
    assert scale_boxes(up, (8, 4), (16, 12), "pixels").tolist() == [[4.0, 3.0, 11.0, 11.0]]
    assert scale_boxes(up, (8, 4), (16, 12), "cover").tolist() == [[4, 3, 11, 11]]
    assert scale_boxes(up, (8, 4), (16, 12), "wsolevaluation").tolist() == [[4, 3, 10, 9]]
    down = [[4, 3, 11, 11]]  # on 16 x 16 -> 8 x 4: x1/2, y1/4
    assert scale_boxes(down, (16, 16), (8, 4), "pixels").tolist() == [[2.0, 0.75, 5.0, 2.0]]
    assert scale_boxes(down, (16, 16), (8, 4), "cover").tolist() == [[2, 0, 5, 2]]
    assert scale_boxes(down, (16, 16), (8, 4), "wsolevaluation").tolist() == [[2, 0, 5, 2]]
    mixed = (1, 2, 4, 3)  # 10 x 20 -> 35 x 10 (the docstring's example)
    assert scale_boxes(mixed, (10, 20), (35, 10), "pixels").tolist() == [[3.5, 1.0, 16.5, 1.0]]
    assert scale_boxes(mixed, (10, 20), (35, 10), "cover").tolist() == [[3, 1, 17, 1]]
    # cover clips to the target image; pixels and wsolevaluation do not clip
    assert scale_boxes([0, 0, 15, 15], (10, 10), (20, 20), "cover").tolist() == [[0, 0, 19, 19]]
    assert scale_boxes([0, 0, 15, 15], (10, 10), (20, 20), "pixels").tolist() == [[0.0, 0.0, 31.0, 31.0]]
    assert scale_boxes([], (10, 10), (20, 20), "cover").shape == (0, 4)
    assert scale_boxes([[0, 0, 9, 9]], (10, 10), (20, 20), "cover").dtype == np.int64
    with pytest.raises(ValueError, match="unknown box scaling 'nearest'"):
        scale_boxes(up, (8, 4), (16, 12), "nearest")


@pytest.mark.parametrize("scoremap, expected", [
    (UNIMODAL, [[1, 1, 4, 3], [1, 1, 4, 3], [2, 1, 4, 3], [2, 2, 4, 3], [2, 2, 3, 3]]),
    (MULTIMODAL, [[0, 0, 4, 3], [0, 0, 2, 2], [0, 3, 3, 3], [2, 3, 3, 3], [0, 3, 1, 3]]),
    (np.zeros((3, 3)), [[0, 0, 0, 0]] * 5),
])
def test_largest_contour_boxes_golden(scoremap, expected, path):
    thresholds = np.arange(0, 1, 0.2)
    assert [boxes_from_map(scoremap, t).tolist()[0] for t in thresholds] == expected
    inverse, boxes, _ = sweep_boxes(*map_levels(scoremap, thresholds), ("largest",))["largest"]
    assert boxes[inverse].tolist() == expected


def test_thresholds_are_numpy_arange():
    for step in (0.01, 0.001, 0.05, 0.2, 0.3):
        t = cam_thresholds(step)
        assert t.dtype == np.float64 and np.array_equal(t, np.arange(0, 1, step))
    for bad in (0, 1, -0.1, 2):
        with pytest.raises(ValueError):
            cam_thresholds(bad)


def test_uint8_conversion_truncates_in_float64():
    m = np.array([[0.0, 1 / 255 - 1e-12, 0.5, 1.0]], dtype=np.float64)
    assert scoremap_to_uint8(m).tolist() == [[0, 0, 127, 255]]
    values, levels = map_levels(np.array([[0.0, 0.5]]), [0.0, 0.5, 0.99])
    assert values.max() == 127 and levels.tolist() == [0, 63, 125]  # int(t * max), max of the uint8 map
    values, levels = map_levels(np.array([[0.0, 0.5]]), [0.25], relative=False)
    assert values.dtype == np.float64 and levels.tolist() == [0.25]


def test_truncate_boxes_is_the_one_conversion():
    assert truncate_boxes([[1.9, 2.2, 10.99, 5.0]]).tolist() == [[1, 2, 10, 5]]
    assert truncate_boxes(np.zeros((0, 4))).shape == (0, 4)
    for bad in ([[-1.0, 0, 2, 2]], [[3.0, 0, 2, 2]], [[0, 0, np.nan, 2]]):
        with pytest.raises(ValueError):
            truncate_boxes(bad)


def test_modes_on_two_regions(path):
    m = np.zeros((20, 30))
    m[2:6, 3:8] = 1.0    # 4 x 5 region
    m[10:18, 12:28] = 0.8  # the larger region
    assert level_boxes(*map_levels(m, [0.5]), "all") .tolist() == [[3, 2, 28, 18]]
    assert boxes_from_map(m, 0.5, "largest").tolist() == [[12, 10, 28, 18]]
    assert sorted(boxes_from_map(m, 0.5, "multi").tolist()) == [[3, 2, 8, 6], [12, 10, 28, 18]]
    assert boxes_from_map(m, 0.9, "multi").tolist() == [[3, 2, 8, 6]]
    with pytest.raises(ValueError, match="unknown box mode"):
        boxes_from_map(m, 0.5, "biggest")


# ---- a plain reference, written from the definitions ------------------------------------------

def reference_best_iou(scoremap, thresholds, gt, mode, relative=True):
    """Per threshold: full-image threshold, findContours, pick boxes, best IoU (wsolevaluation)."""
    h, w = scoremap.shape
    if relative:
        image = (scoremap.astype(np.float64) * 255).astype(np.uint8)
    out = []
    for t in thresholds:
        if relative:
            _, binary = cv2.threshold(image, int(t * np.max(image)), 255, cv2.THRESH_BINARY)
        else:
            binary = (scoremap > t).astype(np.uint8)
        contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[-2]
        if mode == "all":
            ys, xs = np.nonzero(binary)
            boxes = [[0, 0, 0, 0]] if len(xs) == 0 else [
                [xs.min(), ys.min(), min(xs.max() + 1, w - 1), min(ys.max() + 1, h - 1)]]
        elif len(contours) == 0:
            boxes = [[0, 0, 0, 0]]
        else:
            if mode == "largest":
                contours = [max(contours, key=cv2.contourArea)]
            boxes = []
            for c in contours:
                x, y, bw, bh = cv2.boundingRect(c)
                boxes.append([x, y, min(x + bw, w - 1), min(y + bh, h - 1)])
        b, g = np.array(boxes)[:, None, :], np.asarray(gt)[None, :, :]
        iw = np.minimum(b[..., 2], g[..., 2]) - np.maximum(b[..., 0], g[..., 0]) + 1
        ih = np.minimum(b[..., 3], g[..., 3]) - np.maximum(b[..., 1], g[..., 1]) + 1
        inter = iw.clip(0) * ih.clip(0)
        area = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
        union = area + (g[..., 2] - g[..., 0] + 1) * (g[..., 3] - g[..., 1] + 1) - inter
        out.append((inter / union).max())
    return np.array(out)


KINDS = ("smooth", "noisy", "rings", "levels", "speckle")


def random_map(rng: np.random.Generator, kind: str, size=(48, 64)) -> np.ndarray:
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    m = np.zeros(size)
    for _ in range(rng.integers(1, 5)):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        s = rng.uniform(2, 15)
        m += rng.uniform(0.2, 1) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
    if kind == "noisy":
        m += rng.uniform(0, 0.3) * rng.random(size)
    elif kind == "rings":  # holes: ring-shaped regions
        r = np.hypot(yy - h / 2, xx - w / 2)
        m += np.exp(-((r - rng.uniform(5, 15)) ** 2) / 8)
    elif kind == "levels":  # few distinct values, large plateaus (saturated maps)
        m = np.round(m / m.max() * rng.integers(1, 4)) if m.max() > 0 else m
    elif kind == "speckle":  # hundreds of tiny regions: ties in contour area, vectorised paths
        m = (rng.random(size) > rng.uniform(0.5, 0.95)) * rng.random(size)
        m[: h // 2] = 0
    m = m - m.min()
    return m / m.max() if m.max() > 0 else m


def random_boxes(rng, h, w):
    n = rng.integers(1, 4)
    x = np.sort(rng.integers(0, w, (n, 2)), axis=1)
    y = np.sort(rng.integers(0, h, (n, 2)), axis=1)
    return np.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], axis=1)


@pytest.fixture(params=["tree", "opencv"])
def path(request, monkeypatch):
    """Both ways of finding contours: the component tree (the default) and OpenCV level by level."""
    if request.param == "opencv":
        monkeypatch.setattr(tree, "supports", lambda values, reps: False)
    else:
        assert tree.AVAILABLE, "the C extension ornet.localization._ctree is not built (pip install -e .)"
        monkeypatch.setattr(B, "TREE_FROM_LEVELS", 1)  # the tree even for one level
    return request.param


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", range(4))
def test_sweep_matches_plain_reference(kind, seed, path):
    rng = np.random.default_rng([seed, KINDS.index(kind)])
    thresholds = cam_thresholds(0.01 if seed % 2 else 0.05)
    for _ in range(6):
        size = (int(rng.integers(1, 60)), int(rng.integers(1, 60))) if seed == 3 else (48, 64)
        m = random_map(rng, kind, size)
        gt = random_boxes(rng, *m.shape)
        values, levels = map_levels(m, thresholds)
        fast = sweep_best_iou(values, levels, gt, MODES, source=m)
        assert np.array_equal(fast, sweep_best_iou(values, levels, gt, MODES))  # without the float source
        for i, mode in enumerate(MODES):
            assert np.array_equal(fast[i], reference_best_iou(m, thresholds, gt, mode)), mode
        absolute = sweep_best_iou(m, thresholds, gt, MODES)  # the release's rule: map > t
        for i, mode in enumerate(MODES):
            assert np.array_equal(absolute[i], reference_best_iou(m, thresholds, gt, mode, relative=False)), mode


def test_constant_and_empty_maps(path):
    t = cam_thresholds(0.1)
    gt = np.array([[0, 0, 0, 0], [2, 2, 5, 5]])
    for m in (np.zeros((8, 8)), np.full((8, 8), 0.003), np.ones((8, 8)), np.full((8, 8), 0.5)):
        for i, mode in enumerate(MODES):
            assert np.array_equal(sweep_best_iou(*map_levels(m, t), gt, MODES, source=m)[i],
                                  reference_best_iou(m, t, gt, mode))
    with pytest.raises(ValueError, match="ground-truth"):
        sweep_best_iou(*map_levels(np.zeros((4, 4)), t), np.zeros((0, 4)))


def test_vectorised_contour_areas_and_boxes_equal_opencv():
    rng = np.random.default_rng(7)
    for _ in range(20):
        binary = (rng.random((40, 50)) > 0.6).astype(np.uint8)
        contours = C.find_contours(binary)
        assert len(contours) > C._VECTORISE_ABOVE
        assert C._contour_areas(contours) == [cv2.contourArea(c) for c in contours]
        expected = [(x, y, min(x + w, 49), min(y + h, 39)) for x, y, w, h in map(cv2.boundingRect, contours)]
        assert C._contour_boxes(contours, 50, 39 + 1) == expected


def test_untraced_levels_hold_exactly_one_contour(monkeypatch):
    """The invariant behind skipping the tracing: a level not traced is exactly one contour."""
    traced: list[int] = []
    binary_of = C._binary
    monkeypatch.setattr(C, "_binary", lambda values, level: traced.append(int(level)) or binary_of(values, level))
    monkeypatch.setattr(tree, "supports", lambda values, reps: False)  # the OpenCV path
    rng = np.random.default_rng(11)
    skipped = 0
    for kind in KINDS:
        for _ in range(8):
            m = random_map(rng, kind)
            values = scoremap_to_uint8(m)
            levels = np.unique(values)[:-1].astype(np.int64)  # one level per distinct binary image
            traced.clear()
            sweep_boxes(values, levels, ("largest",), source=m)
            for level in sorted(set(levels.tolist()) - set(traced)):
                binary = cv2.threshold(values, level, 255, cv2.THRESH_BINARY)[1]
                assert len(C.find_contours(binary)) == 1, (kind, level)
                skipped += 1
    assert skipped > 500  # the shortcut does fire
