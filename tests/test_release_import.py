"""`ornet import-release`: the release's checkpoint files (built by `release_reference` with the
release's key names and shapes; small widths and K) become run folders whose maps equal the
release's forward (written in `release_reference`, not ornet's generator)."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import write_cub_tree
from ornet.cli import main as cli
from ornet.errors import OrnetError
from release_reference import write_coarse, write_evaluator, write_fine

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def fine_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("fine")
    path, ref = write_fine(base / "cub_fine_best_model" / "last_epoch.pth", k=3, width=4)
    assert cli(["import-release", "--fine", str(path), "--out", str(base / "run"), "--quiet"]) == 0
    return base / "run", ref, path


def test_fine_import_writes_a_run_whose_maps_are_the_releases(fine_run):
    from ornet.runs.export import load_exported

    run, ref, _ = fine_run
    for name in ("config.yaml", "model.safetensors", "model.json", "release.json"):
        assert (run / name).is_file(), name
    model, meta = load_exported(run)
    assert meta["method"] == "ornet" and meta["num_classes"] == 3
    imagenet = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}  # the release's Normalize
    assert meta["architecture"] == {"backbone": "resnet50", "evaluator": "mobilenet_v3_small",
                                    "generator_width": 4, "generator_encoder": "release", "generator_stem_skip": "concat",
                                    "generator_objectness": 0.0, "stage1_head": False,
                                    **{f"{net}_{k}": v for net in ("backbone", "evaluator") for k, v in imagenet.items()}}
    assert meta["preprocessing"] == {"resize": 256, "crop": 224, "mean": [0.485, 0.456, 0.406],
                                     "std": [0.229, 0.224, 0.225]}
    loc = meta["localization"]
    assert loc["protocol"] == "release" and loc["threshold"] == 0.45 and loc["threshold_index"] == 8
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        maps, logits = model.predict(x)
        assert maps.shape == (3, 1, 16, 16)
        assert torch.allclose(maps, ref.att_map(x), atol=1e-4)
        assert torch.allclose(logits, ref.vgg(x), atol=1e-4)
    assert model.rest_head is None and model.generator.attn_conv is None


def test_fine_import_records_its_sources_and_numbers(fine_run):
    run, _, path = fine_run
    info = json.loads((run / "release.json").read_text())
    f = info["files"]["fine"]
    assert f["kind"] == "fine" and f["path"] == str(path.resolve()) and len(f["sha256"]) == 64
    assert f["numbers"]["best_threshold"] == 0.45
    assert sorted(f["other_entries"]) == ["lr_scheduler", "optimizer"]
    import yaml

    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["model"]["generator_width"] == 4 and cfg["model"]["backbone"] == "resnet50"
    assert cfg["model"]["backbone_weights"] == "none"
    assert cfg["model"]["backbone_mean"] == [0.485, 0.456, 0.406] and cfg["model"]["evaluator_std"] == [0.229, 0.224, 0.225]
    assert cfg["eval"]["protocol"] == "wsolevaluation" and cfg["data"]["val_per_class"] == 5
    assert cfg["method"]["frozen_mode"] == "train" and cfg["method"]["mask_upsample"] == "nearest"
    assert cfg["method"]["area_form"] == "faithful"


def test_localize_save_maps_writes_the_releases_56x56_maps_and_class(fine_run, tmp_path):
    run, ref, _ = fine_run
    rng = np.random.default_rng(3)
    images = tmp_path / "photos"
    images.mkdir()
    arrays = {}
    for name in ("a", "b"):
        arr = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
        Image.fromarray(arr).save(images / f"{name}.png")
        arrays[name] = arr
    out = tmp_path / "loc"
    assert cli(["localize", str(run), str(images), "--out", str(out), "--save-maps", "--device", "cpu", "--quiet"]) == 0
    boxes = {Path(e["file"]).stem: e for e in json.loads((out / "boxes.json").read_text())["images"]}
    for name, arr in arrays.items():
        x = (torch.from_numpy(arr).permute(2, 0, 1)[None].float() / 255 - IMAGENET_MEAN) / IMAGENET_STD
        with torch.no_grad():
            want, logits = ref.att_map(x)[0, 0].numpy(), ref.vgg(x)[0]
        got = np.load(out / "maps" / f"{name}.npy")
        assert got.shape == (56, 56)
        np.testing.assert_allclose(got, want, atol=1e-4)
        assert boxes[name]["class_index"] == int(logits.argmax())
        assert boxes[name]["map_size"] == [56, 56] and boxes[name]["threshold"] == 0.45


def test_coarse_import_gives_the_full_network_and_the_stage2_checkpoints(tmp_path):
    from ornet.runs.export import load_exported
    from ornet.training.pipeline import load_state

    cpath, coarse = write_coarse(tmp_path / "coarse.pth", k=3, width=4)
    epath, ev = write_evaluator(tmp_path / "evaluator.pth", k=3)
    run = tmp_path / "run"
    assert cli(["import-release", "--coarse", str(cpath), "--evaluator", str(epath), "--out", str(run), "--quiet"]) == 0
    model, meta = load_exported(run)
    assert meta["method"] == "ornet-coarse" and meta["architecture"]["backbone"] == "resnet18"
    assert meta["localization"]["threshold"] is None  # the coarse file holds no best_threshold
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        maps, logits = model.predict(x)
        assert torch.allclose(maps, coarse.att_map(x), atol=1e-4)
        assert torch.allclose(logits, ev(x), atol=1e-4)
        # stage 1's two heads: GAP(att_conv2(f_a)) and fc(layers(f_c * p_a))
        f_c = coarse.stem(x)
        f_a = coarse.att_layer4(f_c)
        y_a = coarse.att_conv2(f_a).mean(dim=(2, 3))
        h = coarse.layer4(coarse.layer3(coarse.layer2(coarse.layer1(f_c * coarse.att_map(x)))))
        y_hat = coarse.fc(h.mean(dim=(2, 3)))
        ours_hat, ours_a, _ = model.coarse_forward(x)
        assert torch.allclose(ours_a, y_a, atol=1e-4) and torch.allclose(ours_hat, y_hat, atol=1e-4)
    ornet_state = load_state(run / "checkpoints" / "coarse.ckpt")
    assert set(ornet_state) == set(model.state_dict())
    ev_state = load_state(run / "checkpoints" / "evaluator.ckpt")
    assert set(ev_state) == set(model.evaluator.state_dict())
    info = json.loads((run / "release.json").read_text())
    assert info["files"]["coarse"]["numbers"] == {"epoch": 30, "best_acc": 0.8123, "best_epoch": 12}
    assert isinstance(info["files"]["evaluator"]["numbers"]["best_acc"], float)
    shutil.rmtree(tmp_path)  # ~150 MB of ResNet-18 copies: passed, nothing to look at


def test_classes_file_names_the_classes(tmp_path):
    from ornet.runs.export import read_meta

    path, _ = write_fine(tmp_path / "fine.pth", k=3, width=2)
    (tmp_path / "classes.txt").write_text("1 001.Albatross\n2 002.Auklet\n3 003.Blackbird\n")
    assert cli(["import-release", "--fine", str(path), "--classes", str(tmp_path / "classes.txt"),
                "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert read_meta(tmp_path / "run" / "model.json")["classes"] == ["001.Albatross", "002.Auklet", "003.Blackbird"]


def test_the_releases_own_shapes_are_recognised(tmp_path):
    """ResNet-50, U-Net width 64, VGG-16, K 200: the shapes of the published files (tensors stored
    as one broadcast value each, so the test files stay tiny)."""
    import torchvision

    from ornet.release.convert import plan_import
    from release_reference import RefUNet

    def shapes(module) -> dict:
        return {k: v.shape for k, v in module.state_dict().items()}

    with torch.device("meta"):
        unet = shapes(RefUNet(64, 200, 64))
        resnet = shapes(torchvision.models.resnet50())
        vgg = shapes(torchvision.models.vgg16(num_classes=200))

    def cheap(table: dict, prefix: str = "") -> dict:
        return {prefix + k: torch.ones(()).expand(s) if len(s) else torch.zeros((), dtype=torch.long)
                for k, s in table.items()}

    generator = {**cheap(unet, "att_layer4."), "att_conv3.weight": torch.ones(()).expand(1, 200, 3, 3),
                 **{f"bn_att3.{k}": torch.ones(1) for k in ("weight", "bias", "running_mean", "running_var")}}
    stem = {k: v for k, v in cheap(resnet).items() if k.startswith(("conv1.", "bn1."))}
    fine = {**stem, **generator, **cheap(vgg, "vgg.model.")}
    coarse = {**cheap(resnet), "fc.weight": torch.ones(()).expand(200, 2048), "fc.bias": torch.zeros(200),
              **generator, "att_conv2.weight": torch.ones(()).expand(200, 200, 1, 1)}
    torch.save({"state_dict": fine, "best_threshold": np.float64(0.5)}, tmp_path / "fine.pth")
    torch.save({"state_dict": coarse}, tmp_path / "coarse.pth")
    torch.save({"state_dict": cheap(vgg, "model."), "best_acc": np.float64(77.5)}, tmp_path / "ev.pth")
    assert (tmp_path / "fine.pth").stat().st_size < 2_000_000
    p = plan_import(fine=tmp_path / "fine.pth")
    assert (p.kind, p.backbone, p.evaluator, p.width, p.num_classes, p.threshold) == \
        ("fine", "resnet50", "vgg16", 64, 200, 0.5)
    p = plan_import(coarse=tmp_path / "coarse.pth", evaluator=tmp_path / "ev.pth")
    assert (p.kind, p.backbone, p.evaluator, p.width, p.num_classes) == ("coarse", "resnet50", "vgg16", 64, 200)
    assert p.state["rest_head.head.classifier.weight"].shape == (200, 2048)
    assert p.state["generator.up3.block.0.weight"].shape == (200, 3 * 64 + 64, 3, 3)
    assert p.state["evaluator.head.classifier.6.weight"].shape == (200, 4096)


def test_numpy_scalars_of_numpy_1_and_2_load_and_nothing_else_is_allowed(tmp_path):
    """best_acc pickled by numpy 1.x (numpy.core.multiarray.scalar) or 2.x (numpy._core...) loads;
    the allowlist is scoped to the call."""
    from ornet.release.checkpoints import read_release_file

    state = {"model.w": torch.ones(2)}
    old = tmp_path / "numpy1.pth"
    torch.save({"state_dict": state, "best_acc": np.float64(0.75)}, old, _use_new_zipfile_serialization=False)
    data = old.read_bytes()
    if b"numpy._core.multiarray" in data:  # written by numpy 2: rename as numpy 1 does
        old.write_bytes(data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    assert b"numpy.core.multiarray" in old.read_bytes()
    before = {repr(g) for g in torch.serialization.get_safe_globals()}
    rf = read_release_file(old)
    assert rf.numbers == {"best_acc": 0.75} and type(rf.numbers["best_acc"]) is float
    assert {repr(g) for g in torch.serialization.get_safe_globals()} == before
    with pytest.raises(pickle.UnpicklingError):  # outside our call, torch still refuses the numpy scalar
        torch.load(old, weights_only=True)


@pytest.mark.parametrize("payload", ["object-array", "custom-object"])
def test_other_pickled_objects_are_refused_naming_the_file(tmp_path, payload):
    from ornet.release.checkpoints import read_release_file

    extra = np.array([{"a": 1}], dtype=object) if payload == "object-array" else Path("x")
    path = tmp_path / f"{payload}.pth"
    torch.save({"state_dict": {"model.w": torch.ones(1)}, "extra": extra}, path)
    with pytest.raises(OrnetError, match=f"{payload}.pth: contains objects other than tensors"):
        read_release_file(path)


def test_stage2_from_an_imported_coarse_checkpoint_runs_end_to_end(tmp_path, capsys):
    """import-release --coarse, then `ornet train --stages [refine]` with the release's stage-2
    settings (frozen parts in train mode, nearest upsampling, faithful area loss), then evaluate
    under both protocols."""
    from ornet.training.pipeline import load_state

    data = write_cub_tree(tmp_path / "cub", classes=3, per_class=6, size=(80, 64), masks=False)
    cpath, _ = write_coarse(tmp_path / "coarse.pth", k=3, width=4)
    epath, _ = write_evaluator(tmp_path / "evaluator.pth", k=3)
    run = tmp_path / "run"
    assert cli(["import-release", "--coarse", str(cpath), "--evaluator", str(epath), "--out", str(run), "--quiet"]) == 0
    before = load_state(run / "checkpoints" / "coarse.ckpt")
    small = ["--data.root", str(data), "--data.resize", "64", "--data.crop", "32", "--data.num_workers", "0",
             "--trainer.accelerator", "cpu", "--quiet"]
    code = cli(["train", "--out", str(run), "--stages", "[refine]", "--refine.epochs", "1", "--data.batch_size", "4",
                "--data.val_per_class", "0", "--eval.protocol", "release", "--trainer.snapshot_images", "0", *small])
    assert code == 0, capsys.readouterr().err
    after = load_state(run / "checkpoints" / "refine.ckpt")
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("generator.up3.") for k in changed)
    assert not any(k.startswith(("generator.down1.1.0.", "generator.up1.block.0.", "evaluator.")) and
                   k.endswith("weight") for k in changed)  # frozen parameters
    # the release's train mode: the frozen encoder's BN statistics follow the batches
    assert "generator.down1.1.1.running_mean" in changed and "stem.bn1.running_mean" in changed
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["protocol"] == "release" and metrics["threshold_split"] == "test"
    assert metrics["method"] == "ornet"
    # the release kept both imported networks at their best TEST epoch (best_epoch / best_acc in the files)
    kept = json.loads((run / "checkpoints" / "kept_epochs.json").read_text())
    assert kept == {"coarse": {"keep": "best_test", "split": "test", "score": 0.8123},
                    "evaluator": {"keep": "best_test", "split": "test", "score": kept["evaluator"]["score"]}}
    on_test = ["evaluator epoch (keep: best_test)", "coarse epoch (keep: best_test)"]
    assert metrics["chosen_on_test"] == ["threshold", *on_test]
    capsys.readouterr()
    assert cli(["evaluate", str(run), "--out", str(tmp_path / "wsol"), "--eval.protocol", "wsolevaluation",
                "--data.val_per_class", "1", "--data.num_workers", "0", "--quiet"]) == 0
    wsol = json.loads((tmp_path / "wsol" / "metrics.json").read_text())
    assert wsol["protocol"] == "wsolevaluation" and wsol["threshold_split"] == "val" and "max_box_acc_v2" in wsol
    assert wsol["chosen_on_test"] == on_test  # the threshold on val, the imported epochs still on test
    assert cli(["evaluate", str(run), "--out", str(tmp_path / "rel"), "--data.num_workers", "0", "--quiet"]) == 0
    again = json.loads((tmp_path / "rel" / "metrics.json").read_text())
    assert again["gt_known_loc"] == metrics["gt_known_loc"] and again["protocol"] == "release"
    shutil.rmtree(tmp_path)  # ~300 MB of checkpoints: passed, nothing to look at


def test_evaluate_and_figures_work_on_an_imported_run(fine_run, tmp_path):
    run, _, _ = fine_run
    data = write_cub_tree(tmp_path / "cub", classes=3, per_class=5, size=(80, 64), masks=False)
    common = ["--data.root", str(data), "--data.num_workers", "0", "--quiet"]
    assert cli(["evaluate", str(run), "--out", str(tmp_path / "wsol"), *common]) == 0
    assert cli(["evaluate", str(run), "--out", str(tmp_path / "rel"), "--eval.protocol", "release", *common]) == 0
    wsol = json.loads((tmp_path / "wsol" / "metrics.json").read_text())
    rel = json.loads((tmp_path / "rel" / "metrics.json").read_text())
    assert (wsol["protocol"], wsol["threshold_split"]) == ("wsolevaluation", "val")
    assert (rel["protocol"], rel["threshold_split"], rel["num_images"]) == ("release", "test", 6)
    assert cli(["figures", "overlay", str(run), "--data.root", str(data), "--device", "cpu", "--n", "2",
                "--out", str(tmp_path / "figs")]) == 0
    assert sorted(p.name for p in (tmp_path / "figs").glob("*.png")) == ["overlay_00.png", "overlay_01.png"]


def test_wsolevaluation_never_reuses_the_release_threshold_of_an_imported_run(fine_run, tmp_path, capsys):
    """model.json holds the release grid's threshold (index 8: 0.45, chosen on test). Without a val
    split, wsolevaluation must not apply index 8 of its own 0.01 list (0.08) as `threshold_split:
    model`: one line says which split to pass, and that split works."""
    import ornet

    run, _, _ = fine_run
    data = write_cub_tree(tmp_path / "cub", classes=3, per_class=5, size=(80, 64), masks=False)
    common = ["--data.root", str(data), "--data.num_workers", "0", "--data.val_per_class", "0", "--quiet"]
    capsys.readouterr()
    assert cli(["evaluate", str(run), "--out", str(tmp_path / "wsol"), "--eval.protocol", "wsolevaluation",
                *common]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if "threshold" in line]
    assert len(lines) == 1 and "--eval.threshold_split test" in lines[0], lines
    assert "chosen under eval.protocol release" in lines[0]
    assert not (tmp_path / "wsol" / "metrics.json").exists()
    with pytest.raises(OrnetError, match="chosen under eval.protocol release .*--eval.threshold_split test"):
        ornet.evaluate(run, data={"root": str(data), "num_workers": 0, "val_per_class": 0},
                       eval={"protocol": "wsolevaluation"}, quiet=True)
    assert cli(["evaluate", str(run), "--out", str(tmp_path / "test"), "--eval.protocol", "wsolevaluation",
                "--eval.threshold_split", "test", *common]) == 0
    m = json.loads((tmp_path / "test" / "metrics.json").read_text())
    assert (m["protocol"], m["threshold_split"], m["split"]) == ("wsolevaluation", "test", "test")
