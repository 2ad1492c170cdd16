"""A full disk is an error, not a bug (`ornet.runtime.diskspace`), and a run's checkpoints are sized first.

- every writer's full-disk failure becomes one `DiskFull` line naming the file, the bytes it
  needed (when known) and the bytes free, with the destination left as it was: injected at the
  write layer (`fsutil._commit`, the flush-and-rename that ends every write) for each writer of
  a training run, and real on small tmpfs mounts (skipped where mounting is not allowed);
- a run stopped by a full disk continues with `--resume` once space is freed, to the result of
  a run that never stopped;
- `training/stage_sizes.expected_sizes` matches the checkpoint files a tiny run writes.
"""

from __future__ import annotations

import errno
import json
import os
import re
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import write_cub_tree
from ornet.cli import main
from ornet.errors import DiskFull
from ornet.runtime.atomic import atomic_path, stale_temporaries, write_npy_atomic, write_text_atomic
from ornet.runtime.diskspace import disk_full_error, free_bytes, human, is_disk_full

MB = 1_000_000


def inject(monkeypatch, name: str, nth: int = 1, code: int = errno.ENOSPC) -> list[int]:
    """The `nth` write of a file called `name` fails at its flush with `code`; returns a counter."""
    import ornet.runtime.atomic as fsutil

    commit, seen = fsutil._commit, [0]

    def failing(tmp, path, fsync):
        if Path(path).name == name:
            seen[0] += 1
            if seen[0] == nth:
                raise OSError(code, os.strerror(code), str(tmp))
        return commit(tmp, path, fsync)

    monkeypatch.setattr(fsutil, "_commit", failing)
    return seen


# --- the message ------------------------------------------------------------------------------------

def test_human_sizes():
    assert [human(n) for n in (0, 999, 1000, 1_234_567, 185_234_567, 12 * 10**9)] == [
        "0 bytes", "999 bytes", "1.0 kB", "1.2 MB", "185.2 MB", "12.0 GB"]


def test_full_disk_errors_are_recognised_however_the_writer_says_it(tmp_path):
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    # safetensors (Rust): the OS message inside its own exception
    assert is_disk_full(RuntimeError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, '
                                     'message: "No space left on device" })'))
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598") from None
    except RuntimeError as e:
        assert is_disk_full(e)  # through the exception's context
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_disk_full(RuntimeError("unexpected pos 704 vs 598"))
    e = disk_full_error(tmp_path / "x.ckpt", OSError(errno.EDQUOT, "Disk quota exceeded"), needed=2_500_000)
    assert str(e) == f"disk quota exceeded writing {tmp_path / 'x.ckpt'} (needs 2.5 MB, {human(e.free)} free)"
    assert e.needed == 2_500_000 and e.path == str(tmp_path / "x.ckpt")
    assert abs(e.free - free_bytes(tmp_path)) < 10**9  # the file system's free bytes (others write meanwhile)


def test_an_atomic_write_on_a_full_disk_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    path.write_text("old\n")
    inject(monkeypatch, "metrics.json")
    with pytest.raises(DiskFull) as e:
        write_text_atomic(path, "new content\n")
    assert str(e.value).startswith(f"no space left on the device writing {path} (needs 12 bytes, ")
    assert path.read_text() == "old\n" and stale_temporaries(tmp_path) == []


def test_the_peak_of_the_checkpoints_by_hand():
    from ornet.runtime.disk_use import StageSize, peak_bytes

    sizes = {"a": StageSize(final=10, last=30), "b": StageSize(final=20, last=50, best=20)}
    # a: old and new -last side by side (60); b: a's final + two -last + its -best (10 + 100 + 20)
    assert peak_bytes(sizes, keep_last=False) == 130
    # kept -last files: a's 40 stay, then b: 40 + 100 + 20; at the end 10 + 30 + 20 + 50 + 20 = 130
    assert peak_bytes(sizes, keep_last=True) == 160
    # a resumed: its -last exists already, one more copy at a time (max(30, 30 + 10) = 40); b as before
    assert peak_bytes(sizes, keep_last=False, present={"a": True}) == 130
    assert peak_bytes({"a": StageSize(final=10, last=30)}, keep_last=False, present={"a": True}) == 40


