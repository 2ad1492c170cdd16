"""The tuning split (`data.tune_per_class`): carved from train, never val or test, seeded, off by default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import load_study, write_cub_tree
from ornet.cli import main
from ornet.config.schema import DataConfig
from ornet.data.readers import carve_tune, read_index
from ornet.data.records import DatasetIndex, Record
from ornet.errors import ConfigError, OrnetError

# The splits of `write_cub_tree` (3 classes x 6 images, every 3rd to test) with val_per_class 1, as the
# readers gave them before the tune split existed (recorded at 16c053c): tune_per_class 0 must keep them.
BEFORE = {
    0: {"train": ["001/001", "001/002", "001/004", "002/001", "002/002", "002/005", "003/001", "003/002", "003/005"],
        "val": ["001/005", "002/004", "003/004"]},
    3: {"train": ["001/001", "001/002", "001/004", "002/002", "002/004", "002/005", "003/002", "003/004", "003/005"],
        "val": ["001/005", "002/001", "003/001"]},
}
TEST = ["001/000", "001/003", "002/000", "002/003", "003/000", "003/003"]


def _ids(records: list[Record]) -> list[str]:
    return [f"{r.image_id[:3]}/{r.image_id[-7:-4]}" for r in records]


def _index(root: Path, **fields) -> DatasetIndex:
    index = read_index(DataConfig(root=str(root), **{"val_per_class": 1, **fields}))
    assert index.problems == []
    return index


@pytest.mark.parametrize("seed", [0, 3])
def test_tune_per_class_0_leaves_every_split_as_before(cub_tree, seed):
    index = _index(cub_tree, split_seed=seed)
    assert DataConfig().tune_per_class == 0
    assert list(index.splits) == ["train", "val", "test"]
    assert {k: _ids(v) for k, v in index.splits.items()} == {**BEFORE[seed], "test": TEST}


def test_counts_per_class_and_disjoint_splits(cub_tree):
    # per class: 6 images = 2 test + 4 train; val takes 1, tune 2 of the 3 left, 1 stays in train
    index = _index(cub_tree, tune_per_class=2)
    count = {s: [sum(r.label == c for r in recs) for c in range(3)] for s, recs in index.splits.items()}
    assert count == {"train": [1, 1, 1], "val": [1, 1, 1], "test": [2, 2, 2], "tune": [2, 2, 2]}
    ids = {s: set(_ids(recs)) for s, recs in index.splits.items()}
    assert sum(map(len, ids.values())) == 18 and set.union(*ids.values()) == set(BEFORE[0]["train"] + BEFORE[0]["val"] + TEST)
    for a in ids:
        for b in ids:
            assert a == b or not ids[a] & ids[b], (a, b)
    # val and test are untouched; tune and train share out the old train split
    assert _ids(index.splits["val"]) == BEFORE[0]["val"] and _ids(index.splits["test"]) == TEST
    assert sorted(_ids(index.splits["train"]) + _ids(index.splits["tune"])) == BEFORE[0]["train"]


def test_a_class_keeps_one_training_image(cub_tree):
    index = _index(cub_tree, tune_per_class=5)  # 3 training images per class after val: 2 to spare
    assert [sum(r.label == c for r in index.splits["train"]) for c in range(3)] == [1, 1, 1]
    assert len(index.splits["tune"]) == 6
    recs = [Record(f"{c}/{i}", None, c) for c in range(2) for i in range(3 if c == 0 else 1)]
    small = carve_tune(DatasetIndex("t", Path("."), ["a", "b"], {"train": recs}), 4, 0)
    assert sorted(r.label for r in small.splits["train"]) == [0, 1]  # class 1 (one image) gives none
    assert sorted(r.label for r in small.splits["tune"]) == [0, 0] and small.problems == []


def test_too_few_images_for_any_tune_image_is_a_problem(tmp_path):
    root = write_cub_tree(tmp_path / "cub", per_class=3)  # 2 training images per class, val takes 1
    index = read_index(DataConfig(root=str(root), val_per_class=1, tune_per_class=1))
    assert index.splits["tune"] == [] and len(index.splits["train"]) == 3
    assert len(index.problems) == 1 and "tune_per_class is 1 but no class" in str(index.problems[0])


def test_tune_split_is_seeded_by_split_seed(cub_tree):
    a, b = _index(cub_tree, tune_per_class=1), _index(cub_tree, tune_per_class=1)
    assert _ids(a.splits["tune"]) == _ids(b.splits["tune"]) and _ids(a.splits["train"]) == _ids(b.splits["train"])
    others = [_ids(_index(cub_tree, tune_per_class=1, split_seed=s).splits["tune"]) for s in range(1, 6)]
    assert any(o != _ids(a.splits["tune"]) for o in others)
    # its own stream: the tune images are not simply the next draw of the val carve
    for s in (0, 3):
        tuned = _index(cub_tree, tune_per_class=1, split_seed=s)
        assert _ids(tuned.splits["val"]) == BEFORE[s]["val"]


def test_negative_tune_per_class_is_refused(cub_tree, capsys):
    with pytest.raises(OrnetError, match="data.tune_per_class must be >= 0, got -1"):
        read_index(DataConfig(root=str(cub_tree), tune_per_class=-1))
    import ornet

    with pytest.raises(ConfigError, match="data.tune_per_class must be >= 0, got -2"):
        ornet.load_config("demo", {"data.tune_per_class": -2, "data.root": str(cub_tree)})
    assert main(["check-data", "--data.root", str(cub_tree), "--data.tune_per_class", "-1", "--no-decode"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data.tune_per_class must be >= 0" in err[0]


def test_check_data_reports_the_tune_split(cub_tree, capsys):
    code = main(["check-data", "--data.root", str(cub_tree), "--data.val_per_class", "1",
                 "--data.tune_per_class", "2", "--json", "--no-decode"])
    out = capsys.readouterr().out
    assert code == 0
    splits = json.loads(out)["splits"]
    assert {s: splits[s]["images"] for s in splits} == {"train": 3, "val": 3, "test": 6, "tune": 6}
    assert splits["tune"]["classes"] == 3 and splits["tune"]["masks"] == 6


def test_a_missing_tune_split_names_the_option(cub_tree):
    with pytest.raises(OrnetError, match=r"no split 'tune'.*--data.tune_per_class N"):
        _index(cub_tree).split("tune")


def _tune_study():
    return load_study("tune")


@pytest.mark.parametrize("variant, flags, message", [
    ({}, ["--split", "test"], "--split test: the sweep ranks on the tune split only"),
    ({}, ["--tune-per-class", "0"], "--tune-per-class must be >= 1"),
    ({"overrides": {"refine.keep": "best_test"}}, [], "keeps refine's best epoch on the test split"),
    ({"config": "configs/cub_release.yaml"}, [], "keeps evaluator's best epoch on the test split"),
    ({"overrides": {"data.tune_per_class": 3}}, [], "sets data.tune_per_class"),
    ({"overrides": {"trainer.seed": 3}}, ["--seeds", "0", "1"], "sets trainer.seed; with --seeds the sweep sets it"),
    ({}, ["--seeds", "0", "0"], "--seeds must be distinct seeds >= 0"),
])
def test_tune_study_refuses_to_choose_on_test(tmp_path, capsys, variant, flags, message):
    repo = Path(__file__).resolve().parents[1]
    run = {"name": "v", "config": str(repo / "configs" / "demo.yaml"), "data": str(tmp_path), **variant}
    if not run["config"].startswith("/"):
        run["config"] = str(repo / run["config"])
    (tmp_path / "v.json").write_text(json.dumps([run]))
    assert _tune_study().main([str(tmp_path / "v.json"), "--work", str(tmp_path / "work"), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "work").exists()  # refused before anything ran


def test_tune_study_trains_with_a_tune_split_and_scores_only_it(tmp_path):
    study = _tune_study()
    train, evaluate = study.commands({"name": "a", "config": "c.yaml", "data": "d", "overrides": {"refine.epochs": 2}},
                                     {"d": "/data"}, tmp_path, "cpu", 4)
    assert train[train.index("--data.tune_per_class") + 1] == "4" and train[-2:] == ["--refine.epochs", "2"]
    assert evaluate[evaluate.index("--split") + 1] == "tune" and evaluate[evaluate.index("--out") + 1] == str(tmp_path / "a" / "tune")
    (tmp_path / "a" / "tune").mkdir(parents=True)
    (tmp_path / "a" / "metrics.json").write_text(json.dumps({"split": "test", "gt_known_loc": 99.0, "seconds_per_stage": {"x": 1}}))
    (tmp_path / "a" / "tune" / "metrics.json").write_text(json.dumps({"split": "tune", "gt_known_loc": 42.0}))
    row = study.finished({"name": "a", "data": "d", "config": "c.yaml"}, 0, tmp_path, tmp_path / "a.log", 1.0, 4)
    assert row["gt_known_loc"] == 42.0 and row["split"] == "tune" and row["seconds_per_stage"] == {"x": 1}


def test_tune_study_runs_each_variant_per_seed_and_ranks_by_the_mean(tmp_path):
    study = _tune_study()
    runs = study.per_seed([{"name": "a", "config": "c.yaml", "data": "d", "overrides": {"refine.epochs": 2}},
                           {"name": "b", "config": "c.yaml", "data": "d"}], [0, 3])
    assert [r["name"] for r in runs] == ["a_s0", "b_s0", "a_s3", "b_s3"]  # every variant's first seed first
    assert runs[2]["overrides"] == {"refine.epochs": 2, "trainer.seed": 3} and runs[3]["variant"] == "b"
    train, _ = study.commands(runs[2], {"d": "/data"}, tmp_path, "cpu", 4)
    assert train[train.index("--trainer.seed") + 1] == "3" and train[train.index("--out") + 1] == str(tmp_path / "a_s3")
    row = study.finished(runs[2], 1, tmp_path, _list(tmp_path, ["boom"]), 1.0, 4)
    assert row["variant"] == "a" and row["name"] == "a_s3"
    rows = [{"name": "a_s0", "variant": "a", "gt_known_loc": 80.0}, {"name": "b_s0", "variant": "b", "gt_known_loc": 84.0},
            {"name": "a_s3", "variant": "a", "gt_known_loc": 84.0}, {"name": "b_s3", "variant": "b", "gt_known_loc": 76.0},
            {"name": "c_s0", "variant": "c", "rc": 1}]
    # a: mean 82 (lowest 80) ahead of b: mean 80 (lowest 76), though b_s0 is the best single run; c never scored
    assert study.by_variant(rows) == [("a", 82.0, 80.0, [80.0, 84.0]), ("b", 80.0, 76.0, [84.0, 76.0])]


# --- data.tune_list: the tune split named image by image (whole groups held out together) ---

def _list(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "tune.txt"
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def _rel(short: str) -> str:  # "002/005" -> the reader's image id
    c, k = short.split("/")
    return f"{c}.class_{int(c) - 1}/img_{k}.jpg"


def test_tune_list_takes_exactly_the_listed_images(cub_tree, tmp_path):
    # two training images, one val image (002/004 of seed 0's val carve), a comment and a blank line
    listed = ["003/005", "001/001", "002/004"]
    path = _list(tmp_path, ["# held-out group", _rel(listed[0]) + "  extra fields ignored", "", *map(_rel, listed[1:])])
    index = _index(cub_tree, tune_list=str(path))
    assert _ids(index.splits["tune"]) == listed  # in the list's order
    assert _ids(index.splits["train"]) == [i for i in BEFORE[0]["train"] if i not in listed]
    assert _ids(index.splits["val"]) == [i for i in BEFORE[0]["val"] if i not in listed]
    assert _ids(index.splits["test"]) == TEST


@pytest.mark.parametrize("lines, message", [
    (["001/001", "001/001"], r"tune.txt:2: image id '001.class_0/img_001.jpg' is listed twice \(first on line 1\)"),
    (["001/001", "009/001"], r"tune.txt:2: image id '009.class_8/img_001.jpg' is not in dataset"),
    (["001/003"], r"tune.txt:1: image id '001.class_0/img_003.jpg' is in the test split; the tune split takes training"),
    ([], r"tune.txt: the tune list names no image"),
])
def test_a_bad_tune_list_names_file_and_line(cub_tree, tmp_path, lines, message):
    path = _list(tmp_path, [_rel(x) for x in lines] or ["# nothing"])
    with pytest.raises(OrnetError, match=message):
        read_index(DataConfig(root=str(cub_tree), val_per_class=1, tune_list=str(path)))


def test_a_tune_list_of_every_training_image_is_a_problem(cub_tree, tmp_path):
    path = _list(tmp_path, [_rel(x) for x in BEFORE[0]["train"]])
    index = read_index(DataConfig(root=str(cub_tree), val_per_class=1, tune_list=str(path)))
    assert index.splits["train"] == [] and len(index.splits["tune"]) == 9
    assert len(index.problems) == 1 and "none is left to train on" in str(index.problems[0])


def test_tune_list_and_tune_per_class_exclude_each_other(cub_tree, tmp_path, capsys):
    path = _list(tmp_path, [_rel("001/001")])
    import ornet

    with pytest.raises(ConfigError, match=r"data.tune_list and data.tune_per_class \(2\) both carve the tune split"):
        ornet.load_config("demo", {"data.tune_per_class": 2, "data.tune_list": str(path), "data.root": str(cub_tree)})
    missing = tmp_path / "absent.txt"
    assert main(["check-data", "--data.root", str(cub_tree), "--data.tune_list", str(missing), "--no-decode"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{missing}: cannot read the tune list" in err[0], err
    assert main(["check-data", "--data.root", str(cub_tree), "--data.val_per_class", "1", "--data.tune_list", str(path),
                 "--json", "--no-decode"]) == 0
    splits = json.loads(capsys.readouterr().out)["splits"]
    assert {s: splits[s]["images"] for s in splits} == {"train": 8, "val": 3, "test": 6, "tune": 1}


def _realistic_tables(root: Path) -> None:
    # 6 images: ids 1-4 train (photos a, b, a, c), 5-6 test (photo d)
    root.mkdir()
    (root / "images.txt").write_text("".join(f"{i} 001.x/img_{i}.jpg\n" for i in range(1, 7)))
    (root / "train_test_split.txt").write_text("1 1\n2 1\n3 1\n4 1\n5 0\n6 0\n")
    (root / "backgrounds.txt").write_text("1 a\n2 b\n3 a\n4 c\n5 d\n6 d\n")


def test_tune_study_builds_a_tune_list_of_whole_photos(tmp_path, capsys):
    study = _tune_study()
    _realistic_tables(tmp_path / "set")
    assert study.photo_tune_ids(tmp_path / "set", ["a", "c"]) == ["001.x/img_1.jpg", "001.x/img_3.jpg", "001.x/img_4.jpg"]
    for photos in (["d"], ["zz"]):  # a test photo is not a training background
        with pytest.raises(study.Refused, match=f"{photos[0]} is not a background of a training image.*they are: a, b, c"):
            study.photo_tune_ids(tmp_path / "set", photos)
    (tmp_path / "set" / "backgrounds.txt").write_text("1 a\n2 b\n\n3\n")  # a line without its photo: file and line
    with pytest.raises(study.Refused, match=r"backgrounds.txt:4: expected an image id and a value, got '3'"):
        study.photo_tune_ids(tmp_path / "set", ["a"])
    (tmp_path / "set" / "backgrounds.txt").write_text("1 a\n2 b\n3 a\n4 c\n5 d\n6 d\n")  # as it was
    out = study.write_tune_list(tmp_path / "work" / "tl.txt", ["001.x/img_1.jpg"], "photo a")
    assert out.read_text() == "# photo a\n001.x/img_1.jpg\n"
    train, evaluate = study.commands({"name": "r", "config": "c.yaml", "data": "s"}, {"s": "/data"}, tmp_path, "cpu", 5,
                                     {"s": str(out)})
    assert train[train.index("--data.tune_list") + 1] == str(out) and "--data.tune_per_class" not in train
    row = study.finished({"name": "r", "data": "s", "config": "c.yaml"}, 1, tmp_path, _list(tmp_path, ["boom"]), 1.0, 5,
                         {"s": str(out)})
    assert row["tune_list"] == str(out) and "tune_per_class" not in row and row["error"] == "boom"
    # a variant may not set the tune split itself
    (tmp_path / "v.json").write_text(json.dumps([{"name": "v", "config": str(Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"),
                                                 "data": "s", "overrides": {"data.tune_list": "x.txt"}}]))
    assert study.main([str(tmp_path / "v.json"), "--work", str(tmp_path / "w"), "--data", f"s={tmp_path / 'set'}",
                       "--tune-photos", "s=a"]) == 2
    assert "sets data.tune_list" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()  # refused before the list was written
