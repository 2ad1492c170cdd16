"""FGVC-Aircraft reader: levels, native splits, 1-based boxes, the bottom banner crop."""

from __future__ import annotations

import pytest

from ornet.config.schema import DataConfig
from ornet.data.dataset import WSOLDataset
from ornet.data.readers import read_index
from ornet.errors import ConfigError, DataError
from readers_util import AIRCRAFT, AIRCRAFT_SIZE, write_aircraft_tree


def _cfg(root, **kw) -> DataConfig:
    return DataConfig(name="aircraft", root=str(root), **kw)


def _set_box(root, iid: str, box: str) -> None:
    f = root / "data" / "images_box.txt"
    f.write_text("".join(f"{iid} {box}\n" if ln.split()[0] == iid else ln + "\n"
                         for ln in f.read_text().splitlines()))


def _record(index, iid: str):
    return next(r for s in index.splits.values() for r in s if r.image_id == f"{iid}.jpg")


def test_native_splits_and_levels(tmp_path):
    write_aircraft_tree(tmp_path, per_split=2)
    index = read_index(_cfg(tmp_path, val_per_class=3))
    assert index.problems == []
    assert index.classes == [a[0] for a in AIRCRAFT]   # "Cessna 172": names with spaces
    assert {s: len(r) for s, r in index.splits.items()} == {"train": 6, "val": 6, "test": 6}
    assert sorted(r.label for r in index.splits["val"]) == [0, 0, 1, 1, 2, 2]
    for level, k in (("family", 1), ("manufacturer", 2)):
        index = read_index(_cfg(tmp_path, options={"level": level}))
        assert index.problems == [] and index.classes == [a[k] for a in AIRCRAFT]
    # root may also be the data/ folder itself
    assert read_index(_cfg(tmp_path / "data")).problems == []


def test_banner_crop_moves_boxes_by_hand(tmp_path):
    write_aircraft_tree(tmp_path)
    # 40 x 50 images. 1-based inclusive pixels (5..20, 10..45) -> continuous (4, 9, 20, 45);
    # the 20-pixel banner leaves rows 0..29, so the box is clipped to y1 = 30.
    _set_box(tmp_path, "1000001", "5 10 20 45")
    _set_box(tmp_path, "1000002", "1 1 40 30")     # touches the banner line: unchanged
    index = read_index(_cfg(tmp_path))
    assert index.problems == []
    r = _record(index, "1000001")
    assert r.size == (40, 30) and r.crop_bottom == 20
    assert r.boxes == ((4.0, 9.0, 20.0, 30.0),)
    assert _record(index, "1000002").boxes == ((0.0, 0.0, 40.0, 30.0),)
    sample = WSOLDataset([r])[0]
    assert sample.orig_size == (30, 40) and tuple(sample.image.shape) == (3, 30, 40)
    assert sample.boxes.tolist() == [[4.0, 9.0, 20.0, 30.0]]

    index = read_index(_cfg(tmp_path, options={"crop_banner": False}))
    r = _record(index, "1000001")
    assert r.size == AIRCRAFT_SIZE and r.crop_bottom == 0 and r.boxes == ((4.0, 9.0, 20.0, 45.0),)


def test_box_inside_the_banner_or_outside_the_image(tmp_path):
    write_aircraft_tree(tmp_path)
    box_file = tmp_path / "data" / "images_box.txt"
    _set_box(tmp_path, "1000001", "3 35 20 48")   # rows 34..48: all in the banner (rows >= 30)
    _set_box(tmp_path, "1000002", "3 5 41 20")    # x1 = 41 > width 40
    index = read_index(_cfg(tmp_path))
    assert [(p.file, p.line) for p in index.problems] == [(str(box_file), 1), (str(box_file), 2)]
    assert "entirely inside the bottom banner" in index.problems[0].what
    assert "outside the 40x50 image" in index.problems[1].what
    index = read_index(_cfg(tmp_path, options={"crop_banner": False}, clip_boxes=True))
    assert index.problems == []


def test_bad_lists_name_file_and_line(tmp_path):
    write_aircraft_tree(tmp_path)
    data = tmp_path / "data"
    train = data / "images_variant_train.txt"
    lines = train.read_text().splitlines()
    lines[0] = lines[0].split()[0]                   # no class name
    lines[1] = lines[1].split()[0] + " 747-400"      # unknown variant
    train.write_text("\n".join(lines) + "\n")
    box_file = data / "images_box.txt"
    box_file.write_text("".join(ln + "\n" for ln in box_file.read_text().splitlines()
                                if not ln.startswith(lines[2].split()[0])))   # no box
    index = read_index(_cfg(tmp_path))
    assert [(p.file, p.line) for p in index.problems] == [(str(train), 1), (str(train), 2), (str(train), 3)]
    assert "expected '<image id> <variant>'" in index.problems[0].what
    assert "unknown variant '747-400'" in index.problems[1].what
    assert "has no box" in index.problems[2].what
    box_file.write_text("1000001 1 2 3\n")
    with pytest.raises(DataError, match="expected 5 fields") as e:
        read_index(_cfg(tmp_path))
    assert (e.value.file, e.value.line) == (str(box_file), 1)


def test_options(tmp_path):
    write_aircraft_tree(tmp_path)
    with pytest.raises(ConfigError, match="level must be one of variant, family, manufacturer"):
        read_index(_cfg(tmp_path, options={"level": "model"}))
    with pytest.raises(ConfigError, match="valid: banner_height, crop_banner, level"):
        read_index(_cfg(tmp_path, options={"banner": 20}))
    with pytest.raises(ConfigError, match="crop_banner must be true or false"):
        read_index(_cfg(tmp_path, options={"crop_banner": "maybe"}))
    index = read_index(_cfg(tmp_path, options={"banner_height": "10"}))
    assert index.problems == [] and index.splits["train"][0].size == (40, 40)
