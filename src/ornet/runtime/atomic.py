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

A full disk (ENOSPC, EDQUOT) while creating, writing, flushing or renaming the temporary file
raises `errors.DiskFull` naming the destination, the bytes it needed (`needed`, when the
caller knows them) and the bytes free (`diskspace`); the destination is left as it was.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .diskspace import disk_full_error, is_disk_full

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


def _commit(tmp: Path, path: Path, fsync: bool) -> None:
    """Flush the written temporary file to disk and rename it over `path` (the last step of every write)."""
    if fsync:
        _fsync(tmp)
    os.replace(tmp, path)


@contextmanager
def atomic_path(path: str | os.PathLike, fsync: bool = True, needed: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block succeeds it replaces `path`.

    The block writes the temporary path by name (any writer: `torch.save`, PIL, safetensors).
    On success the file is flushed to disk (`fsync`) and renamed over `path`; on any exception
    (KeyboardInterrupt included) it is deleted and `path` is untouched. Parent folders are
    created. A full disk raises `DiskFull` (module docstring); `needed` is the size the caller
    expects to write, for its message.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _create_temp(path)
    except OSError as e:
        if is_disk_full(e):
            raise disk_full_error(path, e, needed) from None
        raise
    mode = stat.S_IMODE(tmp.stat().st_mode)  # 0o666 less the umask
    try:
        yield tmp
        if stat.S_IMODE(tmp.stat().st_mode) != mode:  # a writer that recreated the file (safetensors: 0o600)
            os.chmod(tmp, mode)
        _commit(tmp, path, fsync)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, Exception) and is_disk_full(e):
            raise disk_full_error(path, e, needed) from None
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes, fsync: bool = True) -> None:
    with atomic_path(path, fsync=fsync, needed=len(data)) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str, fsync: bool = True) -> None:
    """UTF-8 text, written atomically (newlines as given: no platform translation)."""
    write_bytes_atomic(path, text.encode("utf-8"), fsync=fsync)


def write_json_atomic(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    """`obj` as JSON (2-space indent, trailing newline), written atomically."""
    write_text_atomic(path, json.dumps(obj, indent=indent) + "\n")


class RecordingWriter:
    """A write-only file object that keeps the OSError of a failed write (`error`).

    Some writers report a failed write without its errno: `torch.save` as "RuntimeError: ...
    unexpected pos", numpy's `tofile` as "OSError: N requested and M written". Writing through
    this object (numpy then writes in chunks with `write`), the errno is kept, so a full disk
    is told apart from a bug (`raise_recorded`).
    """

    def __init__(self, f):
        self.f, self.error = f, None

    def write(self, data) -> int:
        try:
            return self.f.write(data)
        except OSError as e:
            self.error = e
            raise

    def flush(self) -> None:
        self.f.flush()

    def raise_recorded(self) -> None:
        """Inside an `except`: raise the recorded OSError instead, if there is one."""
        if self.error is not None:
            raise self.error from None


def write_npy_atomic(path: str | os.PathLike, array: Any, fsync: bool = False) -> None:
    """One numpy array as `.npy` (no pickles), atomically. Not fsynced by default: for the
    per-image files of `localize` and `--save-scoremaps` (many small files a rerun rewrites),
    the rename already keeps a crashed process from leaving half a file."""
    import numpy as np

    array = np.asarray(array)
    with atomic_path(path, fsync=fsync, needed=array.nbytes + 128) as tmp, open(tmp, "wb") as f:
        out = RecordingWriter(f)
        try:
            np.save(out, array, allow_pickle=False)
        except (OSError, RuntimeError):
            out.raise_recorded()
            raise


def replace_dir(tmp: str | os.PathLike, out: str | os.PathLike) -> None:
    """Put the finished folder `tmp` at `out` (same file system), replacing an old `out`: the old
    one is first renamed aside (`.NAME.old-<pid>`), so `out` is never a mix of the two, then removed."""
    tmp, out = Path(tmp), Path(out)
    if not out.exists():
        tmp.rename(out)
        return
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old)


def stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Temporary files `atomic_path` left in `folder` (a process killed while writing)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(f".*{TMP_SUFFIX}") if p.is_file())
