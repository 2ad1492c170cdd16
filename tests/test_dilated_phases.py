"""`trainer.dilated_phases` (models/dilated_phases.py): dilated depthwise convolutions run their backward
on the input's dilation phases; forward and input gradient bit for bit PyTorch's, the weight gradient
equal up to float rounding; only eligible layers swap, keys and weights stay."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from ornet.models.dilated_phases import (
    PhaseDepthwiseConv2d,
    eligible,
    from_phases,
    to_phases,
    use_dilated_phases,
)


def test_phases_are_the_strided_slices_and_come_back():
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).view(2, 3, 4, 6)
    p = to_phases(x, 2)
    assert p.shape == (8, 3, 2, 3) and p.is_contiguous(memory_format=torch.channels_last)
    for i in range(2):
        for j in range(2):
            for b in range(2):
                assert torch.equal(p[(i * 2 + j) * 2 + b], x[b, :, i::2, j::2])
    assert torch.equal(from_phases(p, 2), x)
    y = torch.randn(1, 5, 9, 6)
    assert torch.equal(from_phases(to_phases(y, 3), 3), y)


def _pair(channels, k, d, bias, channels_last):
    torch.manual_seed(0)
    ref = nn.Conv2d(channels, channels, k, padding=d * (k - 1) // 2, dilation=d, groups=channels, bias=bias)
    new = copy.deepcopy(ref)
    assert use_dilated_phases(new) == 1 and type(new) is PhaseDepthwiseConv2d
    if channels_last:
        ref.to(memory_format=torch.channels_last)
        new.to(memory_format=torch.channels_last)
    return ref, new


@pytest.mark.parametrize("h, w, k, d, bias, channels_last", [
    (12, 12, 5, 2, False, True),   # Lite0's last stage at 192 px (output_stride 16)
    (13, 11, 3, 2, True, True),    # sides that are not multiples of the dilation
    (9, 14, 3, 3, True, False),
    (7, 7, 5, 2, False, False),
])
def test_forward_and_input_gradient_are_pytorchs_and_the_weight_gradient_its_up_to_rounding(
        h, w, k, d, bias, channels_last):
    ref, new = _pair(16, k, d, bias, channels_last)
    x = torch.randn(3, 16, h, w)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    x0, x1 = x.clone().requires_grad_(), x.clone().requires_grad_()
    y0, y1 = ref(x0), new(x1)
    grad = torch.randn_like(y0)
    y0.backward(grad)
    y1.backward(grad)
    assert torch.equal(y0, y1)
    torch.testing.assert_close(x1.grad, x0.grad, rtol=0, atol=1e-6)  # bit for bit in channels-last
    if channels_last:
        assert torch.equal(x1.grad, x0.grad)
    # the weight gradient against float64 (PyTorch's own kernel, exact enough to judge both)
    ref64 = copy.deepcopy(ref).double()
    ref64.zero_grad()
    ref64(x.double()).backward(grad.double())
    torch.testing.assert_close(new.weight.grad.double(), ref64.weight.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ref.weight.grad.double(), ref64.weight.grad, rtol=1e-5, atol=1e-5)
    if bias:
        torch.testing.assert_close(new.bias.grad, ref.bias.grad, rtol=1e-6, atol=1e-5)


def test_only_the_input_gradient_or_only_the_weight_gradient():
    ref, new = _pair(8, 5, 2, False, True)
    x = torch.randn(2, 8, 10, 10).to(memory_format=torch.channels_last)
    new.weight.requires_grad_(False)
    xg = x.clone().requires_grad_()
    new(xg).sum().backward()
    assert new.weight.grad is None and xg.grad is not None
    new.weight.requires_grad_(True)
    new(x).sum().backward()  # the input needs no gradient: the weight's alone
    ref(x).sum().backward()
    torch.testing.assert_close(new.weight.grad, ref.weight.grad, rtol=1e-5, atol=1e-5)


def test_it_runs_pytorchs_own_path_without_gradients_and_under_autocast():
    ref, new = _pair(8, 3, 2, True, False)
    x = torch.randn(2, 8, 10, 10)
    with torch.no_grad():
        assert torch.equal(new(x), ref(x))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = new(x.requires_grad_())
    y.float().sum().backward()  # PyTorch's kernels: no dtype clash in the backward
    assert x.grad is not None and y.dtype == torch.bfloat16


@pytest.mark.parametrize("kwargs", [
    dict(stride=2, padding=4, dilation=2),           # strided
    dict(padding=2, dilation=1),                     # not dilated
    dict(padding=3, dilation=2),                     # not "same" padding
    dict(padding=4, dilation=2, padding_mode="reflect"),
    dict(padding=(4, 2), dilation=(2, 1)),           # dilated along one side only
])
def test_layers_outside_the_measured_case_keep_pytorchs_class(kwargs):
    conv = nn.Conv2d(8, 8, 5, groups=8, **kwargs)
    assert not eligible(conv) and use_dilated_phases(conv) == 0 and type(conv) is nn.Conv2d
    dense = nn.Conv2d(8, 8, 5, padding=4, dilation=2)  # not depthwise: no gain measured
    assert not eligible(dense) and use_dilated_phases(dense) == 0
    assert eligible(nn.Conv2d(8, 8, 5, padding=4, dilation=2, groups=8))


def test_lite0s_cam_network_swaps_its_four_dilated_layers_and_keeps_its_keys():
    from ornet.models.backbones import build_cam_classifier, build_classifier

    net = build_cam_classifier("efficientnet_lite0", 5, "none", stride16=True)
    keys = list(net.state_dict())
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert use_dilated_phases(net) == 4
    swapped = [n for n, m in net.named_modules() if type(m) is PhaseDepthwiseConv2d]
    assert len(swapped) == 4 and all(n.endswith("conv_dw") for n in swapped)
    assert list(net.state_dict()) == keys
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert use_dilated_phases(net) == 0  # already swapped
    assert use_dilated_phases(net, enabled=False) == 4
    assert not any(type(m) is PhaseDepthwiseConv2d for m in net.modules())
    assert use_dilated_phases(build_classifier("efficientnet_lite0", 5, "none")) == 0  # 1/32: none dilated


def test_a_cam_network_with_the_swap_gets_pytorchs_gradients_but_at_its_dilated_weights():
    from ornet.models.backbones import build_cam_classifier

    torch.manual_seed(0)
    ref = build_cam_classifier("efficientnet_lite0", 4, "none", stride16=True).to(memory_format=torch.channels_last)
    new = copy.deepcopy(ref)
    use_dilated_phases(new)
    dilated = {n + ".weight" for n, m in new.named_modules() if type(m) is PhaseDepthwiseConv2d}
    x, labels = torch.randn(2, 3, 64, 64), torch.tensor([1, 3])
    losses = []
    for net in (ref, new):
        loss = nn.functional.cross_entropy(net(x), labels)
        loss.backward()
        losses.append(loss)
    assert torch.equal(losses[0], losses[1])
    grads = dict(ref.named_parameters())
    # the swap took effect: another order of the sum over positions rounds differently somewhere
    assert any(not torch.equal(p.grad, grads[name].grad) for name, p in new.named_parameters() if name in dilated)
    for name, p in new.named_parameters():
        if name in dilated:
            torch.testing.assert_close(p.grad, grads[name].grad, rtol=1e-4, atol=1e-7, msg=name)
        else:  # the input gradient through them is bit for bit, so every other layer's gradient too
            assert torch.equal(p.grad, grads[name].grad), name
    assert len(dilated) == 4


def test_training_swaps_the_layers_as_the_key_says(monkeypatch, tmp_path):
    import ornet.training.pipeline as pipeline
    from ornet.cli import main

    calls = []
    real = pipeline.use_dilated_phases

    def spy(module, enabled=True):
        calls.append((enabled, real(module, enabled)))
        return calls[-1][1]

    monkeypatch.setattr(pipeline, "use_dilated_phases", spy)
    data = tmp_path / "synth"
    assert main(["synth", str(data), "--classes", "2", "--train", "4", "--test", "2", "--size", "64",
                 "--quiet", "--workers", "1"]) == 0
    common = ["train", "--config", "demo_cam", "--data.root", str(data), "--model.backbone_weights", "none",
              "--data.resize", "64", "--data.crop", "64", "--cam.epochs", "1", "--trainer.limit_train_batches", "1",
              "--data.batch_size", "2", "--data.val_per_class", "1", "--quiet"]
    assert main([*common, "--out", str(tmp_path / "on")]) == 0
    assert main([*common, "--out", str(tmp_path / "off"), "--trainer.dilated_phases", "false"]) == 0
    assert calls == [(True, 4), (False, 0)]


def test_batch_norms_fold_into_the_swapped_layers_as_into_pytorchs():
    from ornet.models.backbones import build_cam_classifier
    from ornet.models.fold_bn import conv_bn_pairs, folded_copy

    net = build_cam_classifier("efficientnet_lite0", 4, "none", stride16=True).eval()
    x = torch.randn(1, 3, 64, 64)
    pairs = conv_bn_pairs(net, lambda m: m(x))
    use_dilated_phases(net)
    assert conv_bn_pairs(net, lambda m: m(x)) == pairs
    swapped = {n for n, m in net.named_modules() if type(m) is PhaseDepthwiseConv2d}
    assert swapped == {"rest.blocks.5.1.conv_dw", "rest.blocks.5.2.conv_dw", "rest.blocks.5.3.conv_dw",
                       "rest.blocks.6.0.conv_dw"}
    assert swapped <= {conv for conv, _ in pairs}  # each with the batch norm after it
    folded = folded_copy(net, lambda m: m(x))
    assert folded is not None
    with torch.no_grad():
        torch.testing.assert_close(folded(x), net(x), rtol=1e-4, atol=1e-4)


def test_the_cost_study_times_each_dilated_layer_and_a_whole_step(capsys):
    from conftest import load_study

    study = load_study("dilated_phases_cost")
    assert study.main(["--size", "64", "--batch", "2", "--repeats", "1", "--threads", "1"]) == 0
    rows = [line.split("|")[1:-1] for line in capsys.readouterr().out.splitlines() if line.startswith("| ")][2:]
    assert [r[0].split(" (")[0].strip() for r in rows[:4]] == [
        "rest.blocks.5.1.conv_dw", "rest.blocks.5.2.conv_dw", "rest.blocks.5.3.conv_dw", "rest.blocks.6.0.conv_dw"]
    assert rows[0][1].strip() == "2x1152x4x4" and rows[4][0].strip().startswith("one training step, 4 dilated")
    assert all(float(r[2]) > 0 and float(r[3]) > 0 for r in rows)
    assert all(r[6].strip() == "True" and 0 <= float(r[5]) < 1e-4 for r in rows[:4])
    assert float(rows[4][5]) < 1e-3


def test_ornets_networks_have_no_dilated_layer_so_its_numbers_stay_bit_for_bit():
    from ornet.models.evaluator import build_evaluator
    from ornet.models.ornet_network import ORNet

    net = ORNet("efficientnet_lite0", 5, evaluator="efficientnet_lite0", generator_width=16)
    assert use_dilated_phases(net) == 0 and use_dilated_phases(build_evaluator("efficientnet_lite0", 5, "none")) == 0