# --- real full disks: each kind of writer ------------------------------------------------------------------

def _fill(folder: Path, leave: int) -> None:
    """Fill the tmpfs at `folder` until about `leave` bytes are free."""
    free = free_bytes(folder)
    if free > leave:
        with open(folder / "filler", "wb") as f:
            f.write(b"\0" * (free - leave))


def test_real_full_disk_for_each_kind_of_writer(small_disk):
    from PIL import Image

    from ornet.runs.export import export_model, model_meta
    from ornet.runtime.resume import AtomicCheckpointIO, tensor_bytes

    disk = small_disk.make(3 * MB)
    _fill(disk, 200_000)
    ckpt = {"state_dict": {"w": torch.zeros(400_000)}, "epoch": 1}
    with pytest.raises(DiskFull) as e:  # torch.save says "unexpected pos": the recorded OSError tells
        AtomicCheckpointIO().save_checkpoint(ckpt, disk / "checkpoints" / "coarse-last.ckpt")
    assert re.fullmatch(rf"no space left on the device writing {disk}/checkpoints/coarse-last\.ckpt \(needs "
                        rf"{human(tensor_bytes(ckpt))}, \d+\.\d kB free\)", str(e.value)), str(e.value)
    assert e.value.free < 210_000
    with pytest.raises(DiskFull, match=r"writing .*model\.safetensors"):  # safetensors: its own exception type
        from ornet.config.schema import RunConfig
        from ornet.models.cam_network import CAMModel

        export_model(disk, CAMModel("resnet18", 3, "none"), model_meta(RunConfig(), "cam", ["a", "b", "c"], 0.5, 50))
    with pytest.raises(DiskFull, match=r"writing .*maps/1\.npy \(needs 4\.0 MB"):
        write_npy_atomic(disk / "maps" / "1.npy", np.zeros((1000, 1000), np.float32))
    with pytest.raises(DiskFull, match=r"writing .*overlay\.png"), atomic_path(disk / "overlay.png") as tmp:
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (600, 600, 3), dtype=np.uint8)).save(tmp, "PNG")
    left = sorted(p.name for p in disk.rglob("*"))
    assert left == ["checkpoints", "filler", "maps"]  # nothing half-written, no temporary


def test_real_full_disk_in_the_logs_and_the_lock(small_disk):
    from lightning.pytorch.loggers import TensorBoardLogger

    from ornet.runtime.logs import AtomicCSVLogger, quiet_writer_threads
    from ornet.runtime.runlock import run_lock

    disk = small_disk.make(1 * MB)
    csv_logger = AtomicCSVLogger(save_dir=str(disk / "logs"), name="coarse", version="")
    csv_logger.log_metrics({"train/loss": 1.0}, step=0)
    csv_logger.save()
    before = (disk / "logs" / "coarse" / "metrics.csv").read_text()
    _fill(disk, 0)
    csv_logger.log_metrics({"train/loss": 0.5, "val/acc": 50.0}, step=1)  # a new column: the whole file is rewritten
    with pytest.raises(DiskFull, match=r"writing .*logs/coarse/metrics\.csv"):
        csv_logger.save()
    assert (disk / "logs" / "coarse" / "metrics.csv").read_text() == before
    tb = TensorBoardLogger(save_dir=str(disk / "logs"), name="coarse", version="", default_hp_metric=False)
    escaped, hook = [], threading.excepthook
    threading.excepthook = escaped.append  # stands for the default hook, which prints a traceback
    try:
        with pytest.raises(Exception) as e, quiet_writer_threads():  # the OS error as it is; the stage names the file
            for step in range(200):
                tb.log_metrics({"train/loss": float(step)}, step=step)
            tb.save()
            tb.finalize("success")
        assert threading.excepthook == escaped.append  # put back
    finally:
        threading.excepthook = hook
    assert is_disk_full(e.value)
    assert escaped == []
    with pytest.raises(DiskFull, match=r"writing .*run/\.ornet\.lock"), run_lock(disk / "run"):
        pass


