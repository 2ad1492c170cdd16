"""A shrunk end-to-end run of `ornet train` / `ornet evaluate` on a tiny CUB tree (CPU)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import yaml

from conftest import write_cub_tree
from ornet.cli import main

pytestmark = pytest.mark.slow

TINY = ["--model.backbone", "mobilenet_v3_small", "--model.evaluator", "mobilenet_v3_small", "--model.generator_width", "8",
        "--data.resize", "40", "--data.crop", "32", "--data.batch_size", "4", "--data.eval_batch_size", "8",
        "--data.num_workers", "0", "--data.val_per_class", "2", "--trainer.accelerator", "cpu",
        "--trainer.devices", "1", "--trainer.limit_train_batches", "2", "--trainer.snapshot_images", "2",
        "--quiet"]
FILES = ["config.yaml", "metrics.json", "predictions.csv", "curves.json", "model.safetensors", "model.json",
         "checkpoints/evaluator.ckpt", "checkpoints/coarse.ckpt", "checkpoints/refine.ckpt",
         "logs/evaluator/metrics.csv", "logs/coarse/metrics.csv", "logs/refine/metrics.csv",
         "snapshots/images.npz", "snapshots/epoch_000.npz", "snapshots/epoch_001.npz"]
PERCENT_KEYS = ["top1_cls", "top5_cls", "top1_loc", "top5_loc", "gt_known_loc", "max_box_acc", "max_box_acc_v2", "pxap"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_cub_tree(tmp_path_factory.mktemp("data") / "cub", classes=3, per_class=7, size=(48, 40))


@pytest.fixture(scope="module")
def run(tmp_path_factory, data) -> Path:
    out = tmp_path_factory.mktemp("runs") / "ornet"
    assert main(["train", "--data.root", str(data), "--out", str(out), *TINY]) == 0
    return out


def _metrics(path: Path) -> dict:
    return json.loads(path.read_text())


def test_train_writes_every_output(run):
    for name in FILES:
        assert (run / name).is_file(), name
    assert any((run / "logs" / "refine").glob("events.out.tfevents.*"))
    m = _metrics(run / "metrics.json")
    for key in PERCENT_KEYS:
        assert 0.0 <= m[key] <= 100.0, key
    assert m["method"] == "ornet" and m["threshold_split"] == "val" and m["box_mode"] == "largest"
    assert m["num_images"] == 9 and 0.0 <= m["threshold"] < 1.0 and m["seconds"] > 0
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["stages"] == ["evaluator", "coarse", "refine"] and cfg["model"]["generator_width"] == 8


def test_a_finished_run_keeps_final_checkpoints_only_and_says_its_disk_use(run):
    from ornet.runtime.diskspace import tree_bytes

    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert ckpts == ["coarse.ckpt", "evaluator.ckpt", "refine.ckpt"]  # no -last file, no temporary
    m = _metrics(run / "metrics.json")
    assert m["checkpoint_bytes"] == sum((run / "checkpoints" / n).stat().st_size for n in ckpts)
    assert abs(m["run_folder_bytes"] - tree_bytes(run)) < 200  # metrics.json itself is rewritten with the number
    assert not (run / ".ornet.lock").exists()


def test_predictions_and_curves_agree_with_metrics(run):
    m = _metrics(run / "metrics.json")
    rows = list(csv.DictReader((run / "predictions.csv").open()))
    assert len(rows) == m["num_images"]
    assert set(rows[0]) >= {"image_id", "label", "pred", "score", "x0", "y0", "x1", "y1", "iou"}
    correct = sum(float(r["iou"]) >= 0.5 for r in rows)
    assert correct * 100.0 / len(rows) == pytest.approx(m["gt_known_loc"])
    top1 = sum(float(r["iou"]) >= 0.5 and r["label"] == r["pred"] for r in rows)
    assert top1 * 100.0 / len(rows) == pytest.approx(m["top1_loc"])
    curves = _metrics(run / "curves.json")
    assert curves["split"] == "val" and len(curves["thresholds"]) == 100
    assert curves["thresholds"][curves["chosen_index"]] == pytest.approx(m["threshold"])
    for level in ("30", "50", "70"):
        assert len(curves["accuracy"][level]) == 100
    # the chosen threshold maximises GT-known on the split that chose it
    assert curves["accuracy"]["50"][curves["chosen_index"]] == max(curves["accuracy"]["50"])


def test_checkpoints_load_without_pickle(run):
    for stage in ("evaluator", "coarse", "refine"):
        for name in (f"{stage}.ckpt",):
            ckpt = torch.load(run / "checkpoints" / name, map_location="cpu", weights_only=True)
            assert ckpt["hyper_parameters"]["stage"] == stage
            assert isinstance(ckpt["hyper_parameters"]["cfg"], dict)
            assert any(k.startswith("model.") for k in ckpt["state_dict"])


def test_exported_model_reloads_and_matches_the_checkpoint(run):
    from ornet.runs.export import load_exported
    from ornet.training.pipeline import load_state

    model, meta = load_exported(run)
    assert meta["method"] == "ornet" and meta["num_classes"] == 3 and len(meta["classes"]) == 3
    assert meta["preprocessing"]["crop"] == 32 and meta["localization"]["box_mode"] == "largest"
    m = _metrics(run / "metrics.json")
    assert meta["localization"]["threshold"] == pytest.approx(m["threshold"])
    state = load_state(run / "checkpoints" / "refine.ckpt")
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    with torch.no_grad():
        maps, logits = model.predict(torch.randn(2, 3, 32, 32))
    assert maps.shape == (2, 1, 8, 8) and logits.shape == (2, 3)
    assert float(maps.min()) >= 0.0 and float(maps.max()) <= 1.0


def test_evaluate_reproduces_the_training_metrics(run, tmp_path):
    out = tmp_path / "eval"
    maps = tmp_path / "maps"
    assert main(["evaluate", str(run), "--out", str(out), "--save-scoremaps", str(maps), "--quiet",
                 "--trainer.accelerator", "cpu", "--trainer.devices", "1"]) == 0
    trained, evaluated = _metrics(run / "metrics.json"), _metrics(out / "metrics.json")
    for key in [*PERCENT_KEYS, "threshold", "threshold_split", "num_images", "box_mode"]:
        assert evaluated[key] == trained[key], key
    assert (out / "predictions.csv").read_text() == (run / "predictions.csv").read_text()
    saved = sorted(maps.rglob("*.npy"))
    assert len(saved) == trained["num_images"]
    arr = __import__("numpy").load(saved[0])
    assert arr.shape == (32, 32) and arr.dtype.name == "float32" and 0.0 <= arr.min() <= arr.max() <= 1.0
    rows = list(csv.DictReader((run / "predictions.csv").open()))
    assert (maps / f"{rows[0]['image_id']}.npy").is_file()


def test_evaluate_gives_the_same_metrics_with_opencv_contours(run, tmp_path, monkeypatch):
    """The component tree (the default) and OpenCV's per-threshold contours (the path before it, kept
    as the reference) give the same metrics, predictions and curves on a trained run."""
    from ornet.localization import boxes, tree

    calls = []
    sweep_tree = tree.sweep_tree
    monkeypatch.setattr(tree, "sweep_tree", lambda *a: calls.append(1) or sweep_tree(*a))
    monkeypatch.setattr(boxes, "TREE_FROM_LEVELS", 1)  # the tree at every sweep, however few levels
    outputs = {}
    for name in ("tree", "opencv"):
        if name == "opencv":
            monkeypatch.setattr(tree, "supports", lambda values, reps: False)
        calls.clear()
        out = tmp_path / name
        assert main(["evaluate", str(run), "--out", str(out), "--quiet", "--trainer.accelerator", "cpu",
                     "--trainer.devices", "1"]) == 0
        assert bool(calls) == (name == "tree")
        metrics = _metrics(out / "metrics.json")
        metrics.pop("seconds", None)
        outputs[name] = (metrics, (out / "predictions.csv").read_text(), _metrics(out / "curves.json"))
    assert outputs["tree"] == outputs["opencv"]
    assert outputs["tree"][0]["max_box_acc"] == _metrics(run / "metrics.json")["max_box_acc"]


def test_rerun_of_stage_two_uses_the_existing_checkpoints(run, data):
    before = (run / "checkpoints" / "coarse.ckpt").stat().st_mtime_ns
    assert main(["train", "--data.root", str(data), "--out", str(run), *TINY, "--stages", "[refine]",
                 "--refine.epochs", "2"]) == 0
    assert (run / "checkpoints" / "coarse.ckpt").stat().st_mtime_ns == before
    assert (run / "snapshots" / "epoch_002.npz").is_file()
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["stages"] == ["evaluator", "coarse", "refine"] and cfg["refine"]["epochs"] == 2
    m = _metrics(run / "metrics.json")
    assert m["method"] == "ornet" and m["stages_run"] == ["refine"]


def test_resume_skips_completed_stages(run, data):
    before = {p.name: p.stat().st_mtime_ns for p in (run / "checkpoints").glob("*.ckpt")}
    assert main(["train", "--out", str(run), "--resume", "--quiet"]) == 0  # config from OUT/config.yaml
    after = {p.name: p.stat().st_mtime_ns for p in (run / "checkpoints").glob("*.ckpt")}
    assert before == after
    assert _metrics(run / "metrics.json")["stages_run"] == []


def test_resume_continues_an_interrupted_stage(tmp_path, data):
    out = tmp_path / "cam"
    args = ["train", "--data.root", str(data), "--out", str(out), *TINY, "--stages", "[cam]"]
    assert main([*args, "--cam.epochs", "1", "--trainer.keep_last_checkpoints", "true"]) == 0
    assert (out / "checkpoints" / "cam-last.ckpt").is_file()  # kept, as asked
    (out / "checkpoints" / "cam.ckpt").unlink()  # as if stopped after epoch 1 of 2
    assert main([*args, "--cam.epochs", "2", "--resume", "--trainer.keep_last_checkpoints", "false"]) == 0
    ckpt = torch.load(out / "checkpoints" / "cam.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 2 and ckpt["global_step"] == 2  # epoch 2 was trained on top of the first (1 batch each)
    assert not (out / "checkpoints" / "cam-last.ckpt").exists()  # this run did not ask to keep it
    m = _metrics(out / "metrics.json")
    assert m["method"] == "cam" and m["stages_run"] == ["cam"]


def test_an_existing_run_folder_is_refused(run, data, capsys):
    assert main(["train", "--data.root", str(data), "--out", str(run), *TINY]) == 2
    assert "not empty" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [["--coarse.epochs", "0"], ["--stages", "[coarse, bogus]"],
                                 ["--refine.optimizer", "rmsprop"], ["--data.crop", "33"]])
def test_bad_config_values_exit_2(tmp_path, data, bad, capsys):
    assert main(["train", "--data.root", str(data), "--out", str(tmp_path / "x"), *TINY, *bad]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ornet train: error:") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_refine_without_stage_one_checkpoint_is_an_error(tmp_path, data, capsys):
    assert main(["train", "--data.root", str(data), "--out", str(tmp_path / "y"), *TINY, "--stages", "[refine]"]) == 2
    assert "coarse" in capsys.readouterr().err


def test_evaluate_rejects_a_folder_without_a_model(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "model.json" in capsys.readouterr().err


def test_train_writes_a_report_whose_links_resolve(run):
    import re

    html = (run / "report.html").read_text()
    assert "<script" not in html.lower()
    links = re.findall(r'(?:src|href)="([^"#:]+)"', html)
    assert any(link.startswith("figures/") for link in links)
    for link in links:
        assert (run / link).is_file(), link
    assert (run / "figures" / "threshold_curve.png").is_file() and (run / "figures" / "evolution.png").is_file()
