"""Run `ornet train` with a test-only callback that interrupts it at one training step.

    python tests/interrupt_runner.py STAGE STEP ACTION -- train args...

At the start of STAGE's 0-based training step STEP (Lightning's global step within the stage)
the callback does ACTION:
    kill   SIGKILL itself (an OOM killer, a power cut: nothing is saved);
    term   SIGTERM itself (a scheduler's pre-emption);
    wait   create the file named by $ORNET_TEST_READY and wait (up to 60 s) for a signal sent
           by the test, so that the signal comes from outside, in the middle of a step;
    none   nothing (an uninterrupted run under the same runner).
Under DDP (the launcher re-runs this script for every rank) an action may name the rank that
does it, several separated by commas: `kill@1` (rank 1 SIGKILLs itself, after writing the time
into the file named by $ORNET_TEST_KILLED), `sleep@0` (rank 0 works alone for 120 s, in no
collective).
The callback is added by wrapping `pipeline.build_trainer`; production code is unchanged.
With ORNET_TEST_NO_FIGURES=1 the figures and report are not drawn (they do not change
metrics.json or the model; drawing them costs seconds per run).

    python tests/interrupt_runner.py --serve

imports torch, Lightning and ornet once, then forks one child process per request (a JSON line
on stdin: {"argv": [STAGE, STEP, ACTION, "--", ...], "env": {...}, "stdout": FILE, "stderr": FILE}); it answers
{"pid": PID} when the child starts (the test may signal it) and {"code": EXIT_CODE} when it
ends (negative: killed by that signal). Each child is a real process running the same code
as `ornet train`; forking saves the several seconds of imports per run.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from lightning.pytorch.callbacks import Callback

import ornet.training.pipeline as pipeline
from ornet.cli import main
from ornet.runtime import preemption


class Interrupt(Callback):
    def __init__(self, stage: str, step: int, action: str):
        self.stage, self.step, self.action = stage, step, action

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if pl_module.stage != self.stage or trainer.global_step != self.step:
            return
        if "@" in self.action:
            for part in self.action.split(","):
                what, rank = part.split("@")
                if int(rank) != trainer.global_rank:
                    continue
                if what == "kill":
                    Path(os.environ["ORNET_TEST_KILLED"]).write_text(f"{time.time()}\n")
                    os.kill(os.getpid(), signal.SIGKILL)
                elif what == "sleep":
                    time.sleep(120)
            return
        if self.action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif self.action == "term":
            os.kill(os.getpid(), signal.SIGTERM)
        elif self.action == "wait":
            Path(os.environ["ORNET_TEST_READY"]).write_text(f"{self.stage} {self.step}\n")
            deadline = time.monotonic() + 60
            while not preemption.requested() and time.monotonic() < deadline:
                time.sleep(0.02)


def run(argv: list[str]) -> int:
    stage, step, action = argv[0], int(argv[1]), argv[2]
    assert argv[3] == "--", argv
    build = pipeline.build_trainer

    def build_trainer(cfg, stage_, out, quiet=False, callbacks=None, **kwargs):
        return build(cfg, stage_, out, quiet, [*(callbacks or []), Interrupt(stage, step, action)], **kwargs)

    pipeline.build_trainer = build_trainer
    if os.environ.get("ORNET_TEST_NO_FIGURES") == "1":
        import ornet.reports.publish

        ornet.reports.publish.publish = lambda folder, **kwargs: Path(folder) / "report.html"
    return main(["train", *argv[4:]])


def _child(request: dict) -> None:
    code = 1
    try:
        os.environ.update(request.get("env", {}))
        for fd, name in ((1, "stdout"), (2, "stderr")):
            os.dup2(os.open(request[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
        code = run(request["argv"])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    import json

    import ornet.commands.train  # noqa: F401  (everything a run imports, once, before forking)
    import ornet.data.datamodule  # noqa: F401
    import ornet.evaluation.protocols  # noqa: F401
    import ornet.evaluation.sweep_pass  # noqa: F401
    import ornet.methods.ornet.coarse_stage  # noqa: F401
    import ornet.methods.ornet.evaluator_stage  # noqa: F401
    import ornet.methods.ornet.refine_stage  # noqa: F401
    import ornet.models.ornet_network  # noqa: F401

    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request)
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"code": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
    else:
        sys.exit(run(sys.argv[1:]))
