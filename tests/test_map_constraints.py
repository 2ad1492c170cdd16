"""Stage 2's constraints against texture noise (issue 30; docs/method.md, "Constraints against
texture noise"): each loss against hand-computed numbers, where its gradient goes, its wiring into
the refine step, its config checks, and a tiny run with all of them on."""

from __future__ import annotations

import copy
import csv
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conftest import load_study, write_cub_tree
from ornet.config.parse import CONSTRAINT_WEIGHTS
from ornet.config.schema import MIN_SIDE, RunConfig, downscaled_side
from ornet.errors import ConfigError, OrnetError
from ornet.methods import check_config, check_networks
from ornet.methods.ornet import (
    flip_consistency,
    gate_distill_target,
    gate_distillation,
    scale_consistency,
    total_variation,
)

ROOT = Path(__file__).resolve().parents[1]
TERMS = {"gate_distill_weight": "loss_gate_distill", "tv_weight": "loss_tv",
         "flip_consistency_weight": "loss_flip", "scale_consistency_weight": "loss_scale"}


def _map(rows, grad=False):
    return torch.tensor(rows, dtype=torch.float64).view(1, 1, len(rows), -1).requires_grad_(grad)


# ---------------------------------------------------------------- total variation
# p = [[0.1, 0.5, 0.2], [0.4, 0.9, 0.3], [0.0, 0.6, 0.8]]
#   horizontal pairs: 0.4 0.3 | 0.5 0.6 | 0.6 0.2 -> 2.6 / 6 = 0.433333
#   vertical pairs:   0.3 0.4 | 0.4 0.3 | 0.1 0.5 -> 2.0 / 6 = 0.333333   -> L_tv = 0.766667
# d L_tv / d p[1, 1] (0.9 is above all 4 neighbours): 2 / 6 + 2 / 6 = 0.666667
P3 = [[0.1, 0.5, 0.2], [0.4, 0.9, 0.3], [0.0, 0.6, 0.8]]


def test_total_variation_hand_value_and_gradient():
    p = _map(P3, grad=True)
    loss = total_variation(p)
    assert loss.detach().item() == pytest.approx(0.766667, abs=1e-6)
    loss.backward()
    assert p.grad[0, 0, 1, 1].item() == pytest.approx(2 / 3, abs=1e-6)
    assert total_variation(torch.full((2, 1, 5, 4), 0.7)).item() == 0.0  # a flat map has no edge
    # one column: only the vertical term, (0.4 + 0.5) / 2
    assert total_variation(_map([[0.1], [0.5], [0.0]])).item() == pytest.approx(0.45, abs=1e-6)
    assert total_variation(_map([[0.3]])).item() == 0.0


def test_total_variation_charges_speckle_more_than_a_blob_of_the_same_area():
    blob = torch.zeros(1, 1, 4, 4)
    blob[..., :2, :2] = 1.0
    speckle = torch.zeros(1, 1, 4, 4)
    speckle[..., ::2, ::2] = 1.0
    assert blob.mean() == speckle.mean()
    # 12 pairs per direction. blob: 2 unit steps each way (rows 0-1, columns 0-1) -> 2 / 12 + 2 / 12;
    # speckle: 3 steps in each of rows 0 and 2, and in columns 0 and 2 -> 6 / 12 + 6 / 12
    assert total_variation(blob).item() == pytest.approx(4 / 12)
    assert total_variation(speckle).item() == pytest.approx(1.0)


# ---------------------------------------------------------------- flip consistency
def test_flip_consistency_zero_for_an_equivariant_map_and_a_hand_value():
    sym = _map([[0.2, 0.7, 0.2], [0.1, 0.9, 0.1]])
    assert flip_consistency(sym, sym).item() == 0.0  # a symmetric map flips to itself
    p = _map([[0.1, 0.5, 0.9], [0.3, 0.2, 0.6]])
    assert flip_consistency(p, p.flip(-1)).item() == 0.0  # the flipped batch's map is the flipped map
    # a map that stays put under the flip: q flipped back = [0.9 0.5 0.1], [0.6 0.2 0.3]
    # differences -0.8 0 0.8 | -0.3 0 0.3 -> (0.64 + 0.64 + 0.09 + 0.09) / 6 = 0.243333
    p = _map([[0.1, 0.5, 0.9], [0.3, 0.2, 0.6]], grad=True)
    q = p.detach().clone().requires_grad_(True)
    loss = flip_consistency(p, q)
    assert loss.detach().item() == pytest.approx(0.243333, abs=1e-6)
    loss.backward()
    # only p_a: d/dp = 2 (p - flip(q)) / 6
    assert p.grad.flatten().tolist() == pytest.approx([-0.266667, 0.0, 0.266667, -0.1, 0.0, 0.1], abs=1e-6)
    assert q.grad is None


