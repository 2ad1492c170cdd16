"""Normalisation travels with the weights: resolution rules, the evaluator's conversion, stage 2."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ornet.config.schema import ModelConfig, RunConfig, to_dict
from ornet.errors import ConfigError, OrnetError
from ornet.models.normalization import IMAGENET, Normalization
from ornet.models.ornet_network import ORNet
from ornet.models.renormalize import Renormalize
from ornet.models.weights_spec import (
    input_normalization,
    model_normalizations,
    parse_weights,
    resolve_model,
)

HALF = Normalization((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def _normalise(raw: torch.Tensor, n: Normalization) -> torch.Tensor:
    return (raw - torch.tensor(n.mean).view(1, 3, 1, 1)) / torch.tensor(n.std).view(1, 3, 1, 1)


@pytest.mark.parametrize("arch, spec, expected", [
    ("resnet18", "none", IMAGENET),
    ("efficientnet_lite0", "none", IMAGENET),           # from scratch: ImageNet's, whatever the network
    ("efficientnet_lite0", "imagenet", HALF),           # the TF-ported package weights
    ("timm/tf_efficientnet_lite0", "imagenet", HALF),
    ("resnet18", "IMAGENET1K_V1", IMAGENET),            # read from torchvision's enum, nothing downloaded
    ("resnet18", "weights.pth", IMAGENET),              # a file for a torchvision network
    ("timm/tf_efficientnet_lite0", "w.safetensors", HALF),  # a file for a timm network: timm's default
    ("timm/resnet18", "w.safetensors", IMAGENET),
])
def test_weights_normalization(arch, spec, expected):
    assert parse_weights(spec, arch).normalization == expected


def test_resolution_input_is_the_backbone_evaluator_separate_and_overrides_win():
    m = ModelConfig(backbone="efficientnet_lite0", backbone_weights="imagenet", evaluator="resnet18")
    assert model_normalizations(m) == (HALF, IMAGENET) and input_normalization(m) == HALF
    r = resolve_model(m)
    assert r.backbone_mean == [0.5] * 3 and r.evaluator_std == list(IMAGENET.std)
    # stage 1 from the stage-0 evaluator: the stem inherits the evaluator's normalisation
    m = ModelConfig(backbone="efficientnet_lite0", backbone_weights="evaluator", evaluator="efficientnet_lite0",
                    evaluator_weights="imagenet")
    assert model_normalizations(m) == (HALF, HALF)
    m = dataclasses.replace(m, backbone_mean=[0.1, 0.2, 0.3], backbone_std=[1, 1, 1])
    assert model_normalizations(m)[0] == Normalization((0.1, 0.2, 0.3), (1, 1, 1))
    with pytest.raises(ConfigError, match="backbone_mean and model.backbone_std are set together"):
        model_normalizations(dataclasses.replace(m, backbone_std=None))
    with pytest.raises(ConfigError, match="std must be positive"):
        Normalization((0, 0, 0), (1, 0, 1))


def test_renormalize_converts_between_normalisations_of_the_same_image():
    raw = torch.rand(2, 3, 5, 7)
    convert = Renormalize(IMAGENET, HALF)
    torch.testing.assert_close(convert(_normalise(raw, IMAGENET)), _normalise(raw, HALF))
    torch.testing.assert_close(Renormalize(HALF, IMAGENET)(_normalise(raw, HALF)), _normalise(raw, IMAGENET))
    same = Renormalize(HALF, HALF)
    x = torch.randn(1, 3, 2, 2)
    assert same.identity and same(x) is x
    assert not [k for k in convert.state_dict()]  # part of the architecture, not of the weights


def test_stage_two_feeds_the_evaluator_its_own_normalised_image_times_the_map():
    torch.manual_seed(0)
    model = ORNet("resnet18", 3, evaluator="resnet18", generator_width=8, input_norm=HALF,
                  evaluator_norm=IMAGENET).eval()
    raw = torch.rand(2, 3, 64, 64)
    images = _normalise(raw, HALF)  # what the data pipeline gives: the stem's normalisation
    p = torch.rand(2, 1, 16, 16)
    mask = torch.nn.functional.interpolate(p, size=(64, 64), mode="bilinear", align_corners=False)
    with torch.no_grad():
        expected = model.evaluator(_normalise(raw, IMAGENET) * mask)
        torch.testing.assert_close(model.evaluate_masked(images, p), expected, rtol=1e-4, atol=1e-5)
        wrong = model.evaluator(images * mask)  # without the conversion: a different input
        assert (wrong - expected).abs().max() > 1e-3
        _, logits = model.predict(images)
        torch.testing.assert_close(logits, model.evaluator(_normalise(raw, IMAGENET)), rtol=1e-4, atol=1e-5)


def test_stage_zero_trains_the_evaluator_on_its_own_normalisation():
    from ornet.methods.ornet.evaluator_stage import EvaluatorTask

    cfg = RunConfig()
    cfg.model = resolve_model(ModelConfig(backbone="efficientnet_lite0", backbone_weights="imagenet",
                                          evaluator="resnet18", generator_width=8))
    task = EvaluatorTask(to_dict(cfg), 3).eval()
    raw = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(task(_normalise(raw, HALF)), task.model(_normalise(raw, IMAGENET)),
                                   rtol=1e-4, atol=1e-5)
    assert not [k for k in task.state_dict() if not k.startswith("model.")]  # checkpoints unchanged


@pytest.mark.parametrize("key, value, match", [
    ("backbone_mean", [0.5, 0.5], "model.backbone_mean must be 3 numbers"),
    ("evaluator_std", [0.5, 0.0, 0.5], "model.evaluator_std must be 3 positive numbers"),
])
def test_bad_normalisation_values_are_config_errors(key, value, match):
    from ornet.config.parse import validate

    cfg = RunConfig()
    setattr(cfg.model, key, value)
    setattr(cfg.model, key.replace("mean", "STD").replace("std", "mean").replace("STD", "std"), [1.0, 1.0, 1.0])
    with pytest.raises(ConfigError, match=match):
        validate(cfg)


def test_evaluator_weights_for_another_backbone_are_refused():
    with pytest.raises(OrnetError, match="no offline ImageNet weights for 'vgg16'"):
        _ = parse_weights("imagenet", "vgg16").normalization
