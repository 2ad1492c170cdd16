"""`<stage>.frozen_stem` (docs/training.md): a classifier stage (evaluator, cam, has, cutmix) trains with its
stem (`SplitClassifier.stem`, up to stride 4) as it started: weights and batch-norm statistics unchanged, not
in the optimiser, in eval mode; the rest trains as before. Other stages refuse the key in one line."""

from __future__ import annotations

import copy

import pytest
import torch

from ornet.errors import ConfigError
from test_map_constraints import setup  # noqa: F401  (the module's fixture)


def _task(setup, stage: str, frozen: bool):  # noqa: F811
    from ornet.training.pipeline import build_task

    cfg, dm, batch = setup
    cfg = copy.deepcopy(cfg)
    getattr(cfg, stage).frozen_stem = frozen
    getattr(cfg, stage).optimizer = "adam"  # Adam moves every parameter with a gradient, however small
    if stage != "evaluator":
        cfg.wsol_method, cfg.stages = stage, [stage]
    torch.manual_seed(0)
    return build_task(cfg, stage, dm.num_classes, dm.classes), batch


def _one_step(task, batch) -> None:
    optimizer = task.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    task.train(True)
    task._loss_terms = {}
    task._step(batch, "train").backward()
    optimizer.step()


@pytest.mark.parametrize("stage", ["evaluator", "cam", "has", "cutmix"])
def test_the_stem_stays_as_it_started_and_the_rest_trains(setup, stage):  # noqa: F811
    task, batch = _task(setup, stage, True)
    stem = task.stem()
    rest = [m for n, m in task.named_modules() if n.endswith("rest")][0]
    before = {k: v.clone() for k, v in stem.state_dict().items()}
    rest_before = {k: v.clone() for k, v in rest.state_dict().items()}
    _one_step(task, batch)
    assert not stem.training and not any(m.training for m in stem.modules())  # ImageNet statistics kept
    assert rest.training
    after = stem.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and running statistics
    assert all(p.grad is None for p in stem.parameters())  # no gradient reached it
    changed = [k for k, v in rest.state_dict().items() if not torch.equal(rest_before[k], v)]
    assert changed and any(k.endswith("weight") for k in changed)


@pytest.mark.parametrize("stage", ["evaluator", "cam"])
def test_without_the_key_the_stem_trains(setup, stage):  # noqa: F811
    task, batch = _task(setup, stage, False)
    stem = task.stem()
    before = {k: v.clone() for k, v in stem.state_dict().items()}
    _one_step(task, batch)
    assert stem.training
    assert [k for k, v in stem.state_dict().items() if not torch.equal(before[k], v)]


def test_the_optimiser_holds_no_stem_parameter(setup):  # noqa: F811
    task, _ = _task(setup, "cam", True)
    optimizer = task.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    stem = {id(p) for p in task.stem().parameters()}
    assert stem and not stem & held
    assert held == {id(p) for p in task.parameters() if id(p) not in stem}


@pytest.mark.parametrize("overrides,message", [
    ({"coarse.frozen_stem": True}, r"^coarse.frozen_stem: stage coarse does not train a classifier stem it could keep "
                                   r"fixed \(ornet's stages that can: evaluator\); stage 1's stem: model.freeze_features$"),
    ({"refine.frozen_stem": True}, r"^refine.frozen_stem: stage refine does not train .*\(ornet's stages that can: "
                                   r"evaluator\)$"),
    ({"wsol_method": "adl", "stages": ["adl"], "model.backbone": "resnet50", "adl.frozen_stem": True},
     r"^adl.frozen_stem: stage adl does not train a classifier stem it could keep fixed \(adl has none\)$"),
])
def test_stages_without_a_stem_to_keep_refuse_the_key(overrides, message):
    import ornet

    with pytest.raises(ConfigError, match=message):
        ornet.load_config(None, {"data.root": "x", **overrides})


def test_a_stage_not_run_may_carry_the_key_and_the_default_is_off():
    import ornet

    cfg = ornet.load_config("configs/demo.yaml", {"data.root": "x", "stages": ["evaluator"], "coarse.frozen_stem": True})
    assert cfg.coarse.frozen_stem  # stage 1 does not run: nothing to refuse
    cfg = ornet.load_config("configs/demo.yaml", {"data.root": "x"})
    assert not any(getattr(cfg, s).frozen_stem for s in cfg.stages)
