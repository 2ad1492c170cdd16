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
