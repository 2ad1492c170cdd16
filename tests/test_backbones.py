"""Backbone split, CAM classifier, evaluator and weight loading (tiny inputs, no downloads)."""

from __future__ import annotations

import logging

import pytest
import torch
import torchvision

from ornet.errors import OrnetError
from ornet.models import (
    BACKBONES,
    CAMModel,
    build_cam_classifier,
    build_classifier,
    build_evaluator,
    load_weights,
    minmax_normalize,
)

K = 3


@pytest.mark.parametrize("name", BACKBONES.names())
def test_registry_backbone_split(name):
    torch.manual_seed(0)
    model = build_classifier(name, K).eval()
    for size in (64, 96):
        x = torch.randn(2, 3, size, size)
        with torch.no_grad():
            stem = model.stem(x)
            feats = model.rest(stem)
            logits = model.head(feats)
            assert stem.shape == (2, model.stem_channels, size // 4, size // 4)
            assert feats.shape[:2] == (2, model.feature_channels)
            assert logits.shape == (2, K)
            if size == 64:
                torch.testing.assert_close(model.features(x), feats)
                torch.testing.assert_close(model(x), logits)

    cam_net = build_cam_classifier(name, K).eval()
    x = torch.randn(2, 3, 64, 64)
    labels = torch.tensor([2, 0])
    with torch.no_grad():
        assert cam_net.stem(x).shape == (2, cam_net.stem_channels, 16, 16)
        feats = cam_net.features(x)
        assert feats.shape[1] == cam_net.feature_channels
        cams = cam_net.cam(feats, labels)
        manual = torch.stack([
            sum(cam_net.fc.weight[labels[b], c] * feats[b, c] for c in range(feats.shape[1]))
            for b in range(2)
        ])
        torch.testing.assert_close(cams, manual, rtol=1e-4, atol=1e-4)
        logits = cam_net(x)
        torch.testing.assert_close(logits, cam_net.fc(feats.mean(dim=(2, 3))), rtol=1e-4, atol=1e-5)


def test_cam_feature_resolution_is_one_sixteenth():
    for name in ("resnet18", "vgg16"):
        net = build_cam_classifier(name, K).eval()
        with torch.no_grad():
            assert net.features(torch.randn(1, 3, 64, 64)).shape[-2:] == (4, 4)
    net = build_cam_classifier("resnet18", K, stride16=False).eval()
    with torch.no_grad():
        assert net.features(torch.randn(1, 3, 64, 64)).shape[-2:] == (2, 2)


def test_cam_int_class_and_unknown_backbone():
    net = build_cam_classifier("resnet18", K).eval()
    feats = torch.randn(2, net.feature_channels, 4, 4)
    torch.testing.assert_close(net.cam(feats, 1), net.cam(feats, torch.tensor([1, 1])))
    with pytest.raises(OrnetError, match="known: .*resnet50"):
        build_classifier("resnet5000", K)
    with pytest.raises(OrnetError, match="num_classes"):
        build_classifier("resnet18", 0)


def test_cam_model_predict():
    torch.manual_seed(0)
    model = CAMModel("resnet18", K).eval()
    x = torch.randn(3, 3, 64, 64)
    labels = torch.tensor([0, 1, 2])
    with torch.no_grad():
        maps, logits = model.predict(x, labels)
        feats = model.net.features(x)
        raw = model.net.cam(feats, labels)
        pred_maps, _ = model.predict(x)
        by_pred, _ = model.predict(x, logits.argmax(1))
    assert maps.shape == (3, 1, 4, 4) and logits.shape == (3, K)
    assert torch.equal(logits, model(x))
    flat = maps.flatten(1)
    torch.testing.assert_close(flat.amin(1), torch.zeros(3))
    torch.testing.assert_close(flat.amax(1), torch.ones(3))
    lo = raw.flatten(1).amin(1).view(3, 1, 1)
    hi = raw.flatten(1).amax(1).view(3, 1, 1)
    torch.testing.assert_close(maps[:, 0], (raw - lo) / (hi - lo))
    torch.testing.assert_close(pred_maps, by_pred)


def test_minmax_normalize_flat_and_nan():
    maps = torch.stack([torch.full((1, 2, 2), 3.0), torch.tensor([[[1.0, 2.0], [3.0, 5.0]]]),
                        torch.tensor([[[1.0, float("nan")], [3.0, 5.0]]])])
    out = minmax_normalize(maps)
    assert torch.equal(out[0], torch.zeros(1, 2, 2))
    torch.testing.assert_close(out[1], torch.tensor([[[0.0, 0.25], [0.5, 1.0]]]))
    assert torch.equal(out[2], torch.zeros(1, 2, 2))


def test_evaluator_is_a_plain_classifier():
    ev = build_evaluator("resnet18", K).eval()
    with torch.no_grad():
        assert ev(torch.randn(2, 3, 64, 64)).shape == (2, K)
    with pytest.raises(OrnetError):
        build_evaluator("resnet18")


# ---------------------------------------------------------------- weights

def test_load_weights_round_trip_own_layout(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(1)
    src = build_classifier("resnet18", K)
    state = src.state_dict()
    torch.save(state, tmp_path / "w.pth")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "w.safetensors"))
    for path in ("w.pth", "w.safetensors"):
        dst = build_classifier("resnet18", K, weights=str(tmp_path / path))
        for key, value in dst.state_dict().items():
            assert torch.equal(value, state[key]), key
    # a checkpoint dict with a "state_dict" entry and a prefix
    torch.save({"state_dict": {f"evaluator.{k}": v for k, v in state.items()}, "epoch": 3},
               tmp_path / "ckpt.pt")
    dst = build_classifier("resnet18", K)
    load_weights(dst, str(tmp_path / "ckpt.pt"), "resnet18", prefix="evaluator.")
    assert torch.equal(dst.head.classifier.weight, state["head.classifier.weight"])


