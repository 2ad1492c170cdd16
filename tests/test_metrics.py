"""Streaming torchmetrics (BoxAccuracySweep, PxAP) against a plain per-image reference."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ornet.localization import MODES, SweepResult, choose_threshold, summarize
from ornet.localization.metrics import BoxAccuracySweep, PxAP
from test_boxes import reference_best_iou

H, W = 40, 56


def reference_correct(m, gt_float, thresholds, ious, mode, strict, normalize):
    """Correctness (T x L) of one image, from the definitions (test_boxes' plain per-threshold loop)."""
    if normalize == "minmax":
        lo, hi = m.min(), m.max()
        m = np.zeros_like(m) if hi == lo else (m - lo) / (hi - lo)
    gt = [[int(v) for v in b] for b in gt_float]  # truncation
    best = reference_best_iou(m, thresholds, gt, mode, relative=normalize == "minmax")[:, None]
    cuts = np.array([level / 100 for level in ious])
    return best > cuts if strict else best >= cuts


def random_batch(rng, n):
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    maps = []
    for _ in range(n):
        m = np.zeros((H, W))
        for _ in range(rng.integers(1, 4)):
            s = rng.uniform(2, 10)
            m += rng.uniform(0.1, 1) * np.exp(-((yy - rng.uniform(0, H)) ** 2 + (xx - rng.uniform(0, W)) ** 2) / (2 * s * s))
        maps.append(m / m.max() * rng.uniform(0.3, 1))
    boxes = []
    for _ in range(n):
        k = rng.integers(1, 3)
        x = np.sort(rng.uniform(0, W - 1, (k, 2)), axis=1)
        y = np.sort(rng.uniform(0, H - 1, (k, 2)), axis=1)
        boxes.append(np.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], axis=1))
    return np.stack(maps), boxes


@pytest.mark.parametrize("box_mode", MODES)
@pytest.mark.parametrize("strict, normalize", [(False, "minmax"), (True, "none")])
@pytest.mark.parametrize("threads, tree_from", [(1, 1), (2, 10**6)])  # the tree, 1 thread / OpenCV, 2 threads
def test_streaming_sweep_equals_reference(box_mode, strict, normalize, threads, tree_from, monkeypatch):
    from ornet.localization import boxes as B

    monkeypatch.setattr(B, "TREE_FROM_LEVELS", tree_from)
    rng = np.random.default_rng([MODES.index(box_mode), strict])
    ious = (30, 50, 70)
    metric = BoxAccuracySweep(cam_curve_interval=0.05, iou_thresholds=ious, box_mode=box_mode,
                              iou_strict=strict, normalize=normalize, keep_per_image=True, sweep_threads=threads)
    thresholds = np.arange(0, 1, 0.05)
    maps, boxes, labels, logits = [], [], [], []
    for batch in (3, 1, 4):  # several updates of several sizes
        m, b = random_batch(rng, batch)
        lab = rng.integers(0, 8, batch)
        log = rng.normal(size=(batch, 8))
        metric.update(torch.from_numpy(m).float()[:, None], [torch.from_numpy(x).float() for x in b],
                      labels=torch.from_numpy(lab), logits=torch.from_numpy(log))
        maps += list(torch.from_numpy(m).float().double().numpy())
        boxes += [torch.from_numpy(x).float().double().numpy() for x in b]
        labels += list(lab)
        logits += list(log)
    result = metric.compute()
    n = len(maps)
    ref = {mode: np.stack([reference_correct(m, b, thresholds, ious, mode, strict, normalize)
                           for m, b in zip(maps, boxes)]) for mode in MODES}  # N x T x L
    top5 = np.argsort(-np.array(logits), axis=1)[:, :5]
    in1 = top5[:, 0] == np.array(labels)
    in5 = (top5 == np.array(labels)[:, None]).any(1)
    for k, mode in enumerate(MODES):
        assert np.array_equal(result.hits[k], ref[mode].sum(0)), mode
        assert np.array_equal(result.hits_top1[k], ref[mode][in1].sum(0))
        assert np.array_equal(result.hits_top5[k], ref[mode][in5].sum(0))
    assert result.num_images == n and result.cls_top1 == in1.sum() and result.cls_top5 == in5.sum()
    assert result.per_image_iou.shape == (n, len(thresholds))
    assert np.array_equal(result.per_image_iou >= 0.5 if not strict else result.per_image_iou > 0.5, ref[box_mode][:, :, 1])

    gt_known = ref[box_mode][:, :, 1].mean(0) * 100
    i = int(np.argmax(gt_known))
    summary = summarize(result, threshold_split="test")
    assert summary["threshold_index"] == i == choose_threshold(result)
    assert summary["gt_known_loc"] == pytest.approx(gt_known[i])
    assert summary["top1_loc"] == pytest.approx(ref[box_mode][in1, i, 1].sum() * 100 / n)
    assert summary["top5_loc"] == pytest.approx(ref[box_mode][in5, i, 1].sum() * 100 / n)
    assert summary["top1_cls"] == pytest.approx(in1.mean() * 100)
    assert summary["max_box_acc"] == pytest.approx(ref["largest"][:, :, 1].mean(0).max() * 100)
    assert summary["max_box_acc_v2"] == pytest.approx(np.mean([ref["multi"][:, :, k].mean(0).max() * 100 for k in range(3)]))
    assert summary["threshold"] == thresholds[i] and summary["box_mode"] == box_mode
    assert summary["iou_strict"] is strict and summary["normalize"] == normalize and summary["num_images"] == n


