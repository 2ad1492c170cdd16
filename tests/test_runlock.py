"""One writer per run folder (`ornet.runtime.runlock`): a second process is refused naming the holder,
a lock left by a dead process is taken over, other hosts are not guessed about."""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ornet.errors import RunLocked
from ornet.runtime.runlock import LOCK_NAME, Holder, read_holder, run_lock

HOLD = """
import sys, time
from ornet.runtime.runlock import run_lock
with run_lock(sys.argv[1], command="ornet train --out " + sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


def hold(folder: Path) -> subprocess.Popen:
    """Another process holding `folder` (until killed)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_the_lock_names_its_holder_and_goes_away_when_released(tmp_path):
    folder = tmp_path / "run"
    with run_lock(folder, command="ornet train --out run") as lock:
        assert lock is not None and folder.is_dir()
        record = json.loads((folder / LOCK_NAME).read_text())
        assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
        assert record["command"] == "ornet train --out run" and record["since"][:4].isdigit()
    assert not folder.exists()  # created only to be locked, and left empty: removed again
    (folder / "kept").mkdir(parents=True)
    with run_lock(folder):
        pass
    assert sorted(p.name for p in folder.iterdir()) == ["kept"]


def test_a_second_process_is_refused_with_one_line_naming_the_holder(tmp_path):
    folder = tmp_path / "run"
    proc = hold(folder)
    try:
        with pytest.raises(RunLocked) as e, run_lock(folder):
            pass
        message = str(e.value)
        assert "\n" not in message
        assert f"pid {proc.pid} on host {socket.gethostname()}" in message
        assert f"`ornet train --out {folder}`" in message and "since 20" in message
        assert read_holder(folder).pid == proc.pid  # the holder's record is untouched
    finally:
        proc.kill()
        proc.wait()


def test_a_lock_left_by_a_killed_process_is_taken_over_with_a_note(tmp_path, caplog):
    folder = tmp_path / "run"
    proc = hold(folder)
    proc.send_signal(signal.SIGKILL)  # kill -9: the file stays, the kernel frees its flock
    proc.wait()
    assert read_holder(folder).pid == proc.pid
    with caplog.at_level(logging.WARNING, logger="ornet"), run_lock(folder, command="ornet train --resume"):
        assert read_holder(folder).pid == os.getpid()
    notes = [r.getMessage() for r in caplog.records]
    assert len(notes) == 1 and f"left by pid {proc.pid}" in notes[0] and "that process is gone" in notes[0]
    assert not (folder / LOCK_NAME).exists()


def _stale(folder: Path, host: str, pid: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    record = Holder(pid, host, "ornet train --out x", "2025-01-01T00:00:00+00:00")
    (folder / LOCK_NAME).write_text(json.dumps(record.__dict__))


def test_a_free_lock_of_another_host_is_refused_naming_the_file_to_delete(tmp_path):
    folder = tmp_path / "run"
    _stale(folder, "other-host.example", 4242)
    before = (folder / LOCK_NAME).read_bytes()
    with pytest.raises(RunLocked) as e, run_lock(folder):
        pass
    assert "pid 4242 on host other-host.example" in str(e.value)
    assert f"delete {folder / LOCK_NAME}" in str(e.value)
    assert (folder / LOCK_NAME).read_bytes() == before


def test_without_flock_the_record_decides(tmp_path, monkeypatch):
    import fcntl

    def no_flock(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    folder = tmp_path / "run"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _stale(folder, socket.gethostname(), sleeper.pid)  # a live process of this host
        with pytest.raises(RunLocked, match=f"pid {sleeper.pid}"), run_lock(folder):
            pass
    finally:
        sleeper.kill()
        sleeper.wait()
    with run_lock(folder):  # its pid is gone now: taken over
        assert read_holder(folder).pid == os.getpid()


def test_the_lock_is_reentrant_in_one_process_and_ranks_above_0_do_not_take_it(tmp_path, monkeypatch):
    folder = tmp_path / "run"
    with run_lock(folder) as outer:
        with run_lock(folder) as inner:  # the train command drawing its figures
            assert outer is not None and inner is None
        assert (folder / LOCK_NAME).is_file()  # still held by the outer block
    assert not folder.exists()
    with run_lock(folder, rank=1) as lock:
        assert lock is None and not folder.exists()
    monkeypatch.setenv("LOCAL_RANK", "1")  # what Lightning's launcher sets in the processes it starts
    with run_lock(folder) as lock:
        assert lock is None and not folder.exists()


@pytest.mark.slow
def test_train_resume_on_a_folder_being_trained_is_refused_and_the_run_goes_on(tmp_path, capsys):
    """The issue's case: `ornet train --out B` running, `ornet train --out B --resume` from another shell."""
    import ornet.commands.train  # noqa: F401  (imported before the race starts: seconds on a busy machine)
    import ornet.training.pipeline  # noqa: F401
    from conftest import write_cub_tree
    from ornet.cli import main

    data = write_cub_tree(tmp_path / "cub", classes=3, per_class=6, size=(48, 40))
    out = tmp_path / "runB"
    args = ["train", "--data.root", str(data), "--out", str(out), "--stages", "[cam]", "--model.backbone",
            "mobilenet_v3_small", "--data.resize", "40", "--data.crop", "32", "--data.num_workers", "0",
            "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--cam.epochs", "40", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    first = subprocess.Popen([sys.executable, "-m", "ornet", *args], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while read_holder(out) is None and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.1)
        assert read_holder(out) is not None and read_holder(out).pid == first.pid
        code = main(["train", "--out", str(out), "--resume", "--quiet"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1, err
        assert err[0].startswith(f"ornet train: error: {out} is in use by another ornet process: pid {first.pid} ")
        assert "`ornet train --data.root" in err[0]
        assert first.wait(timeout=600) == 0, first.stderr.read()
    finally:
        if first.poll() is None:
            first.kill()
    assert json.loads((out / "metrics.json").read_text())["method"] == "cam"
    assert not (out / LOCK_NAME).exists()
