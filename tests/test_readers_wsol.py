"""wsolevaluation metadata reader: the real CUB / ILSVRC files, and tiny trees in both forms."""

from __future__ import annotations

from pathlib import Path

import pytest

from ornet.config.schema import DataConfig
from ornet.data.readers import read_index
from ornet.errors import ConfigError, DataError, OrnetError
from readers_util import SIZE, write_wsol_tree

REPO = Path(__file__).resolve().parents[1]
_CANDIDATES = [REPO / "shared", REPO.parent / "shared", Path("/work/shared")]
REAL = next((p / "data" / "wsol-metadata" for p in _CANDIDATES if (p / "data" / "wsol-metadata").is_dir()), None)
needs_real = pytest.mark.skipif(REAL is None, reason="shared/data/wsol-metadata is not here")


def _cfg(root, meta, **kw) -> DataConfig:
    return DataConfig(name="wsol", root=str(root), metadata=str(meta), **kw)


@needs_real
def test_real_cub_metadata(tmp_path):
    index = read_index(_cfg(tmp_path, REAL / "CUB"))
    assert index.problems == []
    assert sorted(index.splits) == ["test", "val"]
    assert len(index.splits["test"]) == 5794 and len(index.splits["val"]) == 1000
    assert sum(len(r.boxes) for r in index.splits["test"]) == 5794
    assert index.num_classes == 200 and index.classes[0] == "001.Black_footed_Albatross"
    r = index.splits["val"][0]  # first lines of the val files
    assert r.image_id == "001.Black_footed_Albatross/30107316117.jpg" and r.label == 0
    assert r.size == (560, 419) and r.boxes == ((176.0, 136.0, 459.0, 291.0),)
    assert r.path == tmp_path / r.image_id


@needs_real
def test_real_ilsvrc_metadata(tmp_path):
    index = read_index(_cfg(tmp_path, REAL / "ILSVRC"))
    assert index.problems == []
    val = index.splits["val"]
    assert len(val) == 10000 and sum(len(r.boxes) for r in val) == 18532
    assert index.num_classes == 1000 and {r.label for r in val} == set(range(1000))
    assert max(len(r.boxes) for r in val) > 1


def test_tiny_tree_box_form(tmp_path):
    write_wsol_tree(tmp_path / "img", tmp_path / "meta")
    index = read_index(_cfg(tmp_path / "img", tmp_path / "meta"))
    assert index.problems == [] and index.has_boxes and not index.has_masks
    assert [len(index.splits[s]) for s in ("train", "val", "test")] == [6, 6, 6]
    assert index.classes == ["000.class_0", "001.class_1"]
    assert all(r.boxes == () for r in index.splits["train"])  # no localization.txt for train
    two = [r for r in index.splits["test"] if r.image_id.endswith("img_1.jpg")]
    assert len(two) == 2 and all(len(r.boxes) == 2 and r.boxes[1] == (0.0, 0.0, 10.0, 7.0) for r in two)
    assert all(r.size == SIZE for r in index.splits["test"])


def test_tiny_tree_mask_form(tmp_path):
    write_wsol_tree(tmp_path / "img", tmp_path / "meta", masks=True)
    index = read_index(_cfg(tmp_path / "img", tmp_path / "meta"))
    assert index.problems == [] and index.has_masks and not index.has_boxes
    r = index.splits["test"][0]
    assert r.mask_path == tmp_path / "img" / "masks/test/img_0_0.png"
    assert r.ignore_path == tmp_path / "img" / "masks/test/ignore_0_0.png"
    assert index.splits["test"][1].ignore_path is None
    moved = tmp_path / "masks_elsewhere"
    moved.mkdir()
    (tmp_path / "img" / "masks").rename(moved / "masks")
    index = read_index(_cfg(tmp_path / "img", tmp_path / "meta", options={"mask_root": str(moved)}))
    assert index.splits["val"][0].mask_path == moved / "masks/val/img_0_0.png"
    # several instance masks of one image: one mask per Record, so it is reported
    loc = tmp_path / "meta" / "test" / "localization.txt"
    first = loc.read_text().splitlines()[0].split(",")
    loc.write_text(loc.read_text() + f"{first[0]},masks/test/img_0_1.png,\n")
    index = read_index(_cfg(tmp_path / "img", tmp_path / "meta", options={"mask_root": str(moved)}))
    assert len(index.problems) == 1 and "2 instance masks" in index.problems[0].what
    assert index.problems[0].file == str(loc) and index.problems[0].line == 7


