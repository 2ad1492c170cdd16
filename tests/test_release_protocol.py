"""The release's scoring (`eval.protocol: release`): golden values on hand-made maps.

Every expected number below is worked out by hand from the release's rules
(localization/release_rule.py docstring; Sierkinhane/ORNet train_2nd_step.py, utils/func_utils.py,
dataset/cub.py), never by calling the code under test on another input.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import write_cub_tree
from ornet.evaluation.release_protocol import ReleaseResult
from ornet.localization.release_rule import (
    image_scores,
    release_boxes,
    release_ground_truth,
    release_iou,
    release_thresholds,
)

T = release_thresholds()


def test_thresholds_are_the_releases_nineteen():
    assert len(T) == 19
    assert T[0] == 0.05 and T[-1] == 0.95 and T[9] == 0.5
    assert np.allclose(np.diff(T), 0.05)


def test_box_is_cell_indices_times_four_and_x1_is_where_the_last_cell_starts():
    m = np.zeros((4, 4))
    m[0, 0] = m[3, 3] = 0.9  # two corner cells of a 16 x 16 input (stride 4)
    box = release_boxes(m, [0.5], (16, 16))[0]
    assert box.tolist() == [0.0, 0.0, 12.0, 12.0]  # not 16: 4 * max index


def test_one_cell_gives_a_zero_area_box_and_nothing_above_gives_the_whole_image():
    m = np.zeros((4, 4))
    m[1, 2] = 0.9
    boxes = release_boxes(m, [0.5, 0.95], (16, 16))
    assert boxes[0].tolist() == [8.0, 4.0, 8.0, 4.0]
    assert boxes[1].tolist() == [0.0, 0.0, 16.0, 16.0]


def test_threshold_is_strict():
    m = np.full((4, 4), 0.1)
    m[2, 1] = 0.5  # exactly t: not above it
    m[0, 3] = 0.55
    box = release_boxes(m, [0.5], (16, 16))[0]
    assert box.tolist() == [12.0, 0.0, 12.0, 0.0]


def test_map_is_not_resized_or_normalised():
    """A map whose max is 0.3 has no cell above 0.35, whatever min-max normalisation would say."""
    m = np.linspace(0.0, 0.3, 16).reshape(4, 4)
    boxes = release_boxes(m, T, (16, 16))
    assert boxes[T.tolist().index(0.35)].tolist() == [0.0, 0.0, 16.0, 16.0]
    assert boxes[T.tolist().index(0.25)].tolist() == [4.0, 3 * 4.0, 12.0, 12.0]  # cells 13, 14, 15 (0.26 .. 0.3)


def test_stride_follows_the_input_size():
    m = np.zeros((56, 56))
    m[10:20, 30:41] = 0.8
    assert release_boxes(m, [0.5], (224, 224))[0].tolist() == [120.0, 40.0, 160.0, 76.0]


def test_boxes_match_a_plain_loop_over_thresholds():
    """The vectorised boxes equal find_bbox's rule applied threshold by threshold."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        m = rng.random((7, 9)) ** 3
        got = release_boxes(m, T, (28, 36))
        for t, box in zip(T, got):
            ys, xs = np.where(m > t)
            want = [0, 0, 36, 28] if len(ys) == 0 else [xs.min() * 4, ys.min() * 4, xs.max() * 4, ys.max() * 4]
            assert box.tolist() == [float(v) for v in want]


def test_iou_has_no_plus_one():
    iou = release_iou(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 15, 10]]))
    assert iou[0, 0] == pytest.approx(50 / 150)  # (6 * 11) / (121 + 121 - 66) = 0.375 with +1


def test_correct_only_above_one_half():
    gt = np.array([[0, 0, 20, 10]], dtype=np.float32)
    half = release_iou(np.array([[0, 0, 10, 10]]), gt)[0, 0]
    above = release_iou(np.array([[0, 0, 12, 10]]), gt)[0, 0]
    assert half == np.float32(0.5) and above == np.float32(0.6)
    r = ReleaseResult(thresholds=np.array([0.5]), iou=np.array([[half], [above]]), top1=np.array([True, True]),
                      top5=np.array([True, True]))
    assert r.correct()[:, 0].tolist() == [False, True]
    assert r.accuracy()[0] == 50.0


def test_best_iou_over_several_ground_truth_boxes():
    _, iou = image_scores(np.pad(np.full((2, 2), 0.9), 1), np.array([[40, 40, 60, 60], [4, 4, 8, 8]]), (16, 16), [0.5])
    assert iou[0] == pytest.approx(1.0)


def test_ground_truth_is_scaled_to_256_and_shifted_by_16_without_clipping():
    # a 512 x 256 image (W x H): x scales by 0.5, y by 1, then the 224 centre crop removes 16
    gt = release_ground_truth([(0, 0, 100, 50), (400, 200, 512, 256)], 512, 256)
    assert gt.dtype == np.float32
    assert gt.tolist() == [[-16.0, -16.0, 34.0, 34.0], [184.0, 184.0, 240.0, 240.0]]


def test_ground_truth_offset_follows_resize_and_crop():
    gt = release_ground_truth([(10, 20, 30, 40)], 64, 64, resize=64, crop=32)
    assert gt.tolist() == [[-6.0, 4.0, 14.0, 24.0]]  # scale 1, offset round((64 - 32) / 2) = 16


