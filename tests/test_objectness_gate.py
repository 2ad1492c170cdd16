"""The generator's learned class gate (`model.generator_objectness`; docs/method.md, "The learned class
gate"): the head's layout, the gated map against a hand computation, where gradients go, the switch that
stage 2 turns on and checkpoints keep, the refine step's distillation term, stage 1 leaving the head
alone, config checks and model.json."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from ornet.config.schema import RunConfig
from ornet.errors import ConfigError, OrnetError
from ornet.methods import check_networks
from ornet.models.generator import ActivationMapGenerator
from ornet.models.ornet_network import ORNet
from test_map_constraints import _logged, _task, setup  # noqa: F401  (the module's fixture)

K = 3


def _pair(alpha: float = 0.5):
    """A generator without the head and one with it, sharing every other weight."""
    torch.manual_seed(0)
    plain = ActivationMapGenerator(8, K, width=4).eval()
    gated = ActivationMapGenerator(8, K, width=4, objectness=alpha).eval()
    missing, unexpected = gated.load_state_dict(plain.state_dict(), strict=False)
    assert set(missing) == {"obj_conv.weight", "obj_conv.bias", "objectness_on"} and not unexpected
    return plain, gated


def test_no_head_at_0_and_the_plain_map_until_switched_on():
    plain, gated = _pair()
    assert plain.obj_conv is None and "objectness_on" not in plain.state_dict()  # older files load as they were
    assert gated.obj_conv.in_channels == 8 * 4 and gated.obj_conv.out_channels == 1  # the deepest block's c3 = 8c
    x = torch.randn(2, 8, 24, 16)
    with torch.no_grad():
        a, b = plain(x), gated(x)
    assert b.obj_logit is None and torch.equal(a.p_a, b.p_a)  # stage 1: the head is not run


def test_the_head_starts_at_zero_so_the_gated_map_starts_as_the_plain_one_times_a_constant():
    plain, gated = _pair(alpha=0.7)
    assert not gated.obj_conv.weight.any() and not gated.obj_conv.bias.any()
    gated.enable_objectness()
    x = torch.randn(2, 8, 24, 16)
    with torch.no_grad():
        torch.testing.assert_close(gated(x).p_a, plain(x).p_a * 0.5 ** 0.7)


def test_the_gated_map_is_p_a_times_the_upsampled_objectness_to_alpha():
    plain, gated = _pair(alpha=0.7)
    gated.enable_objectness()
    torch.nn.init.normal_(gated.obj_conv.weight, std=0.3)  # a trained head
    x = torch.randn(2, 8, 24, 16)
    with torch.no_grad():
        out = gated(x)
        x3 = gated.down3(gated.down2(gated.down1(x)))  # the release encoder's deepest features: 3 x 2
        o = gated.obj_conv(x3)
        up = F.interpolate(torch.sigmoid(o), size=(24, 16), mode="bilinear", align_corners=False)
        expected = plain(x).p_a * up ** 0.7
    assert out.obj_logit.shape == (2, 1, 3, 2) and out.obj_logit.dtype == torch.float32
    torch.testing.assert_close(out.obj_logit, o)
    torch.testing.assert_close(out.p_a, expected)
    assert (out.p_a <= plain(x).p_a + 1e-7).all()  # a gate in [0, 1] only removes


def test_the_head_learns_only_from_its_own_loss():
    _, gated = _pair()
    gated.enable_objectness()
    gated.train()
    out = gated(torch.randn(2, 8, 16, 16))
    out.p_a.sum().backward()  # any loss on the map
    assert gated.obj_conv.weight.grad is None  # the product takes o without gradient
    assert gated.out_conv.weight.grad is not None
    out = gated(torch.randn(2, 8, 16, 16))
    out.obj_logit.sum().backward()
    assert gated.obj_conv.weight.grad.abs().sum() > 0 and gated.out_conv.weight.grad is not None


def test_the_switch_is_kept_in_the_state_dict_and_refused_without_a_head():
    _, gated = _pair()
    gated.enable_objectness()
    fresh = ActivationMapGenerator(8, K, width=4, objectness=0.5)
    assert not fresh._obj_on
    fresh.load_state_dict(gated.state_dict())
    assert fresh._obj_on and bool(fresh.objectness_on)
    assert copy.deepcopy(fresh)._obj_on
    with pytest.raises(OrnetError, match="no objectness head"):
        ActivationMapGenerator(8, K, width=4).enable_objectness()
    with pytest.raises(OrnetError, match="objectness exponent must be a finite number >= 0"):
        ActivationMapGenerator(8, K, width=4, objectness=-1.0)


def test_stage_2_trains_the_head_towards_the_label_cam(setup, monkeypatch):  # noqa: F811
    from ornet.models.split import class_activation_map

    cfg, _, _ = setup
    monkeypatch.setattr(cfg.model, "generator_objectness", 0.5)
    task, batch = _task(setup, objectness_weight=0.7)
    g = task.model.generator
    assert g._obj_on and any(p is g.obj_conv.weight for p in task.param_groups()[0][0])
    task.init_from(ornet_state={k: (torch.zeros((), dtype=torch.bool) if k.endswith("objectness_on") else v)
                                for k, v in task.model.state_dict().items()})  # stage 1's weights: switched off
    assert g._obj_on  # stage 2 switches it back on
    with torch.no_grad():  # a head that has trained a little (at zero, sigmoid(o) = 0.5 and the BCE is log 2 for any T)
        g.obj_conv.weight.copy_(torch.linspace(-0.05, 0.05, g.obj_conv.weight.numel()).view_as(g.obj_conv.weight))
    task.eval()
    seen = _logged(task, monkeypatch)
    loss = task._step(batch, "train")
    assert set(seen) == {"loss_eval", "loss_area", "loss_entropy", "map_mean", "loss_objectness"}
    model, images, m = task.model, batch.images, task.method_cfg
    with torch.no_grad():
        o = model.maps(images).obj_logit
        ev = model.evaluator
        cam = class_activation_map(ev.head.classifier, ev.features(model.to_evaluator(images)), batch.labels)
        cam = F.interpolate(cam[:, None], size=o.shape[-2:], mode="bilinear", align_corners=False)
        # BCE of sigmoid(o) against T = minmax(CAM) per image, by hand
        lo, hi = cam.amin(dim=(2, 3), keepdim=True), cam.amax(dim=(2, 3), keepdim=True)
        t = (cam - lo) / (hi - lo)
        p = torch.sigmoid(o)
        expected = -(t * p.log() + (1 - t) * (1 - p).log()).mean()
    assert float(seen["loss_objectness"]) == pytest.approx(float(expected), rel=1e-4)
    assert abs(float(expected) - 0.693147) > 1e-3  # not the zero head's log 2
    base = m.eval_weight * seen["loss_eval"] + m.area_weight * seen["loss_area"] + m.entropy_weight * seen["loss_entropy"]
    assert loss.detach().item() == pytest.approx(float(base + 0.7 * seen["loss_objectness"]), rel=1e-6)


def test_with_the_gate_distilled_as_well_one_evaluator_forward_gives_both_targets(setup, monkeypatch):  # noqa: F811
    cfg, _, _ = setup
    monkeypatch.setattr(cfg.model, "generator_objectness", 0.5)

    def trained_a_little(task):
        g = task.model.generator
        with torch.no_grad():
            g.obj_conv.weight.copy_(torch.linspace(-0.05, 0.05, g.obj_conv.weight.numel()).view_as(g.obj_conv.weight))
        task.eval()
        return task

    alone = {}
    for key, name in (("objectness_weight", "loss_objectness"), ("gate_distill_weight", "loss_gate_distill")):
        task, batch = _task(setup, **{key: 0.7})
        seen = _logged(trained_a_little(task), monkeypatch)
        task._step(batch, "train")
        alone[name] = float(seen[name])
    task, batch = _task(setup, objectness_weight=0.7, gate_distill_weight=0.7)
    seen = _logged(trained_a_little(task), monkeypatch)
    model, forwards = task.model, []
    label_cam = model.label_cam
    monkeypatch.setattr(model, "label_cam", lambda *a: forwards.append([tuple(g) for g in a[2]]) or label_cam(*a))
    task._step(batch, "train")
    o_grid = tuple(model.maps(batch.images).obj_logit.shape[-2:])
    p_grid = tuple(model.maps(batch.images).p_a.shape[-2:])
    assert forwards == [[o_grid, p_grid]] and o_grid != p_grid  # one forward, both grids
    # each term as in a run with only its own constraint on
    assert float(seen["loss_objectness"]) == pytest.approx(alone["loss_objectness"], rel=1e-6)
    assert float(seen["loss_gate_distill"]) == pytest.approx(alone["loss_gate_distill"], rel=1e-6)
    # and label_cam's CAMs on several grids are those of one grid at a time
    fc = task._cam_fc[0]
    with torch.no_grad():
        both = model.label_cam(batch.images, batch.labels, [o_grid, p_grid], fc)
        for cam, grid in zip(both, (o_grid, p_grid)):
            torch.testing.assert_close(cam, model.label_cam(batch.images, batch.labels, [grid], fc)[0])
            assert cam.shape == (len(batch.labels), 1, *grid)


def test_stage_1_leaves_the_head_untrained_and_the_map_plain(setup, monkeypatch):  # noqa: F811
    from ornet.training.pipeline import build_task

    cfg, dm, batch = setup
    cfg = copy.deepcopy(cfg)
    cfg.model.generator_objectness = 0.5
    task = build_task(cfg, "coarse", dm.num_classes, dm.classes)
    head = {id(p) for p in task.model.generator.obj_conv.parameters()}
    assert not head & {id(p) for group, _ in task.param_groups() for p in group}
    assert not task.model.generator._obj_on and task.model.maps(batch.images).obj_logit is None


def test_config_checks():
    import ornet

    for value in (-0.5, -1):
        with pytest.raises(ConfigError, match="model.generator_objectness must be a number >= 0"):
            ornet.load_config(None, {"model.generator_objectness": value})
    with pytest.raises(ConfigError, match="needs method.objectness_weight > 0"):
        ornet.load_config(None, {"model.generator_objectness": 0.5, "method.objectness_weight": 0})
    cfg = RunConfig()
    cfg.model.evaluator = "mobilenet_v3_small"  # no GAP + Linear head: no CAM to learn from
    cfg.model.generator_objectness = 0.5
    with pytest.raises(ConfigError, match=r"model\.generator_objectness needs an evaluator whose head is GAP \+ Linear"):
        check_networks(cfg)
    cfg.stages = ["evaluator", "coarse"]  # no stage 2: the head never trains, nothing asks for a CAM
    check_networks(cfg)


def test_model_json_keeps_the_switched_on_gate(tmp_path):
    from ornet.runs.export import export_model, load_exported, model_meta

    torch.manual_seed(0)
    cfg = RunConfig()
    cfg.model.backbone, cfg.model.evaluator, cfg.model.generator_width = "resnet18", "resnet18", 4
    cfg.model.generator_objectness = 0.5
    model = ORNet("resnet18", K, evaluator="resnet18", generator_width=4, generator_objectness=0.5).eval()
    model.generator.enable_objectness()
    meta = model_meta(cfg, "ornet", [str(i) for i in range(K)], 0.5)
    assert meta["architecture"]["generator_objectness"] == 0.5
    export_model(tmp_path, model, meta)
    loaded, _ = load_exported(tmp_path)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        out = loaded.maps(x)
        torch.testing.assert_close(out.p_a, model.maps(x).p_a)
    assert out.obj_logit is not None
