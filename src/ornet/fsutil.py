"""Atomic file writes: a reader (or a resumed run) sees the old file or the new one, never half.

Every file ornet writes into a run folder (checkpoints, metrics, exported model, figures,
report) goes through `atomic_path`: the content is written to a hidden temporary file in the
same folder (`.NAME.<pid>.<random>.tmp`, so the final rename never crosses a file system),
flushed to disk, then renamed over the destination with `os.replace` (atomic on POSIX and
Windows). If the writer raises - or the process is interrupted with an exception - the
temporary file is removed and the destination is left exactly as it was. A SIGKILL can leave
a stray `.*.tmp` file behind, never a truncated destination.

The temporary file is created with mode 0o666 and the process umask applies, like any
`open(path, "w")`: results are 0o644 under the usual umask 022 (`tempfile.mkstemp` would
give 0o600, unreadable to the group that shares a model). A writer that recreates the file
with its own mode (safetensors writes 0o600) is put back to that mode before the rename.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TMP_SUFFIX = ".tmp"


def _create_temp(path: Path) -> Path:
    """A new, empty, uniquely named file beside `path` (O_EXCL: never reuses a stale one)."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{TMP_SUFFIX}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"could not create a temporary file beside {path}")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | os.PathLike, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block succeeds it replaces `path`.

    The block writes the temporary path by name (any writer: `torch.save`, PIL, safetensors).
    On success the file is flushed to disk (`fsync`) and renamed over `path`; on any exception
    (KeyboardInterrupt included) it is deleted and `path` is untouched. Parent folders are
    created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_temp(path)
    mode = stat.S_IMODE(tmp.stat().st_mode)  # 0o666 less the umask
    try:
        yield tmp
        if stat.S_IMODE(tmp.stat().st_mode) != mode:  # a writer that recreated the file (safetensors: 0o600)
            os.chmod(tmp, mode)
        if fsync:
            _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """UTF-8 text, written atomically (newlines as given: no platform translation)."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    """`obj` as JSON (2-space indent, trailing newline), written atomically."""
    write_text_atomic(path, json.dumps(obj, indent=indent) + "\n")


def stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Temporary files `atomic_path` left in `folder` (a process killed while writing)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(f".*{TMP_SUFFIX}") if p.is_file())
