"""One writer per run folder: a lock file that names its holder.

    with run_lock("runs/b", command="ornet train --out runs/b --resume"):
        ...  # write into runs/b

`run_lock` creates `FOLDER/.ornet.lock`, takes an exclusive `fcntl.flock` on it and writes the
holder into it (JSON: pid, host, command, since). A second process that wants the folder gets
`RunLocked`, one line naming the holder:

    runs/b is in use by another ornet process: pid 4121 on host gpu3, `ornet train --out runs/b`,
    since 2025-06-01T10:12:03+02:00; wait for it to finish (or stop it), then run this again

Decisions:
- **The kernel says who holds it.** `flock` is released by the kernel when its process ends,
  however it ends (SIGKILL, the OOM killer), so a lock file whose flock is free was left by a
  process that is gone: the next writer takes it over with a note (logged as a warning). The
  file is removed when the lock is released normally; a lock file left behind is itself the
  sign of a crash. Nothing relies on the pid being alive or not (pids are reused).
- **Other hosts are not guessed about.** Over NFS, `flock` reaches other clients on Linux
  (NFSv4 byte-range locks), but on some network file systems it is only local to each host
  (Lustre's `localflock`, NFS mounted with `local_lock=flock`). A free flock whose record
  names *another* host may therefore belong to a live process there: that case is refused
  with a line saying which file to delete if that process is gone. A wrong takeover would
  let two writers mix checkpoints; a refusal costs one `rm`.
- **A file system without `flock`** (ENOLCK, EOPNOTSUPP): the record alone decides: a live
  pid on this host holds the folder, a dead one is taken over, another host is refused.
- **Re-entrant in one process**: a block that already holds the folder (the `train` command
  drawing its figures) may take it again; the inner call does nothing.
- **DDP**: only global rank 0 writes a run folder; ranks > 0 (Lightning re-executes the
  command once per extra process, with LOCAL_RANK / RANK set) do not take the lock, so they
  never fight rank 0 for it.
- Read-only use (`ornet localize RUN`, reading the model) takes no lock.

Torch-free.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shlex
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from ..errors import OrnetError, RunLocked
from .diskspace import disk_full_error, is_disk_full

LOCK_NAME = ".ornet.lock"
"""The lock file inside the folder (hidden; removed on release)."""

log = logging.getLogger("ornet")

_NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}
_HELD: dict[str, int] = {}  # folder (resolved) -> nesting depth, for this process


@dataclass
class Holder:
    """Who holds (or held) a folder: the lock file's content."""

    pid: int
    host: str
    command: str
    since: str

    def describe(self) -> str:
        return f"pid {self.pid} on host {self.host}, `{self.command}`, since {self.since}"


def lock_path(folder: str | os.PathLike) -> Path:
    return Path(folder) / LOCK_NAME


def folder_to_lock(out: str | os.PathLike, run: str | os.PathLike | None = None) -> Path:
    """The folder a command writing `out` locks: the run folder `run` (one with model.json or
    config.yaml) when `out` is inside it (`ornet evaluate RUN` writes RUN/evaluate_test, `ornet
    figures` RUN/figures), else `out`."""
    out = Path(out)
    if run is not None and any((Path(run) / name).is_file() for name in ("model.json", "config.yaml")):
        try:
            out.absolute().resolve().relative_to(Path(run).resolve())
            return Path(run)
        except ValueError:
            pass
    return out


def this_rank() -> int:
    """The global rank from the launcher's environment (0 when not launched distributed)."""
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        value = os.environ.get(key)
        if value is not None and value.strip().lstrip("-").isdigit():
            return int(value)
    return 0


def _read(fd: int) -> Holder | None:
    try:
        data = os.pread(fd, 65536, 0)
        d = json.loads(data.decode("utf-8"))
        return Holder(int(d["pid"]), str(d["host"]), str(d["command"]), str(d["since"]))
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None


