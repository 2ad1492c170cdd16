"""Errors a user can trigger. The CLI turns each into one line on stderr and exit code 2."""

from __future__ import annotations


class OrnetError(ValueError):
    """Bad input or usage: a file, line or value the user can fix."""


class DataError(OrnetError):
    """A problem in a dataset on disk, located by file and (optionally) line."""

    def __init__(self, what: str, file: str | None = None, line: int | None = None):
        if file is None and line is None and "\nOriginal Traceback" in what:
            # Re-raised by a DataLoader worker as DataError(<its formatted traceback>): keep
            # only the original message (its last line), which already names the file.
            what = what.rstrip().splitlines()[-1].split(": ", 1)[-1]
        self.what = what
        self.file = None if file is None else str(file)
        self.line = line
        super().__init__(self.location() + what)

    def location(self) -> str:
        if self.file is None:
            return ""
        return f"{self.file}:{self.line}: " if self.line is not None else f"{self.file}: "


class ConfigError(OrnetError):
    """An invalid configuration key or value."""


class TrainingDiverged(OrnetError):
    """A loss term or a parameter stopped being finite (NaN / Inf): training stops (exit code 2)
    before the diverged state can overwrite the last good checkpoint."""


class Preempted(OrnetError):
    """SIGTERM (a scheduler pre-empting the job): the state is saved, `--resume` continues it.

    Exit code 143 (128 + SIGTERM, what a shell reports for a process the signal ended), so
    a job script can tell pre-emption from bad input (2) and from success (0).
    """

    exit_code = 143
    label = "stopped"


class Interrupted(Preempted):
    """Ctrl+C (SIGINT) during training: the state is saved as for SIGTERM; exit code 130
    (128 + SIGINT), what a shell reports for a process Ctrl+C ended."""

    exit_code = 130
    label = "interrupted"


class DiskFull(OrnetError):
    """No space left (ENOSPC) or the disk quota exceeded (EDQUOT) while writing a file.

    The message names the file, the bytes it needed (when known) and the bytes free; the
    file is left as it was (every write is atomic), so the command can be rerun, or a training
    run continued with `--resume`, once space is freed.
    """

    def __init__(self, message: str, path: str | None = None, needed: int | None = None, free: int | None = None):
        super().__init__(message)
        self.path, self.needed, self.free = path, needed, free


class RunLocked(OrnetError):
    """Another live process writes the folder (`runlock`): one writer per run folder."""


class PeerLost(OrnetError):
    """Another process of a distributed (DDP) run stopped: this one stops too (`tasks/peers.py`).

    `quiet`: the line is left to another process (a rank > 0 whose rank 0 is alive: rank 0 says it).
    """

    label = "stopped"
    quiet = False