# ---------------------------------------------------------------- scale consistency
def test_scale_consistency_hand_value_and_gradient():
    # p_small = [[0, 1], [0, 1]] resized bilinearly (align_corners=False) to 4 x 4: each row
    # [0, 0.25, 0.75, 1]; p_a rows [0, 0, 1, 1] -> squared differences 0, 0.0625, 0.0625, 0 -> 0.03125
    p = _map([[0.0, 0.0, 1.0, 1.0]] * 4, grad=True)
    small = _map([[0.0, 1.0]] * 2, grad=True)
    loss = scale_consistency(p, small)
    assert loss.detach().item() == pytest.approx(0.03125, abs=1e-9)
    loss.backward()
    assert p.grad[0, 0, 0].tolist() == pytest.approx([0.0, -0.5 / 16, 0.5 / 16, 0.0])
    assert small.grad is None
    assert scale_consistency(_map([[0.3] * 4] * 4), _map([[0.3] * 3] * 3)).item() == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="scale_consistency shapes"):
        scale_consistency(torch.zeros(2, 1, 4, 4), torch.zeros(1, 1, 2, 2))


def test_downscaled_side_is_a_multiple_of_4_and_the_smallest_side_is_the_generators():
    from ornet.models.generator import ActivationMapGenerator
    from ornet.models.ornet_network import ORNet

    assert [downscaled_side(s, 0.75) for s in (192, 64, 224, 32)] == [144, 48, 168, 24]
    assert downscaled_side(100, 0.5) == 48  # 50 -> the nearest multiple of 4
    assert MIN_SIDE == ActivationMapGenerator.MIN_SIZE * ORNet.map_stride


# ---------------------------------------------------------------- gate distillation
# p_a = [0.2, 0.4, 0.6, 0.8] -> minmax [0, 1/3, 2/3, 1]; CAM = [-1, 0, 1, 3] -> minmax [0, 0.25, 0.5, 1]
#   product, alpha 0.5: T = [0, 1/3 * 0.5, 2/3 * 0.707107, 1] = [0, 0.166667, 0.471405, 1]
#   cam: T = [0, 0.25, 0.5, 1]
# BCE(p, T) = -(T ln p + (1 - T) ln(1 - p)): 0.223144, 0.578403, 0.725153, 0.223144 -> mean 0.437461
#   (cam form: 0.223144, 0.612192, 0.713558, 0.223144 -> 0.443009)
# d L / d z for p = sigmoid(z): (p - T) / 4 = 0.05, 0.058333, 0.032149, -0.05


def test_gate_distill_target_hand_values():
    p = _map([[0.2, 0.4], [0.6, 0.8]])
    cam = _map([[-1.0, 0.0], [1.0, 3.0]])
    t = gate_distill_target(p, cam, alpha=0.5, form="product")
    assert t.flatten().tolist() == pytest.approx([0.0, 1 / 6, 0.471405, 1.0], abs=1e-6)
    assert gate_distill_target(p, cam, form="cam").flatten().tolist() == pytest.approx([0.0, 0.25, 0.5, 1.0])
    assert gate_distill_target(p, cam, alpha=0.0).flatten().tolist() == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0])
    assert gate_distill_target(p, torch.full_like(cam, 2.0)).abs().sum().item() == 0.0  # flat CAM: no evidence
    # per image: a second image with the CAM scaled and shifted has the same target
    both = gate_distill_target(torch.cat([p, p]), torch.cat([cam, 10 * cam + 5]))
    assert torch.allclose(both[0], both[1])
    with pytest.raises(ValueError, match="form"):
        gate_distill_target(p, cam, form="sum")


