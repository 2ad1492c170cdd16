"""A NaN / Inf in training stops the stage with a message naming stage, epoch, step and terms,
exit code 2, one stderr line, and the last good `<stage>-last.ckpt` left as it was."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from conftest import write_cub_tree
from ornet.cli import main
from ornet.errors import TrainingDiverged
from ornet.runtime.guards import check_loss_terms, check_parameters, where

TINY = ["--model.backbone", "mobilenet_v3_small", "--model.evaluator", "mobilenet_v3_small",
        "--model.generator_width", "8", "--data.resize", "40", "--data.crop", "32", "--data.batch_size", "4",
        "--data.eval_batch_size", "8", "--data.num_workers", "0", "--data.val_per_class", "2",
        "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.snapshot_images", "0", "--quiet"]
STEPS = 3  # training batches per epoch of the data below


def _t(v: float) -> torch.Tensor:
    return torch.tensor(v)


def test_where_counts_epochs_and_steps_from_one():
    assert where("refine", 1, 3, 16) == "stage refine, epoch 2/3, step 17"
    assert where("cam", 0, None, 0) == "stage cam, epoch 1, step 1"


@pytest.mark.parametrize("terms, message", [
    ({"loss": _t(math.nan), "loss_eval": _t(1.0), "loss_entropy": _t(math.nan)},
     "at: loss term loss_entropy (L_we) is nan"),
    ({"loss": _t(math.inf), "loss_eval": _t(math.inf), "loss_area": _t(-math.inf), "loss_entropy": _t(0.3)},
     "at: loss terms loss_eval (L_e) is inf, loss_area (L_a) is -inf"),
    ({"loss": _t(math.nan), "loss_main": _t(1.0), "loss_attn": _t(2.0)}, "at: the loss is nan (every term is finite)"),
    ({"loss": _t(math.inf)}, "at: the loss is inf"),
])
def test_non_finite_loss_terms_are_named(terms, message):
    with pytest.raises(TrainingDiverged) as e:
        check_loss_terms(terms, "at")
    assert str(e.value) == message


def test_finite_terms_and_parameters_pass():
    check_loss_terms({"loss": _t(2.0), "loss_main": _t(1.0), "loss_attn": _t(1.0)}, "at")
    check_parameters(torch.nn.BatchNorm2d(3), "at")


def test_non_finite_parameters_and_buffers_are_named():
    bn = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.BatchNorm2d(2))
    with torch.no_grad():
        bn[1].running_var[0] = math.inf
        bn[0].weight[0, 0, 0, 0] = math.nan
    with pytest.raises(TrainingDiverged, match=r"^at: parameters are not finite \(0.weight, 1.running_var\)$"):
        check_parameters(bn, "at")


def test_under_ddp_every_process_stops_at_the_same_step():
    """`agree` combines the verdicts: a process whose own terms are finite stops too."""
    finite = {"loss": _t(1.0)}
    check_loss_terms(finite, "at", agree=lambda ok: ok)  # everyone fine
    with pytest.raises(TrainingDiverged, match=r"^at: a loss term is not finite on another process$"):
        check_loss_terms(finite, "at", agree=lambda ok: False)
    with pytest.raises(TrainingDiverged, match=r"^at: the loss is nan$"):
        check_loss_terms({"loss": _t(math.nan)}, "at", agree=lambda ok: False)
    with pytest.raises(TrainingDiverged, match=r"^at: parameters are not finite on another process$"):
        check_parameters(torch.nn.Linear(2, 2), "at", agree=lambda ok: False)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_cub_tree(tmp_path_factory.mktemp("data") / "cub", classes=3, per_class=10, size=(48, 40))


@pytest.mark.slow
def test_an_absurd_learning_rate_stops_training_with_exit_2(tmp_path, data, capsys):
    out = tmp_path / "run"
    code = main(["train", "--data.root", str(data), "--out", str(out), *TINY, "--stages", "[coarse]",
                 "--coarse.epochs", "2", "--coarse.lr", "1e30"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("ornet train: error: stage coarse, epoch 1/2, step ")
    assert "loss_main (CE(y_hat, y)) is nan" in err and "no checkpoint of stage coarse was written" in err
    assert not (out / "checkpoints" / "coarse.ckpt").exists() and not (out / "metrics.json").exists()


@pytest.mark.slow
def test_a_nan_in_stage_2_keeps_the_last_good_checkpoint(tmp_path, data, capsys, monkeypatch):
    """L_we turns NaN at refine's 5th training step (epoch 2): refine-last.ckpt of epoch 1 stays."""
    import ornet.methods.ornet.refine_stage as refine

    calls = {"train": 0}
    real = refine.weighted_entropy

    def weighted_entropy(*args, **kwargs):
        value = real(*args, **kwargs)
        if torch.is_grad_enabled():  # training steps (validation runs without gradients)
            calls["train"] += 1
            if calls["train"] == STEPS + 2:
                return value * math.nan
        return value

    monkeypatch.setattr(refine, "weighted_entropy", weighted_entropy)
    out = tmp_path / "run"
    code = main(["train", "--data.root", str(data), "--out", str(out), *TINY, "--evaluator.epochs", "1",
                 "--coarse.epochs", "1", "--refine.epochs", "2"])
    err = capsys.readouterr().err
    last = out / "checkpoints" / "refine-last.ckpt"
    assert code == 2, err
    assert err.strip().splitlines() == [
        f"ornet train: error: stage refine, epoch 2/2, step {STEPS + 2}: loss term loss_entropy (L_we) is nan; "
        f"training stopped, {last} (written at the end of epoch 1) is left as it was"]
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 0 and ckpt["global_step"] == STEPS
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())
    assert not (out / "checkpoints" / "refine.ckpt").exists() and not (out / "model.safetensors").exists()


@pytest.mark.slow
def test_parameters_diverged_at_the_end_of_an_epoch_are_not_checkpointed(tmp_path, data, capsys, monkeypatch):
    """A parameter turns NaN after coarse's last step (no later loss would show it): no checkpoint of it."""
    from lightning.pytorch.callbacks import Callback

    import ornet.training.pipeline as pipeline

    class Corrupt(Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.global_step == 2 * STEPS:
                with torch.no_grad():
                    p = next(pl_module.model.generator.parameters())
                    p[(0,) * p.dim()] = math.nan  # any layout (the weights are channels-last)

    build = pipeline.build_trainer
    monkeypatch.setattr(pipeline, "build_trainer", lambda cfg, stage, out, quiet=False, callbacks=None, **kw: build(
        cfg, stage, out, quiet, [*(callbacks or []), Corrupt()], **kw))
    out = tmp_path / "run"
    code = main(["train", "--data.root", str(data), "--out", str(out), *TINY, "--stages", "[coarse]",
                 "--coarse.epochs", "2"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith(f"ornet train: error: stage coarse, epoch 2/2, step {2 * STEPS}: parameters are not "
                          "finite (model.generator.")
    ckpt = torch.load(out / "checkpoints" / "coarse-last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 0 and ckpt["global_step"] == STEPS
    assert not (out / "checkpoints" / "coarse.ckpt").exists()
