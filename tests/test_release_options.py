"""The release's behaviour as config keys: configs/cub_release.yaml, method.frozen_mode,
method.mask_upsample, model.reinit, data.val_per_class 0, eval.protocol (resolution and report)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ornet.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _cfg(*argv: str):
    from ornet.config.parse import make_parser, parse, to_run_config
    from ornet.methods import check_config

    parser = make_parser("ornet train", "")
    return check_config(to_run_config(parser, parse(parser, list(argv))))


def test_cub_release_preset_parses_to_the_releases_settings():
    cfg = _cfg("--config", str(CONFIGS / "cub_release.yaml"))
    assert (cfg.model.backbone, cfg.model.evaluator, cfg.model.generator_width) == ("resnet50", "vgg16", 64)
    assert (cfg.data.resize, cfg.data.crop, cfg.data.batch_size, cfg.data.val_per_class) == (256, 224, 16, 0)
    assert (cfg.evaluator.epochs, cfg.coarse.epochs, cfg.refine.epochs) == (200, 70, 30)
    assert (cfg.refine.optimizer, cfg.refine.lr, cfg.refine.scheduler) == ("adam", 1e-4, "cosine_step")
    m = cfg.method
    assert (m.frozen_mode, m.mask_upsample, m.area_form) == ("train", "nearest", "faithful")
    assert (m.area_weight, m.entropy_weight, m.area_topk, m.area_skip) == (0.02, 1.5, 25, 3)
    assert m.entropy_eps == torch.finfo(torch.float32).eps
    assert cfg.eval.protocol == "release" and cfg.eval.threshold_split == "test"
    assert cfg.trainer.precision == "32-true"


def test_every_setting_of_cub_release_names_its_source():
    """Each `key: value` line carries a comment (the release file it comes from, or `none`)."""
    for n, line in enumerate((CONFIGS / "cub_release.yaml").read_text().splitlines(), 1):
        if re.match(r"^\s*[\w]+:\s*\S", line) and not line.strip().startswith("#"):
            assert "#" in line, f"cub_release.yaml:{n} has no source comment: {line}"


def test_ilsvrc_preset_offers_the_layer4_fc_reinit():
    text = (CONFIGS / "ilsvrc_resnet50.yaml").read_text()
    assert "reinit: []" in text and "[layer4, fc]" in text
    cfg = _cfg("--config", str(CONFIGS / "ilsvrc_resnet50.yaml"), "--model.reinit", "[layer4, fc]")
    assert cfg.model.reinit == ["layer4", "fc"]


def test_protocol_release_chooses_the_threshold_on_test():
    cfg = _cfg("--eval.protocol", "release")
    assert cfg.eval.threshold_split == "test"
    assert _cfg().eval.protocol == "wsolevaluation" and _cfg().eval.threshold_split == "val"


def test_no_val_split_needs_the_threshold_on_test():
    with pytest.raises(ConfigError, match="data.val_per_class is 0"):
        _cfg("--data.val_per_class", "0")
    assert _cfg("--data.val_per_class", "0", "--eval.threshold_split", "test").data.val_per_class == 0
    assert _cfg("--data.val_per_class", "0", "--eval.protocol", "release").eval.threshold_split == "test"
    assert _cfg("--data.val_per_class", "0", "--stages", "[evaluator]").data.val_per_class == 0  # no maps


def test_nearest_mask_upsampling_is_the_releases_interpolate():
    from ornet.models.ornet_network import upsample_mask

    p = torch.rand(2, 1, 8, 8)
    assert torch.equal(upsample_mask(p, (32, 32), "nearest"), F.interpolate(p, size=(32, 32)))
    assert torch.equal(upsample_mask(p, (32, 32), "nearest")[0, 0, :4, :4], p[0, 0, 0, 0].expand(4, 4))
    bilinear = upsample_mask(p, (32, 32), "bilinear")
    assert not torch.equal(bilinear, F.interpolate(p, size=(32, 32)))


def _refine_task(frozen_mode: str):
    from ornet.config.schema import RunConfig, to_dict
    from ornet.methods.ornet.refine_stage import RefineTask

    cfg = RunConfig()
    cfg.model.backbone, cfg.model.evaluator, cfg.model.generator_width = "resnet18", "mobilenet_v3_small", 4
    cfg.method.frozen_mode = frozen_mode
    return RefineTask(to_dict(cfg), 3)


def test_frozen_mode_train_puts_every_part_in_train_mode_and_eval_keeps_frozen_ones_in_eval():
    task = _refine_task("train")
    task.train(True)
    assert task.model.stem.training and task.model.generator.down1.training and task.model.evaluator.training
    dropout = [m for m in task.model.evaluator.modules() if isinstance(m, torch.nn.Dropout)]
    assert dropout and all(m.training for m in dropout)
    task = _refine_task("eval")
    task.train(True)
    assert not task.model.stem.training and not task.model.generator.down1.training
    assert not task.model.evaluator.training and task.model.generator.up3.training
    # either way only the refined parameters learn
    trainable = {n for n, p in task.model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("generator.up2.", "generator.up3.", "generator.out_")) for n in trainable)


def test_reinit_gives_layer4_and_fc_fresh_values_and_keeps_the_rest():
    from ornet.models.ornet_network import ORNet
    from ornet.models.reinit import reinit_backbone

    torch.manual_seed(0)
    model = ORNet("resnet18", 5, evaluator=None, generator_width=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(1)
    changed = reinit_backbone(model, ["layer4", "fc"])
    after = model.state_dict()
    assert changed and all(k.startswith(("rest_head.rest.layer4.", "rest_head.head.")) for k in changed)
    assert {k for k in after if not torch.equal(after[k], before[k])} <= set(changed)
    assert not torch.equal(after["rest_head.head.classifier.weight"], before["rest_head.head.classifier.weight"])
    assert not torch.equal(after["rest_head.rest.layer4.0.conv1.weight"], before["rest_head.rest.layer4.0.conv1.weight"])
    assert torch.equal(after["rest_head.rest.layer3.0.conv1.weight"], before["rest_head.rest.layer3.0.conv1.weight"])
    with pytest.raises(ConfigError, match="'layer5' is not a layer of resnet18; its layers: conv1, bn1, layer1"):
        reinit_backbone(model, ["layer5"])


def test_coarse_stage_applies_reinit_after_the_backbone_weights(tmp_path):
    from ornet.config.schema import RunConfig, to_dict
    from ornet.methods.ornet.coarse_stage import CoarseTask
    from ornet.models.backbones import build_classifier

    torch.manual_seed(0)
    weights = build_classifier("resnet18", 3)
    path = tmp_path / "r18.pt"
    torch.save(weights.state_dict(), path)
    cfg = RunConfig()
    cfg.model.backbone, cfg.model.evaluator, cfg.model.generator_width = "resnet18", "resnet18", 4
    cfg.model.backbone_weights, cfg.model.reinit = str(path), ["layer4"]
    task = CoarseTask(to_dict(cfg), 3)
    own = task.model.state_dict()
    assert torch.equal(own["rest_head.rest.layer3.1.conv2.weight"], weights.state_dict()["rest.layer3.1.conv2.weight"])
    assert not torch.equal(own["rest_head.rest.layer4.1.conv2.weight"], weights.state_dict()["rest.layer4.1.conv2.weight"])


def test_report_says_which_protocol_and_that_the_threshold_was_chosen_on_test():
    from ornet.reports.run_report import render_report

    html = render_report({"protocol": "release", "threshold_split": "test", "split": "test", "top1_loc": 60.0,
                          "top1_loc_error": 40.0, "gt_known_loc": 80.0})
    assert "ORNet release&#x27;s protocol" in html and "chosen on the evaluated test split itself" in html
    assert "release prints the Top-1 / Top-5 Loc error" in html
    plain = render_report({"protocol": "wsolevaluation", "threshold_split": "val", "split": "test"})
    assert "chosen on the evaluated" not in plain and "wsolevaluation" in plain


def test_keep_best_test_hands_on_the_epoch_with_the_best_test_accuracy(tmp_path):
    """evaluator.keep best_test: the validation loop runs on the test split and the stage's
    checkpoint holds the epoch whose test accuracy was highest (the release's best_epoch.pth)."""
    import csv

    from conftest import write_cub_tree
    from ornet.cli import main as cli
    from ornet.training.pipeline import load_state

    data = write_cub_tree(tmp_path / "cub", classes=3, per_class=6, size=(48, 40), masks=False)
    out = tmp_path / "run"
    code = cli(["train", "--out", str(out), "--stages", "[evaluator]", "--data.root", str(data),
                "--model.evaluator", "mobilenet_v3_small", "--evaluator.epochs", "4", "--evaluator.lr", "0.05",
                "--evaluator.keep", "best_test", "--data.val_per_class", "0", "--data.resize", "40", "--data.crop", "32",
                "--data.batch_size", "4", "--data.num_workers", "0", "--trainer.accelerator", "cpu", "--quiet",
                "--trainer.keep_last_checkpoints", "true"])  # keeps evaluator-best.ckpt, compared below
    assert code == 0
    with open(out / "logs" / "evaluator" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("val/acc")]
    accs = [float(r["val/acc"]) for r in rows]
    assert len(accs) == 4  # one validation per epoch, on the 6 test images (val is empty)
    assert all(abs(a * 6 - round(a * 6)) < 1e-6 for a in accs)
    best = load_state(out / "checkpoints" / "evaluator-best.ckpt")
    kept = load_state(out / "checkpoints" / "evaluator.ckpt")
    assert best.keys() == kept.keys() and all(torch.equal(best[k], kept[k]) for k in best)
    with pytest.raises(ConfigError, match="evaluator.keep best_val needs a val split"):
        _cfg("--stages", "[evaluator]", "--evaluator.keep", "best_val", "--data.val_per_class", "0")
