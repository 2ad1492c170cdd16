"""Re-id readers: identities from file names / lists, junk and distractors, relabelling, splits."""

from __future__ import annotations

import pytest

from ornet.config.schema import DataConfig
from ornet.data.readers import read_index
from ornet.errors import ConfigError, DataError
from readers_util import write_msmt_tree, write_reid_tree


def _cfg(name, root, **kw) -> DataConfig:
    kw.setdefault("val_per_class", 1)
    kw.setdefault("options", {"test_per_id": 1})
    return DataConfig(name=name, root=str(root), **kw)


def _pid(record) -> int:
    return int(record.image_id.split("/")[-1].split("_")[0])


@pytest.mark.parametrize("name", ["market1501", "dukemtmc"])
def test_junk_distractors_and_relabelling(tmp_path, name):
    write_reid_tree(tmp_path, style=name, train_ids=(15, 2, 7), per_id=4)
    index = read_index(_cfg(name, tmp_path))
    assert index.problems == [] and not index.has_boxes
    assert index.classes == ["0002", "0007", "0015"]          # sorted original ids
    training = [r for s in ("train", "val", "test") for r in index.splits[s]]
    assert len(training) == 12 and all(_pid(r) > 0 for r in training)   # no junk (-1), no distractor (0000)
    assert all(index.classes[r.label] == f"{_pid(r):04d}" and r.boxes == () for r in training)
    # per identity: 1 test, 1 val, 2 train
    for s, n in (("train", 2), ("val", 1), ("test", 1)):
        assert sorted(r.label for r in index.splits[s]) == sorted([0, 1, 2] * n)
    assert {r.image_id for r in index.splits["train"]}.isdisjoint(r.image_id for r in index.splits["test"])
    # query / gallery: label -1; the gallery keeps distractors and drops junk
    assert len(index.splits["query"]) == 8 and all(r.label == -1 for r in index.splits["query"])
    gallery = index.splits["gallery"]
    assert sorted({_pid(r) for r in gallery}) == [0, 3, 9] and all(r.label == -1 for r in gallery)
    assert all(r.image_id.startswith("bounding_box_train/") for r in training)


def test_name_conventions(tmp_path):
    write_reid_tree(tmp_path / "m", style="market1501")
    write_reid_tree(tmp_path / "d", style="dukemtmc")
    assert (tmp_path / "m" / "bounding_box_train" / "0002_c1s1_000001_01.jpg").is_file()
    assert (tmp_path / "m" / "bounding_box_train" / "-1_c1s1_000001_01.jpg").is_file()
    assert (tmp_path / "d" / "bounding_box_train" / "0002_c1_f0046182.jpg").is_file()


def test_splits_are_seeded_and_optional(tmp_path):
    write_reid_tree(tmp_path)
    a = read_index(_cfg("market1501", tmp_path, split_seed=1))
    b = read_index(_cfg("market1501", tmp_path, split_seed=1))
    assert a.splits == b.splits
    c = read_index(_cfg("market1501", tmp_path, options={"test_per_id": 2, "query_gallery": False}))
    assert sorted(c.splits) == ["test", "train", "val"] and len(c.splits["test"]) == 6
    d = read_index(_cfg("market1501", tmp_path, options={"check_images": True}))
    assert d.problems == [] and d.splits["train"][0].size == (16, 32)
    with pytest.raises(ConfigError, match="valid: check_images, query_gallery, test_per_id"):
        read_index(_cfg("market1501", tmp_path, options={"boxes": "x"}))


def test_bad_file_names_and_missing_folders(tmp_path):
    write_reid_tree(tmp_path)
    bad = tmp_path / "bounding_box_train" / "person_c1.jpg"
    bad.write_bytes(b"")
    index = read_index(_cfg("dukemtmc", tmp_path))
    assert [p.file for p in index.problems] == [str(bad)]
    (tmp_path / "query").rename(tmp_path / "queries")
    with pytest.raises(DataError, match="missing folder query/"):
        read_index(_cfg("market1501", tmp_path))
    assert read_index(_cfg("market1501", tmp_path, options={"query_gallery": False, "test_per_id": 1})).splits


def test_msmt17_lists(tmp_path):
    write_msmt_tree(tmp_path, train_ids=(0, 1, 2), per_id=4)
    index = read_index(_cfg("msmt17", tmp_path))
    assert index.problems == [] and not index.has_boxes
    assert index.classes == ["0000", "0001", "0002"]
    assert [len(index.splits[s]) for s in ("train", "val", "test", "query", "gallery")] == [9, 3, 3, 2, 4]
    assert all(r.image_id.startswith("train/") for s in ("train", "val", "test") for r in index.splits[s])
    assert all(index.classes[r.label] == f"{_pid(r):04d}" for s in ("train", "val", "test") for r in index.splits[s])
    assert all(r.label == -1 and r.image_id.startswith("test/") for r in index.splits["gallery"])
    # MSMT17_V2 folder names
    (tmp_path / "train").rename(tmp_path / "mask_train_v2")
    (tmp_path / "test").rename(tmp_path / "mask_test_v2")
    index = read_index(_cfg("msmt17", tmp_path))
    assert index.problems == [] and index.splits["train"][0].image_id.startswith("mask_train_v2/")


def test_msmt17_bad_lists(tmp_path):
    write_msmt_tree(tmp_path)
    lst = tmp_path / "list_train.txt"
    lines = lst.read_text().splitlines()
    lines[1] = lines[1].split()[0] + " x"            # identity not an integer
    lines[2] = "0000/missing.jpg 0"                  # no such image
    lst.write_text("\n".join(lines) + "\n")
    val = tmp_path / "list_val.txt"
    val.write_text(val.read_text() + "0001/0001_000_01_0303morning_0006_0.jpg 99\n")  # unknown identity
    index = read_index(_cfg("msmt17", tmp_path))
    assert [(p.file, p.line) for p in index.problems][:2] == [(str(lst), 2), (str(lst), 3)]
    assert "'x' is not an integer" in index.problems[0].what and "missing" in index.problems[1].what
    assert "identity 99" in index.problems[2].what and index.problems[2].file == str(val)
    lst.write_text("0000/a.jpg\n")
    with pytest.raises(DataError, match="expected 2 fields") as e:
        read_index(_cfg("msmt17", tmp_path))
    assert (e.value.file, e.value.line) == (str(lst), 1)
