"""`model.freeze_features` (docs/method.md, "Features frozen from the evaluator"): stage 1 trains
neither the stem nor a backbone generator encoder, keeps their batch-norm statistics, and, started from
the stage-0 evaluator, the encoder's deepest features are the evaluator's own; config checks."""

from __future__ import annotations

import copy

import pytest
import torch

from ornet.errors import ConfigError
from test_map_constraints import setup  # noqa: F401  (the module's fixture)


def _coarse(setup, freeze: bool, encoder: str = "backbone"):  # noqa: F811
    from ornet.training.pipeline import build_task

    cfg, dm, batch = setup
    cfg = copy.deepcopy(cfg)
    cfg.model.generator_encoder = encoder
    cfg.model.freeze_features = freeze
    torch.manual_seed(0)
    return build_task(cfg, "coarse", dm.num_classes, dm.classes), batch


def _frozen(task) -> list[torch.nn.Module]:
    encoder = task.model.generator.encoder
    return [task.model.stem] + ([encoder] if encoder is not None else [])


@pytest.mark.parametrize("encoder", ["backbone", "release"])
def test_stage_1_trains_neither_the_stem_nor_the_encoder(setup, encoder):  # noqa: F811
    task, batch = _coarse(setup, True, encoder)
    task.train(True)
    frozen = {id(p) for m in _frozen(task) for p in m.parameters()}
    trained = {id(p) for group, _ in task.param_groups() for p in group}
    assert frozen and not frozen & trained
    assert all(not m.training for part in _frozen(task) for m in part.modules())  # fixed BN statistics
    assert task.model.generator.up3.training and task.model.rest_head.training  # the rest trains as before
    before = {k: v.clone() for part in _frozen(task) for k, v in part.state_dict().items()}
    decoder = task.model.generator.out_conv.weight.detach().clone()
    opt = torch.optim.SGD([p for group, _ in task.param_groups() for p in group], lr=0.1)
    loss = task._step(batch, "train")
    loss.backward()
    opt.step()
    after = {k: v for part in _frozen(task) for k, v in part.state_dict().items()}
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and running statistics
    assert not torch.equal(decoder, task.model.generator.out_conv.weight)
    if encoder == "release":  # the release's encoder is new: it trains whatever the key says
        assert any(id(p) in trained for p in task.model.generator.down1.parameters())


def test_without_the_key_stage_1_trains_them(setup):  # noqa: F811
    task, _ = _coarse(setup, False)
    trained = {id(p) for group, _ in task.param_groups() for p in group}
    assert all(id(p) in trained for m in _frozen(task) for p in m.parameters())
    task.train(True)
    assert task.model.stem.training and task.model.generator.encoder.training


def test_started_from_the_evaluator_the_deepest_features_are_the_evaluators(setup):  # noqa: F811
    from ornet.models.backbones import build_classifier

    task, batch = _coarse(setup, True)
    torch.manual_seed(1)
    evaluator = build_classifier("resnet18", task.num_classes, "none")
    task.init_backbone_from(evaluator.state_dict())
    task.model.evaluator.load_state_dict(evaluator.state_dict())  # stage 2 hands the same evaluator over
    task.train(True)
    opt = torch.optim.SGD([p for group, _ in task.param_groups() for p in group], lr=0.1)
    task._step(batch, "train").backward()  # after stage 1 has trained (a step of it)
    opt.step()
    with torch.no_grad():
        x3 = task.model.generator.encoder(task.model.stem(batch.images))[2]
        features = task.model.evaluator.features(task.model.to_evaluator(batch.images))
    assert x3.shape == features.shape  # resnet18: layer4 is both the encoder's end and the evaluator's features
    torch.testing.assert_close(x3, features)


def test_config_checks():
    import ornet

    with pytest.raises(ConfigError, match="model.freeze_features .* needs pretrained model.backbone_weights"):
        ornet.load_config(None, {"model.freeze_features": True, "model.backbone_weights": "none"})
    with pytest.raises(ConfigError, match="model.freeze_features and method.refine_scope: generator"):
        ornet.load_config("configs/demo.yaml", {"model.freeze_features": True, "method.refine_scope": "generator"})
    cfg = ornet.load_config("configs/demo.yaml", {"model.freeze_features": True, "model.backbone_weights": "evaluator"})
    assert cfg.model.freeze_features and cfg.model.backbone_weights == "evaluator"
    assert not ornet.load_config("configs/demo.yaml").model.freeze_features  # the preset as before
    # re-initialised stem layers would stay random under the freeze: refused, naming them
    from ornet.methods import check_networks  # the check builds the backbone: before a run trains

    frozen = {"model.freeze_features": True, "model.backbone_weights": "evaluator"}
    with pytest.raises(ConfigError, match=r"model.reinit re-initialises stem weights \(blocks.1.0.bn1.bias, .*"
                                          r"freeze_features keeps frozen"):
        check_networks(ornet.load_config("configs/demo.yaml", {**frozen, "model.reinit": ["classifier", "blocks.1"]}))
    cfg = ornet.load_config("configs/demo.yaml", {**frozen, "model.reinit": ["blocks.6", "classifier"]})
    check_networks(cfg)  # beyond the stem: F_c2's layers, not frozen
    assert cfg.model.reinit == ["blocks.6", "classifier"]


def test_reinit_stem_layers_names_what_lands_in_the_stem():
    from ornet.models.reinit import check_reinit, layer_names, reinit_stem_layers

    assert layer_names("efficientnet_lite0") == ["conv_stem", "bn1", "blocks", "conv_head", "bn2", "classifier"]
    assert reinit_stem_layers("efficientnet_lite0", ["blocks.6", "conv_head", "classifier"]) == []
    assert reinit_stem_layers("efficientnet_lite0", ["conv_stem"]) == ["conv_stem.weight"]
    assert reinit_stem_layers("resnet18", ["layer4", "fc"]) == []
    assert "conv1.weight" in reinit_stem_layers("resnet18", ["conv1"])
    # timm backbones cannot split on the meta device: built for real
    check_reinit("efficientnet_lite0", ["blocks.6", "classifier"])
    with pytest.raises(ConfigError, match="'head' is not a layer of efficientnet_lite0; its layers: conv_stem, bn1"):
        check_reinit("efficientnet_lite0", ["head"])