def read_holder(folder: str | os.PathLike) -> Holder | None:
    """The record of the lock file in `folder` (None if there is none or it is unreadable)."""
    try:
        fd = os.open(lock_path(folder), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return _read(fd)
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _busy(folder: Path, holder: Holder | None) -> RunLocked:
    who = holder.describe() if holder else "a process whose record is being written"
    return RunLocked(f"{folder} is in use by another ornet process: {who}; wait for it to finish "
                     "(or stop it), then run this again")


def _other_host(folder: Path, holder: Holder) -> RunLocked:
    return RunLocked(f"{folder} is locked by {holder.describe()}: a process on another host, which ornet "
                     f"cannot check; if it is gone, delete {lock_path(folder)} and run this again")


class RunLock:
    """An acquired lock (see `acquire`); `release()` is idempotent."""

    def __init__(self, folder: Path, fd: int | None, created: bool, key: str):
        self.folder, self._fd, self._created, self._key = folder, fd, created, key

    def release(self) -> None:
        if self._key not in _HELD:
            return
        _HELD.pop(self._key)
        try:
            lock_path(self.folder).unlink(missing_ok=True)  # still holding the flock: nobody else has it
        except OSError:
            pass
        if self._fd is not None:
            os.close(self._fd)  # releases the flock
            self._fd = None
        if self._created:  # a folder made only to be locked, and left empty: as if never touched
            try:
                self.folder.rmdir()
            except OSError:
                pass


def _write(fd: int, path: Path, holder: Holder) -> None:
    data = (json.dumps(asdict(holder)) + "\n").encode("utf-8")
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
    except OSError as e:
        if is_disk_full(e):
            raise disk_full_error(path, e, len(data)) from None
        raise


def acquire(folder: str | os.PathLike, command: str | None = None) -> RunLock:
    """Lock `folder` (created if missing) for this process, or raise `RunLocked` naming the holder."""
    folder = Path(folder)
    key = str(folder.resolve())
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        if is_disk_full(e):
            raise disk_full_error(folder, e) from None
        raise OrnetError(f"{folder}: cannot create the folder ({e.strerror or e})") from None
    me = Holder(os.getpid(), socket.gethostname(), command or shlex.join(sys.argv),
                datetime.now().astimezone().isoformat(timespec="seconds"))
    path = lock_path(folder)
    try:
        for _ in range(20):
            fd = _open(path, folder)
            flocked = None
            try:
                flocked = _flock(fd)
                if flocked is False:  # held by a live process
                    raise _busy(folder, _read(fd))
                if _replaced(fd, path):
                    os.close(fd)  # released and removed meanwhile: lock the new file instead
                    continue
                old = _read(fd)
                if old is not None:
                    _take_over_or_refuse(folder, old, me, trusted=flocked is True)
                _write(fd, path, me)
            except BaseException:
                if flocked is not False and _read(fd) is None:  # ours, and empty: no trace left
                    path.unlink(missing_ok=True)
                os.close(fd)
                raise
            _HELD[key] = 1
            return RunLock(folder, fd, created, key)
        raise RunLocked(f"{folder}: could not lock {path} (it keeps being replaced by another process)")
    except BaseException:
        if created:
            try:
                folder.rmdir()
            except OSError:
                pass
        raise


def _open(path: Path, folder: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as e:
        if is_disk_full(e):
            raise disk_full_error(path, e) from None
        raise OrnetError(f"{folder}: cannot create the lock file {path} ({e.strerror or e})") from None


def _replaced(fd: int, path: Path) -> bool:
    """Whether `path` is no longer the file `fd` has open (removed or replaced by its holder's release)."""
    try:
        return os.fstat(fd).st_ino != os.stat(path).st_ino
    except FileNotFoundError:
        return True


def _flock(fd: int) -> bool | None:
    """True: locked; False: another process holds it; None: the file system has no flock."""
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError as e:
        if e.errno in _NO_FLOCK:
            return None
        raise


def _take_over_or_refuse(folder: Path, old: Holder, me: Holder, trusted: bool) -> None:
    """A record from an earlier process is in the file: decide (module docstring)."""
    if old.host != me.host:
        raise _other_host(folder, old)
    if not trusted and _alive(old.pid) and old.pid != me.pid:
        raise _busy(folder, old)
    log.warning("note: taking over the lock of %s left by %s: that process is gone", folder, old.describe())


@contextmanager
def run_lock(folder: str | os.PathLike, command: str | None = None, rank: int | None = None) -> Iterator[RunLock | None]:
    """Hold the lock of `folder` for the block (module docstring); yields None where no lock is taken.

    `command`: what the record says the holder runs (default: this process's command line).
    `rank`: the process's global rank (default: from the launcher's environment); only rank 0 locks.
    """
    if (this_rank() if rank is None else rank) != 0:
        yield None
        return
    key = str(Path(folder).resolve())
    if key in _HELD:  # this process holds it already (a command calling another's library code)
        _HELD[key] += 1
        try:
            yield None
        finally:
            _HELD[key] -= 1
        return
    lock = acquire(folder, command)
    try:
        yield lock
    finally:
        lock.release()
