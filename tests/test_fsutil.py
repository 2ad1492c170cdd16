"""ornet.runtime.atomic: atomic writes leave the old file or the new one, never half, with umask permissions."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ornet.runtime.atomic import (
    atomic_path,
    replace_dir,
    stale_temporaries,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
)


@pytest.fixture
def umask():
    """Set a umask for one test, restoring the previous one."""
    previous = os.umask(0o022)
    os.umask(previous)

    def set_(mask: int) -> None:
        os.umask(mask)

    yield set_
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_writes_create_parents_and_replace_content(tmp_path):
    path = tmp_path / "a" / "b" / "x.json"
    write_json_atomic(path, {"k": [1, 2]})
    assert json.loads(path.read_text()) == {"k": [1, 2]} and path.read_text().endswith("\n")
    write_text_atomic(path, "new\n")
    assert path.read_text() == "new\n"
    write_bytes_atomic(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert stale_temporaries(path.parent) == []


@pytest.mark.parametrize("error", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_a_failure_while_writing_leaves_the_old_file_and_no_temporary(tmp_path, error):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"old content")
    with pytest.raises(type(error)), atomic_path(path) as tmp:
        tmp.write_bytes(b"half of the new")
        raise error
    assert path.read_bytes() == b"old content"
    assert list(tmp_path.iterdir()) == [path]


def test_a_failure_before_the_first_write_leaves_no_file(tmp_path):
    path = tmp_path / "metrics.json"
    with pytest.raises(ValueError), atomic_path(path):
        raise ValueError("nothing written")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600), (0o002, 0o664)])
def test_permissions_follow_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    path = tmp_path / "out.txt"
    write_text_atomic(path, "x")
    assert _mode(path) == expected
    write_text_atomic(path, "y")  # replacing keeps the umask's mode too
    assert _mode(path) == expected


def test_a_killed_writer_leaves_the_old_file_and_a_stale_temporary(tmp_path):
    """SIGKILL in the middle of a write: the destination is intact; the temporary is recognisable."""
    path = tmp_path / "coarse-last.ckpt"
    path.write_bytes(b"previous checkpoint")
    code = ("import os, signal, sys\n"
            "from ornet.runtime.atomic import atomic_path\n"
            "with atomic_path(sys.argv[1]) as tmp:\n"
            "    with open(tmp, 'wb') as f:\n"
            "        f.write(b'half a checkpoint'); f.flush()\n"
            "        os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert path.read_bytes() == b"previous checkpoint"
    stale = stale_temporaries(tmp_path)
    assert len(stale) == 1 and stale[0].name.startswith(".coarse-last.ckpt.")
    assert stale[0].read_bytes() == b"half a checkpoint"


def test_writers_of_run_files_use_umask_permissions(tmp_path, umask):
    """The exported model, figures and the report are readable by the group (0o644 under umask 022)."""
    import numpy as np
    import torch

    from ornet.reports.render import save_png
    from ornet.reports.run_report import write_report
    from ornet.runs.export import export_model

    umask(0o022)
    export_model(tmp_path, torch.nn.Linear(2, 2), {"method": "cam"})
    save_png(tmp_path / "figures" / "a.png", np.zeros((4, 4, 3), dtype=np.uint8))
    (tmp_path / "metrics.json").write_text("{}")
    report = write_report(tmp_path)
    for path in (tmp_path / "model.safetensors", tmp_path / "model.json", tmp_path / "figures" / "a.png", report):
        assert _mode(path) == 0o644, path
    assert stale_temporaries(tmp_path) == [] and stale_temporaries(tmp_path / "figures") == []


def test_replace_dir_puts_the_new_folder_in_place_and_leaves_nothing_aside(tmp_path):
    out, tmp = tmp_path / "set", tmp_path / ".set.partial"
    tmp.mkdir()
    (tmp / "a.txt").write_text("first")
    replace_dir(tmp, out)  # no old folder
    assert (out / "a.txt").read_text() == "first" and not tmp.exists()
    tmp.mkdir()
    (tmp / "b.txt").write_text("second")
    replace_dir(tmp, out)  # replaces the old one whole
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]  # no .set.old-<pid>, no partial