# --- a training run stopped by a full disk, at each of its writers, then resumed ---------------------------

TINY = ["--stages", "[cam]", "--model.backbone", "mobilenet_v3_small", "--data.resize", "40", "--data.crop", "32",
        "--data.batch_size", "4", "--data.eval_batch_size", "8", "--data.num_workers", "0", "--data.val_per_class",
        "2", "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.snapshot_images", "0",
        "--cam.epochs", "2", "--quiet"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_cub_tree(tmp_path_factory.mktemp("data") / "cub", classes=3, per_class=10, size=(48, 40))


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.mark.slow
def test_each_writer_of_a_run_on_a_full_disk_then_resume_gives_the_uninterrupted_result(tmp_path, data, capsys,
                                                                                         monkeypatch):
    from ornet.training.stage_sizes import expected_sizes
    from test_resume_kill import _assert_same, _result

    ref = tmp_path / "reference"
    assert main(["train", "--data.root", str(data), "--out", str(ref), *TINY,
                 "--trainer.keep_last_checkpoints", "true"]) == 0
    reference = _result(ref)
    # the estimate of the checkpoints' sizes: their tensors, plus the zip's records and hyper-parameters
    from ornet.config.schema import RunConfig
    from ornet.methods.base import run_config

    cfg = run_config(torch.load(ref / "checkpoints" / "cam.ckpt", weights_only=True)["hyper_parameters"]["cfg"])
    assert isinstance(cfg, RunConfig)
    size = expected_sizes(cfg, ["cam"], 3)["cam"]
    for name, expected in (("cam.ckpt", size.final), ("cam-last.ckpt", size.last)):
        actual = (ref / "checkpoints" / name).stat().st_size
        assert expected <= actual <= expected * 1.02 + 100_000, (name, expected, actual)
    assert size.last > 1.9 * size.final  # SGD with momentum: one more tensor per parameter

    out = tmp_path / "run"
    ckpts = out / "checkpoints"
    resume = f"continue with: ornet train --out {out} --resume"
    args = ["train", "--data.root", str(data), "--out", str(out), *TINY]

    with monkeypatch.context() as m:  # the end-of-epoch checkpoint of epoch 2
        inject(m, "cam-last.ckpt", nth=2)
        assert main(args) == 2
    line = _one_line(capsys)
    assert re.fullmatch(rf"ornet train: error: no space left on the device writing {ckpts}/cam-last\.ckpt \(needs "
                        rf"{re.escape(human(size.last))}, .+ free\) during stage cam; {ckpts}/cam-last\.ckpt \(written "
                        rf"at the end of epoch 1\) is left as it was; free space, then {re.escape(resume)}", line), line
    assert torch.load(ckpts / "cam-last.ckpt", weights_only=True)["epoch"] == 0 and not stale_temporaries(ckpts)

    steps = [("metrics.csv", 1, f"writing {out}/logs/cam/metrics.csv", "during stage cam"),
             ("cam.ckpt", 1, f"writing {ckpts}/cam.ckpt", "during stage cam"),
             ("model.safetensors", 1, f"writing {out}/model.safetensors", "the stages are complete"),
             ("metrics.json", 1, f"writing {out}/metrics.json", "the stages are complete"),
             ("report.html", 1, f"writing {out}/report.html", "the stages are complete")]
    for name, nth, writing, then in steps:
        with monkeypatch.context() as m:
            inject(m, name, nth=nth)
            assert main(["train", "--out", str(out), "--resume", "--quiet"]) == 2, name
        line = _one_line(capsys)
        assert line.startswith("ornet train: error: no space left on the device ") and writing in line, line
        assert then in line and line.endswith(resume if then.startswith("during") else
                                              resume + " (the stages are complete: it evaluates and exports)"), line
        assert not list(out.rglob(".*.tmp")), name
        if name == "cam.ckpt":  # the stage did not complete: its -last file stays for the resume
            assert (ckpts / "cam-last.ckpt").is_file() and not (ckpts / "cam.ckpt").exists()
        if name == "metrics.csv":  # the log stays whole (every row a full row)
            rows = (out / "logs" / "cam" / "metrics.csv").read_text().splitlines()
            assert len(rows) > 2 and len({row.count(",") for row in rows}) == 1
    assert main(["train", "--out", str(out), "--resume", "--quiet"]) == 0
    assert sorted(p.name for p in ckpts.iterdir()) == ["cam.ckpt"]
    _assert_same(out, reference, "full disk at each writer, resumed after each")


@pytest.mark.slow
def test_a_run_on_a_real_small_disk_warns_stops_with_one_line_and_resumes_when_space_is_freed(small_disk, data,
                                                                                              capsys):
    from ornet.config.schema import RunConfig
    from ornet.training.stage_sizes import expected_sizes

    cfg = RunConfig()
    cfg.model.backbone = "mobilenet_v3_small"
    last = expected_sizes(cfg, ["cam"], 3)["cam"].last
    disk = small_disk.make(int(1.6 * last) + 400_000)  # one -last file fits, not its rewrite beside it
    out = disk / "run"
    code = main(["train", "--data.root", str(data), "--out", str(out), *TINY])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 2, err
    assert err[0].startswith("warning: the checkpoints of this run need about ") and "the run will stop" in err[0]
    assert err[1].startswith("ornet train: error: no space left on the device writing ") and " free) during stage " \
        "cam; " in err[1] and err[1].endswith(f"free space, then continue with: ornet train --out {out} --resume")
    assert not list(out.rglob(".*.tmp"))
    small_disk.resize(disk, 40 * last)
    assert main(["train", "--out", str(out), "--resume", "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == "cam" and metrics["checkpoint_bytes"] == (out / "checkpoints" / "cam.ckpt").stat().st_size


@pytest.mark.slow
def test_per_image_outputs_are_whole_files_when_the_disk_fills(tmp_path, monkeypatch, capsys):
    """localize's overlays and maps, and evaluate's --save-scoremaps, are written atomically: a full
    disk at one image leaves the images before it whole and no partial or temporary file."""
    from PIL import Image

    from test_figures_cmd import make_run

    data = write_cub_tree(tmp_path / "cub", classes=3, per_class=4, size=(48, 40), masks=False)
    run = make_run(tmp_path / "run", data)
    images = sorted((data / "images").rglob("*.jpg"))[:3]
    out = tmp_path / "boxes"
    with monkeypatch.context() as m:
        inject(m, images[1].stem + ".png", nth=1)  # the second image's overlay
        code = main(["localize", str(run), *map(str, images), "--out", str(out), "--save-maps", "--device", "cpu",
                     "--quiet"])
    line = _one_line(capsys)
    assert code == 2 and line.startswith(f"ornet localize: error: no space left on the device writing {out}/overlays/"
                                         f"{images[1].stem}.png ("), line
    with Image.open(out / "overlays" / f"{images[0].stem}.png") as first:
        first.load()  # whole
    assert np.load(out / "maps" / f"{images[0].stem}.npy").ndim == 2
    assert not (out / "overlays" / f"{images[1].stem}.png").exists() and not (out / "boxes.json").exists()
    assert not list(out.rglob(".*.tmp"))

    maps = tmp_path / "maps"
    import ornet.runtime.atomic as fsutil

    commit, seen = fsutil._commit, [0]
    with monkeypatch.context() as m:

        def third_map_fails(tmp, path, fsync):  # the third score map written
            if Path(path).suffix == ".npy":
                seen[0] += 1
                if seen[0] == 3:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))
            return commit(tmp, path, fsync)

        m.setattr(fsutil, "_commit", third_map_fails)
        code = main(["evaluate", str(run), "--out", str(tmp_path / "eval"), "--save-scoremaps", str(maps), "--quiet",
                     "--data.num_workers", "0", "--trainer.accelerator", "cpu", "--trainer.devices", "1"])
    line = _one_line(capsys)
    assert code == 2 and line.startswith(f"ornet evaluate: error: no space left on the device writing {maps}/"), line
    saved = sorted(maps.rglob("*.npy"))
    assert len(saved) == 2 and all(np.load(p).ndim == 2 for p in saved)
    assert not list(maps.rglob(".*.tmp")) and not (tmp_path / "eval").exists()
