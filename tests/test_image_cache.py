"""`data.cache_mb`: each image decoded and resized once per run, the samples unchanged bit for bit."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from ornet.config.schema import DataConfig
from ornet.data.cache import ImageCache
from ornet.data.datamodule import WSOLDataModule
from ornet.data.sampling import SeededSamples
from ornet.data.transforms import build_transform, fixed_steps, remaining_steps


def _data(root, **kw) -> DataConfig:
    base = dict(name="cub", root=str(root), resize=72, crop=64, num_workers=0, val_per_class=1, cache_mb=64)
    return DataConfig(**{**base, **kw})


def _same(a, b) -> None:
    assert a.image_id == b.image_id and a.label == b.label and a.orig_size == b.orig_size
    assert a.image.dtype == b.image.dtype == torch.float32 and torch.equal(a.image, b.image)
    assert torch.equal(a.boxes, b.boxes)
    for x, y in ((a.mask, b.mask), (a.ignore, b.ignore)):
        assert (x is None) == (y is None) and (x is None or torch.equal(x, y))


def test_the_two_parts_are_the_whole_transform(cub_tree):
    """remaining_steps(fixed_steps(x)) draws and computes what build_transform(x) does."""
    from PIL import Image
    from torchvision import tv_tensors

    pil = Image.open(next((cub_tree / "images").rglob("*.jpg"))).convert("RGB")
    boxes = tv_tensors.BoundingBoxes([[3.0, 4.0, 40.0, 30.0]], format="XYXY", canvas_size=pil.size[::-1])
    for train in (True, False):
        whole = build_transform(train, 72, 64, True)
        fixed, rest = fixed_steps(train, 72, 64), remaining_steps(train, 64, True)
        for seed in range(4):
            torch.manual_seed(seed)
            want = whole({"image": pil, "boxes": boxes})
            torch.manual_seed(seed)
            got = rest(fixed({"image": pil, "boxes": boxes}))
            assert torch.equal(want["image"], got["image"]) and torch.equal(want["boxes"], got["boxes"])


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_cached_samples_equal_uncached_ones_on_every_read(cub_tree, split):
    cached = WSOLDataModule(_data(cub_tree))
    plain = WSOLDataModule(_data(cub_tree, cache_mb=0))
    assert cached.cache is not None and plain.cache is None
    a, b = SeededSamples(cached.dataset(split)), SeededSamples(plain.dataset(split))
    keys = [(i, 1000 + 7 * i + r) for r in range(3) for i in range(len(a))]  # three epochs' draws
    for key in keys:
        _same(a[key], b[key])
    n = len(a)
    assert len(cached.cache) == n and cached.cache.misses == n and cached.cache.hits == 2 * n
    if split != "train":  # the test transform's masks come from the cache too
        assert a[0].mask is not None and a[0].mask.shape == (1, 64, 64)


def test_training_and_test_transforms_of_one_image_are_kept_apart(cub_tree):
    dm = WSOLDataModule(_data(cub_tree))
    train_view, test_view = dm.dataset("train"), dm.dataset("train", train_transform=False)
    torch.manual_seed(0)
    train_view[0], test_view[0]
    assert len(dm.cache) == 2
    fresh = WSOLDataModule(_data(cub_tree, cache_mb=0))
    _same(test_view[0], fresh.dataset("train", train_transform=False)[0])


def test_the_cache_stops_at_its_limit_and_later_reads_go_to_disk(cub_tree):
    dm = WSOLDataModule(_data(cub_tree))
    ds = dm.dataset("train")
    one = 3 * 72 * 72 + 4 * 4  # a resized uint8 image and its box
    dm.cache.limit = 2 * one + 10  # room for two entries
    plain = WSOLDataModule(_data(cub_tree, cache_mb=0)).dataset("train")
    for _ in range(2):
        for i in range(len(ds)):
            torch.manual_seed(i)
            x = ds[i]
            torch.manual_seed(i)
            _same(x, plain[i])
    assert len(dm.cache) == 2 and dm.cache.bytes == 2 * one <= dm.cache.limit


def test_a_kept_entry_is_never_changed_by_a_read(cub_tree):
    dm = WSOLDataModule(_data(cub_tree))
    ds = dm.dataset("test")
    first = ds[0]
    (inputs, _), = dm.cache._entries.values()
    kept = {k: v.clone() for k, v in inputs.items()}
    first.boxes.add_(5.0)  # a consumer writing into its sample
    first.image.zero_()
    for k, v in inputs.items():
        assert torch.equal(v, kept[k]), k
    _same(ds[0], WSOLDataModule(_data(cub_tree, cache_mb=0)).dataset("test")[0])


def test_loader_batches_equal_with_and_without_the_cache(cub_tree):
    batches = {}
    for mb in (64, 0):
        dm = WSOLDataModule(_data(cub_tree, cache_mb=mb, batch_size=4))
        dm.train_sampler.start(1, seed=3, stream="coarse")
        batches[mb] = [b.images for _ in range(2) for b in dm.train_dataloader()]
    assert len(batches[64]) == len(batches[0]) > 0
    assert all(torch.equal(x, y) for x, y in zip(batches[64], batches[0]))


def test_worker_processes_get_no_cache_and_a_negative_size_is_refused(cub_tree):
    from ornet.config.parse import validate
    from ornet.config.schema import RunConfig
    from ornet.errors import ConfigError

    assert WSOLDataModule(_data(cub_tree, num_workers=2)).cache is None
    cfg = RunConfig()
    cfg = replace(cfg, data=replace(cfg.data, root=str(cub_tree), cache_mb=-1))
    with pytest.raises(ConfigError, match=r"data.cache_mb must be >= 0 .*got -1"):
        validate(cfg)
    with pytest.raises(ValueError, match="-1"):
        ImageCache(-1)
