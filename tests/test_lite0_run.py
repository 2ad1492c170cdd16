"""End to end with the offline ImageNet EfficientNet-Lite0 (mean / std 0.5): `ornet train` on
`ornet synth` data, then `localize` on the exported run normalises as the run did."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ornet.cli import main

pytestmark = pytest.mark.slow

LITE0 = ["--model.backbone", "efficientnet_lite0", "--model.backbone_weights", "imagenet",
         "--model.evaluator", "efficientnet_lite0", "--model.evaluator_weights", "imagenet"]
TINY = ["--data.resize", "64", "--data.crop", "64", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1", "--trainer.limit_val_batches", "1",
        "--data.batch_size", "4", "--data.val_per_class", "1", "--trainer.snapshot_images", "2", "--quiet"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("lite0")
    data, out = base / "synth", base / "run"
    assert main(["synth", str(data), "--classes", "3", "--train", "12", "--test", "6", "--size", "64",
                 "--quiet", "--workers", "1"]) == 0
    # resize == crop == 64 (the images' size), so evaluation and localize see the same pixels
    assert main(["train", "--config", "demo", "--data.root", str(data), "--out", str(out), *LITE0, *TINY]) == 0
    return data, out


def test_the_run_records_each_networks_normalisation(run):
    data, out = run
    model = yaml.safe_load((out / "config.yaml").read_text())["model"]
    assert model["backbone"] == "efficientnet_lite0" and model["backbone_weights"] == "imagenet"
    for key in ("backbone_mean", "backbone_std", "evaluator_mean", "evaluator_std"):
        assert model[key] == [0.5, 0.5, 0.5], key
    meta = json.loads((out / "model.json").read_text())
    assert meta["preprocessing"]["mean"] == [0.5] * 3 and meta["preprocessing"]["std"] == [0.5] * 3
    assert meta["architecture"]["evaluator_mean"] == [0.5] * 3
    # Snapshots are de-normalised for display with the run's 0.5 / 0.5: at resize == crop == the
    # image size (64) they give back the image's own pixels.
    from PIL import Image

    snap = np.load(out / "snapshots" / "images.npz")
    assert len(snap["image_ids"]) == 2
    for image_id, shown in zip(snap["image_ids"], snap["images"]):
        with Image.open(data / "images" / str(image_id)) as im:
            original = np.asarray(im.convert("RGB"), dtype=np.int16)
        assert np.abs(shown.astype(np.int16) - original).max() <= 1


def test_localize_gives_the_evaluations_map(run, tmp_path):
    from ornet.inference.localizer import eval_maps
    from ornet.runs.export import load_exported

    data, out = run
    assert main(["evaluate", str(out), "--out", str(tmp_path / "eval"), "--save-scoremaps",
                 str(tmp_path / "scoremaps"), "--quiet"]) == 0
    test_images = sorted((data / "images").rglob("test_*.jpg"))[:4]
    assert test_images
    assert main(["localize", str(out), *map(str, test_images), "--out", str(tmp_path / "loc"),
                 "--save-maps", "--quiet"]) == 0
    entries = json.loads((tmp_path / "loc" / "boxes.json").read_text())["images"]
    model, meta = load_exported(out)
    crop = meta["preprocessing"]["crop"]
    for entry in entries:
        image_id = str(Path(entry["file"]).relative_to(data / "images"))
        evaluated = np.load(tmp_path / "scoremaps" / f"{image_id}.npy")
        raw = torch.from_numpy(np.load(tmp_path / "loc" / entry["map_npy"]))[None, None]
        localized = eval_maps(raw, crop, meta["localization"]["normalize"])[0]
        np.testing.assert_allclose(localized, evaluated, atol=1e-4)

    # The comparison can fail: the same image normalised with ImageNet's statistics gives another map.
    from PIL import Image

    with Image.open(test_images[0]) as im:
        rgb = torch.from_numpy(np.array(im.convert("RGB").resize((crop, crop))))
    x = rgb.permute(2, 0, 1)[None].float() / 255
    imagenet = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    half = (x - 0.5) / 0.5
    with torch.no_grad():
        wrong = eval_maps(model.predict(imagenet)[0], crop, "minmax")[0]
        right = eval_maps(model.predict(half)[0], crop, "minmax")[0]
    assert np.abs(wrong - right).max() > 1e-2
