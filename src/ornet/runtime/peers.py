"""A lost DDP process stops the others within seconds, with one line.

With `trainer.strategy: ddp`, Lightning re-executes the command once per extra local process:
ranks > 0 are child processes of rank 0. When one of them dies (SIGKILL, the OOM killer, a
crash), the others would, left alone:

- fail at their next collective with gloo's "Connection reset by peer" traceback (exit 1,
  "a bug");
- wait for the process group's timeout (30 minutes) where no collective fails: a rank > 0
  starting up while rank 0 is gone waits for rank 0's TCP store;
- and rank 0 would be SIGKILLed by Lightning's child observer up to 5 s after a child died,
  wherever it is: no line, exit 137, a checkpoint write cut short.

**A liveness watchdog, not a collective timeout.** A thread polls the peers this process can
see: rank 0 the child processes it launched (`Popen.poll`), a rank > 0 whether rank 0 is still
its parent (rank 0's pid comes in `ORNET_DDP_PARENT`). A peer that exited with a non-zero
code or a signal is lost. The main thread usually learns it first (gloo fails at once on a
closed connection) and raises `PeerLost`: one line, exit code 2, and `--resume` continues
from the last end-of-epoch checkpoint. If the main thread has not stopped GRACE_S seconds
later (it was in no collective: validating alone, waiting for the store at start-up), the
watchdog prints the line and ends the process (`os._exit(2)`); a checkpoint being written is
let finish first (files are written atomically either way). A timeout on collectives was
the other option: it must outlast the longest stretch a rank works alone (rank 0 writing a
multi-GB checkpoint to a slow file system, a long validation), so a short one fires on
healthy runs and a long one does not bound the wait. A dead process is a fact: the watchdog
cannot fire while every process lives, however long it works.

Lightning's observer is retired when ornet's takes over (its SIGKILL would race the line);
ornet's ends the remaining children as it did. Where several processes survive, the ranks
> 0 whose rank 0 lives leave the line to rank 0 (`PeerLost.quiet`).

Limits: processes started by an external launcher (torchrun, srun, several nodes) are not
watched; there a lost peer is seen at the next collective (gloo / NCCL error -> `PeerLost`)
or after the process group's timeout.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from lightning.pytorch.strategies import DDPStrategy

from ..errors import PeerLost

ENV_PARENT = "ORNET_DDP_PARENT"
POLL_S = 0.5
GRACE_S = 10.0
_COMM_WORDS = ("Connection reset by peer", "Connection closed by peer", "Connection refused", "Broken pipe",
               "gloo", "NCCL", "DistNetworkError")


class _Watchdog(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True, name="ornet-peer-watchdog")
        self.children: list[tuple[int, Any]] = []  # (rank, Popen)
        self.parent: int | None = None
        self.lost: str | None = None
        self.lost_at = 0.0
        self.raised = False  # the main thread raised PeerLost: it prints the line
        self.writing = 0  # checkpoints being written now
        self.lock = threading.Lock()

    def check(self) -> str | None:
        with self.lock:
            if self.lost is not None:
                return self.lost
            for rank, proc in self.children:
                code = proc.poll()
                if code:
                    how = (f"was killed by {signal.Signals(-code).name}" if code < 0 and -code in signal.valid_signals()
                           else f"exited with code {code}")
                    self.lost = f"process rank {rank} (pid {proc.pid}) {how}"
            if self.lost is None and self.parent is not None and os.getppid() != self.parent:
                self.lost = f"process rank 0 (pid {self.parent}) is gone"
            if self.lost is not None:
                self.lost_at = time.monotonic()
            return self.lost

    def run(self) -> None:
        while True:
            time.sleep(POLL_S)
            if self.check() is None:
                if self.children and self.parent is None and all(p.poll() == 0 for _, p in self.children):
                    return  # every child finished its work: nothing left to watch
                continue
            waited = time.monotonic() - self.lost_at
            if self.writing and waited < 10 * GRACE_S:
                continue
            if waited < (3 * GRACE_S if self.raised else GRACE_S):
                continue
            if not self.raised:
                prog, hint = REPORT
                sys.stderr.write(f"{prog}: stopped: another process of this DDP run stopped: {self.lost}; this "
                                 f"one stopped too, {GRACE_S:.0f} s later (it was not in a collective); {hint}\n")
                sys.stderr.flush()
            kill_children()
            os._exit(2)


WATCH = _Watchdog()
REPORT = ["ornet", "the run's last end-of-epoch checkpoint is kept"]
"""(program, what to do next) for the line the watchdog prints; set by the caller (`report_as`)."""


def report_as(prog: str, hint: str) -> None:
    REPORT[:] = [prog, hint]


def _start() -> None:
    if not WATCH.is_alive() and WATCH.ident is None:
        WATCH.start()


def watch_children(procs: list) -> None:
    """Rank 0: watch the processes (Popen) Lightning launched for ranks 1..n."""
    with WATCH.lock:
        known = {id(p) for _, p in WATCH.children}
        WATCH.children += [(i + 1, p) for i, p in enumerate(procs) if id(p) not in known]
    _retire_lightning_observer()
    _start()


def watch_parent() -> None:
    """Rank > 0 launched by rank 0: watch that rank 0 stays this process's parent."""
    parent = os.environ.get(ENV_PARENT)
    if parent and parent.isdigit() and os.environ.get("LOCAL_RANK", "0") != "0":
        WATCH.parent = int(parent)
        _start()


