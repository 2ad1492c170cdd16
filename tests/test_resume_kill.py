"""An interrupted `ornet train` resumed with `--resume` ends exactly where an uninterrupted run does.

Every run is its own process (tests/interrupt_runner.py: `ornet train` plus a test-only callback
that interrupts one training step; forked from one process that imported everything once, to
save seconds of imports per run) of a tiny three-stage run on CPU: evaluator 2 epochs, coarse 2,
refine 3, 3 training batches per epoch. SIGKILL saves nothing: the stage restarts from its
end-of-epoch `<stage>-last.ckpt`. SIGTERM and Ctrl+C save `<stage>-last.ckpt` after the batch
under way, print one line and exit 143 / 130; the resume continues in the middle of the epoch.
All must give the uninterrupted run's metrics.json values and model tensors, bit for bit.
"""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from conftest import write_cub_tree

pytestmark = pytest.mark.slow

RUNNER = str(Path(__file__).with_name("interrupt_runner.py"))
ARGS = ["--model.backbone", "mobilenet_v3_small", "--model.evaluator", "mobilenet_v3_small",
        "--model.generator_width", "8", "--data.resize", "40", "--data.crop", "32", "--data.batch_size", "4",
        "--data.eval_batch_size", "8", "--data.num_workers", "0", "--data.val_per_class", "2",
        "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.snapshot_images", "0",
        "--evaluator.epochs", "2", "--coarse.epochs", "2", "--refine.epochs", "3", "--quiet"]
STEPS = 3  # training batches per epoch: 3 classes x 4 training images, batch 4
TIMING_KEYS = {"seconds", "seconds_per_stage", "stages_run",
               "run_folder_bytes", "checkpoint_bytes"}  # bookkeeping: logs and zip records differ in length


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_cub_tree(tmp_path_factory.mktemp("data") / "cub", classes=3, per_class=10, size=(48, 40))


