"""`model.generator_stem_skip`: what the generator's last up block takes from the stem features f_c."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ornet.errors import ConfigError, OrnetError
from ornet.models import ActivationMapGenerator

C_IN, K, WIDTH = 4, 3, 8


def _generator(stem_skip: str) -> ActivationMapGenerator:
    torch.manual_seed(0)
    return ActivationMapGenerator(C_IN, K, width=WIDTH, stem_skip=stem_skip).eval()


def test_concat_is_the_release_layout_and_keeps_its_keys():
    g = _generator("concat")
    assert g.up3.block[0].in_channels == 3 * WIDTH + C_IN and g.up3.gate is None
    assert not any(k.startswith("up3.gate") for k in g.state_dict())
    # the default builds the same network, key for key and value for value
    torch.manual_seed(0)
    default = ActivationMapGenerator(C_IN, K, width=WIDTH).eval()
    assert default.state_dict().keys() == g.state_dict().keys()
    assert all(torch.equal(default.state_dict()[k], v) for k, v in g.state_dict().items())


def test_none_ignores_the_stem_features_at_the_last_block():
    g = _generator("none")
    assert g.up3.block[0].in_channels == 3 * WIDTH
    f_c = torch.randn(2, C_IN, 16, 24)
    x1 = g.down1(f_c)
    x2 = g.down2(x1)
    x3 = g.down3(x2)
    x = g.up2(g.up1(x3, x2), x1)
    want = g.up3.block(F.interpolate(x, size=(16, 24), mode="bilinear", align_corners=False))
    with torch.no_grad():
        torch.testing.assert_close(g(f_c).f_a, want)
        # f_c still sets the encoder's input: only the skip is gone. Changing f_c inside one 2x2 max-pool
        # cell without changing the cell's maximum leaves the map unchanged.
        cell = f_c.clone()
        cell[:, :, 0, 1] = torch.minimum(cell[:, :, 0, 1], cell[:, :, 0, 0]) - 1.0
        cell[:, :, 0, 0] = torch.maximum(f_c[:, :, 0, 0], f_c[:, :, 0, 1])
        base = f_c.clone()
        base[:, :, 0, 0] = cell[:, :, 0, 0]
        torch.testing.assert_close(g(cell).p_a, g(base).p_a)
        concat = _generator("concat")
        assert not torch.allclose(concat(cell).p_a, concat(base).p_a)  # the release's skip sees the change


def test_gated_multiplies_the_skip_by_a_spatial_gate_from_the_decoder():
    g = _generator("gated")
    assert g.up3.block[0].in_channels == 3 * WIDTH + C_IN
    assert g.up3.gate.in_channels == 3 * WIDTH and g.up3.gate.out_channels == 1
    f_c = torch.randn(2, C_IN, 16, 24)
    x = torch.randn(2, 3 * WIDTH, 8, 12)
    up = F.interpolate(x, size=(16, 24), mode="bilinear", align_corners=False)
    gate = torch.sigmoid((up * g.up3.gate.weight.view(1, -1, 1, 1)).sum(1, keepdim=True) + g.up3.gate.bias)
    with torch.no_grad():
        torch.testing.assert_close(g.up3(x, f_c), g.up3.block(torch.cat([f_c * gate, up], 1)))
        # a gate shut everywhere is the `none` input with zeros in the skip's channels
        g.up3.gate.bias.fill_(-1e4)
        torch.testing.assert_close(g.up3(x, f_c), g.up3.block(torch.cat([torch.zeros_like(f_c), up], 1)))
    # the gate is part of up3: stage 2 trains it with every refine scope
    assert any(p is g.up3.gate.weight for p in g.refine_parameters("release"))


def test_an_unknown_stem_skip_is_refused(tmp_path):
    with pytest.raises(OrnetError, match="generator stem skip must be one of concat, none, gated, got 'half'"):
        ActivationMapGenerator(C_IN, K, width=WIDTH, stem_skip="half")
    from ornet.config.parse import make_parser, parse, to_run_config

    p = make_parser("ornet train", "test")
    with pytest.raises(ConfigError, match="generator_stem_skip"):
        to_run_config(p, parse(p, ["--config", "demo", "--data.root", str(tmp_path),
                                   "--model.generator_stem_skip", "half"]))


# model.json's record of the key: tests/test_generator_encoder.py::test_model_json_records_the_generator_keys_...
