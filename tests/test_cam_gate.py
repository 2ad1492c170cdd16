"""The class gate (docs/method.md, "The class gate"): ORNet's map times its evaluator's CAM of the
class to a power, the exponent chosen on val with the threshold."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ornet.config.schema import RunConfig
from ornet.errors import ConfigError, OrnetError
from ornet.evaluation.class_gate import pick_gate
from ornet.methods import check_config, check_networks
from ornet.models.backbones import build_classifier
from ornet.models.ornet_network import ORNet
from ornet.models.split import ClassifierHead, gap_linear


def test_gap_linear_finds_the_linear_of_gap_heads_only():
    fc = nn.Linear(8, 3)
    assert gap_linear(ClassifierHead(nn.AdaptiveAvgPool2d(1), fc), 8) is fc
    assert gap_linear(ClassifierHead(nn.AdaptiveMaxPool2d(1), nn.Linear(8, 3)), 8) is None  # max, not mean
    assert gap_linear(ClassifierHead(nn.AdaptiveAvgPool2d(1), nn.Linear(8, 3)), 16) is None  # other channels
    two = ClassifierHead(nn.AdaptiveAvgPool2d(1), nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3)))
    assert gap_linear(two, 8) is None
    for name, ok in (("resnet18", True), ("efficientnet_lite0", True), ("vgg16", False),
                     ("mobilenet_v3_small", False)):
        net = build_classifier(name, 4)
        assert (gap_linear(net.head, net.feature_channels) is not None) is ok, name
        assert net.head.training  # the probe leaves the head's mode as it was


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return ORNet("resnet18", 3, evaluator="resnet18", generator_width=8).eval()


def _minmax(x):
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    hi = x.amax(dim=(1, 2, 3), keepdim=True)
    return (x - lo) / (hi - lo)


def test_the_gated_map_is_the_normalised_map_times_the_class_cam_to_the_power(net):
    images = torch.randn(2, 3, 64, 64)
    labels = torch.tensor([2, 0])
    keys = list(net.state_dict())
    with torch.no_grad():
        plain, logits = net.predict(images, labels)
        features = net.evaluator.features(net.to_evaluator(images))
        fc = net.evaluator.head.classifier
        # the CAM's definition: the class logit is the CAM's spatial mean plus the bias
        assert torch.allclose(fc(features.mean(dim=(2, 3))), logits, atol=1e-5)
        cam = (fc.weight[labels][:, :, None, None] * features).sum(dim=1, keepdim=True)  # 2 x 1 x 2 x 2
        cam = F.interpolate(cam, size=plain.shape[-2:], mode="bilinear", align_corners=False)
        try:
            net.set_cam_gate(0.5)
            gated, gated_logits = net.predict(images, labels)
            predicted, _ = net.predict(images)  # no labels: the predicted class's CAM
        finally:
            net.set_cam_gate(0.0)
        again, _ = net.predict(images, labels)
    assert torch.equal(again, plain) and torch.equal(gated_logits, logits)
    assert torch.allclose(gated, _minmax(plain) * _minmax(cam) ** 0.5, atol=1e-5)
    assert gated.shape == plain.shape == (2, 1, 16, 16) and float(gated.min()) >= 0 and float(gated.max()) <= 1
    pred = logits.argmax(dim=1)
    cam_pred = F.interpolate((fc.weight[pred][:, :, None, None] * features).sum(dim=1, keepdim=True),
                             size=plain.shape[-2:], mode="bilinear", align_corners=False)
    assert torch.allclose(predicted, _minmax(plain) * _minmax(cam_pred) ** 0.5, atol=1e-5)
    net.set_cam_gate(0.5)
    assert list(net.state_dict()) == keys and net.cam_gate == 0.5  # the gate adds no weights
    net.set_cam_gate(0.0)
    with pytest.raises(AttributeError):
        net.cam_gate = 0.5  # read-only: set_cam_gate checks the exponent and the head


def test_set_cam_gate_refuses_bad_exponents_and_heads_without_a_cam(net):
    for bad in (-0.5, math.nan, math.inf):
        with pytest.raises(OrnetError, match="exponent must be a finite number >= 0"):
            net.set_cam_gate(bad)
    vgg = ORNet("resnet18", 3, evaluator="vgg16", generator_width=8)
    vgg.set_cam_gate(0)  # no gate: any evaluator
    with pytest.raises(OrnetError, match="GAP \\+ Linear.*'vgg16'"):
        vgg.set_cam_gate(0.5)
    with pytest.raises(OrnetError, match="GAP \\+ Linear.*None"):
        ORNet("resnet18", 3, evaluator=None, generator_width=8).set_cam_gate(1.0)


def test_pick_gate_takes_a_gate_only_past_the_margin():
    assert pick_gate({0.0: 70.0, 0.25: 74.0, 0.5: 73.0}, 3.0) == 0.25
    assert pick_gate({0.0: 70.0, 0.25: 74.0, 0.5: 73.0}, 4.0) == 0.0  # 4 points: not more than 4
    assert pick_gate({0.0: 70.0, 0.25: 76.0, 0.5: 76.0}, 3.0) == 0.25  # ties: the milder gate
    assert pick_gate({0.0: 70.0, 0.25: 74.0, 0.5: 78.0}, 3.0) == 0.5
    assert pick_gate({0.0: 80.0, 0.25: 60.0}, 0.0) == 0.0
    assert pick_gate({0.0: 80.0}, 0.0) == 0.0


def test_config_checks_name_the_bad_setting():
    cfg = RunConfig()
    cfg.eval.cam_gate = [0.5, -1.0]
    with pytest.raises(ConfigError, match=r"eval.cam_gate must list exponents >= 0, got \[0.5, -1.0\]"):
        check_config(cfg)
    cfg.eval.cam_gate, cfg.eval.cam_gate_margin = [0.5], -2.0
    with pytest.raises(ConfigError, match="eval.cam_gate_margin"):
        check_config(cfg)
    cfg.eval.cam_gate_margin = 3.0
    cfg.eval.protocol = "release"
    with pytest.raises(ConfigError, match="not part of the release's protocol"):
        check_config(cfg)
    cfg.stages = ["cam"]  # the ORNet preset's gate is unused by a CAM run, as its method section is
    check_config(cfg)
    check_networks(cfg)
    cfg.stages = ["evaluator", "coarse", "refine"]
    cfg.eval.protocol = "wsolevaluation"
    check_config(cfg)
    cfg.model.evaluator = "vgg16"  # the paper's evaluator: AdaptiveAvgPool2d(7) + 3 FC layers
    with pytest.raises(ConfigError, match="model.evaluator 'vgg16' has another head"):
        check_networks(cfg)
    cfg.model.evaluator = "resnet18"
    check_networks(cfg)


def test_a_run_chooses_its_gate_on_val_exports_it_and_evaluate_keeps_or_rechooses_it(api_run, tmp_path):
    import shutil

    import ornet

    saved = json.loads((api_run / "metrics.json").read_text())
    scores = {float(a): v for a, v in saved["cam_gate_scores"].items()}
    assert sorted(scores) == [0.0, 0.25, 0.5]  # the demo preset's candidates, and no gate
    assert saved["cam_gate_split"] == "val" and saved["cam_gate"] == pick_gate(scores, 3.0)
    meta = json.loads((api_run / "model.json").read_text())
    assert meta["localization"]["cam_gate"] == saved["cam_gate"]
    loc = ornet.load_model(api_run, device="cpu")
    assert loc.model.cam_gate == saved["cam_gate"]
    assert ornet.load_model(api_run / "checkpoints" / "refine.ckpt", device="cpu").model.cam_gate == saved["cam_gate"]
    # the stored threshold: the stored gate too, nothing re-chosen
    stored = ornet.evaluate(api_run, threshold_split="model", quiet=True).metrics
    assert stored["cam_gate"] == saved["cam_gate"] and stored["cam_gate_split"] == "model"
    assert "cam_gate_scores" not in stored
    # other candidates: chosen again on val by the same rule
    other = ornet.evaluate(api_run, eval={"cam_gate": [2.0], "cam_gate_margin": 0.0}, quiet=True).metrics
    again = {float(a): v for a, v in other["cam_gate_scores"].items()}
    assert sorted(again) == [0.0, 2.0] and again[0.0] == scores[0.0]
    assert other["cam_gate"] == pick_gate(again, 0.0)
    # a stored gate of 0.5 (model.json; metrics.json beside a stage checkpoint) is the model's gate
    copy = tmp_path / "copy"
    (copy / "checkpoints").mkdir(parents=True)
    for name in ("model.json", "model.safetensors", "checkpoints/refine.ckpt"):
        shutil.copyfile(api_run / name, copy / name)
    meta["localization"]["cam_gate"] = 0.5
    (copy / "model.json").write_text(json.dumps(meta))
    (copy / "metrics.json").write_text(json.dumps({**saved, "cam_gate": 0.5}))
    paths = sorted((api_run.parent / "data" / "images").rglob("test_*.jpg"))[:3]
    assert len(paths) == 3
    plain = ornet.load_model(api_run, device="cpu")
    plain.model.set_cam_gate(0.0)
    for source in (copy, copy / "checkpoints" / "refine.ckpt"):
        gated = ornet.load_model(source, device="cpu")
        assert gated.model.cam_gate == 0.5
        a, b = plain.predict(paths), gated.predict(paths)
        assert torch.equal(a.logits, b.logits) and not torch.allclose(a.maps, b.maps)
        plain.model.set_cam_gate(0.5)
        assert torch.equal(plain.predict(paths).maps, b.maps)  # the same gate, set by hand
        plain.model.set_cam_gate(0.0)
    # a model.json whose gate is not a number is refused, naming the file
    meta["localization"]["cam_gate"] = "strong"
    (copy / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ornet.OrnetError, match=r"model.json: localization.cam_gate must be a number >= 0.*'strong'"):
        ornet.load_model(copy, device="cpu")
    # a CAM model has no map to gate: the candidates are unused and the metrics say nothing of a gate
    from ornet.runs.export import build_model

    cam_meta = {**meta, "method": "cam"}
    loc.model = build_model(cam_meta).eval()  # untrained: only the keys matter
    assert not {k for k in ornet.evaluate(loc, eval={"cam_gate": [0.5]}, quiet=True).metrics if "gate" in k}


def test_the_summary_line_says_which_gate():
    from ornet.evaluation.class_gate import gate_note

    assert gate_note({}) == ""  # a CAM run
    assert gate_note({"cam_gate": 0.0, "cam_gate_split": "model"}) == ""
    assert gate_note({"cam_gate": 0.0, "cam_gate_scores": {"0.0": 70.0, "0.5": 71.0}}) == "; no class gate chosen"
    assert gate_note({"cam_gate": 0.5, "cam_gate_split": "val", "cam_gate_scores": {"0.0": 70.0, "0.5": 75.0}}) \
        == "; class gate 0.5 chosen on val"
    assert gate_note({"cam_gate": 0.25, "cam_gate_split": "model"}) == "; class gate 0.25"
