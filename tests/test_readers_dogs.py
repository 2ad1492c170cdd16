"""Stanford Dogs reader: .mat split lists, extension-less VOC XML annotations, several dogs."""

from __future__ import annotations

import sys

import pytest

from ornet.config.schema import DataConfig
from ornet.data.readers import read_index
from ornet.errors import ConfigError, DataError, OrnetError
from readers_util import BREEDS, SIZE, voc_xml, write_dogs_list, write_dogs_tree

pytest.importorskip("scipy.io")


def _cfg(root, **kw) -> DataConfig:
    kw.setdefault("val_per_class", 1)
    return DataConfig(name="dogs", root=str(root), **kw)


def test_splits_labels_and_boxes(tmp_path):
    boxes = write_dogs_tree(tmp_path, train_per_class=3, test_per_class=2)
    index = read_index(_cfg(tmp_path))
    assert index.problems == []
    assert index.classes == list(BREEDS) and index.has_boxes
    assert [len(index.splits[s]) for s in ("train", "val", "test")] == [6, 3, 6]
    records = [r for s in ("train", "val", "test") for r in index.splits[s]]
    assert {r.image_id for r in records} == set(boxes)
    for r in records:
        assert r.label == BREEDS.index(r.image_id.split("/")[0])   # labels 1-based in the .mat
        assert r.boxes == tuple(tuple(float(v) for v in b) for b in boxes[r.image_id])
        assert r.size == SIZE and r.path == tmp_path / "Images" / r.image_id
    assert sum(len(r.boxes) == 2 for r in records) == 3   # every 4th of 15 images has two dogs
    assert {r.image_id for r in index.splits["test"]} == {f"{b}/{b.split('-')[0]}_{1000 + k}.jpg"
                                                         for b in BREEDS for k in (3, 4)}


def test_lists_in_the_root_as_the_tar_extracts_them(tmp_path):
    write_dogs_tree(tmp_path)
    for f in ("train_list.mat", "test_list.mat"):
        (tmp_path / "lists" / f).rename(tmp_path / f)
    (tmp_path / "lists").rmdir()
    assert read_index(_cfg(tmp_path)).problems == []


def test_bad_annotations_name_their_file(tmp_path):
    write_dogs_tree(tmp_path)
    ann = tmp_path / "Annotation" / BREEDS[0]
    (ann / "n02085620_1000").unlink()                                          # missing annotation
    (ann / "n02085620_1001").write_text(voc_xml(SIZE, []))                     # no object
    (ann / "n02085620_1002").write_text(voc_xml(SIZE, [("Chihuahua", (0, 0, 10, 31))]))  # outside 40x30
    index = read_index(_cfg(tmp_path))
    found = {p.file: p for p in index.problems}
    assert len(index.problems) == 3
    assert "no annotation for image" in found[str(ann / "n02085620_1000")].what
    assert "no <object>" in found[str(ann / "n02085620_1001")].what
    p = found[str(ann / "n02085620_1002")]
    assert "outside the 40x30 image" in p.what and p.line == 13
    assert len(read_index(_cfg(tmp_path, clip_boxes=True)).problems) == 2


def test_bad_lists(tmp_path):
    write_dogs_tree(tmp_path)
    mat = tmp_path / "lists" / "train_list.mat"
    write_dogs_list(mat, [(f"{BREEDS[0]}/../../x.jpg", f"{BREEDS[0]}/x", 1), (f"{BREEDS[1]}/y.jpg", "y", 1)])
    index = read_index(_cfg(tmp_path))
    assert any("escapes the dataset root" in p.what and "entry 1" in p.what and p.file == str(mat)
               for p in index.problems)
    assert any("names folders" in p.what for p in index.problems)   # label 1 in two breed folders
    import scipy.io

    scipy.io.savemat(str(mat), {"file_list": [["a.jpg"]], "labels": [[1.0]]})
    with pytest.raises(DataError, match="no variable 'annotation_list'") as e:
        read_index(_cfg(tmp_path))
    assert e.value.file == str(mat)
    mat.write_bytes(b"not a mat file")
    with pytest.raises(DataError, match="unreadable .mat") as e:
        read_index(_cfg(tmp_path))
    assert e.value.file == str(mat)
    mat.unlink()
    with pytest.raises(DataError, match="missing split list"):
        read_index(_cfg(tmp_path))


def test_options_and_missing_scipy(tmp_path, monkeypatch):
    write_dogs_tree(tmp_path)
    with pytest.raises(ConfigError, match="for dataset 'dogs'; valid: none"):
        read_index(_cfg(tmp_path, options={"level": "x"}))
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.io", None)
    with pytest.raises(OrnetError, match=r"pip install ornet\[datasets\]"):
        read_index(_cfg(tmp_path))
