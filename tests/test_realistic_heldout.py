"""The held-out realistic sets (benchmarks/realistic_sets, issue 27) share nothing a setting was chosen
on with the tuning sets: no class, stamp, photo, test digit or random stream, and no bird (issue 30)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def sets(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import realistic_sets.common as common
    import realistic_sets.digits as digits
    import realistic_sets.objects as objects

    return common, objects, digits


def test_heldout_classes_are_new_and_no_bird(sets):
    _, objects, _ = sets
    held, tuned = objects.HELDOUT_CLASSES, objects.OBJECT_CLASSES
    assert len(held) == len(tuned) == 28
    assert not set(held) & set(tuned)
    held_files = [f for files in held.values() for f in files]
    assert len(held_files) == len(set(held_files))
    assert not set(held_files) & {f for files in tuned.values() for f in files}
    for name, files in held.items():
        assert not objects.BIRDISH.search(name)
        for f in files:
            assert "/birds/" not in f and "cartoon" not in f and not objects.BIRDISH.search(f), f
            assert f.startswith(objects.NOT_DISTRACTORS), f"{f} would also be a distractor"


def test_heldout_photos_digits_and_streams_are_apart(sets):
    common, _, digits = sets
    tuned = set(common.TRAIN_PHOTOS) | set(common.TEST_PHOTOS)
    train, test = set(common.HELDOUT_TRAIN_PHOTOS), set(common.HELDOUT_TEST_PHOTOS)
    assert not (train | test) & tuned and not train & test
    assert "sheep" not in train | test  # a held-out class in the picture
    # digits_heldout's test digits [0, HELDOUT_TEST_END) are train digits of "digits", never its test digits
    assert 0 < digits.HELDOUT_TEST_END <= digits.TRAIN_END
    assert len(set(common.KIND_STREAM.values())) == len(common.KIND_STREAM)


@pytest.mark.skipif(not (Path("/usr/share/tuxpaint/stamps").is_dir() and Path("/usr/share/tuxpaint/templates").is_dir()),
                    reason="needs tuxpaint-stamps-default and tuxpaint-data")
def test_objects_heldout_builds_and_records_its_sources(sets, tmp_path):
    from realistic_sets.__main__ import main

    out = tmp_path / "held"
    assert main(["objects_heldout", str(out), "--seed", "1", "--size", "32", "--train-per-class", "1",
                 "--test-per-class", "1"]) == 0
    meta = json.loads((out / "realistic.json").read_text())
    assert meta["generator"] == "benchmarks/realistic_sets objects_heldout" and meta["seed"] == 1
    assert meta["images"] == 56 and list(meta["stamps"]) == list(sets[1].HELDOUT_CLASSES)
    assert meta["test_photos"] == list(sets[0].HELDOUT_TEST_PHOTOS)
    assert meta["heldout"]["command"].startswith("python benchmarks/realistic_sets objects_heldout OUT --seed 1 ")
    photos = {line.split()[1] for line in (out / "backgrounds.txt").read_text().splitlines()}
    assert photos <= set(sets[0].HELDOUT_TRAIN_PHOTOS) | set(sets[0].HELDOUT_TEST_PHOTOS)


def test_bench_quality_marks_tuning_and_heldout_sets(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import bench_quality

    assert [bench_quality.set_role(n) for n in bench_quality.SET_INFO] == \
        ["tuning", "tuning", "tuning", "held out", "held out"]
    assert bench_quality.BUILD_SEED["objects_heldout"] != bench_quality.BUILD_SEED["objects"]
