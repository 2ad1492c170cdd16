"""metrics.json's `chosen_on_test`: every choice made on the test split is recorded and reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import write_cub_tree
from ornet.cli import main
from ornet.reports.run_report import render_report
from ornet.training.kept_epochs import chosen_on_test, kept_path, read_kept, record_kept

TINY = ["--model.backbone", "mobilenet_v3_small", "--model.evaluator", "mobilenet_v3_small", "--model.generator_width", "8",
        "--data.resize", "40", "--data.crop", "32", "--data.batch_size", "4", "--data.eval_batch_size", "8",
        "--data.num_workers", "0", "--data.val_per_class", "1", "--trainer.accelerator", "cpu",
        "--trainer.devices", "1", "--trainer.limit_train_batches", "2", "--trainer.snapshot_images", "0",
        "--trainer.max_epochs", "1", "--quiet"]
EVALUATOR = "evaluator epoch (keep: best_test)"


def _metrics(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    # per class: 7 images = 3 test + 4 train; val 1, tune 1, 2 left to train
    return write_cub_tree(tmp_path_factory.mktemp("data") / "cub", classes=3, per_class=7, size=(48, 40))


@pytest.fixture(scope="module")
def best_test_run(tmp_path_factory, data) -> Path:
    out = tmp_path_factory.mktemp("runs") / "best_test"
    assert main(["train", "--data.root", str(data), "--out", str(out), *TINY, "--evaluator.keep", "best_test",
                 "--data.tune_per_class", "1"]) == 0
    return out


def test_a_stage_kept_on_test_is_in_metrics_and_report(best_test_run):
    m = _metrics(best_test_run / "metrics.json")
    assert m["split"] == "test" and m["threshold_split"] == "val"
    assert m["chosen_on_test"] == [EVALUATOR]
    kept = read_kept(best_test_run)
    assert set(kept) == {"evaluator"} and kept["evaluator"]["split"] == "test" and kept["evaluator"]["keep"] == "best_test"
    report = (best_test_run / "report.html").read_text()
    assert f"Chosen on the TEST split: {EVALUATOR}." in report


def test_evaluate_on_tune_and_under_the_release_protocol(best_test_run, tmp_path):
    # the tune split (data.tune_per_class 1 in the run's config.yaml): the threshold comes from val
    assert main(["evaluate", str(best_test_run), "--split", "tune", "--out", str(tmp_path / "tune"), "--quiet"]) == 0
    m = _metrics(tmp_path / "tune" / "metrics.json")
    assert m["split"] == "tune" and m["num_images"] == 3 and m["chosen_on_test"] == [EVALUATOR]
    # the release protocol chooses the threshold on the evaluated (test) split itself
    assert main(["evaluate", str(best_test_run), "--eval.protocol", "release", "--out", str(tmp_path / "rel"),
                 "--quiet"]) == 0
    m = _metrics(tmp_path / "rel" / "metrics.json")
    assert m["chosen_on_test"] == ["threshold", EVALUATOR]
    assert "Chosen on the TEST split: threshold, evaluator epoch" in (tmp_path / "rel" / "report.html").read_text()


def test_a_default_run_chose_nothing_on_test(tmp_path, data, capsys):
    out = tmp_path / "cam"
    assert main(["train", "--data.root", str(data), "--out", str(out), *TINY, "--stages", "[cam]"]) == 0
    m = _metrics(out / "metrics.json")
    assert m["chosen_on_test"] == [] and not kept_path(out).exists()
    assert "Nothing behind these numbers was chosen on the test split" in (out / "report.html").read_text()
    # eval.threshold_split: test is a choice on test too
    assert main(["evaluate", str(out), "--eval.threshold_split", "test", "--out", str(tmp_path / "t"), "--quiet"]) == 0
    assert _metrics(tmp_path / "t" / "metrics.json")["chosen_on_test"] == ["threshold"]
    # a run trained without a tune split: one line naming the option, nothing written
    capsys.readouterr()
    assert main(["evaluate", str(out), "--split", "tune", "--out", str(tmp_path / "none"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no split 'tune'" in err[0] and "--data.tune_per_class N" in err[0], err
    assert not (tmp_path / "none").exists()


def test_chosen_on_test_reads_each_choice():
    on_val = {"split": "test", "threshold_split": "val"}
    assert chosen_on_test(on_val) == []
    assert chosen_on_test({"split": "test", "threshold_split": "test"}) == ["threshold"]
    assert chosen_on_test({"split": "test", "threshold_split": "model"}) == []  # stored: chosen elsewhere
    assert chosen_on_test({"split": "tune", "threshold_split": "test"}) == []  # chosen on tune itself
    gate = {"cam_gate": 0.5, "cam_gate_split": "test", "cam_gate_scores": {"0.0": 1.0, "0.5": 2.0}}
    assert chosen_on_test({"split": "test", "threshold_split": "test", **gate}) == ["threshold", "class gate (eval.cam_gate)"]
    assert chosen_on_test({**on_val, "cam_gate": 0.5, "cam_gate_split": "model"}) == []
    kept = {"evaluator": {"keep": "best_test", "split": "test"}, "coarse": {"keep": "best_val", "split": "val"},
            "old": {"keep": "best_test", "split": "test"}}
    assert chosen_on_test(on_val, kept, ["evaluator", "coarse", "refine"]) == [EVALUATOR]


def test_the_record_follows_the_last_run_of_each_stage(tmp_path):
    record_kept(tmp_path, "evaluator", "last", None, None)
    assert not kept_path(tmp_path).exists()  # a default run writes nothing
    (tmp_path / "checkpoints").mkdir()
    record_kept(tmp_path, "evaluator", "best_test", "test", 0.5)
    record_kept(tmp_path, "coarse", "best_val", "val", 0.25)
    assert read_kept(tmp_path) == {"evaluator": {"keep": "best_test", "split": "test", "score": 0.5},
                                   "coarse": {"keep": "best_val", "split": "val", "score": 0.25}}
    record_kept(tmp_path, "evaluator", "last", None, None)  # rerun keeping its last epoch
    assert set(read_kept(tmp_path)) == {"coarse"}
    record_kept(tmp_path, "coarse", "last", None, None)
    assert not kept_path(tmp_path).exists()


def test_the_report_states_it_before_the_metrics_table():
    page = render_report({"gt_known_loc": 50.0, "split": "test", "chosen_on_test": ["threshold", EVALUATOR]})
    line = "Chosen on the TEST split: threshold, evaluator epoch (keep: best_test)."
    assert f"<p><b>{line}" in page and page.index(line) < page.index("<table>")
    assert "Nothing behind" in render_report({"gt_known_loc": 50.0, "chosen_on_test": []})
    assert "TEST split" not in render_report({"gt_known_loc": 50.0})  # files from before the key