def test_load_torchvision_layout_skips_1000_class_head(tmp_path, caplog):
    torch.manual_seed(2)
    tv = torchvision.models.resnet18()
    torch.save(tv.state_dict(), tmp_path / "tv.pth")
    model = build_classifier("resnet18", K)
    head_before = model.head.classifier.weight.clone()
    with caplog.at_level(logging.INFO, logger="ornet.models.state_dicts"):
        report = load_weights(model, str(tmp_path / "tv.pth"), "resnet18")
    assert sorted(report.skipped) == ["head.classifier.bias", "head.classifier.weight"]
    assert "skipped" in caplog.text
    assert torch.equal(model.stem.conv1.weight, tv.conv1.weight)
    assert torch.equal(model.rest.layer4[1].bn2.running_var, tv.layer4[1].bn2.running_var)
    assert torch.equal(model.head.classifier.weight, head_before)
    # with K = 1000 the torchvision head is loaded too: the same network as torchvision's
    model = build_classifier("resnet18", 1000, weights=str(tmp_path / "tv.pth")).eval()
    assert torch.equal(model.head.classifier.weight, tv.fc.weight)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), tv.eval()(x))


def test_load_torchvision_layout_mobilenet_and_cam(tmp_path):
    tv = torchvision.models.mobilenet_v3_small()
    torch.save(tv.state_dict(), tmp_path / "tv.pth")
    model = build_classifier("mobilenet_v3_small", K, weights=str(tmp_path / "tv.pth"))
    assert torch.equal(model.head.classifier[0].weight, tv.classifier[0].weight)  # hidden FC kept
    assert model.head.classifier[3].weight.shape == (K, 1024)
    cam = build_cam_classifier("mobilenet_v3_small", K)
    report = load_weights(cam, str(tmp_path / "tv.pth"), "mobilenet_v3_small")
    assert set(report.ignored) == {f"classifier.{i}.{p}" for i in (0, 3) for p in ("weight", "bias")}
    assert torch.equal(cam.stem[0][0].weight, tv.features[0][0].weight)


def test_load_weights_errors(tmp_path):
    model = build_classifier("resnet18", K)
    bad = tmp_path / "corrupt.pth"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(OrnetError, match="corrupt.pth"):
        load_weights(model, str(bad), "resnet18")
    bad_st = tmp_path / "corrupt.safetensors"
    bad_st.write_bytes(b"\x00\x01nope")
    with pytest.raises(OrnetError, match="corrupt.safetensors"):
        load_weights(model, str(bad_st), "resnet18")
    with pytest.raises(OrnetError, match="no such weights file"):
        load_weights(model, str(tmp_path / "missing.pth"), "resnet18")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(OrnetError, match="not a state dict"):
        load_weights(model, str(tmp_path / "list.pth"), "resnet18")
    with pytest.raises(OrnetError, match="unknown weights 'IMAGENET9K'.*IMAGENET1K_V1"):
        load_weights(model, "IMAGENET9K", "resnet18")

    state = model.state_dict()
    wrong = dict(state)
    wrong["extra.weight"] = torch.zeros(1)
    del wrong["stem.conv1.weight"]
    torch.save(wrong, tmp_path / "wrong.pth")
    with pytest.raises(OrnetError, match=r"wrong.pth.*stem\.conv1\.weight.*extra\.weight"):
        load_weights(model, str(tmp_path / "wrong.pth"), "resnet18")
    report = load_weights(model, str(tmp_path / "wrong.pth"), "resnet18", strict_backbone=False)
    assert report.unexpected == ["extra.weight"] and "stem.conv1.weight" in report.missing

    shape = dict(state)
    shape["stem.conv1.weight"] = torch.zeros(64, 3, 3, 3)
    torch.save(shape, tmp_path / "shape.pth")
    with pytest.raises(OrnetError, match="shapes do not fit.*stem.conv1.weight"):
        load_weights(model, str(tmp_path / "shape.pth"), "resnet18", strict_backbone=False)
    assert load_weights(model, "none", "resnet18").loaded == []