def test_check_images_compares_sizes(tmp_path):
    write_wsol_tree(tmp_path / "img", tmp_path / "meta")
    sizes = tmp_path / "meta" / "val" / "image_sizes.txt"
    sizes.write_text(sizes.read_text().replace(f",{SIZE[0]},{SIZE[1]}\n", f",{SIZE[0]},{SIZE[1] + 1}\n", 1))
    assert read_index(_cfg(tmp_path / "img", tmp_path / "meta")).problems == []
    index = read_index(_cfg(tmp_path / "img", tmp_path / "meta", options={"check_images": "true"}))
    assert len(index.problems) == 1 and index.problems[0].file == str(sizes) and "40x31" in index.problems[0].what
    (tmp_path / "img" / "test" / "000.class_0" / "img_2.jpg").unlink()
    index = read_index(_cfg(tmp_path / "img", tmp_path / "meta", options={"check_images": True}))
    assert any("image file is missing" in p.what and p.file.endswith("img_2.jpg") for p in index.problems)


def test_bad_metadata_names_the_file(tmp_path):
    write_wsol_tree(tmp_path / "img", tmp_path / "meta")
    test = tmp_path / "meta" / "test"
    loc = test / "localization.txt"
    lines = loc.read_text().splitlines()
    iid = lines[0].split(",")[0]
    lines[0] = f"{iid},0,0,{SIZE[0] + 5},10"                 # box outside the image
    lines = [ln for ln in lines if not ln.startswith(lines[-1].split(",")[0])]  # last image: no box
    loc.write_text("\n".join(lines) + "\n")
    index = read_index(_cfg(tmp_path / "img", tmp_path / "meta"))
    assert {(p.file, p.line) for p in index.problems} == {(str(loc), 1), (str(loc), None)}
    assert any("outside the 40x30 image" in p.what for p in index.problems)
    assert any("has no box" in p.what for p in index.problems)

    loc.write_text(loc.read_text() + "x.jpg,1,2\n")           # malformed line: 3 fields read as a mask line
    with pytest.raises(DataError, match="mixes box lines") as e:
        read_index(_cfg(tmp_path / "img", tmp_path / "meta"))
    assert e.value.file == str(loc)
    loc.write_text("x.jpg,1,2,3\n")                            # 4 fields
    with pytest.raises(DataError, match="expected 3 or 5 fields") as e:
        read_index(_cfg(tmp_path / "img", tmp_path / "meta"))
    assert (e.value.file, e.value.line) == (str(loc), 1)
    loc.unlink()
    with pytest.raises(DataError, match="missing localization file"):
        read_index(_cfg(tmp_path / "img", tmp_path / "meta"))


def test_ids_labels_and_options(tmp_path):
    write_wsol_tree(tmp_path / "img", tmp_path / "meta")
    ids = tmp_path / "meta" / "train" / "image_ids.txt"
    ids.write_text(ids.read_text() + "../escape.jpg\n")
    labels = tmp_path / "meta" / "train" / "class_labels.txt"
    labels.write_text(labels.read_text().replace(",1\n", ",one\n", 1))
    index = read_index(_cfg(tmp_path / "img", tmp_path / "meta"))
    assert any("escapes the dataset root" in p.what and p.file == str(ids) and p.line == 7 for p in index.problems)
    assert any("'one' is not an integer" in p.what and p.file == str(labels) for p in index.problems)
    with pytest.raises(OrnetError, match="--data.metadata"):
        read_index(DataConfig(name="wsol", root=str(tmp_path)))
    with pytest.raises(ConfigError, match="valid: check_images, mask_root"):
        read_index(_cfg(tmp_path / "img", tmp_path / "meta", options={"boxes": "x"}))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no split folder"):
        read_index(_cfg(tmp_path / "img", tmp_path / "empty"))
