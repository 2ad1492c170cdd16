"""`model.generator_encoder: backbone`: the generator's encoder is a copy of the backbone's stages."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ornet.errors import ConfigError, OrnetError
from ornet.models.backbones import build_classifier
from ornet.models.generator import ActivationMapGenerator
from ornet.models.generator_encoder import backbone_encoder, flatten
from ornet.models.ornet_network import ORNet

K = 4


@pytest.mark.parametrize("name, channels, last", [
    ("efficientnet_lite0", (40, 112, 320), "blocks.6.0"),  # stops before conv_head (1280)
    ("resnet18", (128, 256, 512), "layer4.1"),
    ("timm/resnet18", (128, 256, 512), "layer4.1"),
])
def test_stages_end_at_strides_8_16_32(name, channels, last):
    torch.manual_seed(0)
    clf = build_classifier(name, K).eval()
    enc = backbone_encoder(clf.rest, clf.stem_channels, clf.feature_end, name).eval()
    assert enc.channels == channels
    assert enc.paths[2][-1] == last
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        f_c = clf.stem(x)
        x1, x2, x3 = enc(f_c)
        assert [t.shape[1:] for t in (x1, x2, x3)] == [(channels[0], 12, 12), (channels[1], 6, 6),
                                                        (channels[2], 3, 3)]
        if name == "resnet18":  # the same modules as rest: layer4's output is rest's output
            torch.testing.assert_close(x3, clf.rest(f_c))


def test_the_encoder_is_a_copy_that_starts_from_the_backbone_weights_and_can_follow_rest():
    torch.manual_seed(0)
    model = ORNet("resnet18", K, evaluator=None, generator_width=4, generator_encoder="backbone")
    enc, rest = model.generator.encoder, model.rest_head.rest
    assert torch.equal(enc.stages[2][-1].conv2.weight, rest.layer4[1].conv2.weight)
    assert enc.stages[2][-1].conv2.weight is not rest.layer4[1].conv2.weight  # a copy, not shared
    with torch.no_grad():
        for p in rest.parameters():
            p.uniform_(-1, 1)
    assert not torch.equal(enc.stages[2][-1].conv2.weight, rest.layer4[1].conv2.weight)
    model.sync_encoder()
    for (path, module) in zip(sum(enc.paths, []), [m for s in enc.stages for m in s]):
        for k, v in module.state_dict().items():
            assert torch.equal(v, rest.get_submodule(path).state_dict()[k]), (path, k)


def test_maps_stay_at_a_quarter_of_the_input_and_the_decoder_takes_the_encoder_channels():
    model = ORNet("efficientnet_lite0", K, evaluator=None, generator_width=4, generator_encoder="backbone").eval()
    g = model.generator
    assert not hasattr(g, "down1")
    assert g.up1.block[0].in_channels == 320 + 112 and g.up2.block[0].in_channels == 16 + 40
    with torch.no_grad():
        out = model.maps(torch.randn(1, 3, 64, 48))
    assert out.p_a.shape == (1, 1, 16, 12) and out.f_a.shape == (1, K, 16, 12)
    assert set(map(id, g.encoder_parameters())) == set(map(id, g.encoder.parameters()))
    assert not set(map(id, g.refine_parameters())) & set(map(id, g.encoder_parameters()))


def test_a_body_without_the_three_strides_is_refused():
    rest = nn.Sequential(nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU())  # stops at 1/8
    with pytest.raises(OrnetError, match="toy: no feature stage at 1/16 .*strides seen: \\[8\\]"):
        backbone_encoder(rest, 8, name="toy")
    with pytest.raises(OrnetError, match="feature stage 'blocks.9' is not part of its body"):
        backbone_encoder(rest, 8, end="blocks.9", name="toy")


def test_flatten_descends_into_sequentials_only():
    inner = nn.Sequential(nn.Conv2d(1, 1, 1), nn.ReLU())
    block = nn.Conv2d(1, 1, 1)
    from collections import OrderedDict

    got = flatten(nn.Sequential(OrderedDict(a=inner, b=block)))
    assert [p for p, _ in got] == ["a.0", "a.1", "b"] and got[2][1] is block


def test_bn_momentum_reaches_the_unet_blocks_only():
    g = ActivationMapGenerator(8, K, width=4, bn_momentum=0.1)
    bns = [m for m in g.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(m.momentum == 0.1 for m in bns)
    assert all(m.momentum == 0.01 for m in ActivationMapGenerator(8, K, width=4).modules()
               if isinstance(m, nn.BatchNorm2d) and m is not g.out_bn and m.num_features != 1)
    with pytest.raises(OrnetError, match="momentum must be in"):
        ActivationMapGenerator(8, K, width=4, bn_momentum=0.0)


def test_config_checks_the_new_keys(tmp_path):
    from ornet.config.parse import make_parser, parse, to_run_config

    def load(*argv):
        p = make_parser("ornet train", "test")
        return to_run_config(p, parse(p, ["--config", "demo", "--data.root", str(tmp_path), *argv]))

    with pytest.raises(ConfigError, match="generator_bn_momentum must be in"):
        load("--model.generator_bn_momentum", "1.5")
    with pytest.raises(ConfigError, match="generator_encoder"):
        load("--model.generator_encoder", "vgg")


def _cfg():
    from ornet.config.schema import RunConfig

    cfg = RunConfig()
    cfg.model.backbone, cfg.model.evaluator, cfg.model.generator_width = "resnet18", "resnet18", 4
    cfg.model.generator_encoder, cfg.model.backbone_weights = "backbone", "evaluator"
    cfg.coarse.lr, cfg.coarse.head_lr_mult = 1e-3, 10.0
    return cfg


def test_stage1_trains_the_encoder_at_the_backbone_lr_and_starts_it_from_the_evaluator():
    pytest.importorskip("lightning")
    from ornet.models.evaluator import build_evaluator
    from ornet.training.pipeline import build_task

    torch.manual_seed(0)
    task = build_task(_cfg(), "coarse", K, [str(i) for i in range(K)])
    (body, m1), (new, m10) = task.param_groups()
    enc = {id(p) for p in task.model.generator.encoder.parameters()}
    assert (m1, m10) == (1.0, 10.0)
    assert enc <= {id(p) for p in body} and not enc & {id(p) for p in new}
    assert {id(p) for p in task.model.generator.up3.parameters()} <= {id(p) for p in new}
    evaluator = build_evaluator("resnet18", K)
    with torch.no_grad():
        for p in evaluator.parameters():
            p.uniform_(-3, 3)
    task.init_backbone_from(evaluator.state_dict())
    assert torch.equal(task.model.generator.encoder.stages[2][-1].conv2.weight, evaluator.rest.layer4[1].conv2.weight)


ENCODER = lambda model: model.generator_encoder  # noqa: E731
STEM_SKIP = lambda model: model.generator.stem_skip  # noqa: E731  (tests/test_generator_stem_skip.py)


@pytest.mark.parametrize("key, value, older, read", [
    ("generator_encoder", "backbone", "release", ENCODER),
    ("generator_stem_skip", "none", "concat", STEM_SKIP),
    ("generator_stem_skip", "gated", "concat", STEM_SKIP),
    ("generator_objectness", 0.5, 0.0, lambda model: model.generator.objectness),  # tests/test_objectness_gate.py
])
def test_model_json_records_the_generator_keys_and_the_model_loads_back(tmp_path, key, value, older, read):
    from ornet.runs.export import build_model, export_model, load_exported, model_meta

    torch.manual_seed(0)
    cfg = _cfg()
    cfg.model.generator_encoder = "release"
    setattr(cfg.model, key, value)
    model = ORNet("resnet18", K, evaluator="resnet18", generator_width=4, **{key: value}).eval()
    meta = model_meta(cfg, "ornet", [str(i) for i in range(K)], 0.5)
    assert meta["architecture"][key] == value
    export_model(tmp_path, model, meta)
    loaded, _ = load_exported(tmp_path)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded.maps(x).p_a, model.maps(x).p_a)
    del meta["architecture"][key]  # files written before the key: the release's network
    assert read(loaded) == value and read(build_model(meta)) == older