def test_gate_distillation_hand_value_and_gradient_into_p_a_only():
    z = torch.logit(_map([[0.2, 0.4], [0.6, 0.8]])).requires_grad_(True)
    cam = _map([[-1.0, 0.0], [1.0, 3.0]], grad=True)
    p = torch.sigmoid(z)
    target = gate_distill_target(p, cam, alpha=0.5)
    assert not target.requires_grad
    loss = gate_distillation(p, target, eps=0.0)
    assert loss.detach().item() == pytest.approx(0.437461, abs=1e-6)
    loss.backward()
    # on the logit the gradient is (p - T) / N, full size where the map is wrong
    assert z.grad.flatten().tolist() == pytest.approx([0.05, 0.058333, 0.032149, -0.05], abs=1e-6)
    assert cam.grad is None
    p = _map([[0.2, 0.4], [0.6, 0.8]])
    assert gate_distillation(p, gate_distill_target(p, cam.detach(), form="cam"), eps=0.0).item() == \
        pytest.approx(0.443009, abs=1e-6)
    # the default eps moves it by about eps
    assert gate_distillation(p, target).item() == pytest.approx(0.437461, abs=1e-5)


def test_gate_distillation_keeps_a_saturated_wrong_pixel_s_gradient():
    # p = sigmoid(8) on texture (T = 0): the logit's gradient stays p - T ~ 1 (squared error: ~7e-4)
    z = torch.tensor([[[[8.0]]]], dtype=torch.float64, requires_grad=True)
    gate_distillation(torch.sigmoid(z), torch.zeros(1, 1, 1, 1, dtype=torch.float64), eps=0.0).backward()
    assert z.grad.item() == pytest.approx(torch.sigmoid(torch.tensor(8.0)).item(), rel=1e-6)


