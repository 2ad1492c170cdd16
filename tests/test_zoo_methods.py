"""HaS, CutMix and ADL as methods of the registry (issue 29): their config sections and keys, a tiny
`ornet train` + `ornet evaluate` each (ResNet-18, 32 px, CPU), resume, the backbones ADL refuses,
and `ornet methods`. Parity with wsolevaluation's code: tests/test_zoo_parity.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import write_cub_tree
from ornet.cli import main
from ornet.config.parse import make_parser, parse, to_run_config
from ornet.config.schema import RunConfig
from ornet.errors import ConfigError
from ornet.methods import METHODS, check_config

ZOO = ["has", "cutmix", "adl"]
TINY = ["--model.backbone", "resnet18", "--data.resize", "40", "--data.crop", "32", "--data.batch_size", "4",
        "--data.eval_batch_size", "8", "--data.num_workers", "0", "--data.val_per_class", "2",
        "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.limit_train_batches", "2",
        "--trainer.snapshot_images", "0", "--quiet"]
BACKBONE = {"has": "mobilenet_v3_small", "cutmix": "mobilenet_v3_small", "adl": "resnet18"}
"""The tiny runs' networks: ADL takes ResNet and VGG only; the others the smaller network (seconds less a run)."""


def _tiny(name: str) -> list[str]:
    return [BACKBONE[name] if a == "resnet18" else a for a in TINY]


DEFAULTS = {"has": {"grid_size": 4, "drop_rate": 0.5}, "cutmix": {"beta": 1.0, "prob": 1.0},
            "adl": {"drop_rate": 0.75, "drop_threshold": 0.9}}
"""wsolevaluation's config.py defaults (has_grid_size, has_drop_rate, cutmix_beta, cutmix_prob,
adl_drop_rate, adl_threshold)."""


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_cub_tree(tmp_path_factory.mktemp("data") / "cub", classes=3, per_class=7, size=(48, 40))


@pytest.mark.parametrize("name", ZOO)
def test_each_method_is_one_stage_named_after_it_with_wsolevaluations_defaults(name):
    method = METHODS.get(name)
    assert method.stage_names() == [name] and method.export_names() == [name]
    section = getattr(RunConfig(), name)
    for key, value in DEFAULTS[name].items():
        assert getattr(section, key) == value, key
    assert (section.epochs, section.lr) == (RunConfig().cam.epochs, RunConfig().cam.lr)  # cam's optimisation


@pytest.mark.parametrize("name", ZOO)
def test_the_command_line_resolves_the_method_as_it_does_cam(name):
    parser = make_parser("ornet train", "")
    key = next(iter(DEFAULTS[name]))
    value = "8" if key == "grid_size" else "0.25"
    cfg = check_config(to_run_config(parser, parse(parser, ["--wsol_method", name, "--trainer.max_epochs", "2",
                                                            f"--{name}.{key}", value])))
    assert (cfg.wsol_method, cfg.stages, getattr(cfg, name).epochs) == (name, [name], 2)
    assert getattr(getattr(cfg, name), key) == float(value)


@pytest.mark.parametrize("key,value,message", [
    ("has.drop_rate", 1.5, r"^has.drop_rate must be in \[0, 1\], got 1.5$"),
    ("has.grid_size", -1, r"^has.grid_size must be >= 0"),
    ("cutmix.prob", -0.1, r"^cutmix.prob must be in \[0, 1\]"),
    ("cutmix.beta", -1.0, r"^cutmix.beta must be >= 0"),
    ("adl.drop_threshold", 2.0, r"^adl.drop_threshold must be in \[0, 1\]"),
])
def test_bad_method_values_are_one_line(key, value, message):
    section, field = key.split(".")
    cfg = RunConfig(wsol_method=section)
    setattr(getattr(cfg, section), field, value)
    with pytest.raises(ConfigError, match=message):
        check_config(cfg)


@pytest.mark.slow
@pytest.mark.parametrize("name", ZOO)
def test_train_and_evaluate_end_to_end(name, data, tmp_path):
    out = tmp_path / name
    assert main(["train", "--wsol_method", name, "--data.root", str(data), "--out", str(out), *_tiny(name)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == name and metrics["stages_run"] == [name]
    assert 0.0 <= metrics["gt_known_loc"] <= 100.0 and 0.0 <= metrics["max_box_acc_v2"] <= 100.0
    meta = json.loads((out / "model.json").read_text())
    assert meta["method"] == name
    assert main(["evaluate", str(out), "--data.root", str(data), "--out", str(tmp_path / "again"), "--quiet"]) == 0
    again = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert again["gt_known_loc"] == pytest.approx(metrics["gt_known_loc"])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["has", "cutmix", "adl"])
def test_resume_gives_the_uninterrupted_weights(name, data, tmp_path):
    """The method's draws come from the generator reseeded before every batch: stopping after
    epoch 1 of 2 and resuming trains the same weights as two epochs in one go (a constant learning
    rate, so that the first run's schedule does not depend on its epoch count)."""
    args = ["train", "--wsol_method", name, "--data.root", str(data), *_tiny(name), f"--{name}.scheduler", "none"]
    assert main([*args, "--out", str(tmp_path / "whole"), f"--{name}.epochs", "2"]) == 0
    split = tmp_path / "split"
    assert main([*args, "--out", str(split), f"--{name}.epochs", "1", "--trainer.keep_last_checkpoints", "true"]) == 0
    (split / "checkpoints" / f"{name}.ckpt").unlink()  # as if stopped after epoch 1 of 2
    assert main([*args, "--out", str(split), f"--{name}.epochs", "2", "--resume"]) == 0
    whole = torch.load(tmp_path / "whole" / "checkpoints" / f"{name}.ckpt", map_location="cpu", weights_only=True)
    resumed = torch.load(split / "checkpoints" / f"{name}.ckpt", map_location="cpu", weights_only=True)
    for key, value in whole["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key


@pytest.mark.parametrize("backbone", ["mobilenet_v2", "timm/convnext_nano"])
def test_a_backbone_adl_cannot_take_is_one_line_and_exit_2(backbone, data, tmp_path, capsys):
    code = main(["train", "--wsol_method", "adl", "--model.backbone", backbone, "--data.root", str(data),
                 "--out", str(tmp_path / "run"), *[a for a in TINY if a != "resnet18" and a != "--model.backbone"]])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"adl: backbone {backbone!r}" in err and "ResNet-50 and VGG-16" in err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_ornet_methods_lists_them(capsys):
    assert main(["methods"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.strip().splitlines() if line.strip()]
    assert set(ZOO) <= set(names)


@pytest.mark.slow
@pytest.mark.parametrize("name", ZOO)
def test_the_demo_preset_trains_on_cpu(name, data, tmp_path):
    """configs/demo_<method>.yaml (EfficientNet-Lite0 with its offline ImageNet weights), shrunk to
    64 px, one epoch of two batches and a val split the tiny tree can hold."""
    out = tmp_path / name
    assert main(["train", "--config", f"demo_{name}", "--data.root", str(data), "--out", str(out),
                 "--data.resize", "64", "--data.crop", "64", "--data.batch_size", "4", "--data.val_per_class", "2",
                 "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.snapshot_images", "0",
                 "--quiet"]) == 0
    meta = json.loads((out / "model.json").read_text())
    assert meta["method"] == name and meta["architecture"]["backbone"] == "efficientnet_lite0"
