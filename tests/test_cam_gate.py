"""The class gate (docs/method.md, "The class gate"): ORNet's map times its evaluator's CAM of the
class to a power, the exponent chosen on val with the threshold."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import write_cub_lists
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


def test_predict_gates_gives_each_gates_predict_from_one_forward(net):
    images = torch.randn(3, 3, 64, 64)
    labels = torch.tensor([2, 0, 1])
    alphas = [0.0, 0.25, 0.5, 2.0]
    with torch.no_grad():
        for own in (0.0, 0.5):  # the network's own gate is neither used nor changed
            net.set_cam_gate(own)
            for given in (labels, None):
                maps, logits = net.predict_gates(images, given, alphas)
                assert sorted(maps) == alphas and net.cam_gate == own
                for alpha in alphas:
                    net.set_cam_gate(alpha)
                    alone, alone_logits = net.predict(images, given)
                    assert torch.equal(maps[alpha], alone) and torch.equal(logits, alone_logits)
                net.set_cam_gate(own)
                assert not torch.allclose(maps[0.0], maps[0.5]) and not torch.allclose(maps[0.25], maps[0.5])
    net.set_cam_gate(0.0)
    with pytest.raises(OrnetError, match="GAP \\+ Linear.*None"):
        ORNet("resnet18", 3, evaluator=None, generator_width=8).eval().predict_gates(images, labels, [0.0, 0.5])
    maps, _ = ORNet("resnet18", 3, evaluator=None, generator_width=8).eval().predict_gates(images, labels, [0.0])
    assert list(maps) == [0.0]


@pytest.mark.slow
@pytest.mark.parametrize("fold", [True, False])
def test_the_gate_candidates_pass_sweeps_as_one_pass_per_gate_would(api_run, fold):
    """`run_gate_passes` (one forward per batch for every candidate) against `run_pass` after
    `set_cam_gate`, per candidate: the same counters at every threshold, box mode and IoU level."""
    import ornet
    from conftest import TINY_RUN
    from ornet.data.datamodule import WSOLDataModule
    from ornet.evaluation.split_runner import eval_trainer
    from ornet.evaluation.sweep_pass import run_gate_passes, run_pass
    from ornet.models.normalization import Normalization

    pre = json.loads((api_run / "model.json").read_text())["preprocessing"]
    cfg = ornet.load_config("demo", {**TINY_RUN, "data.root": api_run.parent / "data"})
    cfg.data.batch_size = cfg.data.eval_batch_size = 5  # several batches, the last one short
    dm = WSOLDataModule(cfg.data, normalization=Normalization(tuple(pre["mean"]), tuple(pre["std"])))
    trainer = eval_trainer(cfg, quiet=True)
    model = ornet.load_model(api_run, device="cpu").model.eval()
    together = run_gate_passes(trainer, model, dm, "test", cfg.eval, [0.0, 0.25, 0.5], fold_bn=fold)
    assert sorted(together) == [0.0, 0.25, 0.5] and model.cam_gate == json.loads(
        (api_run / "model.json").read_text())["localization"]["cam_gate"]
    for alpha, result in together.items():
        model.set_cam_gate(alpha)
        alone = run_pass(trainer, model, dm, "test", cfg.eval, fold_bn=fold).sweep
        assert result.split == "test" and result.sweep.num_images == alone.num_images == 12
        for counts in ("hits", "hits_top1", "hits_top5"):
            np.testing.assert_array_equal(getattr(result.sweep, counts), getattr(alone, counts))
    assert not np.array_equal(together[0.0].sweep.hits, together[0.5].sweep.hits)


@pytest.mark.slow
def test_one_folded_copy_serves_every_pass_of_an_evaluation(api_run, monkeypatch):
    """`folded_model`: the gate's pass and the passes after `set_cam_gate` share one folded copy (built
    and checked once, with the gate the model had then), and each pass still scores the model's
    current gate: the counters of separate, unfolded passes."""
    import ornet
    from conftest import TINY_RUN
    from ornet.data.datamodule import WSOLDataModule
    from ornet.evaluation.split_runner import eval_trainer
    from ornet.evaluation.sweep_pass import folded_model, run_gate_passes, run_pass
    from ornet.models import fold_bn
    from ornet.models.normalization import Normalization

    built = []
    real = fold_bn.folded_copy
    monkeypatch.setattr(fold_bn, "folded_copy", lambda m, run: built.append(type(m).__name__) or real(m, run))
    pre = json.loads((api_run / "model.json").read_text())["preprocessing"]
    cfg = ornet.load_config("demo", {**TINY_RUN, "data.root": api_run.parent / "data"})
    cfg.data.batch_size = cfg.data.eval_batch_size = 5
    dm = WSOLDataModule(cfg.data, normalization=Normalization(tuple(pre["mean"]), tuple(pre["std"])))
    trainer = eval_trainer(cfg, quiet=True)
    model = ornet.load_model(api_run, device="cpu").model.eval()
    model.set_cam_gate(0.0)
    shared = folded_model(model, True)
    together = run_gate_passes(trainer, model, dm, "test", cfg.eval, [0.0, 0.5], folded=shared)
    for alpha in (0.5, 0.0, 0.25):
        model.set_cam_gate(alpha)
        folded = run_pass(trainer, model, dm, "test", cfg.eval, folded=shared).sweep
        plain = run_pass(trainer, model, dm, "test", cfg.eval, fold_bn=False).sweep
        for counts in ("hits", "hits_top1", "hits_top5"):
            np.testing.assert_array_equal(getattr(folded, counts), getattr(plain, counts))
            if alpha in together:
                np.testing.assert_array_equal(getattr(together[alpha].sweep, counts), getattr(plain, counts))
    assert built == ["ORNet"]  # once, for the gate's pass; no copy for the unfolded passes
    assert shared.get(lambda m: None) is not model


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
    curves = json.loads((api_run / "curves.json").read_text())  # the chosen gate's val pass
    assert curves["split"] == "val" and scores[saved["cam_gate"]] == curves["accuracy"]["50"][curves["chosen_index"]]
    assert scores[saved["cam_gate"]] == max(curves["accuracy"]["50"])  # its best threshold on val
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


class _ChannelGate(nn.Module):
    """A stand-in for ORNet with a class gate: its map is one colour channel of the image, picked by
    the gate's exponent (0: red, 0.25: green, 0.5: blue); its logits say the label."""

    CHANNEL = {0.0: 0, 0.25: 1, 0.5: 2}

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))  # a device and a dtype for the Localizer
        self._gate = 0.0

    @property
    def cam_gate(self) -> float:
        return self._gate

    def set_cam_gate(self, alpha: float) -> None:
        self._gate = float(alpha)

    def predict_gates(self, images, labels, alphas):
        kept, maps = self._gate, {}
        for alpha in alphas:
            self._gate = alpha
            maps[alpha], logits = self.predict(images, labels)
        self._gate = kept
        return maps, logits

    def predict(self, images, labels=None):
        m = images[:, self.CHANNEL[self._gate]:self.CHANNEL[self._gate] + 1]
        lo, hi = m.amin(dim=(2, 3), keepdim=True), m.amax(dim=(2, 3), keepdim=True)
        labels = torch.zeros(len(images), dtype=torch.long) if labels is None else labels
        return (m - lo) / (hi - lo), F.one_hot(labels, 3).float() * 10 + self.weight


