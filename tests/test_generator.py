"""Activation map generator and the ORNet composition (tiny widths, 64-px images)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ornet.errors import OrnetError
from ornet.models import ActivationMapGenerator, GeneratorOutput, ORNet

C_IN, K, WIDTH = 4, 3, 8
REFINE_PREFIXES = ("up2.", "up3.", "out_conv.", "out_bn.")


@pytest.fixture
def generator():
    torch.manual_seed(0)
    return ActivationMapGenerator(C_IN, K, width=WIDTH)


@pytest.mark.parametrize("size", [(16, 16), (24, 32), (40, 56), (12, 20), (13, 21), (8, 9)])
def test_any_size(generator, size):
    out = generator(torch.randn(2, C_IN, *size))
    assert isinstance(out, GeneratorOutput)
    assert out.f_a.shape == (2, K, *size)
    assert out.p_a.shape == (2, 1, *size)
    assert out.attn_logits.shape == (2, K)
    p_a = out.p_a.detach()
    assert float(p_a.min()) >= 0.0 and float(p_a.max()) <= 1.0


def test_too_small_or_wrong_channels(generator):
    with pytest.raises(OrnetError, match="at least 8x8"):
        generator(torch.randn(1, C_IN, 4, 16))
    with pytest.raises(OrnetError, match="B x 4 x h x w"):
        generator(torch.randn(1, C_IN + 1, 16, 16))


def test_heads_follow_the_spec(generator):
    generator.eval()
    out = generator(torch.randn(2, C_IN, 16, 24))
    # attention head: GAP(conv1x1(f_a)), computed here in the spec's order
    expected = F.conv2d(out.f_a, generator.attn_conv.weight).mean(dim=(2, 3))
    torch.testing.assert_close(out.attn_logits, expected, rtol=1e-4, atol=1e-5)
    # map head: sigmoid(BN(conv3x3(f_a)))
    p = torch.sigmoid(generator.out_bn(generator.out_conv(out.f_a)))
    torch.testing.assert_close(out.p_a, p)
    # f_a is a LeakyReLU output: negative values are allowed
    assert float(out.f_a.detach().min()) < 0


def test_layout_widths(generator):
    c = WIDTH
    assert generator.down1[1][0].out_channels == 2 * c
    assert generator.down2[1][0].out_channels == 4 * c
    assert generator.down3[1][0].out_channels == 8 * c
    assert generator.up1.block[0].in_channels == 12 * c and generator.up1.block[0].out_channels == 4 * c
    assert generator.up2.block[0].in_channels == 6 * c and generator.up2.block[0].out_channels == 3 * c
    assert generator.up3.block[0].in_channels == 3 * c + C_IN and generator.up3.block[0].out_channels == K


def test_refine_parameters_and_freeze(generator):
    names = {id(p): n for n, p in generator.named_parameters()}
    refine = {names[id(p)] for p in generator.refine_parameters()}
    expected = {n for n, _ in generator.named_parameters() if n.startswith(REFINE_PREFIXES)}
    assert refine == expected
    assert any(n.startswith("up2.") for n in refine) and "out_bn.weight" in refine
    assert generator.refine_modules() == [generator.up2, generator.up3, generator.out_conv,
                                          generator.out_bn]
    assert generator.freeze_for_refine() is generator
    trainable = {n for n, p in generator.named_parameters() if p.requires_grad}
    assert trainable == expected


@pytest.mark.parametrize("scope, prefixes", [
    ("decoder", ("up1.", "up2.", "up3.", "out_")),
    ("generator", ("down1.", "down2.", "down3.", "up1.", "up2.", "up3.", "out_")),
])
def test_refine_scopes_train_more_of_the_generator_but_never_the_attention_head(generator, scope, prefixes):
    expected = {n for n, _ in generator.named_parameters() if n.startswith(prefixes)}
    assert {n for n, p in generator.named_parameters() if any(p is q for q in generator.refine_parameters(scope))} \
        == expected
    generator.freeze_for_refine(scope)
    assert {n for n, p in generator.named_parameters() if p.requires_grad} == expected
    assert not generator.attn_conv.weight.requires_grad
    generator.freeze_for_refine()  # back to the release's set for the other tests
    with pytest.raises(OrnetError, match="refine scope must be one of release, decoder, generator, got 'all'"):
        generator.refine_modules("all")


# ---------------------------------------------------------------- ORNet

@pytest.fixture(scope="module")
def ornet():
    torch.manual_seed(0)
    return ORNet("resnet18", K, evaluator="resnet18", generator_width=WIDTH)


def test_coarse_forward_and_predict_shapes(ornet):
    x = torch.randn(2, 3, 64, 64)
    ornet.train()
    y_hat, y_a, out = ornet.coarse_forward(x)
    assert y_hat.shape == (2, K) and y_a.shape == (2, K)
    assert out.p_a.shape == (2, 1, 16, 16) and out.f_a.shape == (2, K, 16, 16)
    loss = F.cross_entropy(y_hat, torch.tensor([0, 1])) + F.cross_entropy(y_a, torch.tensor([0, 1]))
    loss.backward()
    assert ornet.generator.out_conv.weight.grad is not None
    assert ornet.stem.conv1.weight.grad is not None
    ornet.zero_grad(set_to_none=True)

    ornet.eval()
    with torch.no_grad():
        maps, logits = ornet.predict(x, torch.tensor([0, 1]))
        assert maps.shape == (2, 1, 16, 16) and logits.shape == (2, K)
        assert float(maps.min()) >= 0 and float(maps.max()) <= 1
        torch.testing.assert_close(logits, ornet.evaluator(x))
        assert ornet.evaluate_masked(x, maps).shape == (2, K)


def test_maps_touch_only_stem_and_generator(ornet):
    calls = []
    hooks = [m.register_forward_hook(lambda *_, name=name: calls.append(name))
             for name, m in (("rest_head", ornet.rest_head), ("evaluator", ornet.evaluator.head))]
    try:
        ornet.eval()
        with torch.no_grad():
            out = ornet.maps(torch.randn(1, 3, 64, 64))
        assert out.p_a.shape == (1, 1, 16, 16)
        assert calls == []
        with torch.no_grad():
            ornet.predict(torch.randn(1, 3, 64, 64))
        assert calls == ["evaluator"]
    finally:
        for h in hooks:
            h.remove()


def test_without_evaluator_predict_uses_gated_head():
    torch.manual_seed(0)
    net = ORNet("resnet18", K, evaluator=None, generator_width=WIDTH).eval()
    assert net.evaluator is None
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        maps, logits = net.predict(x)
        y_hat, _, out = net.coarse_forward(x)
    torch.testing.assert_close(logits, y_hat)
    torch.testing.assert_close(maps, out.p_a)
    with pytest.raises(RuntimeError, match="no evaluator"):
        net.evaluate_masked(x, maps)
