"""benchmarks/bench_gpu.py (issue 28): an older checkout's own script runs beside this one with the
same arguments, its rows are read back (table or --cpu-check lines), and the report's ratios and
medians are those of the rows it was given."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def bench(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import bench_gpu

    return bench_gpu


# two rows as gpu.md's run 1 has them (a8a58be's script wrote that table)
OLD_TABLE = """# GPU training throughput
| stage | preset | precision | batch | loader workers | images/s | peak allocated GiB | reserved GiB |
| --- | --- | --- | --- | --- | --- | --- | --- |
| evaluator | configs/cub_resnet50.yaml | 32-true | 16 | 8 | 678.6 | 2.70 | 4.04 |
| cam | configs/cub_cam_resnet50.yaml | 16-mixed | 16 | 8 | 522.4 | 1.15 | 1.24 |
"""


def args_for(**kw):
    base = dict(data=Path("/d"), steps=40, warmup=8, precisions=["32-true", "16-mixed"], batch=None,
                workers=None, cpu_check=False, baseline=None, repeats=1)
    return argparse.Namespace(**{**base, **kw})


def test_old_tables_and_cpu_lines_are_read_back(bench):
    rows = bench.parse_table(OLD_TABLE)
    assert set(rows) == {("evaluator", "32-true"), ("cam", "16-mixed")}
    assert rows[("evaluator", "32-true")] == {"ips": 678.6, "peak_gib": 2.70, "reserved_gib": 4.04, "batch": 16,
                                              "workers": 8}
    printed = f"noise\n{'coarse':<10} cpu 32-true {0.6:8.2f} images/s\n{'cam':<10} cpu 32-true {12.25:8.2f} images/s\n"
    cpu = bench.parse_cpu_lines(printed)
    assert {k: v["ips"] for k, v in cpu.items()} == {("coarse", "32-true"): 0.6, ("cam", "32-true"): 12.25}
    assert math.isnan(cpu[("cam", "32-true")]["peak_gib"])
    with pytest.raises(ValueError, match="7 cells"):
        bench.parse_table("| coarse | c | 32-true | 16 | 8 | 1.0 | 2.0 |")


def test_report_rows_give_medians_and_new_over_old(bench):
    row = lambda ips, peak: {"ips": ips, "peak_gib": peak, "reserved_gib": peak + 1, "batch": 16,  # noqa: E731
                             "workers": 8}
    new = bench.medians([{("coarse", "32-true"): row(900.0, 2.0)}, {("coarse", "32-true"): row(1000.0, 2.5)},
                         {("coarse", "32-true"): row(1300.0, 2.2)}])
    old = bench.medians([{("coarse", "32-true"): row(300.0, 3.0)}, {("coarse", "32-true"): row(340.0, 3.1)},
                         {("coarse", "32-true"): row(320.0, 2.9)}])
    lines = bench.table_lines(new, old, {"coarse": "cub_resnet50"})
    # medians 1000 / 320 = 3.125; peak: the largest of the runs
    assert lines[2] == ("| coarse | configs/cub_resnet50.yaml | 32-true | 16 | 8 | 320.0 (300.0 / 340.0 / 320.0) | "
                        "1000.0 (900.0 / 1000.0 / 1300.0) | 3.12x | 3.10 | 2.50 | 3.50 |")
    alone = bench.table_lines(bench.medians([{("cam", "16-mixed"): row(500.0, 1.0)}]), None, {"cam": "cub_cam_resnet50"})
    assert alone[2] == "| cam | configs/cub_cam_resnet50.yaml | 16-mixed | 16 | 8 | - | 500.0 | - | - | 1.00 | 2.00 |"


def test_the_baseline_runs_its_own_script_with_the_same_arguments(bench, tmp_path):
    cmd, env = bench.baseline_command(tmp_path, args_for(batch=64, workers=15), tmp_path / "old.md")
    assert cmd == [sys.executable, str(tmp_path / "benchmarks" / "bench_gpu.py"), "--data", "/d", "--steps", "40",
                   "--warmup", "8", "--precisions", "32-true", "16-mixed", "--batch", "64", "--workers", "15",
                   "--results", str(tmp_path / "old.md")]
    assert env["PYTHONPATH"] == str(tmp_path / "src")
    cmd, _ = bench.baseline_command(tmp_path, args_for(cpu_check=True, steps=3, warmup=1), None)
    assert cmd[2:] == ["--data", "/d", "--steps", "3", "--warmup", "1", "--cpu-check"]


def fake_checkout(root: Path, script: str) -> Path:
    (root / "benchmarks").mkdir(parents=True)
    (root / "src").mkdir()
    (root / "benchmarks" / "bench_gpu.py").write_text(script)
    return root


def test_a_baseline_whose_ornet_would_come_from_elsewhere_is_refused(bench, tmp_path):
    # a checkout without src/ornet: `import ornet` finds this project's installed one, not the old code
    empty = fake_checkout(tmp_path / "old", "raise SystemExit('must not run')\n")
    with pytest.raises(SystemExit, match="`import ornet` with PYTHONPATH=.*old/src gives"):
        bench.run_baseline(empty, args_for())


def test_a_baseline_run_is_read_back_or_stops_naming_the_checkout(bench, tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "check_import", lambda checkout, env: None)  # the fake checkouts have no ornet
    # the table a GPU run writes to --results, read back; the script runs in its checkout with its src/
    writes = fake_checkout(tmp_path / "a", "import os, sys\n"
                           "assert os.getcwd() == os.path.dirname(os.path.dirname(os.path.abspath(__file__)))\n"
                           "assert os.environ['PYTHONPATH'].endswith('src')\n"
                           f"open(sys.argv[sys.argv.index('--results') + 1], 'w').write({OLD_TABLE!r})\n")
    rows = bench.run_baseline(writes, args_for())
    assert rows[("evaluator", "32-true")]["ips"] == 678.6 and len(rows) == 2
    prints = fake_checkout(tmp_path / "b", "print('evaluator  cpu 32-true     0.25 images/s')\n")
    assert bench.run_baseline(prints, args_for(cpu_check=True))[("evaluator", "32-true")]["ips"] == 0.25
    fails = fake_checkout(tmp_path / "c", "import sys\nprint('ModuleNotFoundError: ornet', file=sys.stderr)\n"
                          "sys.exit(1)\n")
    with pytest.raises(SystemExit, match=r"baseline .*c failed \(exit 1\):\nModuleNotFoundError: ornet"):
        bench.run_baseline(fails, args_for())
    silent = fake_checkout(tmp_path / "d", "print('nothing')\n")
    with pytest.raises(SystemExit, match="gave no rows"):
        bench.run_baseline(silent, args_for(cpu_check=True))


def test_bad_arguments_are_refused_in_one_line(bench, tmp_path, capsys):
    for argv, says in ((["--steps", "8", "--warmup", "8"], "--steps (8) must be more than --warmup (8)"),
                       (["--repeats", "0"], "--repeats must be at least 1, got 0"),
                       (["--baseline", str(tmp_path)], "no benchmarks/bench_gpu.py there"),
                       (["--set", "trainer.channels_last"], "expected KEY=VALUE")):
        with pytest.raises(SystemExit) as e:
            bench.parse_args(argv)
        assert e.value.code == 2 and says in capsys.readouterr().err


def test_settings_change_this_checkouts_config_only(bench, tmp_path):
    args = bench.parse_args(["--set", "trainer.channels_last=false", "--set", "data.cache_mb=0",
                             "--set", "data.resize= 288"])
    assert args.settings == {"trainer.channels_last": False, "data.cache_mb": 0, "data.resize": 288}
    cfg = bench.load_preset("cub_resnet50", tmp_path, 3, args.settings)
    assert (cfg.trainer.channels_last, cfg.data.cache_mb, cfg.data.resize, cfg.data.num_workers) == (False, 0, 288, 3)
    assert bench.load_preset("cub_resnet50", tmp_path, None).trainer.channels_last is True
    # the baseline's script gets the measurement's arguments, not the settings
    cmd, _ = bench.baseline_command(tmp_path, args_for(sets=["trainer.channels_last=false"]), None)
    assert "--set" not in cmd


def test_a_setting_the_config_refuses_stops_before_any_run(bench, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bench, "make_data", lambda *a: None)
    monkeypatch.setattr(bench, "measure_new", lambda *a: pytest.fail("measured despite a bad setting"))
    assert bench.main(["--cpu-check", "--data", str(tmp_path), "--steps", "3", "--warmup", "1",
                       "--set", "data.resize=128"]) == 2
    err = capsys.readouterr().err
    assert "configs/cub_cam_resnet50.yaml with data.resize=128: data.crop must be <= data.resize" in err


def test_without_cuda_it_says_so_and_exits_2(bench, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is here")
    assert bench.main(["--steps", "3", "--warmup", "1"]) == 2
    assert "no CUDA device here" in capsys.readouterr().err