def _two_channel_set(root, per_class: int = 6, test_per_class: int = 2):
    """CUB layout, 3 classes, 64 x 64 PNGs: the object (the GT box) is bright in the blue channel of
    the training images (val is carved from them) and in the green one of the test images; the other
    channels light a decoy of the same size elsewhere, so a gate chosen on test would be another."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for sub in ("images", "segmentations"):
        (root / sub).mkdir(parents=True)
    images, labels, split, boxes = [], [], [], []
    (root / "classes.txt").write_text("".join(f"{c + 1} {c + 1:03d}.c{c}\n" for c in range(3)))
    for c in range(3):
        folder = f"{c + 1:03d}.c{c}"
        for sub in ("images", "segmentations"):
            (root / sub / folder).mkdir()
        for k in range(per_class + test_per_class):
            test = k >= per_class
            arr = rng.integers(0, 60, size=(64, 64, 3), dtype=np.uint8)
            x0, y0, w, h = int(rng.integers(2, 9)), int(rng.integers(4, 21)), int(rng.integers(16, 23)), int(rng.integers(16, 31))
            dx, dy = int(rng.integers(36, 41)), int(rng.integers(4, 21))
            true = 1 if test else 2
            arr[y0:y0 + h, x0:x0 + w, true] = 255
            for other in {0, 1, 2} - {true}:
                arr[dy:dy + h, dx:dx + w, other] = 255
            rel = f"{folder}/{'test' if test else 'train'}_{k}.png"
            Image.fromarray(arr).save(root / "images" / rel)
            mask = np.zeros((64, 64), np.uint8)
            mask[y0:y0 + h, x0:x0 + w] = 255
            Image.fromarray(mask).save(root / "segmentations" / rel)
            i = len(images) + 1
            images.append(f"{i} {rel}")
            labels.append(f"{i} {c + 1}")
            split.append(f"{i} {0 if test else 1}")
            boxes.append(f"{i} {x0} {y0} {w} {h}")
    return write_cub_lists(root, images, labels, split, boxes)


def test_the_gate_is_chosen_on_val_by_its_val_scores_and_reported_on_test(tmp_path):
    """The scores metrics.json reports are each candidate's GT-known at its best threshold on val,
    the gate taken is the best of them past the margin, and test never takes part in the choice:
    here val says blue (0.5: 100 points, the other candidates 0) and test says green (0.25)."""
    import ornet
    from ornet.inference.localizer import Localizer
    from ornet.runs.export import model_meta

    root = _two_channel_set(tmp_path / "set")
    cfg = ornet.load_config("demo", {"data.root": root, "data.resize": 64, "data.crop": 64,
                                     "model.backbone_weights": "none", "model.evaluator_weights": "none"})
    loc = Localizer(_ChannelGate(), model_meta(cfg, "ornet", ["a", "b", "c"], threshold=None))
    data = {"root": str(root), "name": "cub", "val_per_class": 2, "num_workers": 0}

    def evaluate(**eval_settings):
        e = {"cam_gate": [0.25, 0.5], "cam_gate_margin": 3.0, **eval_settings}
        return ornet.evaluate(loc, data=data, eval=e, quiet=True)

    result = evaluate()
    m = result.metrics
    assert m["cam_gate_split"] == "val" and m["threshold_split"] == "val"
    assert m["cam_gate_scores"] == {"0.0": 0.0, "0.25": 0.0, "0.5": 100.0}  # val's, not test's (0, 100, 0)
    assert m["cam_gate"] == 0.5 and m["gt_known_loc"] == 0.0  # reported on test, where blue shows the decoy
    curve = result.curves  # the val pass of the chosen gate: the score is its value at the chosen threshold
    assert curve["split"] == "val" and curve["accuracy"]["50"][curve["chosen_index"]] == m["cam_gate_scores"]["0.5"]
    assert m["val_gt_known_loc"] == 100.0  # the figure the choice was made on, beside the test figure
    assert curve["num_images"] == 6 and m["num_images"] == 6  # 2 val and 2 test images per class
    # the margin rule: a gate only when it beats no gate by more than the margin
    assert evaluate(cam_gate_margin=100.0).metrics["cam_gate"] == 0.0
    assert evaluate(cam_gate_margin=99.0).metrics["cam_gate"] == 0.5
    # chosen on test (eval.threshold_split: test, and said so) the same rule takes the other gate
    on_test = evaluate(threshold_split="test").metrics
    assert on_test["cam_gate_split"] == "test" and on_test["cam_gate"] == 0.25
    assert on_test["cam_gate_scores"] == {"0.0": 0.0, "0.25": 100.0, "0.5": 0.0} and on_test["gt_known_loc"] == 100.0
    assert "val_gt_known_loc" not in on_test  # val took no part