def _retire_lightning_observer() -> None:
    # lightning.fabric.strategies.launchers.subprocess_script._ChildProcessObserver (Lightning 2.x)
    # SIGKILLs rank 0 when a child dies; with an empty list it finds nothing to watch and ends.
    for thread in threading.enumerate():
        if type(thread).__name__ == "_ChildProcessObserver" and hasattr(thread, "_child_processes"):
            thread._child_processes = []


def kill_children() -> None:
    for _, proc in WATCH.children:
        if proc.poll() is None:
            proc.kill()


@contextmanager
def writing() -> Iterator[None]:
    """Mark a checkpoint write: the watchdog lets it finish."""
    WATCH.writing += 1
    try:
        yield
    finally:
        WATCH.writing -= 1


def is_peer_failure(exc: BaseException, world_size: int) -> bool:
    """Whether `exc` (raised in a distributed run) comes from a lost process."""
    if world_size <= 1:
        return False
    if WATCH.check() is not None:
        return True
    import torch.distributed as dist

    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, getattr(dist, "DistError", ())) or any(w in text for w in _COMM_WORDS):
        deadline = time.monotonic() + 2 * POLL_S  # let a watched peer's death be noticed, for the message
        while WATCH.check() is None and time.monotonic() < deadline and (WATCH.children or WATCH.parent):
            time.sleep(POLL_S / 5)
        return True
    return False


def lost(context: str, cause: BaseException | None = None, quiet: bool | None = None) -> PeerLost:
    """The `PeerLost` to raise (the main thread then owns the line; the watchdog stays silent)."""
    WATCH.raised = True
    what = WATCH.check()
    if what is None and cause is not None:
        what = " ".join(str(cause).split())[:200]
        what = f"a collective failed ({what})"
    message = f"another process of this DDP run stopped: {what or 'unknown'}; stopped {context}"
    e = PeerLost(message)
    if quiet is None:  # a rank > 0 whose rank 0 lives: rank 0 says it
        quiet = WATCH.parent is not None and os.getppid() == WATCH.parent
    e.quiet = quiet
    kill_children()
    return e


def with_hint(e: PeerLost, hint: str) -> PeerLost:
    out = PeerLost(f"{e}; {hint}")
    out.quiet = e.quiet
    return out


class WatchedDDPStrategy(DDPStrategy):
    """Lightning's `ddp` (subprocess launcher) with ornet's watchdog (module docstring)."""

    def _configure_launcher(self) -> None:
        super()._configure_launcher()
        if "LOCAL_RANK" not in os.environ:  # rank 0, before it launches the others: tell them its pid
            os.environ[ENV_PARENT] = str(os.getpid())

    def setup_environment(self) -> None:
        procs = getattr(self.launcher, "procs", None)
        if procs:
            watch_children(list(procs))
        else:
            watch_parent()
        super().setup_environment()


def strategy(name: Any) -> Any:
    """`WatchedDDPStrategy` for Lightning's "ddp" (as Lightning would build it); anything else unchanged."""
    if name != "ddp":
        return name
    return WatchedDDPStrategy(start_method="popen")
