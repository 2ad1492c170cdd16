"""benchmarks/studies/paired_seeds.py: the two runs' commands differ by the variant's settings only,
and the report's per-seed figures, paired differences and time ratios are those of the runs'
metrics.json files (hand-computed)."""

import json
import sys

import pytest

from conftest import load_study


@pytest.fixture(scope="module")
def ps():
    return load_study("paired_seeds")


def metrics(plain, chosen_gate, chosen, test, seconds):
    return {"cam_gate_scores": {"0.0": plain, "0.25": chosen - 1, "0.5": chosen}, "cam_gate": chosen_gate,
            "gt_known_loc": test, "seconds": seconds}


def test_the_variant_run_adds_its_settings_and_nothing_else(ps, tmp_path):
    args = ps.parse_args(["--data", str(tmp_path), "--work", str(tmp_path / "w"), "--seeds", "3", "4",
                          "--override", "refine.epochs=2", "--variant", "trainer.fold_frozen_bn=false",
                          "--variant", "trainer.channels_last=false"])
    on, off = ps.command(args, 3, False), ps.command(args, 3, True)
    assert on[:4] == [sys.executable, "-m", "ornet", "train"]
    assert on[on.index("--out") + 1] == str(tmp_path / "w" / "s3_on")
    assert off[off.index("--out") + 1] == str(tmp_path / "w" / "s3_off")
    assert on[-4:] == ["--refine.epochs", "2", "--trainer.seed", "3"]
    assert off[len(on):] == ["--trainer.fold_frozen_bn", "false", "--trainer.channels_last", "false"]
    assert off[:len(on)] == [str(tmp_path / "w" / "s3_off") if a == str(tmp_path / "w" / "s3_on") else a for a in on]


def test_report_pairs_the_seeds_both_runs_finished(ps, tmp_path):
    work = tmp_path / "w"
    runs = {"s1_on": metrics(54.0, 0.5, 88.0, 86.5, 400), "s1_off": metrics(52.0, 0.5, 86.0, 85.5, 500),
            "s2_on": metrics(50.0, 0.25, 80.0, 84.0, 300), "s2_off": metrics(55.0, 0.5, 84.0, 87.0, 450),
            "s3_on": metrics(1.0, 0.5, 1.0, 1.0, 1)}  # s3's variant did not finish: left out
    for name, m in runs.items():
        (work / name).mkdir(parents=True)
        (work / name / "metrics.json").write_text(json.dumps(m))
    args = ps.parse_args(["--data", str(tmp_path), "--work", str(work), "--seeds", "1", "2", "3", "--report-only",
                          "--variant", "trainer.channels_last=false"])
    pairs = ps.read_pairs(work, args.seeds)
    assert [s for s, _, _ in pairs] == [1, 2]
    text = ps.report(args, pairs)
    assert "| 1 | 54.0 / 52.0 | 88.0 / 86.0 | 86.5 / 85.5 | +1.0 | 400 / 500 |" in text
    # seed 2: the gate chosen as is was 0.25 (scored 80 - 1 = 79 there), the variant's 0.5 (84)
    assert "| 2 | 50.0 / 55.0 | 79.0 / 84.0 | 84.0 / 87.0 | -3.0 | 300 / 450 |" in text
    # val (default evaluation): +2 and -5 -> mean -1.5, sd 4.95, se 3.50; test: +1, -3 -> -1.0, sd 2.83, se 2.00
    assert "val (default evaluation): -1.50 (sd 4.95, se 3.50, n 2)" in text
    assert "val (plain map): -1.50 (sd 4.95, se 3.50, n 2)" in text
    assert "test GT-known: -1.00 (sd 2.83, se 2.00, n 2)" in text
    assert "median 1.38 (1.25 / 1.50)" in text
    with pytest.raises(SystemExit, match="no seed of \\[7\\] has both runs finished"):
        ps.report(ps.parse_args(["--data", str(tmp_path), "--work", str(work), "--seeds", "7", "--report-only",
                                 "--variant", "a=b"]), ps.read_pairs(work, [7]))


