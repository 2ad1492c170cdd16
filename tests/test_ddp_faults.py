"""A DDP process killed: the other stops within 60 s with one line, and `--resume` ends where an
uninterrupted DDP run does (2 CPU processes, gloo, Lightning's `ddp` launcher; `tasks/peers.py`).

Every run is `tests/interrupt_runner.py` (`ornet train` plus a callback that acts at one training
step, on one rank: the launcher re-runs the script for rank 1). Three ways to lose a process:
rank 1 SIGKILLed (rank 0 learns it from gloo at the next collective), rank 0 SIGKILLed (rank 1,
its child, learns it the same way), and rank 1 SIGKILLed while rank 0 works alone, in no
collective (the watchdog ends it after `peers.GRACE_S`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import write_cub_tree
from test_resume_kill import _assert_same, _result

pytestmark = pytest.mark.slow

if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)

RUNNER = str(Path(__file__).with_name("interrupt_runner.py"))
ARGS = ["--stages", "[evaluator,coarse]", "--model.backbone", "mobilenet_v3_small", "--model.evaluator",
        "mobilenet_v3_small", "--model.generator_width", "8", "--data.resize", "40", "--data.crop", "32",
        "--data.batch_size", "2", "--data.eval_batch_size", "8", "--data.num_workers", "0",
        "--data.val_per_class", "2", "--trainer.accelerator", "cpu", "--trainer.devices", "2",
        "--trainer.strategy", "ddp", "--trainer.snapshot_images", "0", "--evaluator.epochs", "1",
        "--coarse.epochs", "2", "--quiet"]
STEPS = 3  # per epoch and process: 12 training images, 2 processes, batch 2


def _train(data: Path, out: Path, tmp: Path, *extra: str, interrupt: tuple[str, int, str] = ("-", 0, "none")):
    """(exit code of rank 0, stderr of both processes, seconds from the kill to the last process's end)."""
    killed = tmp / "killed"
    killed.unlink(missing_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "ORNET_TEST_NO_FIGURES": "1",
           "ORNET_TEST_KILLED": str(killed)}
    for key in ("LOCAL_RANK", "RANK", "WORLD_SIZE", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT", "ORNET_DDP_PARENT"):
        env.pop(key, None)
    stage, step, action = interrupt
    proc = subprocess.Popen([sys.executable, RUNNER, stage, str(step), action, "--", "--data.root", str(data),
                             "--out", str(out), *ARGS, *extra], env=env, stderr=subprocess.PIPE, text=True)
    err = proc.stderr.read()  # until every process holding the pipe (rank 1 too) has ended
    ended = time.time()
    code = proc.wait(timeout=120)
    after = ended - float(killed.read_text()) if killed.exists() else None
    return code, err, after


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_cub_tree(tmp_path_factory.mktemp("data") / "cub", classes=3, per_class=10, size=(48, 40))


def test_a_killed_ddp_process_stops_the_other_with_one_line_and_resume_gives_the_same_result(tmp_path, data):
    code, err, _ = _train(data, tmp_path / "reference", tmp_path)
    assert code == 0, err
    reference = _result(tmp_path / "reference")
    out = tmp_path / "run"
    last = out / "checkpoints" / "coarse-last.ckpt"
    hint = f"continue with: ornet train --out {out} --resume"

    # rank 1 killed in coarse's 2nd epoch: rank 0 (in the gradient all-reduce) stops at once
    code, err, after = _train(data, out, tmp_path, interrupt=("coarse", STEPS + 1, "kill@1"))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("ornet train: stopped: another process of this DDP run stopped: process rank 1 (pid ")
    assert lines[0].endswith(f"was killed by SIGKILL; stopped during stage coarse; {last} (written at the end of "
                             f"epoch 1) is left as it was; {hint}")
    assert after < 60
    assert not (out / "checkpoints" / "coarse.ckpt").exists() and not list(out.rglob(".*.tmp"))

    # rank 0 killed: rank 1 (its child) stops; the resume before it ran coarse's 2nd epoch again
    code, err, after = _train(data, out, tmp_path, "--resume", interrupt=("coarse", STEPS + 2, "kill@0"))
    lines = [line for line in err.strip().splitlines() if not line.startswith("note: taking over the lock")]
    assert code == -9 and len(lines) == 1, err
    assert lines[0].startswith("ornet train: stopped: another process of this DDP run stopped: process rank 0 (pid ")
    assert lines[0].endswith(f"is gone; stopped during stage coarse; {last} (written at the end of epoch 1) is "
                             f"left as it was; {hint}")
    assert after < 60

    code, err, _ = _train(data, out, tmp_path, "--resume")
    assert code == 0, err
    assert json.loads((out / "metrics.json").read_text())["stages_run"] == ["coarse"]
    _assert_same(out, reference, "rank 1 killed, then rank 0, in coarse's 2nd epoch; resumed")


def test_a_process_working_alone_is_stopped_by_the_watchdog(tmp_path, data):
    """Rank 1 killed while rank 0 is in no collective: no gloo error can tell rank 0; the watchdog does."""
    from ornet.runtime.peers import GRACE_S

    out = tmp_path / "run"
    code, err, after = _train(data, out, tmp_path, interrupt=("evaluator", 1, "kill@1,sleep@0"))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("ornet train: stopped: another process of this DDP run stopped: process rank 1 (pid ")
    assert lines[0].endswith(f"was killed by SIGKILL; this one stopped too, {GRACE_S:.0f} s later (it was not in a "
                             f"collective); continue with: ornet train --out {out} --resume")
    assert GRACE_S <= after < 60