def test_constraints_compute_in_float32_under_bfloat16():
    p = torch.rand(2, 1, 6, 6, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    cam = torch.randn(2, 1, 6, 6, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    for value in (gate_distillation(p, gate_distill_target(p, cam)), total_variation(p),
                  flip_consistency(p, p), scale_consistency(p, p[..., ::2, ::2])):
        assert value.dtype == torch.float32 and math.isfinite(value.item())


# ---------------------------------------------------------------- config checks
@pytest.mark.parametrize("key", [*CONSTRAINT_WEIGHTS, "eval_weight", "area_weight", "entropy_weight", "background_weight"])
@pytest.mark.parametrize("value", [-0.1, float("nan"), float("inf")])
def test_a_bad_weight_is_refused_naming_its_key(key, value):
    cfg = RunConfig()
    setattr(cfg.method, key, value)
    with pytest.raises(ConfigError, match=rf"method\.{key} must be a number >= 0"):
        check_config(cfg)


def test_constraint_settings_are_checked():
    cfg = RunConfig()
    cfg.method.gate_distill_alpha = -1.0
    with pytest.raises(ConfigError, match=r"method\.gate_distill_alpha must be a number >= 0"):
        check_config(cfg)
    cfg = RunConfig()
    cfg.method.gate_distill_form = "sum"
    with pytest.raises(ConfigError, match=r"method\.gate_distill_form must be product or cam"):
        check_config(cfg)
    for factor in (0.0, 1.0, 1.5, float("nan")):
        cfg = RunConfig()
        cfg.method.scale_consistency_factor = factor
        with pytest.raises(ConfigError, match=r"method\.scale_consistency_factor must be in \(0, 1\)"):
            check_config(cfg)
    cfg = RunConfig()
    cfg.data.resize, cfg.data.crop = 40, 32  # 32 * 0.75 = 24 px: an 6 x 6 stem map
    cfg.method.scale_consistency_weight = 1.0
    with pytest.raises(ConfigError, match=r"method\.scale_consistency_factor 0.75 makes the 32 px crop 24 px"):
        check_config(cfg)
    cfg.method.scale_consistency_weight = 0.0  # off: the factor is not used
    check_config(cfg)


def test_the_command_line_refuses_a_negative_weight(capsys):
    import ornet

    with pytest.raises(ornet.OrnetError, match=r"method\.tv_weight must be a number >= 0"):
        ornet.load_config(None, {"method.tv_weight": -1})
    cfg = ornet.load_config(None, {f"method.{k}": 0.5 for k in CONSTRAINT_WEIGHTS})
    assert all(getattr(cfg.method, k) == 0.5 for k in CONSTRAINT_WEIGHTS)
    assert (cfg.method.gate_distill_alpha, cfg.method.gate_distill_form, cfg.method.scale_consistency_factor) == \
        (0.5, "product", 0.75)


def test_gate_distillation_needs_a_gap_linear_evaluator():
    cfg = RunConfig()
    cfg.model.evaluator = "mobilenet_v3_small"  # a 2-layer classifier: no CAM
    check_networks(cfg)  # nothing asks for its CAM
    cfg.method.gate_distill_weight = 0.5
    with pytest.raises(ConfigError, match=r"method\.gate_distill_weight needs an evaluator whose head is GAP \+ Linear"):
        check_networks(cfg)
    cfg.stages = ["evaluator", "coarse"]  # no stage 2: the weight is not used
    check_networks(cfg)


# ---------------------------------------------------------------- the refine step
def tiny_config(root: Path) -> RunConfig:
    cfg = RunConfig()
    cfg.data.root = str(root)
    cfg.data.resize, cfg.data.crop = 72, 64  # 64 * 0.75 = 48 px for the scale pass
    cfg.data.batch_size, cfg.data.eval_batch_size, cfg.data.num_workers = 4, 4, 0
    cfg.data.val_per_class = 1
    cfg.model.backbone, cfg.model.evaluator, cfg.model.generator_width = "resnet18", "resnet18", 8
    cfg.trainer.accelerator, cfg.trainer.devices, cfg.trainer.progress = "cpu", 1, False
    cfg.trainer.snapshot_images = 0
    cfg.method.erasing = "none"
    return cfg


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from ornet.data.datamodule import WSOLDataModule

    cfg = tiny_config(write_cub_tree(tmp_path_factory.mktemp("cub") / "cub"))
    dm = WSOLDataModule(cfg.data)
    return cfg, dm, next(iter(dm.loader("val")))


def _task(setup, **weights):
    from ornet.training.pipeline import build_task

    cfg, dm, batch = setup
    cfg = copy.deepcopy(cfg)
    for k, v in weights.items():
        setattr(cfg.method, k, v)
    torch.manual_seed(0)
    return build_task(cfg, "refine", dm.num_classes, dm.classes), batch


def _logged(task, monkeypatch) -> dict:
    seen: dict = {}
    monkeypatch.setattr(task, "log_common", lambda split, loss, logits, labels, extra: seen.update(
        {k: v.detach() for k, v in extra.items()}))
    return seen


def _calls(task, monkeypatch) -> list[tuple[str, bool]]:
    """(which pass, whether it recorded gradients) for every stem + generator and CAM pass."""
    calls: list[tuple[str, bool]] = []
    model = task.model
    maps, label_cam = model.maps, model.label_cam
    monkeypatch.setattr(model, "maps", lambda x: calls.append(("maps", torch.is_grad_enabled())) or maps(x))
    monkeypatch.setattr(model, "label_cam", lambda *a: calls.append(("cam", torch.is_grad_enabled())) or label_cam(*a))
    return calls


def test_all_weights_zero_keep_the_step_as_before(setup, monkeypatch):
    task, batch = _task(setup)
    task.eval()
    seen, calls = _logged(task, monkeypatch), _calls(task, monkeypatch)
    loss = task._step(batch, "train")
    # the terms and the total of the step before issue 30: one map pass, no CAM pass
    assert set(seen) == {"loss_eval", "loss_area", "loss_entropy", "map_mean"}
    m = task.method_cfg
    base = m.eval_weight * seen["loss_eval"] + m.area_weight * seen["loss_area"] + m.entropy_weight * seen["loss_entropy"]
    assert loss.detach().item() == pytest.approx(float(base), rel=1e-6)
    assert calls == [("maps", True)]


def _expected(task, batch, key) -> torch.Tensor:
    """The constraint `key` computed here from its definition (eval mode, unfolded evaluator)."""
    from ornet.models.split import class_activation_map

    model, images, m = task.model, batch.images, task.method_cfg
    with torch.no_grad():
        p_a = model.maps(images).p_a
        if key == "tv_weight":
            return total_variation(p_a)
        if key == "flip_consistency_weight":
            return flip_consistency(p_a, model.maps(torch.flip(images, dims=[3])).p_a)
        if key == "scale_consistency_weight":
            small = F.interpolate(images, size=(48, 48), mode="bilinear", align_corners=False, antialias=True)
            return scale_consistency(p_a, model.maps(small).p_a)
        ev = model.evaluator
        cam = class_activation_map(ev.head.classifier, ev.features(model.to_evaluator(images)), batch.labels)
        cam = F.interpolate(cam[:, None], size=p_a.shape[-2:], mode="bilinear", align_corners=False)
        return gate_distillation(p_a, gate_distill_target(p_a, cam, m.gate_distill_alpha, m.gate_distill_form))


@pytest.mark.parametrize("key,form", [("gate_distill_weight", "product"), ("gate_distill_weight", "cam"),
                                      ("tv_weight", None), ("flip_consistency_weight", None),
                                      ("scale_consistency_weight", None)])
def test_each_constraint_adds_its_term_with_its_weight(setup, monkeypatch, key, form):
    extra = {"gate_distill_form": form} if form else {}
    task, batch = _task(setup, **{key: 0.7}, **extra)
    task.eval()  # deterministic: BN running statistics
    seen, calls = _logged(task, monkeypatch), _calls(task, monkeypatch)
    loss = task._step(batch, "train")
    calls = list(calls)  # before `_expected`'s own passes
    name = TERMS[key]
    assert set(seen) == {"loss_eval", "loss_area", "loss_entropy", "map_mean", name}
    assert float(seen[name]) == pytest.approx(float(_expected(task, batch, key)), rel=1e-4, abs=1e-7)
    m = task.method_cfg
    base = m.eval_weight * seen["loss_eval"] + m.area_weight * seen["loss_area"] + m.entropy_weight * seen["loss_entropy"]
    assert loss.detach().item() == pytest.approx(float(base + 0.7 * seen[name]), rel=1e-6)
    # the extra passes record no gradient
    extra_pass = {"gate_distill_weight": [("cam", False)], "tv_weight": [],
                  "flip_consistency_weight": [("maps", False)], "scale_consistency_weight": [("maps", False)]}[key]
    assert calls == [("maps", True), *extra_pass]


def test_flip_consistency_is_zero_for_an_equivariant_generator(setup, monkeypatch):
    from ornet.models.generator import GeneratorOutput

    task, batch = _task(setup, flip_consistency_weight=1.0)
    task.eval()
    k = task.num_classes

    def pointwise(images):  # a per-pixel map of the 1/4 image: it commutes with the flip
        x = F.avg_pool2d(images.mean(dim=1, keepdim=True), 4)
        return GeneratorOutput(f_a=x.expand(-1, k, -1, -1), p_a=torch.sigmoid(x), attn_logits=None)

    monkeypatch.setattr(task.model, "maps", pointwise)
    seen = _logged(task, monkeypatch)
    task._step(batch, "train")
    assert float(seen["loss_flip"]) == pytest.approx(0.0, abs=1e-12)


def test_extra_passes_train_only_the_refined_layers_and_keep_running_statistics(setup, monkeypatch):
    every = {k: 0.5 for k in CONSTRAINT_WEIGHTS}
    task, batch = _task(setup, **every)
    task.train(True)
    _logged(task, monkeypatch)
    state = copy.deepcopy(task.state_dict())
    task._step(batch, "train").backward()
    refined = {id(p) for p in task.model.generator.refine_parameters()}
    with_grad = {id(p) for p in task.parameters() if p.grad is not None}
    assert with_grad == refined  # never the stem, the encoder or the evaluator
    stats_on = {n: b.clone() for n, b in task.named_buffers() if "running" in n or "num_batches" in n}
    # the same step without constraints: the same running statistics (one update, the main pass's)
    task.load_state_dict(state)
    for k in every:
        setattr(task.method_cfg, k, 0.0)
    task._step(batch, "train")
    stats_off = {n: b.clone() for n, b in task.named_buffers() if "running" in n or "num_batches" in n}
    assert stats_on.keys() == stats_off.keys()
    assert all(torch.equal(stats_on[n], stats_off[n]) for n in stats_on)
    assert any(not torch.equal(stats_on[n], state[n]) for n in stats_on)  # the main pass did update them


def test_gate_distillation_refused_without_a_cam(setup):
    cfg, dm, _ = setup
    from ornet.training.pipeline import build_task

    cfg = copy.deepcopy(cfg)
    cfg.model.evaluator = "mobilenet_v3_small"
    cfg.method.gate_distill_weight = 1.0
    with pytest.raises(OrnetError, match=r"method\.gate_distill_weight needs an evaluator whose head is GAP \+ Linear"):
        build_task(cfg, "refine", dm.num_classes, dm.classes)


# ---------------------------------------------------------------- a tiny run, every constraint on
TINY = ["--model.backbone", "resnet18", "--model.evaluator", "resnet18", "--model.generator_width", "8",
        "--data.resize", "72", "--data.crop", "64", "--data.batch_size", "4", "--data.eval_batch_size", "8",
        "--data.num_workers", "0", "--data.val_per_class", "2", "--trainer.accelerator", "cpu",
        "--trainer.devices", "1", "--trainer.limit_train_batches", "2", "--trainer.snapshot_images", "0",
        "--trainer.log_every_n_steps", "1", "--quiet"]


@pytest.mark.slow
def test_a_tiny_run_with_every_constraint_logs_each_term(tmp_path):
    from ornet.cli import main

    data = write_cub_tree(tmp_path / "cub", classes=3, per_class=7, size=(80, 72))
    out = tmp_path / "run"
    weights = [a for k in CONSTRAINT_WEIGHTS for a in (f"--method.{k}", "0.5")]
    assert main(["train", "--data.root", str(data), "--out", str(out), *TINY, *weights]) == 0
    with open(out / "logs" / "refine" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for split in ("train", "val"):
        for name in TERMS.values():
            values = [float(r[f"{split}/{name}"]) for r in rows if r.get(f"{split}/{name}")]
            assert values and all(math.isfinite(v) and v >= 0 for v in values), (split, name)
    assert json.loads((out / "metrics.json").read_text())["stages_run"] == ["evaluator", "coarse", "refine"]


# ---------------------------------------------------------------- the tuning sweep's variants
def test_the_issue_30_variants_are_valid_for_tune_py():
    tune = load_study("tune")
    runs = json.loads((ROOT / "benchmarks" / "studies" / "variants_issue30.json").read_text())
    names = [r["name"] for r in runs]
    assert len(names) == len(set(names))
    for run in runs:
        assert run["config"] == "configs/demo.yaml" and run["data"] == "objects"
        tune.check_variant({**run, "config": str(ROOT / run["config"])}, "objects", 5)
    # every constraint is swept, each at two weights at least
    for key in CONSTRAINT_WEIGHTS:
        swept = {r["overrides"].get(f"method.{key}") for r in runs} - {None, 0}
        assert len(swept) >= 2, key


def test_the_stem_skip_variants_are_valid_for_tune_py():
    tune = load_study("tune")
    runs = json.loads((ROOT / "benchmarks" / "studies" / "variants_issue30_stem.json").read_text())
    assert len({r["name"] for r in runs}) == len(runs)
    for run in runs:
        assert run["data"] == "objects_heldout"
        if run["config"] == "configs/demo.yaml":
            assert run["overrides"]["eval.cam_gate"] == []  # ORNet scored on its plain map
        tune.check_variant({**run, "config": str(ROOT / run["config"])}, "objects_heldout", 5)
    ornet = [r for r in runs if r["config"] == "configs/demo.yaml"]
    assert {r["overrides"].get("model.generator_stem_skip", "concat") for r in ornet} == {"concat", "none", "gated"}
    assert [r["config"] for r in runs if r not in ornet] == ["configs/demo_cam.yaml"]  # the bar to beat
