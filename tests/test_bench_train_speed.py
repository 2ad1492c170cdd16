"""benchmarks/bench_train_speed.py (issue 28): the subset it times (the first classes, the first
training images of each, all their test images, ids kept) is a CUB tree the reader accepts, and the
two versions alternate so that neither always runs first. No training runs here."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from conftest import write_cub_tree
from ornet.config.schema import DataConfig
from ornet.data.readers import read_index

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def bench(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import bench_train_speed

    return bench_train_speed


def ids(path: Path) -> list[str]:
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def test_subset_keeps_first_classes_first_train_images_and_all_test(bench, tmp_path):
    src = write_cub_tree(tmp_path / "cub", classes=3, per_class=6)  # per class: k = 0, 3 test; 1, 2, 4, 5 train
    (src / "bounding_boxes.txt").write_text((src / "bounding_boxes.txt").read_text() + "2 1.0 1.0 5.0 5.0\n")
    counts = bench.build_subset(src, tmp_path / "sub", classes=2, train_per_class=3)
    sub = tmp_path / "sub"
    assert counts == {"classes": 2, "train": 6, "test": 4}
    kept = ["1", "2", "3", "4", "5", "7", "8", "9", "10", "11"]  # ids 6 and 12: a 4th train image; 13-18: class 3
    for name in ("images.txt", "image_class_labels.txt", "train_test_split.txt"):
        assert ids(sub / name) == kept
    assert ids(sub / "bounding_boxes.txt") == [*kept, "2"]  # every box line of a kept id
    assert ids(sub / "classes.txt") == ["1", "2"]
    assert (sub / "images").resolve() == (src / "images").resolve()
    index = read_index(DataConfig(name="cub", root=str(sub), val_per_class=1))
    assert not index.problems
    assert index.classes == ["001.class_0", "002.class_1"]
    assert (len(index.splits["train"]), len(index.splits["val"]), len(index.splits["test"])) == (4, 2, 4)
    assert sum(len(r.boxes) == 2 for split in index.splits.values() for r in split) == 1  # image 2
    bench.build_subset(src, sub, classes=1, train_per_class=1)  # a second build replaces the first
    assert ids(sub / "images.txt") == ["1", "2", "4"]


def test_versions_alternate(bench):
    assert bench.run_order(3) == ["old", "new", "new", "old", "old", "new"]
    assert bench.pairs(["data.resize=64", "trainer.limit_train_batches=2"]) == [
        "--data.resize", "64", "--trainer.limit_train_batches", "2"]
    with pytest.raises(SystemExit):
        bench.pairs(["data.resize"])


def test_case_table_ratio_against_the_issue_target_or_the_given_one(bench):
    runs = [{"version": "old", "seconds": 100.0, "gt_known": 80.0, "stages": "-", "peak_mib": 900.0},
            {"version": "new", "seconds": 115.0, "gt_known": 81.0, "stages": "-", "peak_mib": 900.0},
            {"version": "new", "seconds": 125.0, "gt_known": 81.0, "stages": "-", "peak_mib": 900.0},
            {"version": "old", "seconds": 110.0, "gt_known": 80.0, "stages": "-", "peak_mib": 900.0}]
    # by hand: medians old 105, new 120; 105 / 120 = 0.875
    assert ("Median seconds: old 105.0, new 120.0; old / new **0.88x**; the issue's target >= 2.5x (not met)."
            in bench.case_table("demo_subset", runs))
    assert ("Median seconds: old 105.0, new 120.0; old / new **0.88x**; the target (--target) >= 0.833x (met)."
            in bench.case_table("demo_subset", runs, 0.833))
    assert "(not met)" in bench.case_table("demo_subset", runs, 0.9)[-2]
    assert "| 1 | old | 100.0 | 80.0 | 900 | - |" in bench.case_table("demo_subset", runs)  # peak memory, MiB


def test_timed_run_gives_the_subprocess_peak_memory_and_stops_on_failure(bench, tmp_path):
    # Linux counts the spawning process's resident set in a spawned child's ru_maxrss, so the figure is
    # taken from a small interpreter, as the benchmark (which imports no torch) runs it
    probe = (f"import os, sys; sys.path[:0] = [{str(BENCHMARKS)!r}]; import bench_train_speed as b; "
             f"print(*b.timed_run([sys.executable, '-c', \"b = b'x' * (200 * 2**20)\"], dict(os.environ), "
             f"{str(tmp_path)!r}, b.Path({str(tmp_path / 'ok.log')!r})))")
    import subprocess

    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    seconds, peak = map(float, out.split())
    assert seconds > 0 and 200 <= peak < 400  # 200 MiB written
    env = dict(os.environ)
    with pytest.raises(SystemExit, match="failed \\(3\\).*bad.log"):
        bench.timed_run([sys.executable, "-c", "raise SystemExit(3)"], env, tmp_path, tmp_path / "bad.log")
