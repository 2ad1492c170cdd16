"""Plain image-folder reader: class folders, seeded test split or train/test folders, box CSV."""

from __future__ import annotations

import pytest

from ornet.config.schema import DataConfig
from ornet.data.readers import read_index
from ornet.errors import ConfigError, DataError
from readers_util import SIZE, write_folder_tree


def _cfg(root, csv=None, **kw) -> DataConfig:
    kw.setdefault("val_per_class", 1)
    options = kw.pop("options", {})
    if csv is not None:
        options["boxes"] = str(csv)
    return DataConfig(name="folder", root=str(root), options=options, **kw)


def _csv_boxes(csv) -> dict[str, list[tuple[float, ...]]]:
    out: dict[str, list] = {}
    for line in csv.read_text().splitlines()[1:]:
        image, *box = line.split(",")
        out.setdefault(image, []).append(tuple(float(v) for v in box))
    return out


def test_flat_layout_split_and_boxes(tmp_path):
    csv = write_folder_tree(tmp_path, per_class=5)
    index = read_index(_cfg(tmp_path, csv))
    assert index.problems == [] and index.has_boxes
    assert index.classes == ["cat", "dog"]
    # 5 per class: round(5 * 0.2) = 1 test, 1 val, 3 train (.jpg, .png and .JPEG alike)
    assert [len(index.splits[s]) for s in ("train", "val", "test")] == [6, 2, 2]
    expected = _csv_boxes(csv)
    records = [r for s in index.splits.values() for r in s]
    assert {r.image_id for r in records} == set(expected)
    for r in records:
        assert r.boxes == tuple(expected[r.image_id]) and r.size == SIZE
        assert r.label == index.classes.index(r.image_id.split("/")[0])
    assert sum(len(r.boxes) == 2 for r in records) == 2
    again = read_index(_cfg(tmp_path, csv))
    assert again.splits == index.splits
    other = read_index(_cfg(tmp_path, csv, split_seed=3, options={"test_fraction": 0.4}))
    assert len(other.splits["test"]) == 4


def test_train_test_folders_and_no_boxes(tmp_path):
    write_folder_tree(tmp_path, per_class=5, split_layout=True, boxes=False)
    index = read_index(_cfg(tmp_path, val_per_class=0))
    assert index.problems == [] and not index.has_boxes
    assert [len(index.splits[s]) for s in ("train", "val", "test")] == [6, 0, 4]
    assert all(r.image_id.startswith("test/") for r in index.splits["test"])
    assert all(r.boxes == () for r in index.splits["train"])


def test_bad_box_file_names_file_and_line(tmp_path):
    csv = write_folder_tree(tmp_path, per_class=3)
    lines = csv.read_text().splitlines()
    first = lines[1].split(",")[0]
    lines[1] = f"{first},0,0,{SIZE[0] + 1},5"        # outside the image
    lines[2] = "cat/img_1.png,1,2,3"                 # malformed
    lines.append("cat/nothere.jpg,1,1,2,2")          # no such image
    lines = [ln for ln in lines if not ln.startswith("dog/img_2")]   # an image without box
    csv.write_text("\n".join(lines) + "\n")
    index = read_index(_cfg(tmp_path, csv))
    got = {(p.line, p.what.split(" ")[0]) for p in index.problems}
    assert all(p.file == str(csv) for p in index.problems)
    assert (2, "box") in got and (3, "expected") in got and (9, "box") in got
    assert any("no box for image dog/img_2.JPEG" in p.what for p in index.problems)
    assert any("outside the 40x30 image" in p.what and p.line == 2 for p in index.problems)
    csv.write_text("path,x0,y0,x1,y1\n")
    with pytest.raises(DataError, match="header must be image,x0,y0,x1,y1") as e:
        read_index(_cfg(tmp_path, csv))
    assert (e.value.file, e.value.line) == (str(csv), 1)
    with pytest.raises(DataError, match="missing box file"):
        read_index(_cfg(tmp_path, tmp_path / "none.csv"))


def test_empty_class_folder_unreadable_image_and_options(tmp_path):
    write_folder_tree(tmp_path, per_class=3, boxes=False)
    (tmp_path / "empty").mkdir()
    (tmp_path / "cat" / "broken.jpg").write_bytes(b"not an image")
    index = read_index(_cfg(tmp_path))
    assert {p.file for p in index.problems} == {str(tmp_path / "empty"), str(tmp_path / "cat" / "broken.jpg")}
    with pytest.raises(ConfigError, match="valid: boxes, test_fraction"):
        read_index(_cfg(tmp_path, options={"fraction": 0.1}))
    with pytest.raises(ConfigError, match="test_fraction must be in"):
        read_index(_cfg(tmp_path, options={"test_fraction": 1.5}))
    with pytest.raises(ConfigError, match="must be a number"):
        read_index(_cfg(tmp_path, options={"test_fraction": "some"}))
    with pytest.raises(DataError, match="no class folders"):
        read_index(_cfg(tmp_path / "empty"))
