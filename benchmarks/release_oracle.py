"""ornet's import and `eval.protocol release` against the ORNet release's own code, run as an oracle.

Needs a checkout of github.com/Sierkinhane/ORNet (outside this repository; nothing of it is
copied here). Checks, at the release's full sizes, and writes benchmarks/results/release_oracle.md:

1. maps: the release's ``models/unet.py`` ``UNet(64, 200, c_base=64, activation='leakyrelu')``
   with a ResNet-50 stem, ``att_conv3`` and ``bn_att3`` (random weights, random BN statistics)
   and a VGG-16 evaluator (``vgg.model``) saved as a FineModel checkpoint, imported with
   ``ornet import-release``; ornet's maps and logits against the release's forward on 224 x 224;
2. boxes: ``utils/func_utils.py find_bbox`` against `ornet.localization.release_rule.release_boxes`
   on random 56 x 56 maps, all 19 thresholds;
3. IoU and correctness: ``intersect`` + the areas + the two ``torch.where`` of
   ``test_multi_threshold`` against `release_iou` and ``> 0.5``;
4. ground truth: ``dataset/cub.py CUB200.__getitem__`` on images of the real CUB test sizes and
   boxes (wsolevaluation metadata) against `release_ground_truth`.

    python benchmarks/release_oracle.py --release /path/to/ORNet [--maps 2000] [--cub-images 500]
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from machine import cpu_model  # benchmarks/machine.py (scripts run from benchmarks/)

HERE = Path(__file__).resolve().parent
META = Path("/work/shared/data/wsol-metadata/CUB/test")


def check_maps(release: Path, tmp: Path, width: int = 64, k: int = 200) -> dict:
    import torchvision
    from torch import nn

    sys.path.insert(0, str(release))
    from models.unet import UNet  # the release's U-Net

    import ornet
    from ornet.release.importer import import_release  # no public name

    torch.manual_seed(0)

    class Fine(nn.Module):  # FineModel's attribute names (models/model.py)
        def __init__(self):
            super().__init__()
            r = torchvision.models.resnet50(weights=None)
            self.conv1, self.bn1, self.relu, self.maxpool = r.conv1, r.bn1, r.relu, r.maxpool
            self.att_layer4 = UNet(64, k, c_base=width, activation="leakyrelu")
            self.att_conv3 = nn.Conv2d(k, 1, kernel_size=3, padding=1, bias=False)
            self.bn_att3 = nn.BatchNorm2d(1)
            self.vgg = nn.Module()
            self.vgg.model = torchvision.models.vgg16(weights=None)
            self.vgg.model.classifier[6] = nn.Linear(4096, k)

        def att(self, x):
            sx = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            return torch.sigmoid(self.bn_att3(self.att_conv3(self.att_layer4(sx))))

    fine = Fine()
    g = torch.Generator().manual_seed(1)
    for m in fine.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    fine.eval()
    path = tmp / "cub_fine_best_model.pth"
    torch.save({"state_dict": fine.state_dict(), "best_threshold": 0.3}, path)
    t0 = time.perf_counter()
    result = import_release(tmp / "run", fine=path)
    seconds = time.perf_counter() - t0
    model = ornet.load_model(tmp / "run", device="cpu").model
    x = torch.randn(2, 3, 224, 224, generator=g)
    with torch.no_grad():
        ref_map, ref_logits = fine.att(x), fine.vgg.model(x)
        maps, logits = model.predict(x)
    return {"shape": tuple(maps.shape), "map_diff": float((maps - ref_map).abs().max()),
            "logit_diff": float((logits - ref_logits).abs().max()), "import_s": seconds,
            "detected": (result.plan.backbone, result.plan.width, result.plan.evaluator, result.plan.num_classes)}


def check_boxes(release: Path, n: int) -> dict:
    sys.path.insert(0, str(release))
    from utils.func_utils import find_bbox  # the release's box rule

    from ornet.localization.release_rule import release_boxes, release_thresholds

    thresholds = [(i + 1) / 20 for i in range(19)]  # train_2nd_step.py, NUM_THRESHOLD 20
    assert np.array_equal(np.array(thresholds), release_thresholds())
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:56, 0:56]
    mismatches = 0
    for i in range(n):
        if i % 2:
            cx, cy, s = rng.uniform(0, 56, 3)
            m = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (3 + s) ** 2)) * rng.uniform(0.3, 1)
        else:
            m = rng.random((56, 56)) ** rng.uniform(1, 8)
        theirs = np.asarray(find_bbox(m.astype(np.float64), threshold=thresholds), dtype=np.float64)
        ours = release_boxes(m, thresholds, (224, 224))
        mismatches += int((theirs != ours).any(axis=1).sum())
    return {"maps": n, "boxes": n * len(thresholds), "mismatches": mismatches}


def check_iou(release: Path, n: int) -> dict:
    sys.path.insert(0, str(release))
    from utils.func_utils import intersect

    from ornet.localization.release_rule import release_iou

    rng = np.random.default_rng(1)
    xs, ys = np.sort(rng.integers(0, 57, (n, 2)), axis=1) * 4, np.sort(rng.integers(0, 57, (n, 2)), axis=1) * 4
    pred = np.stack([xs[:, 0], ys[:, 0], xs[:, 1], ys[:, 1]], axis=1).astype(np.float64)
    gx, gy = np.sort(rng.uniform(-30, 260, (n, 2)), axis=1), np.sort(rng.uniform(-30, 260, (n, 2)), axis=1)
    gt = np.stack([gx[:, 0], gy[:, 0], gx[:, 1], gy[:, 1]], axis=1)
    half = slice(0, n // 4)  # ground truth twice as tall as the box: IoU exactly 0.5
    gt[half] = pred[half]
    gt[half, 3] = pred[half, 1] + 2 * (pred[half, 3] - pred[half, 1])
    p, g = torch.from_numpy(pred).float(), torch.from_numpy(gt).float()
    inter = intersect(p, g)  # test_multi_threshold's lines, as the release runs them
    area_a = (p[:, 2] - p[:, 0]) * (p[:, 3] - p[:, 1])
    area_b = (g[:, 2] - g[:, 0]) * (g[:, 3] - g[:, 1])
    iou = inter / (area_a + area_b - inter)
    iou = torch.where(iou <= 0.5, iou, torch.ones(iou.shape[0]))
    theirs = torch.where(iou > 0.5, iou, torch.zeros(iou.shape[0])).numpy() > 0
    ours_iou = np.array([release_iou(a, b)[0, 0] for a, b in zip(pred, gt)])
    ours = ours_iou > 0.5
    valid = (area_a + area_b - inter).numpy() > 0  # a zero union is a NaN IoU there (counted correct)
    return {"pairs": n, "mismatches": int((theirs != ours)[valid].sum()), "zero_union": int((~valid).sum()),
            "at_half": int((ours_iou == np.float32(0.5)).sum())}


def check_ground_truth(release: Path, tmp: Path, n: int) -> dict:
    from PIL import Image

    sys.path.insert(0, str(release))
    from dataset.cub import CUB200, pil_loader  # the release's dataset

    from ornet.localization.release_rule import release_ground_truth

    ids = [line for line in (META / "image_ids.txt").read_text().split() if line][:n]
    sizes = {a: (int(w), int(h)) for a, w, h in (line.split(",") for line in (META / "image_sizes.txt").read_text().split())}
    boxes = {}
    for line in (META / "localization.txt").read_text().split():
        a, *b = line.split(",")
        boxes.setdefault(a, [float(v) for v in b])
    ds = object.__new__(CUB200)  # __init__ asserts the full 5,794-image test split: set its fields
    ds._train, ds._transform, ds.loader = False, None, pil_loader
    ds._test_data, ds._test_labels, ds._test_boxes = [], [], []
    for i, image_id in enumerate(ids):
        w, h = sizes[image_id]
        path = tmp / "img" / f"{i}.png"
        path.parent.mkdir(exist_ok=True)
        Image.new("RGB", (w, h)).save(path)
        x0, y0, x1, y1 = boxes[image_id]
        ds._test_data.append(str(path))
        ds._test_labels.append(0)
        ds._test_boxes.append(np.array([i + 1, x0, y0, x1 - x0, y1 - y0], dtype=np.float64))  # bounding_boxes.txt row
    mismatches, negative, beyond = 0, 0, 0
    for i, image_id in enumerate(ids):
        theirs = ds[i][2][1:].numpy()
        w, h = sizes[image_id]
        ours = release_ground_truth([boxes[image_id]], w, h)[0]
        mismatches += int(not np.array_equal(theirs, ours))
        negative += int((ours < 0).any())
        beyond += int((ours > 224).any())
    return {"images": n, "mismatches": mismatches, "negative": negative, "beyond_224": beyond}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--release", required=True, type=Path, help="checkout of Sierkinhane/ORNet")
    ap.add_argument("--maps", type=int, default=2000)
    ap.add_argument("--pairs", type=int, default=20000)
    ap.add_argument("--cub-images", type=int, default=500)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "release_oracle.md")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        maps = check_maps(args.release, tmp)
        boxes = check_boxes(args.release, args.maps)
        iou = check_iou(args.release, args.pairs)
        gt = check_ground_truth(args.release, tmp, args.cub_images)
    lines = [
        "# ornet against the ORNet release's own code", "",
        f"{dt.date.today()}, {cpu_model()}, torch {torch.__version__}, Python {platform.python_version()}.",
        f"Command: `python benchmarks/release_oracle.py --release ORNET_CHECKOUT --maps {args.maps} "
        f"--pairs {args.pairs} --cub-images {args.cub_images}`", "",
        "| check | the release's code | ornet | compared | differences |", "| --- | --- | --- | --- | --- |",
        f"| maps of an imported FineModel (ResNet-50 stem, U-Net c=64, K=200, VGG-16; random weights) | "
        f"models/unet.py UNet + stem + att_conv3 + bn_att3, 2 images 224 x 224 | `import-release --fine`, "
        f"`predict` | {maps['shape']} maps, logits | max abs {maps['map_diff']:.2e} (maps), "
        f"{maps['logit_diff']:.2e} (logits); detected {maps['detected']}; import {maps['import_s']:.1f} s |",
        f"| boxes | utils/func_utils.py find_bbox | localization.release.release_boxes | {boxes['boxes']} boxes "
        f"({boxes['maps']} maps x 19 thresholds) | {boxes['mismatches']} |",
        f"| IoU > 0.5 | train_2nd_step.py intersect, areas, two torch.where | release_iou, > 0.5 | {iou['pairs']} "
        f"box pairs ({iou['at_half']} at exactly 0.5) | {iou['mismatches']} (zero unions left out: {iou['zero_union']}) |",
        f"| ground truth | dataset/cub.py CUB200.__getitem__ | release_ground_truth | {gt['images']} CUB test "
        f"images (real sizes and boxes) | {gt['mismatches']} ({gt['negative']} boxes reach below 0, "
        f"{gt['beyond_224']} beyond 224: unclipped) |", "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
