"""A full disk is an error, not a bug: ENOSPC / EDQUOT become one `DiskFull` line.

Every writer of ornet ends up here when the device fills: `fsutil.atomic_path` (checkpoints,
exported model, metrics, figures, report, snapshots, config, localize and evaluate outputs),
the training logs (`tasks/logs.py`), `ornet synth`, and, as a last net, the CLI. The message
names the file, the bytes it needed when the writer knows them (a checkpoint: its tensors) and
the bytes free on that file system now (after the half-written temporary file is removed):

    no space left on the device writing runs/x/checkpoints/coarse-last.ckpt (needs 185.2 MB, 12.0 MB free)

Writers do not always say ENOSPC with an `OSError`: `torch.save` turns it into a
`RuntimeError` about "unexpected pos" (ornet's checkpoint writer records the underlying
OSError, `tasks/resume.py`), safetensors into a `SafetensorError` whose text carries the OS
message. `is_disk_full` looks at the errno first, then at the OS's own wording. Torch-free.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import DiskFull

ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
"""No space left on the device; disk quota exceeded."""
_WORDS = (*(os.strerror(n) for n in sorted(ERRNOS)), "StorageFull", "QuotaExceeded", "FilesystemQuotaExceeded")


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    seen = 0
    while exc is not None and seen < 8:
        yield exc
        seen += 1
        exc = exc.__cause__ or exc.__context__


def disk_full_cause(exc: BaseException) -> BaseException | None:
    """The exception of `exc`'s chain that says the disk is full (or None)."""
    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno in ERRNOS:
            return e
    for e in _chain(exc):
        if any(word in str(e) for word in _WORDS):
            return e
    return None


def is_disk_full(exc: BaseException) -> bool:
    return not isinstance(exc, DiskFull) and disk_full_cause(exc) is not None


def free_bytes(path: str | os.PathLike) -> int | None:
    """Bytes free (for an unprivileged user) on the file system holding `path` or its nearest parent."""
    p = Path(path).absolute()
    for q in (p, *p.parents):
        if q.exists():
            try:
                return shutil.disk_usage(q).free
            except OSError:
                return None
    return None


def human(n: int | None) -> str:
    """1234567 -> '1.2 MB' (powers of 1000, as `df -H`); small counts in bytes."""
    if n is None:
        return "unknown"
    if n < 1000:
        return f"{n} bytes"
    value = float(n)
    for unit in ("kB", "MB", "GB", "TB", "PB"):
        value /= 1000.0
        if value < 999.95 or unit == "PB":
            return f"{value:.1f} {unit}"
    return f"{n} bytes"  # not reached


def disk_full_error(path: str | os.PathLike | None, exc: BaseException | None = None,
                    needed: int | None = None) -> DiskFull:
    """The one-line `DiskFull` for a write of `path` that failed with `exc`."""
    cause = disk_full_cause(exc) if exc is not None else None
    if path is None and isinstance(cause, OSError):
        path = cause.filename
    quota = isinstance(cause, OSError) and cause.errno == errno.EDQUOT or "quota" in str(cause).lower()
    what = "disk quota exceeded" if quota else "no space left on the device"
    free = free_bytes(path) if path is not None else None
    need = f"needs {human(needed)}, " if needed else ""
    where = f" writing {path}" if path is not None else ""
    return DiskFull(f"{what}{where} ({need}{human(free)} free)", path=None if path is None else str(path),
                    needed=needed, free=free)


@contextmanager
def disk_errors(path: str | os.PathLike | None = None, needed: int | None = None) -> Iterator[None]:
    """Turn a full-disk failure inside the block into `DiskFull` naming `path` (or the OSError's file)."""
    try:
        yield
    except Exception as e:
        if is_disk_full(e):
            raise disk_full_error(path, e, needed) from None
        raise


def tree_bytes(folder: str | os.PathLike, skip: frozenset[str] = frozenset()) -> int:
    """Total size of the files under `folder` (apparent sizes; links not followed), less those named in `skip`."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            if name in skip:
                continue
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass  # removed meanwhile
    return total
