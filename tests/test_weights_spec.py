"""The parsed weights spec: every kind, the normalisation it carries, the from-evaluator case, and
one-line errors naming the config key for bad values and missing files."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ornet.config.parse import validate
from ornet.config.schema import ModelConfig, RunConfig, dump_yaml
from ornet.errors import ConfigError, OrnetError
from ornet.models.normalization import IMAGENET, Normalization
from ornet.models.weights_spec import WeightsKind, model_normalizations, parse_weights, weights_spec

HALF = Normalization((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


@pytest.mark.parametrize("text, arch, kind, normalization", [
    (None, "resnet18", WeightsKind.NONE, IMAGENET),
    ("", "resnet18", WeightsKind.NONE, IMAGENET),
    (" None ", "efficientnet_lite0", WeightsKind.NONE, IMAGENET),
    ("imagenet", "efficientnet_lite0", WeightsKind.OFFLINE, HALF),
    ("ImageNet", "timm/tf_efficientnet_lite0", WeightsKind.OFFLINE, HALF),
    ("IMAGENET1K_V1", "resnet18", WeightsKind.TORCHVISION, IMAGENET),
    ("DEFAULT", "mobilenet_v3_small", WeightsKind.TORCHVISION, IMAGENET),
    ("w.pth", "resnet18", WeightsKind.FILE, IMAGENET),
    ("some/folder/weights", "resnet18", WeightsKind.FILE, IMAGENET),
    ("w.safetensors", "timm/tf_efficientnet_lite0", WeightsKind.FILE, HALF),  # timm's default for the model
    ("evaluator", "resnet18", WeightsKind.FROM_EVALUATOR, None),
])
def test_each_kind_is_parsed_with_its_normalisation(text, arch, kind, normalization):
    spec = parse_weights(text, arch, "model.backbone_weights")
    assert spec.kind is kind and spec.arch == arch
    assert spec.pretrained == (kind is not WeightsKind.NONE)
    assert spec.from_evaluator == (kind is WeightsKind.FROM_EVALUATOR)
    assert (spec.path is not None) == (kind is WeightsKind.FILE)
    assert spec.torchvision_name == (text if kind is WeightsKind.TORCHVISION else None)
    if normalization is None:
        with pytest.raises(OrnetError, match="^model.backbone_weights: weights 'evaluator' take the evaluator's"):
            _ = spec.normalization
    else:
        assert spec.normalization == normalization


def test_an_existing_path_without_suffix_is_a_file_and_imagenet_is_always_the_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").write_bytes(b"")
    (tmp_path / "imagenet").mkdir()
    assert parse_weights("mine", "resnet18").kind is WeightsKind.FILE
    assert parse_weights("imagenet", "efficientnet_lite0").kind is WeightsKind.OFFLINE


def test_from_the_evaluator_is_a_kind_of_the_backbone_only_and_takes_the_evaluators_normalisation():
    m = ModelConfig(backbone="efficientnet_lite0", backbone_weights="evaluator", evaluator="efficientnet_lite0",
                    evaluator_weights="imagenet")
    assert weights_spec(m, "backbone").from_evaluator and not weights_spec(m, "evaluator").from_evaluator
    assert model_normalizations(m) == (HALF, HALF)
    m.evaluator_weights = "evaluator"
    with pytest.raises(ConfigError, match="^model.evaluator_weights: 'evaluator' .* model.backbone_weights only"):
        weights_spec(m, "evaluator")


def _validate(**model) -> str:
    cfg = RunConfig()
    for key, value in model.items():
        setattr(cfg.model, key, value)
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    message = str(err.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("model, start", [
    ({"backbone_weights": "my weights"}, "model.backbone_weights: 'my weights' is neither none"),
    ({"evaluator_weights": "evaluator"}, "model.evaluator_weights: 'evaluator'"),
    ({"evaluator_weights": "imagenet"}, "model.evaluator_weights: no offline ImageNet weights for 'vgg16'"),
    ({"backbone": "timm/resnet18", "backbone_weights": "IMAGENET1K_V1"},
     "model.backbone_weights: 'IMAGENET1K_V1' is not a weights name for the timm network timm/resnet18"),
])
def test_bad_values_are_one_config_error_naming_the_key_when_the_config_is_read(model, start):
    assert _validate(**model).startswith(start)


def test_the_config_keeps_its_strings():
    cfg = RunConfig()
    cfg.model.backbone_weights, cfg.model.evaluator_weights = "IMAGENET1K_V1", "w.pth"
    before = dump_yaml(cfg)
    validate(cfg)
    assert dump_yaml(cfg) == before and cfg.model.backbone_weights == "IMAGENET1K_V1"


def test_missing_and_bad_files_are_one_line_naming_the_key(tmp_path):
    from ornet.models.weights import check_weights

    m = ModelConfig(backbone="resnet18", backbone_weights=str(tmp_path / "nosuch.pth"))
    spec = weights_spec(m, "backbone")
    with pytest.raises(ConfigError, match=r"^model.backbone_weights: .*nosuch.pth: no such weights file$"):
        spec.require_file()
    with pytest.raises(OrnetError, match=r"^model.backbone_weights: .*nosuch.pth: no such weights file$"):
        check_weights(spec)
    bad = tmp_path / "corrupt.pth"
    bad.write_bytes(b"not a checkpoint")
    m.evaluator_weights = str(bad)
    with pytest.raises(OrnetError, match=r"^model.evaluator_weights: .*corrupt.pth: ") as err:
        check_weights(weights_spec(m, "evaluator"))
    assert "\n" not in str(err.value)
    with pytest.raises(OrnetError, match=r"^model.backbone_weights: unknown weights 'IMAGENET9K' for resnet18"):
        check_weights(weights_spec(ModelConfig(backbone="resnet18", backbone_weights="IMAGENET9K"), "backbone"))
    check_weights(weights_spec(ModelConfig(backbone_weights="evaluator"), "backbone"))  # nothing to read yet


def test_load_weights_takes_a_spec_and_refuses_the_evaluator_case():
    from ornet.models import build_classifier, load_weights

    net = build_classifier("resnet18", 3)
    assert load_weights(net, parse_weights("none", "resnet18")).loaded == []
    with pytest.raises(OrnetError, match="copied in by the training pipeline"):
        load_weights(net, weights_spec(ModelConfig(backbone="resnet18", backbone_weights="evaluator"), "backbone"))


def test_parsing_and_normalisation_import_no_torch():
    code = ("import sys\n"
            "from ornet.config.parse import validate\n"
            "from ornet.config.schema import RunConfig\n"
            "from ornet.models.weights_spec import parse_weights\n"
            "import ornet.models.normalization\n"
            "cfg = RunConfig()\n"
            "cfg.model.backbone, cfg.model.backbone_weights = 'efficientnet_lite0', 'imagenet'\n"
            "validate(cfg)\n"
            "assert parse_weights('imagenet', 'efficientnet_lite0').normalization.mean == (0.5, 0.5, 0.5)\n"
            "assert parse_weights('w.pth', 'resnet18').normalization.std[0] == 0.229\n"
            "print(sorted(m for m in ('torch', 'torchvision', 'timm') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
