"""Two-process CPU DDP evaluation (gloo, Lightning's `ddp` strategy, launched as subprocesses)
gives exactly the single-process metrics and per-image rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from conftest import write_cub_tree

pytestmark = pytest.mark.slow

if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)


def _model_dir(tmp: Path, data: Path) -> Path:
    from ornet.config.schema import RunConfig, dump_yaml
    from ornet.models.ornet_network import ORNet
    from ornet.runs.export import export_model, model_meta

    torch.manual_seed(0)
    cfg = RunConfig()
    cfg.data.root, cfg.data.resize, cfg.data.crop = str(data), 40, 32
    cfg.data.eval_batch_size, cfg.data.num_workers, cfg.data.val_per_class = 2, 0, 1
    cfg.model.backbone, cfg.model.evaluator, cfg.model.generator_width = "resnet18", "resnet18", 8
    model = ORNet("resnet18", 3, evaluator="resnet18", generator_width=8)
    with torch.no_grad():  # non-trivial batch-norm statistics so that maps vary between images
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    out = tmp / "model"
    out.mkdir()
    (out / "config.yaml").write_text(dump_yaml(cfg))
    classes = [f"{c + 1:03d}.class_{c}" for c in range(3)]
    export_model(out, model.eval(), model_meta(cfg, "ornet", classes, threshold=0.5, threshold_index=50))
    return out


def _evaluate(model: Path, out: Path, devices: int) -> dict:
    args = ["evaluate", str(model), "--out", str(out), "--quiet", "--trainer.accelerator", "cpu",
            "--trainer.devices", str(devices)]
    if devices == 1:  # in this process: a subprocess would spend seconds on imports
        from ornet.cli import main

        assert main(args) == 0
    else:  # Lightning's ddp launcher re-runs the command line for rank 1: a process of its own
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
        proc = subprocess.run([sys.executable, "-m", "ornet", *args, "--trainer.strategy", "ddp"], capture_output=True,
                              text=True, env=env, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "metrics.json").read_text())


def test_ddp_evaluation_equals_single_process(tmp_path):
    # 3 classes x 7 images: 9 test images, 3 val: an odd count, so the two ranks get uneven shares
    data = write_cub_tree(tmp_path / "cub", classes=3, per_class=7, size=(48, 40))
    model = _model_dir(tmp_path, data)
    single = _evaluate(model, tmp_path / "single", 1)
    ddp = _evaluate(model, tmp_path / "ddp", 2)
    for key in ("seconds", "model"):
        single.pop(key, None)
        ddp.pop(key, None)
    assert ddp == single
    assert single["num_images"] == 9
    assert (tmp_path / "ddp" / "predictions.csv").read_text() == (tmp_path / "single" / "predictions.csv").read_text()
    curves = [json.loads((tmp_path / d / "curves.json").read_text()) for d in ("single", "ddp")]
    assert curves[0] == curves[1] and curves[0]["num_images"] == 3
    assert yaml.safe_load((model / "config.yaml").read_text())["data"]["eval_batch_size"] == 2