def test_threshold_chosen_on_the_scored_images_first_best_wins():
    iou = np.array([[0.9, 0.6, 0.1], [0.2, 0.7, 0.8], [0.1, 0.4, 0.9]], dtype=np.float32)  # 3 images x 3 thresholds
    r = ReleaseResult(thresholds=np.array([0.1, 0.2, 0.3]), iou=iou, top1=np.array([True, False, True]),
                      top5=np.array([True, True, True]))
    assert r.accuracy().tolist() == pytest.approx([100 / 3, 200 / 3, 200 / 3])
    assert r.choose() == 1  # the first of the two best
    s = r.summarize(split="test")
    assert s["threshold"] == 0.2 and s["threshold_split"] == "test" and s["protocol"] == "release"
    assert s["gt_known_loc"] == pytest.approx(200 / 3)
    assert s["top1_loc"] == pytest.approx(100 / 3)  # image 1 is correct but misclassified
    assert s["top1_loc_error"] == pytest.approx(100 - 100 / 3)  # what the release prints as "Top1 Loc"
    assert s["top5_loc"] == pytest.approx(200 / 3)
    assert s["top1_cls"] == pytest.approx(200 / 3)
    assert r.summarize(0)["gt_known_loc"] == pytest.approx(100 / 3)


def test_a_full_map_at_224():
    """56 x 56 map, object in cells 14..41 x 7..48 at 0.8, background 0.3; ground truth of a 400 x 300
    image's box (50, 30, 350, 270): x * 0.64 - 16, y * 256 / 300 - 16."""
    m = np.full((56, 56), 0.3)
    m[7:49, 14:42] = 0.8
    gt = release_ground_truth([(50, 30, 350, 270)], 400, 300)
    boxes, iou = image_scores(m, gt, (224, 224), T)
    assert boxes[T.tolist().index(0.5)].tolist() == [56.0, 28.0, 164.0, 192.0]
    assert boxes[T.tolist().index(0.25)].tolist() == [0.0, 0.0, 220.0, 220.0]
    g = [50 * 0.64 - 16, 30 * 256 / 300 - 16, 350 * 0.64 - 16, 270 * 256 / 300 - 16]  # 16, 9.6, 208, 214.4
    inter = (164 - 56) * (192 - 28)
    union = inter + (g[2] - g[0]) * (g[3] - g[1]) - inter
    assert iou[T.tolist().index(0.5)] == pytest.approx(inter / union, rel=1e-6)


# --- through `evaluate` on a dataset ------------------------------------------------------------

class ConstantMaps(torch.nn.Module):
    """predict(): a constant 0.6 map at input / 4 and logits that favour class 0."""

    def predict(self, images, labels=None):
        b, _, h, w = images.shape
        logits = torch.zeros(b, 3)
        logits[:, 0] = 1.0
        return torch.full((b, 1, h // 4, w // 4), 0.6), logits


def test_evaluate_with_protocol_release_on_a_dataset(tmp_path):
    """Ground truth from the records (unclipped), thresholds on the raw map, threshold chosen on test."""
    from ornet.config.schema import RunConfig, apply_protocol
    from ornet.data.datamodule import WSOLDataModule
    from ornet.evaluation.outputs import write_outputs
    from ornet.evaluation.protocols import evaluate_split

    root = write_cub_tree(tmp_path / "cub", classes=3, per_class=3, size=(80, 64), masks=False)
    cfg = RunConfig()
    cfg.data.root, cfg.data.resize, cfg.data.crop, cfg.data.num_workers = str(root), 64, 32, 0
    cfg.data.val_per_class = 0
    cfg.eval.protocol = "release"
    cfg.trainer.accelerator, cfg.trainer.progress = "cpu", False
    apply_protocol(cfg)
    assert cfg.eval.threshold_split == "test"
    dm = WSOLDataModule(cfg.data)
    result = evaluate_split(ConstantMaps(), dm, cfg, split="test", quiet=True)
    m = result.metrics
    # For t < 0.6 every cell is above: box (0, 0, 28, 28) on the 32 x 32 input; from 0.6 on none: (0, 0, 32, 32).
    want_hits = np.zeros(19)
    records = dm.index.split("test")
    for r in records:
        gt = [(x0 * 64 / 80 - 16, y0 * 64 / 64 - 16, x1 * 64 / 80 - 16, y1 * 64 / 64 - 16) for x0, y0, x1, y1 in r.boxes]
        for i, t in enumerate(T):
            box = (0, 0, 28, 28) if t < 0.6 else (0, 0, 32, 32)
            best = 0.0
            for g in gt:
                iw = max(0.0, min(box[2], g[2]) - max(box[0], g[0]))
                ih = max(0.0, min(box[3], g[3]) - max(box[1], g[1]))
                inter = iw * ih
                best = max(best, inter / (box[2] * box[3] + (g[2] - g[0]) * (g[3] - g[1]) - inter))
            want_hits[i] += best > 0.5
    want = want_hits * 100 / len(records)
    assert result.curves["accuracy"]["50"] == pytest.approx(want.tolist(), abs=1e-3)
    best = int(np.argmax(want))
    assert m["threshold"] == pytest.approx(T[best]) and m["threshold_split"] == "test"
    assert m["gt_known_loc"] == pytest.approx(want[best], abs=1e-9)
    assert m["protocol"] == "release" and m["box_mode"] == "all" and m["iou_strict"] is True
    top1 = [r.label == 0 for r in records]
    assert m["top1_cls"] == pytest.approx(100 * np.mean(top1))
    assert len(result.rows) == len(records)
    write_outputs(tmp_path / "out", result)
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["protocol"] == "release" and "chosen on the evaluated split" in saved["protocol_note"]
