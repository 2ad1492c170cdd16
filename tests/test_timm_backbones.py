"""timm CNNs as ORNet backbones: the split equals timm's own forward, names, refusals, CAM stride."""

from __future__ import annotations

import pytest
import torch

from ornet.errors import OrnetError
from ornet.models import BACKBONES, build_cam_classifier, build_classifier, load_weights
from ornet.models.backbones import check_network
from ornet.models.names import is_timm, timm_name

K = 3
TIMM_LISTED = [n for n in BACKBONES.names() if is_timm(n)]


def _timm_model_with_our_weights(model) -> torch.nn.Module:
    """timm's own network of `model` (a fresh one), loaded with `model`'s weights (by source_keys)."""
    import timm

    net = timm.create_model(timm_name(model.arch), pretrained=False, num_classes=K)
    own = model.state_dict()
    state = {src: own[key] for key, src in model.source_keys.items()}
    missing, unexpected = net.load_state_dict(state, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
    return net.eval()


def test_the_registry_lists_timm_networks_and_the_lite0_alias():
    assert "efficientnet_lite0" in BACKBONES.names()
    assert {"timm/tf_efficientnet_lite0", "timm/resnet18", "timm/mobilenetv3_large_100"} <= set(TIMM_LISTED)
    assert "timm/mobilenetv3_small_050" in BACKBONES  # any timm CNN, by prefix
    assert "timm/" not in BACKBONES and "mobilenetv3_small_050" not in BACKBONES


@pytest.mark.parametrize("name", TIMM_LISTED)
def test_split_equals_timms_own_forward(name):
    torch.manual_seed(0)
    model = build_classifier(name, K).eval()
    with torch.no_grad():  # perturb batch-norm statistics so that eval mode is not a near-identity
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    net = _timm_model_with_our_weights(model)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        f_c = model.stem(x)
        assert f_c.shape == (2, model.stem_channels, 16, 16)
        torch.testing.assert_close(model.rest(f_c), net.forward_features(x), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(model.head(model.rest(f_c)), net(x), rtol=1e-4, atol=1e-5)
        assert model(x).shape == (2, K)


def test_an_unlisted_timm_cnn_works_by_prefix():
    model = build_classifier("timm/mobilenetv3_small_050", K).eval()
    net = _timm_model_with_our_weights(model)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert model.stem(x).shape[-2:] == (16, 16)
        torch.testing.assert_close(model(x), net(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name, match", [
    ("timm/vit_tiny_patch16_224", r"no stride-4 feature stage .*reductions: 16"),
    ("timm/resnet5000", r"unknown timm model 'timm/resnet5000'.*did you mean timm/resnet50"),
    ("resnet5000", r"unknown network 'resnet5000'; known: .*efficientnet_lite0.*timm/<timm model name>"),
])
def test_networks_that_cannot_be_backbones_are_refused_in_one_line(name, match):
    with pytest.raises(OrnetError, match=match) as err:
        check_network(name, "model.backbone")
    assert "\n" not in str(err.value) and str(err.value).startswith("model.backbone: ")


def test_timm_cam_network_keeps_a_sixteenth_map_where_timm_can_dilate():
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        lite = build_cam_classifier("efficientnet_lite0", K).eval()
        assert lite.features(x).shape == (1, 1280, 4, 4)  # output_stride=16: 64 / 16
        assert build_cam_classifier("efficientnet_lite0", K, stride16=False).eval().features(x).shape[-2:] == (2, 2)
        mbv3 = build_cam_classifier("timm/mobilenetv3_large_100", K).eval()  # no output_stride in timm
        assert mbv3.features(x).shape[-2:] == (2, 2)
        assert lite.stem(x).shape == (1, lite.stem_channels, 16, 16)
        cams = lite.cam(lite.features(x), torch.tensor([1]))
        manual = torch.einsum("c,chw->hw", lite.fc.weight[1], lite.features(x)[0])
        torch.testing.assert_close(cams[0], manual, rtol=1e-4, atol=1e-5)


def test_a_timm_layout_weights_file_loads_and_the_1000_class_head_is_skipped(tmp_path):
    import timm

    torch.manual_seed(1)
    net = timm.create_model("resnet18", pretrained=False, num_classes=1000).eval()
    path = tmp_path / "resnet18_timm.pth"
    torch.save(net.state_dict(), path)
    model = build_classifier("timm/resnet18", K, weights=str(path)).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.rest(model.stem(x)), net.forward_features(x))
    cam = build_cam_classifier("timm/resnet18", K)
    report = load_weights(cam, str(path), arch=cam.arch)  # the CAM net drops timm's fc: ignored, not an error
    assert "fc.weight" in report.ignored and "stem.conv1.weight" in report.loaded


def test_a_torchvision_weights_name_is_refused_for_a_timm_network():
    with pytest.raises(OrnetError, match=r"'IMAGENET1K_V1' is not a weights name for the timm network"):
        build_classifier("timm/resnet18", K, weights="IMAGENET1K_V1")


def test_the_cam_networks_new_fc_never_inherits_a_dropped_timm_name():
    """The CAM network drops timm's head and adds GAP + a new fc: no module that did not come
    from timm may carry a timm name (a freed module's id, reused by the new fc, once gave it
    `fc.weight`, so 1000-class weights were treated as a head to skip instead of ignored)."""
    for _ in range(12):  # id reuse depends on the allocator: several builds make it near certain
        cam = build_cam_classifier("timm/resnet18", K)
        assert "head.classifier.weight" not in cam.source_keys
        assert not any(src.startswith(cam.ignored_source_prefixes) for src in cam.source_keys.values())


@pytest.mark.parametrize("name", ["efficientnet_lite0", "timm/mobilenetv3_large_100", "timm/resnet18", "resnet18"])
def test_the_new_k_class_layer_starts_small_in_every_family(name):
    """Every family's new K-class classifier is N(0, 0.01) with zero bias (`init_new_linear`): timm's
    EfficientNet init U(+-1/sqrt(K)) would give logits spread over several units for small K."""
    torch.manual_seed(0)
    k = 28
    model = build_classifier(name, k)
    fc = [m for m in model.head.modules() if isinstance(m, torch.nn.Linear) and m.out_features == k][-1]
    assert 0.008 < float(fc.weight.detach().std()) < 0.012
    assert float(fc.bias.abs().max()) == 0.0
    if is_timm(name) and "lite0" in name:  # timm's own init of that layer is far wider
        import timm

        own = timm.create_model(timm_name(name), pretrained=False, num_classes=k).get_classifier()
        assert float(own.weight.std()) > 0.05