class Runs:
    """`tests/interrupt_runner.py --serve`: imports once, forks one process per `ornet train` run."""

    def __init__(self, logs: Path):
        self.logs, self.count = logs, 0
        env = {**os.environ, "OMP_NUM_THREADS": "1", "ORNET_TEST_NO_FIGURES": "1"}
        self.proc = subprocess.Popen([sys.executable, RUNNER, "--serve"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env, start_new_session=True)
        self.answers: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.answers.put(json.loads(line))

    def start(self, data: Path, out: Path, *extra: str, interrupt: tuple[str, int, str] | None = None,
              env: dict | None = None) -> tuple[int, Path]:
        """Start a run; returns (its pid, its stderr file)."""
        stage, step, action = interrupt or ("-", 0, "none")
        self.count += 1
        err = self.logs / f"run{self.count}.err"
        request = {"argv": [stage, str(step), action, "--", "--data.root", str(data), "--out", str(out), *ARGS,
                            *extra],
                   "env": env or {}, "stdout": str(self.logs / f"run{self.count}.out"), "stderr": str(err)}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return self.answers.get(timeout=300)["pid"], err

    def finish(self, err: Path) -> tuple[int, str]:
        """(exit code, stderr) of the run started last: negative if a signal ended it."""
        return self.answers.get(timeout=300)["code"], err.read_text()

    def train(self, *args, **kwargs) -> tuple[int, str]:
        _, err = self.start(*args, **kwargs)
        return self.finish(err)

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    r = Runs(tmp_path_factory.mktemp("logs"))
    yield r
    r.close()


def _result(out: Path) -> tuple[dict, dict[str, torch.Tensor], str]:
    from safetensors.torch import load_file

    metrics = {k: v for k, v in json.loads((out / "metrics.json").read_text()).items() if k not in TIMING_KEYS}
    return metrics, load_file(out / "model.safetensors"), (out / "predictions.csv").read_text()


def _assert_same(out: Path, reference: tuple, note: str) -> None:
    metrics, tensors, rows = _result(out)
    ref_metrics, ref_tensors, ref_rows = reference
    assert metrics == ref_metrics, note
    assert tensors.keys() == ref_tensors.keys()
    differ = [k for k in tensors if not torch.equal(tensors[k], ref_tensors[k])]
    assert not differ, f"{note}: {len(differ)} tensors differ, e.g. {differ[:3]}"
    assert rows == ref_rows, note


def _last(out: Path, stage: str) -> dict:
    return torch.load(out / "checkpoints" / f"{stage}-last.ckpt", map_location="cpu", weights_only=True)


def test_killed_and_preempted_runs_resume_to_the_uninterrupted_result(tmp_path, data, runs):
    """Ctrl+C in stage 0, SIGKILL in stage 1, SIGKILL in stage 2, SIGTERM in stage 2, each followed by --resume."""
    code, err = runs.train(data, tmp_path / "reference")
    assert code == 0, err
    reference = _result(tmp_path / "reference")
    assert 0 < reference[0]["pxap"] < 100 and reference[0]["num_images"] == 12  # a non-trivial model
    rng = random.Random(8)
    evaluator_int = rng.randrange(STEPS + 1, 2 * STEPS)  # Ctrl+C in the evaluator's 2nd epoch, after its first batch
    coarse_kill = rng.randrange(STEPS, 2 * STEPS)  # in coarse's 2nd epoch: coarse-last.ckpt exists
    refine_kill = rng.randrange(STEPS, 2 * STEPS)  # in refine's 2nd epoch
    refine_term = rng.randrange(2 * STEPS + 1, 3 * STEPS)  # in refine's 3rd epoch, after its first batch
    note = (f"Ctrl+C at evaluator step {evaluator_int}, SIGKILL at coarse step {coarse_kill}, refine step "
            f"{refine_kill}; SIGTERM at refine step {refine_term}")
    out = tmp_path / "run"
    ckpts = out / "checkpoints"

    ready = tmp_path / "ready_int"
    pid, err_file = runs.start(data, out, interrupt=("evaluator", evaluator_int, "wait"),
                               env={"ORNET_TEST_READY": str(ready)})
    deadline = time.monotonic() + 240
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ready.exists(), f"the run never reached evaluator step {evaluator_int}: {err_file.read_text()}"
    os.kill(pid, signal.SIGINT)  # Ctrl+C, from outside, in the middle of the step
    code, err = runs.finish(err_file)
    assert code == 130, err
    assert err.strip().splitlines() == [
        f"ornet train: interrupted: Ctrl+C during stage evaluator, epoch 2/2, step {evaluator_int + 1} (batch "
        f"{evaluator_int - STEPS + 1} of the epoch): saved {ckpts / 'evaluator-last.ckpt'}; continue with: "
        f"ornet train --out {out} --resume"]

    code, err = runs.train(data, out, "--resume", interrupt=("coarse", coarse_kill, "kill"))
    assert code == -signal.SIGKILL, err
    assert (ckpts / "evaluator.ckpt").is_file() and not (ckpts / "coarse.ckpt").exists()
    assert _last(out, "coarse")["epoch"] == 0  # the end of coarse's first epoch: where the resume starts

    code, err = runs.train(data, out, "--resume", interrupt=("refine", refine_kill, "kill"))
    assert code == -signal.SIGKILL, err
    assert (ckpts / "coarse.ckpt").is_file() and not (ckpts / "refine.ckpt").exists()
    assert _last(out, "refine")["epoch"] == 0

    ready = tmp_path / "ready"
    pid, err_file = runs.start(data, out, "--resume", interrupt=("refine", refine_term, "wait"),
                               env={"ORNET_TEST_READY": str(ready)})
    deadline = time.monotonic() + 240
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ready.exists(), f"the run never reached refine step {refine_term}: {err_file.read_text()}"
    os.kill(pid, signal.SIGTERM)  # from outside, in the middle of the step
    code, err = runs.finish(err_file)
    assert code == 143, err
    batch, last = refine_term - 2 * STEPS + 1, ckpts / "refine-last.ckpt"
    note, line = err.strip().splitlines()  # the run before was SIGKILLed: its lock file is taken over, with a note
    assert note.startswith(f"note: taking over the lock of {out} left by pid ") and note.endswith("that process is gone")
    assert line == (f"ornet train: stopped: SIGTERM during stage refine, epoch 3/3, step {refine_term + 1} (batch "
                    f"{batch} of the epoch): saved {last}; continue with: ornet train --out {out} --resume")
    ckpt = _last(out, "refine")  # weights_only=True: nothing pickled in it
    assert ckpt["global_step"] == refine_term + 1 and ckpt["epoch"] == 2 and ckpt["optimizer_states"]
    assert ckpt["callbacks"]["ReproducibleEpochs[refine]"] == {"epoch": 2, "batches": batch}
    assert not (ckpts / "refine.ckpt").exists() and not list(ckpts.glob(".*.tmp"))

    code, err = runs.train(data, out, "--resume")  # continues in the middle of refine's 3rd epoch
    assert code == 0, err
    assert json.loads((out / "metrics.json").read_text())["stages_run"] == ["refine"]
    _assert_same(out, reference, note)
