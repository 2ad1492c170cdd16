"""`models/fold_bn.py` (`trainer.fold_frozen_bn`, issue 28): batch norms of networks that do not train
folded into the convolution before them, in a copy that gives the same outputs and input gradients."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from timm.layers import BatchNormAct2d
from torch import nn

from ornet.models.fold_bn import FoldedCache, conv_bn_pairs, folded_copy


def _randomize(net: nn.Module) -> nn.Module:
    """Batch-norm statistics and affine terms far from identity, so a wrong fold shows."""
    g = torch.Generator().manual_seed(0)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g))
            m.running_var.copy_(torch.rand(m.num_features, generator=g) * 2 + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g))
    return net.eval()


class Block(nn.Module):
    """bn declared before conv (the fold follows the data, not the declaration order), a timm
    BatchNormAct2d after a bias-free conv, and a plain conv without a batch norm."""

    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm2d(4)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 6, 1, bias=False)
        self.bnact = BatchNormAct2d(6, act_layer=nn.ReLU6)
        self.last = nn.Conv2d(6, 2, 1)

    def forward(self, x):
        return self.last(self.bnact(self.conv2(self.bn(self.conv(x)))))


class Reused(nn.Module):
    """The conv's output feeds the batch norm and a residual sum: folding would change the sum."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.bn = nn.BatchNorm2d(3)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y


def test_the_fold_is_the_batch_norms_affine_map_in_the_conv():
    torch.manual_seed(0)
    net = _randomize(Block())
    x = torch.randn(2, 3, 8, 8)
    assert conv_bn_pairs(net, lambda m: m(x)) == [("conv", "bn"), ("conv2", "bnact")]
    before = {k: v.clone() for k, v in net.state_dict().items()}
    copy = folded_copy(net, lambda m: m(x))
    # hand-computed: W' = W * w / sqrt(var + eps), b' = (b - mean) * w / sqrt(var + eps) + beta
    s = net.bn.weight / torch.sqrt(net.bn.running_var + net.bn.eps)
    torch.testing.assert_close(copy.conv.weight, net.conv.weight * s.view(-1, 1, 1, 1))
    torch.testing.assert_close(copy.conv.bias, (net.conv.bias - net.bn.running_mean) * s + net.bn.bias)
    s2 = net.bnact.weight / torch.sqrt(net.bnact.running_var + net.bnact.eps)
    torch.testing.assert_close(copy.conv2.bias, -net.bnact.running_mean * s2 + net.bnact.bias)
    assert isinstance(copy.bn, nn.Identity) and isinstance(copy.bnact[1], nn.ReLU6)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in copy.modules())
    with torch.no_grad():
        torch.testing.assert_close(copy(x), net(x), rtol=1e-5, atol=1e-5)
    # the original is untouched (its state dict, hence its checkpoints)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert isinstance(net.bn, nn.BatchNorm2d)


def test_input_gradients_through_the_copy_equal_the_originals():
    torch.manual_seed(1)
    net = _randomize(Block()).requires_grad_(False)
    x = torch.randn(2, 3, 8, 8)
    copy = folded_copy(net, lambda m: m(x))
    grads = []
    for m in (net, copy):
        xi = x.clone().requires_grad_(True)
        m(xi).square().sum().backward()
        grads.append(xi.grad)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-5)


def test_a_conv_output_read_elsewhere_is_not_folded():
    net = _randomize(Reused())
    x = torch.randn(2, 3, 4, 4)
    assert conv_bn_pairs(net, lambda m: m(x)) == [("conv", "bn")]  # the hooks see the pair ...
    assert folded_copy(net, lambda m: m(x)) is None  # ... the probe shows the fold changes the output


def test_train_mode_batch_norms_and_conv_subclasses_do_not_fold():
    class Scaled(nn.Conv2d):
        def forward(self, x):
            return super().forward(x) * 2

    x = torch.randn(2, 3, 4, 4)
    net = _randomize(nn.Sequential(nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3))).train()
    assert conv_bn_pairs(net, lambda m: m(x)) == []
    sub = _randomize(nn.Sequential(Scaled(3, 3, 1), nn.BatchNorm2d(3)))
    assert conv_bn_pairs(sub, lambda m: m(x)) == [] and folded_copy(sub, lambda m: m(x)) is None


def test_the_cache_follows_the_network():
    torch.manual_seed(2)
    net = _randomize(Block()).requires_grad_(False)
    x = torch.randn(2, 3, 8, 8)
    cache = FoldedCache(net)
    first = cache.get(lambda m: m(x))
    assert first is not net and cache.get(lambda m: m(x)) is first  # built once
    net.bn.running_mean.add_(1.0)  # any in-place change (load_state_dict, a step) rebuilds it
    second = cache.get(lambda m: m(x))
    assert second is not first
    with torch.no_grad():
        torch.testing.assert_close(second(x), net(x), rtol=1e-5, atol=1e-5)
    net.train()
    assert cache.get(lambda m: m(x)) is net  # batch statistics: not foldable
    net.eval().conv.weight.requires_grad_(True)
    assert cache.get(lambda m: m(x)) is net  # a trained parameter: not foldable
    assert FoldedCache(net, frozen_only=False).get(lambda m: m(x)) is not net  # inference passes
    assert FoldedCache(net, enabled=False, frozen_only=False).get(lambda m: m(x)) is net


