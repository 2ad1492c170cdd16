"""Errors a user can trigger. The CLI turns each into one line on stderr and exit code 2."""

from __future__ import annotations


class OrnetError(ValueError):
    """Bad input or usage: a file, line or value the user can fix."""


class DataError(OrnetError):
    """A problem in a dataset on disk, located by file and (optionally) line."""

    def __init__(self, what: str, file: str | None = None, line: int | None = None):
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
