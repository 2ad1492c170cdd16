"""`model.backbone_weights: evaluator`: stage 1 starts from the trained stage-0 evaluator."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("lightning")

from ornet.config.schema import RunConfig  # noqa: E402
from ornet.errors import OrnetError  # noqa: E402
from ornet.models.evaluator import build_evaluator  # noqa: E402
from ornet.training.pipeline import build_task, plan  # noqa: E402


def _cfg(evaluator: str = "resnet18") -> RunConfig:
    cfg = RunConfig()
    cfg.model.backbone, cfg.model.evaluator, cfg.model.generator_width = "resnet18", evaluator, 8
    cfg.model.backbone_weights = "evaluator"
    return cfg


def test_stage1_takes_stem_rest_and_head_from_the_evaluator():
    torch.manual_seed(0)
    evaluator = build_evaluator("resnet18", 5)
    for p in evaluator.parameters():  # values no fresh initialisation would give
        p.data.uniform_(-3, 3)
    task = build_task(_cfg(), "coarse", 5, [str(i) for i in range(5)])
    generator_before = {k: v.clone() for k, v in task.model.generator.state_dict().items()}
    task.init_backbone_from(evaluator.state_dict())
    got = task.model
    assert torch.equal(got.stem.conv1.weight, evaluator.stem.conv1.weight)
    assert torch.equal(got.rest_head.rest.layer4[1].conv2.weight, evaluator.rest.layer4[1].conv2.weight)
    assert torch.equal(got.rest_head.head.classifier.weight, evaluator.head.classifier.weight)
    assert torch.equal(got.stem.bn1.running_var, evaluator.stem.bn1.running_var)
    # the generator and the (unused in stage 1) evaluator slot are untouched
    for k, v in task.model.generator.state_dict().items():
        assert torch.equal(v, generator_before[k]), k
    x = torch.randn(2, 3, 64, 64)
    task.model.eval(), evaluator.eval()
    with torch.no_grad():
        assert torch.allclose(task.model.rest_head(task.model.stem(x)), evaluator(x), atol=1e-5)


def test_other_architectures_are_refused_before_anything_trains(tmp_path):
    with pytest.raises(OrnetError, match="model.evaluator == model.backbone .vgg16 != resnet18"):
        plan(_cfg("vgg16"), tmp_path, resume=False)


def test_stage1_alone_needs_the_evaluator_checkpoint(tmp_path):
    cfg = _cfg()
    cfg.stages = ["coarse", "refine"]
    with pytest.raises(OrnetError, match="needs the stage-0 checkpoint .*evaluator.ckpt"):
        plan(cfg, tmp_path, resume=False)
    cfg.stages = ["evaluator", "coarse", "refine"]
    assert [p.stage for p in plan(cfg, tmp_path, resume=False)] == cfg.stages


def test_the_cam_baseline_refuses_it():
    cfg = _cfg()
    with pytest.raises(OrnetError, match="for ORNet's stage 1"):
        build_task(cfg, "cam", 5, [str(i) for i in range(5)])