def test_strict_iou_at_exactly_one_half():
    m = torch.zeros(1, 1, 32, 32)
    m[..., 0:9, 0:9] = 1.0  # box (0, 0, 9, 9): 100 pixels
    gt = [torch.tensor([[0.0, 0.0, 9.0, 19.0]])]  # 200 pixels, IoU exactly 0.5
    for strict, hit in ((False, 1), (True, 0)):
        metric = BoxAccuracySweep(iou_strict=strict)
        metric.update(m, gt)
        assert summarize(metric.compute())["gt_known_loc"] == 100.0 * hit


def test_absolute_thresholds_with_normalize_none():
    m = torch.zeros(1, 1, 20, 20)
    m[..., 5:10, 5:10] = 0.33
    gt = [torch.tensor([[5.0, 5.0, 10.0, 10.0]])]
    r = {}
    for normalize in ("none", "minmax"):
        metric = BoxAccuracySweep(cam_curve_interval=0.05, normalize=normalize)
        metric.update(m, gt)
        r[normalize] = metric.compute().accuracy("largest")
    t = np.arange(0, 1, 0.05)
    assert np.array_equal(r["none"] > 0, t < 0.33)  # the map is compared with t itself
    assert (r["minmax"] == 100).all()  # t is a fraction of the map's maximum


def test_resizing_in_update_equals_resizing_first():
    rng = np.random.default_rng(5)
    small = torch.from_numpy(rng.random((3, 1, 7, 7))).float()
    boxes = [torch.tensor([[2.0, 3.0, 30.0, 40.0]])] * 3
    a, b = BoxAccuracySweep(), BoxAccuracySweep()
    a.update(small, boxes, image_size=(56, 64))
    b.update(F.interpolate(small, size=(56, 64), mode="bilinear", align_corners=False)[:, 0], boxes)
    assert np.array_equal(a.compute().hits, b.compute().hits)


