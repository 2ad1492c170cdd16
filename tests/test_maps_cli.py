"""`--eval.maps NAME` end to end: a tiny CAM run evaluated and localized with map extractors (CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import write_cub_tree
from ornet.cli import main

pytestmark = pytest.mark.slow

TINY = ["--wsol_method", "cam", "--model.backbone", "resnet18", "--data.resize", "40", "--data.crop", "32",
        "--data.batch_size", "4", "--data.eval_batch_size", "8", "--data.num_workers", "0",
        "--data.val_per_class", "2", "--trainer.accelerator", "cpu", "--trainer.devices", "1",
        "--trainer.limit_train_batches", "2", "--quiet"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    data = write_cub_tree(tmp_path_factory.mktemp("data") / "cub", classes=3, per_class=5, size=(48, 40))
    out = tmp_path_factory.mktemp("runs") / "cam"
    assert main(["train", "--data.root", str(data), "--out", str(out), *TINY]) == 0
    return out


def _one_line_error(capsys, prog: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith(f"ornet {prog}: error:") and len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.parametrize("name", ["gradcam", "pc1"])
def test_evaluate_with_a_map_extractor_records_it_in_metrics_json(run, name, tmp_path, capsys):
    own = json.loads((run / "metrics.json").read_text())
    assert own["maps"] == "own" and "maps_network" not in own
    out = tmp_path / name
    assert main(["evaluate", str(run), "--eval.maps", name, "--out", str(out), "--trainer.accelerator", "cpu"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["maps"] == name and m["maps_network"] == "CAM network (resnet18)"
    assert m["num_images"] == own["num_images"] and m["top1_cls"] == own["top1_cls"]  # the same classifier
    assert 0 <= m["gt_known_loc"] <= 100 and m["threshold_split"] == "val"
    assert f"maps {name} of the CAM network (resnet18)" in capsys.readouterr().out


def test_cam_maps_of_a_cam_run_give_its_own_numbers(run, tmp_path):
    import ornet

    own = ornet.evaluate(run, trainer={"accelerator": "cpu"}, quiet=True).metrics
    cam = ornet.evaluate(run, eval={"maps": "cam"}, trainer={"accelerator": "cpu"}, quiet=True).metrics
    assert cam["maps"] == "cam" and own["maps"] == "own"
    keys = ("gt_known_loc", "max_box_acc", "max_box_acc_v2", "pxap", "threshold", "top1_loc")
    assert {k: cam[k] for k in keys} == {k: own[k] for k in keys}


def test_an_unknown_extractor_is_one_line_exit_2(run, tmp_path, capsys):
    assert main(["evaluate", str(run), "--eval.maps", "gradcam2", "--out", str(tmp_path / "x")]) == 2
    err = _one_line_error(capsys, "evaluate")
    assert "eval.maps: unknown map extractor 'gradcam2'; known: cam, gradcam, gradcam++" in err
    assert not (tmp_path / "x").exists()
    assert main(["localize", str(run), str(run), "--eval.maps", "nope", "--out", str(tmp_path / "y")]) == 2
    assert "eval.maps: unknown map extractor 'nope'" in _one_line_error(capsys, "localize")
    assert main(["evaluate", str(run), "--eval.maps", "gradcam", "--threshold-split", "model",
                 "--out", str(tmp_path / "z")]) == 2
    assert "--threshold-split model reuses model.json's threshold" in _one_line_error(capsys, "evaluate")


def test_train_refuses_another_extractor(tmp_path, capsys):
    assert main(["train", "--data.root", str(tmp_path), "--out", str(tmp_path / "r"), *TINY,
                 "--eval.maps", "gradcam"]) == 2
    assert "eval.maps gradcam is for `ornet evaluate` and `ornet localize`" in _one_line_error(capsys, "train")


def test_localize_with_a_map_extractor(run, tmp_path, capsys):
    from PIL import Image

    image = tmp_path / "in" / "a.png"
    image.parent.mkdir()
    Image.new("RGB", (50, 40), (200, 30, 30)).save(image)
    assert main(["localize", str(run), str(image), "--eval.maps", "layercam", "--out", str(tmp_path / "o")]) == 2
    assert "pass --threshold T" in _one_line_error(capsys, "localize")
    out = tmp_path / "boxes"
    assert main(["localize", str(run), str(image), "--eval.maps", "layercam", "--threshold", "0.5",
                 "--out", str(out), "--quiet", "--device", "cpu", "--save-maps"]) == 0
    boxes = json.loads((out / "boxes.json").read_text())
    assert boxes["maps"] == "layercam" and boxes["maps_network"] == "CAM network (resnet18)"
    assert boxes["map_size"] == [32, 32] and len(boxes["images"]) == 1  # pytorch-grad-cam: the input's size
