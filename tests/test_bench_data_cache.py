"""benchmarks/bench_data_cache.py (issue 28): both variants load the same images each round, the
cache fills once, and the report's medians and saving are those of the times it was given."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def bench(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import bench_data_cache

    return bench_data_cache


def test_measure_loads_every_epoch_with_and_without_the_cache(bench, cub_tree):
    args = bench.parse_args(["--data", str(cub_tree), "--resize", "64", "--batch", "2", "--epochs", "2",
                             "--rounds", "1", "--cache-mb", "8"])
    times, info = bench.measure(args)
    assert [len(r) for r in times["off"]] == [len(r) for r in times["on"]] == [3]  # 2 epochs + the test pass
    assert all(t > 0 for rows in times.values() for row in rows for t in row)
    # cub_tree: 6 test images; full batches of 2 only (drop_last), so an epoch may leave one training
    # image out, another epoch another: the cache holds every image read, each once
    assert info["test_images"] == 6 and info["train_images"] % 2 == 0 and info["train_images"] > 0
    assert 6 + info["train_images"] <= info["entries"] <= 6 + info["train_images"] + 1
    assert 0 < info["mib"] < 8


def test_report_gives_medians_and_the_saving_of_later_epochs(bench, tmp_path):
    args = argparse.Namespace(data="/d", resize=64, batch=2, epochs=3, rounds=2, threads=1, cache_mb=8)
    times = {"off": [[1.0, 1.0, 1.2, 0.5], [1.2, 1.0, 1.0, 0.7]], "on": [[1.0, 0.5, 0.4, 0.2], [1.4, 0.5, 0.6, 0.4]]}
    info = {"train_images": 10, "test_images": 6, "entries": 16, "mib": 0.25}
    out = tmp_path / "r.md"
    bench.write_report(args, times, info, (0.5, 1.0), out)
    text = out.read_text()
    assert "| 0 | 1.10 (1.00 / 1.20) | 1.00 (1.00 / 1.00) | 1.10 (1.20 / 1.00) | 0.60 (0.50 / 0.70) |" in text
    assert "| 8 | 1.20 (1.00 / 1.40) | 0.50 (0.50 / 0.50) | 0.50 (0.40 / 0.60) | 0.30 (0.20 / 0.40) |" in text
    # later epochs: off rounds 1.1 and 1.0 -> median 1.05; on rounds 0.45 and 0.55 -> 0.5
    assert "1.05 s without the cache, 0.50 s with it (0.55 s saved per epoch, 2.10x)" in text
    assert "16 images, 0.2 MiB" in text and not (tmp_path / "r.md.tmp").exists()


def test_bad_arguments_are_refused_in_one_line(bench, capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        bench.parse_args(["--data", str(tmp_path), "--epochs", "0"])
    assert e.value.code == 2 and "--epochs must be at least 1, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        bench.parse_args(["--data", str(tmp_path / "none")])
    assert e.value.code == 2 and "no such folder" in capsys.readouterr().err
