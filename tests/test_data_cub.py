"""CUB reader, val carve, joint transforms, data module."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision import tv_tensors

from ornet.config.schema import DataConfig
from ornet.data.datamodule import WSOLDataModule
from ornet.data.readers import carve_val, read_index
from ornet.data.records import Record
from ornet.data.transforms import build_transform, geometry
from ornet.errors import ConfigError


def test_reader_counts_labels_and_boxes(cub_tree):
    index = read_index(DataConfig(root=str(cub_tree), val_per_class=1))
    assert index.problems == []
    assert index.classes == ["001.class_0", "002.class_1", "003.class_2"]
    # 6 images per class, every 3rd (k = 0, 3) is test -> 2 test, 4 train, 1 of them carved to val
    assert [len(index.splits[s]) for s in ("train", "val", "test")] == [9, 3, 6]
    rec = index.splits["test"][0]
    assert rec.image_id == "001.class_0/img_000.jpg" and rec.label == 0 and rec.size == (80, 64)
    line = (cub_tree / "bounding_boxes.txt").read_text().splitlines()[0].split()
    x, y, w, h = map(float, line[1:])
    assert rec.boxes == ((x, y, x + w, y + h),)
    assert rec.mask_path == cub_tree / "segmentations" / "001.class_0" / "img_000.png"


def test_carve_is_seeded_per_class_and_keeps_a_training_image():
    recs = [Record(f"{c}/{i}", None, c) for c in range(3) for i in range(4)]
    recs.append(Record("3/0", None, 3))  # a class with one image keeps it
    train, val = carve_val(recs, 4, 2, seed=7)
    assert len(val) == 6 and len(train) == 7
    assert sorted(r.label for r in val) == [0, 0, 1, 1, 2, 2]
    assert {r.image_id for r in train} & {r.image_id for r in val} == set()
    assert carve_val(recs, 4, 2, seed=7) == (train, val)
    assert carve_val(recs, 4, 2, seed=8) != (train, val)
    assert carve_val(recs, 4, 0, seed=7) == (recs, [])


def _mask_box(mask: torch.Tensor) -> tuple[float, float, float, float]:
    ys, xs = torch.nonzero(mask[0] > 0.5, as_tuple=True)
    return xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1


@pytest.mark.parametrize("train", [True, False])
def test_transformed_box_encloses_its_mask(train):
    torch.manual_seed(0)
    tf = geometry(train, resize=72, crop=64)
    for trial in range(20):
        h, w = 50 + trial, 90 - trial
        x0, y0, x1, y1 = 10 + trial % 7, 8, 40 + trial, 30 + trial % 5
        mask = torch.zeros(1, h, w, dtype=torch.uint8)
        mask[:, y0:y1, x0:x1] = 255
        boxes = tv_tensors.BoundingBoxes([[x0, y0, x1, y1]], format="XYXY", canvas_size=(h, w))
        out = tf({"image": tv_tensors.Image(torch.zeros(3, h, w)), "boxes": boxes, "mask": tv_tensors.Mask(mask)})
        assert out["image"].shape[-2:] == (64, 64)
        m = out["mask"].float() / 255
        if m.max() == 0:
            continue  # the crop removed the object
        bx0, by0, bx1, by1 = out["boxes"][0].tolist()
        mx0, my0, mx1, my1 = _mask_box(m)
        # nearest-neighbour resizing may shift a mask edge by up to one source pixel (72/50 < 1.5 px)
        tol = 1.5
        assert bx0 - tol <= mx0 and by0 - tol <= my0 and mx1 <= bx1 + tol and my1 <= by1 + tol


def test_transform_sizes_are_checked():
    with pytest.raises(ConfigError, match="divisible by 32"):
        build_transform(False, resize=100, crop=70)
    with pytest.raises(ConfigError, match="must not exceed"):
        build_transform(False, resize=64, crop=96)


def test_datamodule_batches(cub_tree):
    cfg = DataConfig(root=str(cub_tree), val_per_class=1, resize=72, crop=64, batch_size=4,
                     eval_batch_size=5, num_workers=0)
    dm = WSOLDataModule(cfg)
    assert dm.num_classes == 3
    batch = next(iter(dm.test_dataloader()))
    assert batch.images.shape == (5, 3, 64, 64) and batch.images.dtype == torch.float32
    assert batch.masks.shape == (5, 1, 64, 64)
    assert set(np.unique(batch.masks.numpy())) <= {0.0, 1.0}
    assert batch.orig_sizes.tolist()[0] == [64, 80]
    for b, m in zip(batch.boxes, batch.masks):
        assert b.shape == (1, 4)
        mx0, my0, mx1, my1 = _mask_box(m)
        assert b[0, 0] - 1.5 <= mx0 and mx1 <= b[0, 2] + 1.5
    train = next(iter(dm.train_dataloader()))
    assert train.images.shape == (4, 3, 64, 64) and train.masks is None
