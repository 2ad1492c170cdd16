"""ILSVRC 2012 reader: train folders, flat or per-class val with VOC XML boxes."""

from __future__ import annotations

import pytest

from ornet.config.schema import DataConfig
from ornet.data.readers import read_index
from ornet.errors import ConfigError, DataError
from readers_util import SIZE, WNIDS, voc_xml, write_ilsvrc_tree


def _cfg(root, **kw) -> DataConfig:
    kw.setdefault("val_per_class", 1)
    return DataConfig(name="ilsvrc", root=str(root), **kw)


@pytest.mark.parametrize("layout", ["flat", "folders"])
def test_splits_labels_and_every_box(tmp_path, layout):
    boxes = write_ilsvrc_tree(tmp_path, train_per_class=3, val_per_class=4, layout=layout)
    index = read_index(_cfg(tmp_path))
    assert index.problems == []
    assert index.classes == list(WNIDS) and index.has_boxes
    assert [len(index.splits[s]) for s in ("train", "val", "test")] == [9, 3, 9]
    train = index.splits["train"]
    assert all(r.boxes == () and r.size is None for r in train)  # weak supervision: no boxes, not opened
    assert train[0].image_id == f"train/{WNIDS[0]}/{WNIDS[0]}_1.JPEG" and train[0].label == 0
    annotated = index.splits["val"] + index.splits["test"]
    assert {r.image_id for r in annotated} == set(boxes)
    for r in annotated:  # boxes kept as written, all objects, class from the XML / folder
        assert r.boxes == tuple(tuple(float(v) for v in b) for b in boxes[r.image_id])
        assert r.size == SIZE
        assert r.label == (int(r.image_id.split("_")[-1].split(".")[0]) - 1) // 4
    assert sum(len(r.boxes) == 2 for r in annotated) == 4  # every 3rd of 12 images has two objects
    assert sorted(r.label for r in index.splits["val"]) == [0, 1, 2]


def test_heldout_from_train_when_asked(tmp_path):
    write_ilsvrc_tree(tmp_path)
    index = read_index(_cfg(tmp_path, options={"heldout_from_val": "false"}))
    assert index.problems == []
    assert [len(index.splits[s]) for s in ("train", "val", "test")] == [6, 3, 12]
    assert all(r.boxes == () for r in index.splits["val"])


def test_class_index_file_sets_the_order(tmp_path):
    write_ilsvrc_tree(tmp_path)
    order = [WNIDS[2], WNIDS[0], WNIDS[1]]
    (tmp_path / "LOC_synset_mapping.txt").write_text("".join(f"{w} some name, other name\n" for w in order))
    index = read_index(_cfg(tmp_path, options={"class_index": "LOC_synset_mapping.txt"}))
    assert index.problems == [] and index.classes == order
    r = next(r for r in index.splits["train"] if r.image_id.startswith(f"train/{WNIDS[2]}/"))
    assert r.label == 0
    # a train folder the index does not list is a problem naming the folder
    (tmp_path / "LOC_synset_mapping.txt").write_text(f"{WNIDS[0]} a\n{WNIDS[1]} b\n")
    index = read_index(_cfg(tmp_path, options={"class_index": "LOC_synset_mapping.txt"}))
    assert any(p.file == str(tmp_path / "train" / WNIDS[2]) for p in index.problems)


def test_check_images_reads_headers(tmp_path):
    write_ilsvrc_tree(tmp_path)
    index = read_index(_cfg(tmp_path, options={"check_images": True}))
    assert index.problems == [] and all(r.size == SIZE for r in index.splits["train"])
    xml = tmp_path / "val_annotations" / "ILSVRC2012_val_00000002.xml"
    xml.write_text(voc_xml((41, 30), [(WNIDS[0], (1, 1, 5, 5))]))
    index = read_index(_cfg(tmp_path, options={"check_images": True}))
    assert [p.file for p in index.problems] == [str(xml)] and "41x30" in index.problems[0].what


def _problem(index, xml) -> DataError:
    found = [p for p in index.problems if p.file == str(xml)]
    assert len(found) == 1, index.problems
    return found[0]


def test_bad_annotations_name_their_file(tmp_path):
    write_ilsvrc_tree(tmp_path)
    ann = tmp_path / "val_annotations"
    (ann / "ILSVRC2012_val_00000001.xml").unlink()                                   # missing
    (ann / "ILSVRC2012_val_00000002.xml").write_text(voc_xml(SIZE, []))              # no object
    (ann / "ILSVRC2012_val_00000003.xml").write_text(voc_xml(SIZE, [("n99999999", (1, 1, 5, 5))]))  # unknown
    (ann / "ILSVRC2012_val_00000005.xml").write_text(voc_xml(SIZE, [(WNIDS[1], (1, 1, 50, 5))]))    # outside
    (ann / "ILSVRC2012_val_00000006.xml").write_text("<annotation><object>")         # malformed
    (ann / "ILSVRC2012_val_00000007.xml").write_text(                                # disagreeing objects
        voc_xml(SIZE, [(WNIDS[1], (1, 1, 5, 5)), (WNIDS[2], (1, 1, 5, 5))]))
    index = read_index(_cfg(tmp_path))
    assert "no annotation XML" in _problem(index, ann / "ILSVRC2012_val_00000001.xml").what
    assert "no <object>" in _problem(index, ann / "ILSVRC2012_val_00000002.xml").what
    p = _problem(index, ann / "ILSVRC2012_val_00000003.xml")
    assert "unknown wnid 'n99999999'" in p.what and p.line == 13  # the <object> element
    p = _problem(index, ann / "ILSVRC2012_val_00000005.xml")
    assert "outside the 40x30 image" in p.what and p.line == 13  # the <object> element
    assert "malformed XML" in _problem(index, ann / "ILSVRC2012_val_00000006.xml").what
    assert "disagree" in _problem(index, ann / "ILSVRC2012_val_00000007.xml").what
    assert len(index.problems) == 6
    assert len(index.splits["val"]) + len(index.splits["test"]) == 6
    # clip_boxes clips the box that leaves the image instead
    index = read_index(_cfg(tmp_path, clip_boxes=True))
    assert len(index.problems) == 5


def test_missing_folders_and_options(tmp_path):
    write_ilsvrc_tree(tmp_path)
    with pytest.raises(ConfigError, match="valid: check_images, class_index, heldout_from_val, val_annotations"):
        read_index(_cfg(tmp_path, options={"level": "x"}))
    with pytest.raises(DataError, match="set data.options.val_annotations"):
        read_index(_cfg(tmp_path, options={"val_annotations": "nowhere"}))
    (tmp_path / "val_annotations").rename(tmp_path / "xml")
    assert read_index(_cfg(tmp_path, options={"val_annotations": str(tmp_path / "xml")})).problems == []
    (tmp_path / "train").rename(tmp_path / "training")
    with pytest.raises(DataError, match="missing folder") as e:
        read_index(_cfg(tmp_path))
    assert e.value.file == str(tmp_path / "train")