def cam_like_report(ps, tmp_path, extras=None, curves=None) -> str:
    """The report of two seeds' four runs (test GT-known 83.5 / 80.5 and 81.5 / 82.0, seconds 167 / 139 and
    141 / 123), each run's metrics.json with `extras[name]` added and, for names in `curves`, a curves.json
    (split, GT-known accuracy per threshold, chosen index)."""
    work = tmp_path / "w"
    runs = (("s1_on", 83.5, 167), ("s1_off", 80.5, 139), ("s2_on", 81.5, 141), ("s2_off", 82.0, 123))
    for name, gt, seconds in runs:
        (work / name).mkdir(parents=True)
        extra = (extras or {}).get(name, {})
        (work / name / "metrics.json").write_text(json.dumps({"gt_known_loc": gt, "seconds": seconds, **extra}))
        if name in (curves or {}):
            split, accuracy, index = curves[name]
            (work / name / "curves.json").write_text(json.dumps(
                {"split": split, "chosen_index": index, "accuracy": {"30": [0.0] * len(accuracy), "50": accuracy}}))
    args = ps.parse_args(["--data", str(tmp_path), "--work", str(work), "--seeds", "1", "2", "--report-only",
                          "--variant", "cam.frozen_stem=true"])
    return ps.report(args, ps.read_pairs(work, args.seeds))


def test_runs_without_val_figures_report_test_and_time_only(ps, tmp_path):
    """Runs that chose nothing on val have no val figures: '-' there, the test and time as usual."""
    text = cam_like_report(ps, tmp_path)
    assert "| 1 | - / - | - / - | 83.5 / 80.5 | +3.0 | 167 / 139 |" in text
    assert "val (default evaluation): - (the runs' metrics.json have no such figure)" in text
    # test: +3.0 and -0.5 -> mean +1.25, sd 2.47, se 1.75; time 139/167 = 0.83, 123/141 = 0.87
    assert "test GT-known: +1.25 (sd 2.47, se 1.75, n 2)" in text
    assert "median 0.85 (0.83 / 0.87)" in text


def test_cam_runs_val_figure_from_metrics_or_from_the_curve_of_older_runs(ps, tmp_path):
    """A CAM run has one map: its `val_gt_known_loc` fills both val columns; a run from before that key
    gives it through curves.json (val's GT-known curve at the chosen index); a test-chosen curve does not."""
    text = cam_like_report(ps, tmp_path, extras={"s1_on": {"val_gt_known_loc": 90.0}, "s2_on": {"val_gt_known_loc": 83.0}},
                           curves={"s1_off": ("val", [10.0, 89.0, 5.0], 1), "s2_off": ("test", [84.0], 0)})
    assert "| 1 | 90.0 / 89.0 | 90.0 / 89.0 | 83.5 / 80.5 | +3.0 | 167 / 139 |" in text
    assert "| 2 | 83.0 / - | 83.0 / - | 81.5 / 82.0 | -0.5 | 141 / 123 |" in text
    assert "val (default evaluation): +1.00 (one seed)" in text


def test_bad_arguments_are_refused_in_one_line(ps, tmp_path, capsys):
    base = ["--data", str(tmp_path), "--work", str(tmp_path), "--seeds", "1"]
    for argv, says in ((base, "give the variant's settings with --variant"),
                       (base + ["--variant", "trainer.channels_last"], "expected KEY=VALUE"),
                       (base + ["--variant", "a=b", "--override", "=3"], "--override '=3': expected KEY=VALUE"),
                       (base + ["--variant", "a=b", "--jobs", "0"], "--jobs and --threads must be at least 1"),
                       (["--data", str(tmp_path), "--work", str(tmp_path), "--seeds", "1", "1", "--variant", "a=b"],
                        "each seed once"),
                       (["--data", str(tmp_path / "none"), "--work", str(tmp_path), "--seeds", "1", "--variant", "a=b"],
                        "no such folder")):
        with pytest.raises(SystemExit) as e:
            ps.parse_args(argv)
        assert e.value.code == 2 and says in capsys.readouterr().err
