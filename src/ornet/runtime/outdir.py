"""Output folders: checked before a command does any work, created with one-line errors.

A command that writes a folder calls `check_out_dir` while it validates its inputs, so that an
`--out` below a regular file or in a folder without write permission fails at once (exit 2,
naming the path) instead of after training or decoding; `make_out_dir` then creates it,
turning an OSError the check could not foresee (a read-only file system, a full disk) into
the same kind of message. Torch-free.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import OrnetError


def _nearest_existing(path: Path) -> Path:
    for p in (path, *path.parents):
        if os.path.lexists(p):
            return p
    return Path(".")


def check_out_dir(path: str | os.PathLike, flag: str = "--out") -> None:
    """OrnetError unless `path` is a writable folder or could be created as one."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OrnetError(f"{flag} {p} exists and is not a folder")
    base = _nearest_existing(p.absolute())
    if not base.is_dir():
        raise OrnetError(f"{flag} {p}: {base} is not a folder, so {p} cannot be created")
    if not os.access(base, os.W_OK | os.X_OK):
        raise OrnetError(f"{flag} {p}: no permission to write in {base}")


def check_out_file(path: str | os.PathLike, flag: str = "--out") -> None:
    """OrnetError unless the file `path` could be written (its folder exists and is writable)."""
    p = Path(path)
    if p.is_dir():
        raise OrnetError(f"{flag} {p} is a folder, not a file")
    parent = p.absolute().parent
    if not parent.is_dir():
        raise OrnetError(f"{flag} {p}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OrnetError(f"{flag} {p}: no permission to write in {parent}")


def make_out_dir(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Create `path` (and its parents); an OSError becomes an OrnetError naming it."""
    p = Path(path)
    check_out_dir(p, flag)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OrnetError(f"{flag} {p}: cannot create the folder ({e.strerror or e})") from None
    return p


def nonempty(path: str | os.PathLike) -> bool:
    """Whether `path` exists and holds anything but a run lock (`runlock`: another writer's lock
    file is that writer's business, refused by the lock itself, not "a folder with files")."""
    from .runlock import LOCK_NAME

    p = Path(path)
    return p.exists() and (not p.is_dir() or any(q.name != LOCK_NAME for q in p.iterdir()))


@contextmanager
def removed_if_failed(path: str | os.PathLike) -> Iterator[None]:
    """If the block fails (a full disk, say) and `path` did not exist before it, remove `path`
    again when it is an empty folder: a failed command leaves no empty output folder behind."""
    p = Path(path)
    existed = p.exists()
    try:
        yield
    except BaseException:
        if not existed and p.is_dir() and not nonempty(p):
            try:
                p.rmdir()
            except OSError:
                pass
        raise
