"""The training speed settings (issue 28): `trainer.validate`, `trainer.channels_last`, and the
size estimate that no longer builds timm networks twice. Each changes time, not what is trained."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import write_cub_tree
from ornet.cli import main

pytestmark = pytest.mark.slow

TINY = ["--model.backbone", "mobilenet_v3_small", "--data.resize", "40", "--data.crop", "32", "--data.batch_size", "4",
        "--data.eval_batch_size", "8", "--data.num_workers", "0", "--data.val_per_class", "2",
        "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.limit_train_batches", "2",
        "--stages", "[cam]", "--cam.epochs", "3", "--quiet"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_cub_tree(tmp_path_factory.mktemp("data") / "cub", classes=3, per_class=7, size=(48, 40))


def _train(data: Path, out: Path, *flags: str) -> Path:
    assert main(["train", "--data.root", str(data), "--out", str(out), *TINY, *flags]) == 0
    return out


def _val_epochs(out: Path) -> list[int]:
    """The epochs whose validation pass logged `val/acc` (logs/cam/metrics.csv)."""
    with open(out / "logs" / "cam" / "metrics.csv", newline="") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f) if row.get("val/acc")]


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / "checkpoints" / "cam.ckpt", map_location="cpu", weights_only=True)["state_dict"]


def test_validation_runs_after_the_last_epoch_only_or_never_and_trains_the_same_weights(data, tmp_path):
    last = _train(data, tmp_path / "last")  # the default: trainer.validate last_epoch
    every = _train(data, tmp_path / "every", "--trainer.validate", "every_epoch")
    assert _val_epochs(last) == [2]
    assert _val_epochs(every) == [0, 1, 2]
    a, b = _weights(last), _weights(every)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # validation changes no weight
    # never: no stage validation, the same weights, and the run's evaluation still chooses on val
    never = _train(data, tmp_path / "never", "--trainer.validate", "never")
    assert _val_epochs(never) == []
    b = _weights(never)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ma, mb = (json.loads((out / "metrics.json").read_text()) for out in (last, never))
    assert ma["threshold_split"] == mb["threshold_split"] == "val"
    assert ma["gt_known_loc"] == mb["gt_known_loc"] and ma["threshold"] == mb["threshold"]


def test_a_stage_that_keeps_its_best_epoch_validates_every_epoch(data, tmp_path):
    best = _train(data, tmp_path / "best", "--cam.keep", "best_val")
    assert _val_epochs(best) == [0, 1, 2]
    best = _train(data, tmp_path / "best_never", "--cam.keep", "best_val", "--trainer.validate", "never")
    assert _val_epochs(best) == [0, 1, 2]


def test_channels_last_is_the_layout_of_the_trained_network(data, tmp_path):
    cl = _weights(_train(data, tmp_path / "cl"))  # the default: trainer.channels_last true
    plain = _weights(_train(data, tmp_path / "plain", "--trainer.channels_last", "false"))
    convs = [k for k, v in cl.items() if v.dim() == 4]
    assert convs and all(cl[k].is_contiguous(memory_format=torch.channels_last) for k in convs)
    # a 1x1 kernel or a depthwise one ([C, 1, k, k]) is both layouts at once; every other one is channels-last only
    assert not any(cl[k].is_contiguous() for k in convs if cl[k].shape[1] > 1 and cl[k].shape[-1] > 1)
    assert all(plain[k].is_contiguous() for k in convs)
    # the same training up to float rounding: other kernels, the same weights to a few decimals
    assert max((cl[k] - plain[k]).abs().max().item() for k in convs) < 1e-3


def test_keep_freed_memory_is_set_as_the_key_says_and_trains_the_same_weights(data, tmp_path, monkeypatch):
    from ornet.runtime import heap

    calls = []
    real = heap.keep_freed_memory
    monkeypatch.setattr(heap, "keep_freed_memory", lambda: calls.append(True) or real())
    off = _weights(_train(data, tmp_path / "off", "--trainer.keep_freed_memory", "false"))
    assert calls == []
    on = _weights(_train(data, tmp_path / "on"))  # the default: true
    assert calls == [True]
    assert off.keys() == on.keys() and all(torch.equal(off[k], on[k]) for k in off)  # where memory comes from only
    # `ornet evaluate` reads the same key (its passes allocate the eval batch's activations)
    evaluate = ["evaluate", str(tmp_path / "on"), "--split", "test", "--quiet"]
    assert main([*evaluate, "--out", str(tmp_path / "e_off"), "--trainer.keep_freed_memory", "false"]) == 0
    assert calls == [True]
    assert main([*evaluate, "--out", str(tmp_path / "e_on")]) == 0
    assert calls == [True, True]
    a, b = (json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("e_off", "e_on"))
    assert a["gt_known_loc"] == b["gt_known_loc"] == json.loads((tmp_path / "on" / "metrics.json").read_text())[
        "gt_known_loc"]
    # `ornet localize` too, with its own flag (on by default). The setting is process-wide and the training above
    # made it here, so this checks the flag's wiring and equal outputs; that the setting changes no number: the
    # weights above, trained off before on
    localize = ["localize", str(tmp_path / "on"), str(data / "images"), "--quiet", "--save-maps"]
    assert main([*localize, "--out", str(tmp_path / "l_off"), "--no-keep-freed-memory"]) == 0
    assert calls == [True, True]
    assert main([*localize, "--out", str(tmp_path / "l_on")]) == 0
    assert calls == [True, True, True]
    a, b = (json.loads((tmp_path / name / "boxes.json").read_text())["images"] for name in ("l_off", "l_on"))
    assert len(a) == 21 and a == b
    maps = sorted((tmp_path / "l_on" / "maps").glob("*.npy"))
    assert len(maps) == 21
    assert all(np.array_equal(np.load(m), np.load(tmp_path / "l_off" / "maps" / m.name)) for m in maps)


def test_use_channels_last_keeps_values_and_outputs():
    from ornet.models.backbones import build_classifier
    from ornet.models.memory_format import use_channels_last

    torch.manual_seed(0)
    net = build_classifier("resnet18", 5, "none").eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = net(x)
        use_channels_last(net)
        assert net.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
        got = net(x)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-4)
    use_channels_last(net, False)
    assert net.stem[0].weight.is_contiguous()


def test_timm_networks_are_sized_without_a_meta_probe():
    """A timm backbone's split needs a probe forward with values: on the meta device it refuses at
    once (NotImplementedError), so the size estimate builds it on the CPU only once."""
    from ornet.models.timm_backbones import split_timm

    with torch.device("meta"), pytest.raises(NotImplementedError, match="meta device"):
        split_timm("efficientnet_lite0", 4, cam=False, stride16=False)


def test_under_bf16_autocast_the_map_and_the_area_loss_stay_float32():
    """`trainer.precision: bf16-mixed`: convolutions in bfloat16, but p_a (the entropy and area
    losses read it) and the area term in float32; in float32 runs nothing changes."""
    from ornet.methods.ornet.losses import area_loss
    from ornet.models.generator import ActivationMapGenerator

    torch.manual_seed(0)
    gen = ActivationMapGenerator(16, 5, 8).eval()
    f_c = torch.randn(2, 16, 32, 32)
    with torch.no_grad():
        plain = gen(f_c)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = gen(f_c)
            loss = area_loss(mixed.p_a, mixed.f_a, torch.rand(2, 5), topk=4, skip=1)
    assert plain.p_a.dtype == torch.float32 and mixed.f_a.dtype == torch.bfloat16
    assert mixed.p_a.dtype == torch.float32 and loss.dtype == torch.float32
    assert (mixed.p_a - plain.p_a).abs().max() < 0.05  # bfloat16 convolutions: close, not equal


ORNET_TINY = ["--model.backbone", "mobilenet_v3_small", "--model.evaluator", "mobilenet_v3_small", "--model.generator_width", "8",
              "--data.resize", "40", "--data.crop", "32", "--data.batch_size", "4", "--data.eval_batch_size", "8",
              "--data.num_workers", "0", "--data.val_per_class", "2", "--trainer.accelerator", "cpu",
              "--trainer.devices", "1", "--trainer.limit_train_batches", "2", "--trainer.snapshot_images", "0",
              "--evaluator.epochs", "1", "--coarse.epochs", "1", "--refine.epochs", "2", "--quiet"]


def test_folded_batch_norms_train_and_evaluate_as_the_unfolded_network(data, tmp_path, monkeypatch):
    """`trainer.fold_frozen_bn`: stage 2's evaluator and the evaluation passes run a folded copy; the
    refined weights equal the unfolded run's up to float rounding, and the metrics are the same."""
    import shutil

    from ornet.models import fold_bn

    built = []
    real = fold_bn.folded_copy
    monkeypatch.setattr(fold_bn, "folded_copy", lambda m, run: built.append(type(m).__name__) or real(m, run))
    run = tmp_path / "run"
    assert main(["train", "--data.root", str(data), "--out", str(run), *ORNET_TINY]) == 0
    assert built == ["SplitClassifier", "ORNet"]  # stage 2's evaluator once; the evaluation's passes share one
    plain = tmp_path / "plain"
    shutil.copytree(run, plain)
    refine = ["--stages", "[refine]"]
    built.clear()
    assert main(["train", "--data.root", str(data), "--out", str(plain), *ORNET_TINY, *refine,
                 "--trainer.fold_frozen_bn", "false"]) == 0
    assert built == []  # off: nothing folded
    assert main(["train", "--data.root", str(data), "--out", str(run), *ORNET_TINY, *refine]) == 0
    a = torch.load(run / "checkpoints" / "refine.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    b = torch.load(plain / "checkpoints" / "refine.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    assert max((a[k].float() - b[k].float()).abs().max().item() for k in a) < 1e-3
    import json

    m_fold, m_plain = (json.loads((r / "metrics.json").read_text()) for r in (run, plain))
    for key in ("gt_known_loc", "top1_cls", "max_box_acc_v2", "threshold"):
        assert m_fold[key] == m_plain[key], key