def test_merged_states_equal_single_pass_and_result_round_trips():
    """Counters add up (what DDP's sum-reduction does)."""
    rng = np.random.default_rng(9)
    maps, boxes = random_batch(rng, 6)
    maps_t, boxes_t = torch.from_numpy(maps).float(), [torch.from_numpy(b).float() for b in boxes]
    whole, half1, half2 = BoxAccuracySweep(), BoxAccuracySweep(), BoxAccuracySweep()
    whole.update(maps_t, boxes_t)
    half1.update(maps_t[:2], boxes_t[:2])
    half2.update(maps_t[2:], boxes_t[2:])
    half1.merge_state(half2)
    assert np.array_equal(half1.compute().hits, whole.compute().hits)
    result = whole.compute()
    again = SweepResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert summarize(again, threshold_split="val") == summarize(result, threshold_split="val")
    val_index = choose_threshold(again)
    test = summarize(result, val_index, threshold_split="val")
    assert test["threshold_index"] == val_index and test["threshold_split"] == "val"
    assert "top1_cls" not in test and "pxap" not in test  # no logits given
    assert summarize(result, 3, pxap=42.0)["pxap"] == 42.0


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown box_mode"):
        BoxAccuracySweep(box_mode="biggest")
    with pytest.raises(ValueError, match="must include 50"):
        BoxAccuracySweep(iou_thresholds=(30, 70))
    with pytest.raises(ValueError, match="unknown normalize"):
        BoxAccuracySweep(normalize="sigmoid")
    metric = BoxAccuracySweep(normalize="none")
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        metric.update(torch.full((1, 1, 4, 4), 2.0), [torch.tensor([[0.0, 0, 1, 1]])])
    with pytest.raises(ValueError, match="box lists"):
        metric.update(torch.zeros(2, 1, 4, 4), [torch.tensor([[0.0, 0, 1, 1]])])
    with pytest.raises(ValueError, match="logits need labels"):
        metric.update(torch.zeros(1, 1, 4, 4), [torch.tensor([[0.0, 0, 1, 1]])], logits=torch.zeros(1, 3))
    with pytest.raises(ValueError, match="B x 1 x h x w"):
        metric.update(torch.zeros(1, 2, 4, 4), [torch.tensor([[0.0, 0, 1, 1]])])
    with pytest.raises(ValueError, match="out of range"):
        summarize(_one_image_result(), 1000)
    with pytest.raises(ValueError, match="unknown criterion"):
        choose_threshold(_one_image_result(), "best")


def _one_image_result():
    metric = BoxAccuracySweep()
    metric.update(torch.rand(1, 1, 8, 8), [torch.tensor([[0.0, 0, 3, 3]])])
    return metric.compute()


def test_pxap_metric_equals_numpy_definition():
    rng = np.random.default_rng(4)
    metric = PxAP(cam_curve_interval=0.05, normalize="none")
    maps, masks, ignores = [], [], []
    for _ in range(3):
        m = rng.random((2, 1, 12, 16))
        fg = rng.random((2, 1, 12, 16)) > 0.6
        ign = rng.random((2, 1, 12, 16)) > 0.8
        metric.update(torch.from_numpy(m).float(), torch.from_numpy(fg).float(), torch.from_numpy(ign).float())
        maps += list(torch.from_numpy(m).float().double().numpy()[:, 0])
        masks += list(fg[:, 0])
        ignores += list(ign[:, 0])
    edges = np.append(np.arange(0, 1, 0.05), [1.0, 2.0, 3.0])
    pos = sum(np.histogram(m[f], bins=edges)[0] for m, f in zip(maps, masks))
    neg = sum(np.histogram(m[~f & ~i], bins=edges)[0] for m, f, i in zip(maps, masks, ignores))
    tp, fp = np.cumsum(pos[::-1]), np.cumsum(neg[::-1])
    expected = 100 * sum(tp[k] / (tp[k] + fp[k]) * (tp[k] - tp[k - 1]) / tp[-1]
                         for k in range(1, len(tp)) if tp[k] + fp[k] > 0)
    assert metric.compute() == pytest.approx(expected, rel=1e-12)


def test_pxap_constant_and_perfect_maps():
    fg = torch.zeros(1, 1, 10, 10)
    fg[..., :3, :] = 1
    const = PxAP()
    const.update(torch.full((1, 1, 5, 5), 0.7), fg)  # resized to the mask; minmax makes it all zeros
    assert const.compute() == pytest.approx(30.0)
    perfect = PxAP(normalize="none")
    perfect.update(fg.clone(), fg, ignores=torch.zeros_like(fg))
    assert perfect.compute() == 100.0
