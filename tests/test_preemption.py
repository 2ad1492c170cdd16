"""SIGTERM and Ctrl+C handling and checkpoint writing of `ornet train` (fast, in-process parts).

The end-to-end cases (SIGTERM and Ctrl+C from outside mid-step, SIGKILL, exact resume) are in
test_resume_kill.py; here: the handlers outside training and restored afterwards, a SIGTERM
during validation, Ctrl+C once and twice in a run, the atomic checkpoint writer under
SIGKILL, and unreadable checkpoints on resume.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest
import torch

from conftest import write_cub_tree
from ornet.cli import main
from ornet.errors import Interrupted, OrnetError, Preempted
from ornet.runtime import preemption
from ornet.runtime.atomic import stale_temporaries

TINY = ["--model.backbone", "mobilenet_v3_small", "--model.evaluator", "mobilenet_v3_small",
        "--model.generator_width", "8", "--data.resize", "40", "--data.crop", "32", "--data.batch_size", "4",
        "--data.eval_batch_size", "8", "--data.num_workers", "0", "--data.val_per_class", "2",
        "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.snapshot_images", "0", "--quiet"]
main_thread_only = pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                                      reason="signal handlers can only be installed in the main thread")


@main_thread_only
def test_outside_training_sigterm_stops_at_once_and_the_handler_is_restored():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Preempted) as e, preemption.handling():
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # the handler runs between bytecodes, right after the signal
            pass
    assert e.value.exit_code == 143 and "SIGTERM" in str(e.value)
    assert signal.getsignal(signal.SIGTERM) == before and not preemption.requested()


@main_thread_only
def test_outside_training_ctrl_c_stops_at_once_and_both_handlers_are_restored():
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with pytest.raises(Interrupted) as e, preemption.handling():
        assert signal.getsignal(signal.SIGINT) is preemption._handler
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):
            pass
    assert e.value.exit_code == 130 and str(e.value) == "Ctrl+C outside training (completed stages are kept)"
    assert {s: signal.getsignal(s) for s in before} == before and not preemption.requested()


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_cub_tree(tmp_path_factory.mktemp("data") / "cub", classes=3, per_class=10, size=(48, 40))


def _sigterm_in_validation(monkeypatch, epoch: int) -> None:
    """SIGTERM to this process at the first validation batch of `epoch` (1-based)."""
    from lightning.pytorch.callbacks import Callback

    import ornet.training.pipeline as pipeline

    class Term(Callback):
        def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
            if trainer.current_epoch == epoch - 1 and batch_idx == 0:
                os.kill(os.getpid(), signal.SIGTERM)

    build = pipeline.build_trainer
    monkeypatch.setattr(pipeline, "build_trainer", lambda cfg, stage, out, quiet=False, callbacks=None, **kw: build(
        cfg, stage, out, quiet, [*(callbacks or []), Term()], **kw))


@main_thread_only
@pytest.mark.slow
@pytest.mark.parametrize("epoch", [1, 2])
def test_sigterm_during_validation_stops_at_the_epoch_boundary(tmp_path, data, capsys, monkeypatch, epoch):
    """Validation finishes, the end-of-epoch checkpoint is written, then the run stops (exit 143)."""
    _sigterm_in_validation(monkeypatch, epoch)
    out = tmp_path / "run"
    code = main(["train", "--data.root", str(data), "--out", str(out), *TINY, "--stages", "[coarse]",
                 "--coarse.epochs", "2", "--trainer.validate", "every_epoch"])  # validation after epoch 1 too
    err = capsys.readouterr().err.strip().splitlines()
    last, final = out / "checkpoints" / "coarse-last.ckpt", out / "checkpoints" / "coarse.ckpt"
    assert code == 143 and len(err) == 1, err
    resume = f"; continue with: ornet train --out {out} --resume"
    if epoch == 1:
        assert err[0] == f"ornet train: stopped: SIGTERM during stage coarse, after epoch 1: its state is in {last}" \
            + resume
        assert not final.exists()
    else:  # the stage's last epoch: the stage completes (its -last file goes), the run stops before evaluating
        assert err[0] == f"ornet train: stopped: SIGTERM during stage coarse, which completed ({final})" + resume
        assert final.is_file() and not last.exists() and not (out / "metrics.json").exists()
        return
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == epoch - 1 and ckpt["callbacks"]["ReproducibleEpochs[coarse]"] == {"epoch": epoch,
                                                                                               "batches": 0}
    assert signal.getsignal(signal.SIGTERM) is not preemption._handler  # restored after the run


def _ctrl_c_at(monkeypatch, step: int, times: int) -> None:
    """Ctrl+C (SIGINT to this process) `times` times at the start of training step `step`."""
    from lightning.pytorch.callbacks import Callback

    import ornet.training.pipeline as pipeline

    class CtrlC(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_step == step:
                for _ in range(times):
                    os.kill(os.getpid(), signal.SIGINT)
                    for _ in range(1000):  # the handler runs between bytecodes
                        pass

    build = pipeline.build_trainer
    monkeypatch.setattr(pipeline, "build_trainer", lambda cfg, stage, out, quiet=False, callbacks=None, **kw: build(
        cfg, stage, out, quiet, [*(callbacks or []), CtrlC()], **kw))


@main_thread_only
@pytest.mark.slow
def test_ctrl_c_saves_after_the_batch_and_a_run_leaves_the_signal_handlers_as_it_found_them(tmp_path, data, capsys,
                                                                                            monkeypatch):
    signals = (signal.SIGINT, signal.SIGTERM)
    before = {s: signal.getsignal(s) for s in signals}
    out = tmp_path / "run"
    args = ["train", "--data.root", str(data), "--out", str(out), *TINY, "--stages", "[coarse]", "--coarse.epochs", "2"]
    assert main(["train", "--data.root", str(data), "--out", str(tmp_path / "plain"), *TINY, "--stages", "[cam]",
                 "--cam.epochs", "1"]) == 0
    assert {s: signal.getsignal(s) for s in signals} == before  # after a run that ended normally
    capsys.readouterr()  # that run's warning: CAM does not read TINY's ORNet settings
    _ctrl_c_at(monkeypatch, step=4, times=1)  # coarse: 3 batches per epoch, so batch 2 of epoch 2
    assert main(args) == 130
    err = capsys.readouterr().err.strip().splitlines()
    last = out / "checkpoints" / "coarse-last.ckpt"
    assert err == [f"ornet train: interrupted: Ctrl+C during stage coarse, epoch 2/2, step 5 (batch 2 of the epoch): "
                   f"saved {last}; continue with: ornet train --out {out} --resume"]
    assert {s: signal.getsignal(s) for s in signals} == before  # Ctrl+C works again: not left ignored
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 5 and ckpt["callbacks"]["ReproducibleEpochs[coarse]"] == {"epoch": 1, "batches": 2}
    monkeypatch.undo()
    assert main(["train", "--out", str(out), "--resume", "--quiet"]) == 0
    assert (out / "checkpoints" / "coarse.ckpt").is_file() and not last.exists()


@main_thread_only
@pytest.mark.slow
def test_a_second_ctrl_c_stops_at_once_keeping_the_last_checkpoint(tmp_path, data, capsys, monkeypatch):
    before = signal.getsignal(signal.SIGINT)
    out = tmp_path / "run"
    _ctrl_c_at(monkeypatch, step=4, times=2)
    assert main(["train", "--data.root", str(data), "--out", str(out), *TINY, "--stages", "[coarse]",
                 "--coarse.epochs", "2"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    last = out / "checkpoints" / "coarse-last.ckpt"
    assert err == [f"ornet train: interrupted: a second Ctrl+C: stopped at once during stage coarse; {last} (written "
                   f"at the end of epoch 1) is left as it was; continue with: ornet train --out {out} --resume"]
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 3  # the end of epoch 1
    assert signal.getsignal(signal.SIGINT) == before and not list(out.rglob(".*.tmp"))


def test_the_checkpoint_writer_killed_mid_write_leaves_the_previous_checkpoint(tmp_path):
    """SIGKILL while `torch.save` is writing a checkpoint: the old file is intact and loads."""
    from ornet.runtime.resume import AtomicCheckpointIO

    path = tmp_path / "coarse-last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"epoch": 0, "state_dict": {"w": torch.ones(3)}}, path)

    def half_then_die(obj, f, *args, **kwargs):  # f: the file object the checkpoint writer passes
        f.write(b"PK\x03\x04 half a zip")
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    pid = os.fork()  # a child process that dies in the middle of writing
    if pid == 0:
        try:
            torch.save = half_then_die
            AtomicCheckpointIO().save_checkpoint({"epoch": 1}, path)
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == -signal.SIGKILL
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 0 and torch.equal(ckpt["state_dict"]["w"], torch.ones(3))
    assert len(stale_temporaries(tmp_path)) == 1  # removed by the next `--resume`


def test_trainers_write_checkpoints_atomically(tmp_path):
    from ornet.config.schema import RunConfig
    from ornet.runtime.resume import AtomicCheckpointIO
    from ornet.training.pipeline import build_trainer

    cfg = RunConfig()
    cfg.trainer.accelerator, cfg.trainer.devices = "cpu", 1
    trainer = build_trainer(cfg, "coarse", tmp_path, quiet=True, logger=False)
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated", b"not a checkpoint"])
def test_an_unreadable_last_checkpoint_is_named_with_what_to_do(tmp_path, content):
    from ornet.runtime.resume import check_resume_checkpoint

    path = tmp_path / "coarse-last.ckpt"
    path.write_bytes(content)
    with pytest.raises(OrnetError, match=r"^cannot resume: .*coarse-last\.ckpt.*; delete it to restart stage "
                                         r"coarse from its beginning$"):
        check_resume_checkpoint(path, "coarse")


def test_a_checkpoint_of_another_stage_is_not_resumed(tmp_path):
    from ornet.runtime.resume import check_resume_checkpoint

    path = tmp_path / "coarse-last.ckpt"
    torch.save({"hyper_parameters": {"stage": "refine"}, "state_dict": {}, "optimizer_states": []}, path)
    with pytest.raises(OrnetError, match=r"not a stage-coarse training checkpoint \(stage 'refine'\)"):
        check_resume_checkpoint(path, "coarse")


def test_loader_workers_survive_a_sigterm_sent_to_the_whole_job(cub_tree):
    """SLURM signals every process of a job; a dead worker would crash the graceful stop."""
    import time

    from ornet.config.schema import DataConfig
    from ornet.data.datamodule import WSOLDataModule

    dm = WSOLDataModule(DataConfig(root=str(cub_tree), resize=40, crop=32, batch_size=2, val_per_class=1,
                                   num_workers=1))
    batches = iter(dm.train_dataloader())
    next(batches)
    workers = batches._workers  # torch's worker processes (private attribute: test only)
    for w in workers:
        os.kill(w.pid, signal.SIGTERM)
    time.sleep(0.3)
    assert all(w.is_alive() for w in workers)
    assert next(batches).images.shape[0] == 2  # still serving