def test_the_lite0_evaluator_folds_every_batch_norm_under_autocast():
    from ornet.models.evaluator import build_evaluator

    torch.manual_seed(3)
    net = _randomize(build_evaluator("efficientnet_lite0", 5, "none")).requires_grad_(False)
    x = torch.randn(2, 3, 64, 64)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the probe runs in float32 all the same
        copy = folded_copy(net, lambda m: m(x))
    assert copy is not None and n_bn == 49
    assert not any(isinstance(m, nn.BatchNorm2d) for m in copy.modules())
    with torch.no_grad():
        torch.testing.assert_close(copy(x), net(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("alpha", [0.0, 0.25, 0.5])
def test_an_ornet_predict_copy_keeps_its_class_gate(alpha):
    from ornet.models.ornet_network import ORNet

    torch.manual_seed(4)
    net = _randomize(ORNet("resnet18", 3, evaluator="resnet18", generator_width=8))
    net.set_cam_gate(alpha)
    x, y = torch.randn(2, 3, 64, 64), torch.tensor([0, 2])
    copy = FoldedCache(net, frozen_only=False).get(lambda m: m.predict(x, y))
    assert copy is not net and copy.cam_gate == alpha
    with torch.no_grad():
        (maps, logits), (maps0, logits0) = copy.predict(x, y), net.predict(x, y)
    torch.testing.assert_close(logits, logits0, rtol=1e-4, atol=1e-4)
    # min-max scaled maps, then minmax(CAM) ** alpha: float rounding near 0 grows (0.25: ~1e-3)
    torch.testing.assert_close(maps, maps0, rtol=0, atol=1e-4 if alpha != 0.25 else 5e-3)


@pytest.mark.parametrize("channels_last", [False, True])
def test_the_copy_is_the_float32_fold_bit_for_bit(channels_last):
    """`folded_copy` folds its float64 probe copy and casts it back (one copy of the network, not three):
    every tensor equal, bit for bit and in the same memory layout, to folding a float32 copy directly,
    for the Lite0 evaluator (timm's BatchNormAct2d) and a torchvision ResNet-18."""
    import copy

    from ornet.models.backbones import build_classifier
    from ornet.models.evaluator import build_evaluator
    from ornet.models.fold_bn import _fold_pairs

    torch.manual_seed(5)
    x = torch.randn(1, 3, 64, 64)

    def probe(m):
        return m(x)

    for net in (build_evaluator("efficientnet_lite0", 5, "none"), build_classifier("resnet18", 5, "none")):
        net = _randomize(net).requires_grad_(False)
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
        got = folded_copy(net, probe)
        want = _fold_pairs(copy.deepcopy(net), conv_bn_pairs(net, probe))
        a, b = got.state_dict(), want.state_dict()
        assert a.keys() == b.keys() and len(a) >= 40
        for k in a:
            assert a[k].dtype == b[k].dtype and a[k].stride() == b[k].stride() and torch.equal(a[k], b[k]), k
        assert not any(p.requires_grad for p in got.parameters())
        assert [type(m) for m in got.modules()] == [type(m) for m in want.modules()]


def test_a_network_not_in_float32_is_folded_from_its_own_copy():
    """Half-precision weights: the float64 probe cast back would not be their fold; the copy is folded
    from the network itself, in its own dtype."""
    torch.manual_seed(6)
    net = _randomize(Block())
    x = torch.randn(2, 3, 8, 8)
    half = folded_copy(net.to(torch.bfloat16), lambda m: m(x.to(torch.bfloat16)))
    assert half is not None and half.conv.weight.dtype == torch.bfloat16 and half.last.weight.dtype == torch.bfloat16


def test_the_cost_study_times_both_versions_and_tells_a_different_fold(tmp_path, capsys):
    """benchmarks/studies/fold_copy_cost.py: a row per network with both versions' seconds; a version
    whose fold differs (here: one that rounds the batch norms' scale to float32 first) shows False."""
    from conftest import load_study

    study = load_study("fold_copy_cost")
    source = Path(__file__).resolve().parents[1] / "src" / "ornet" / "models" / "fold_bn.py"
    same = tmp_path / "same.py"
    same.write_text(source.read_text())
    assert study.main(["--old", str(same), "--repeats", "1", "--size", "32"]) == 0
    rows = [line.split("|")[1:-1] for line in capsys.readouterr().out.splitlines()[2:]]
    assert [r[0].strip() for r in rows] == ["ORNet (predict)", "evaluator"]
    assert all(float(r[1]) > 0 and float(r[2]) > 0 and r[4].strip() == "True" for r in rows)
    wrong = tmp_path / "wrong.py"
    text = source.read_text()
    assert "weight.double() * scale.view(" in text
    wrong.write_text(text.replace("weight.double() * scale.view(", "weight.double() * scale.float().double().view("))
    assert study.main(["--old", str(wrong), "--repeats", "1", "--size", "32"]) == 0
    assert all(line.split("|")[5].strip() == "False" for line in capsys.readouterr().out.splitlines()[2:])
    with pytest.raises(SystemExit):
        study.main(["--old", str(tmp_path / "missing.py")])
