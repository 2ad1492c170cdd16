"""benchmarks/bench_cpu_levers.py (issue 28): every variant is timed on a real (tiny) network, and
the report's medians and speed-ups are those of the per-round times it was given."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def levers(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import bench_cpu_levers

    return bench_cpu_levers


def test_report_gives_medians_and_speed_ups_against_float32(levers, tmp_path):
    args = argparse.Namespace(network="resnet18", classes=3, batch=4, size=32, threads=1, rounds=3, steps=1)
    times = {"train float32": [2.0, 1.0, 3.0], "train bf16 autocast": [0.5, 1.0, 4.0],
             "inference float32": [0.3, 0.3, 0.3], "inference bf16 autocast": [0.1, 0.2, 0.9]}
    out = tmp_path / "levers.md"
    levers.write_report(args, times, 12.34, (0.5, 1.5), out)
    text = out.read_text()
    assert "| train float32 | 2.000 / 1.000 / 3.000 | 2.000 | 1.00x |" in text
    assert "| train bf16 autocast | 0.500 / 1.000 / 4.000 | 1.000 | 2.00x |" in text
    assert "| inference bf16 autocast | 0.100 / 0.200 / 0.900 | 0.200 | 1.50x |" in text  # against inference's own
    assert "took 12.3 s" in text and "0.50 / 1.50" in text and not (tmp_path / "levers.md.tmp").exists()


def test_measure_times_every_variant_each_round(levers):
    args = levers.parse_args(["--network", "resnet18", "--size", "32", "--batch", "2", "--classes", "3",
                              "--rounds", "2", "--steps", "1", "--no-compile"])
    times, compile_s = levers.measure(args)
    assert compile_s is None
    assert list(times) == ["train float32", "train bf16 autocast", "inference float32", "inference bf16 autocast"]
    assert all(len(v) == 2 and all(t > 0 for t in v) for v in times.values())


def test_bad_sizes_are_refused_in_one_line(levers, capsys):
    with pytest.raises(SystemExit) as e:
        levers.parse_args(["--rounds", "0"])
    assert e.value.code == 2 and "--rounds must be at least 1, got 0" in capsys.readouterr().err
