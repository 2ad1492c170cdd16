"""A tiny progress reporter for loops outside Lightning (``ornet localize``, ``ornet figures``).

- stream is a TTY: one line rewritten in place (``\\r``), at most ~10 times a second;
- not a TTY (a log file, CI): a plain line each time another ~10 % is done;
- ``quiet``: nothing at all.

``close()`` (or leaving the ``with`` block) prints a one-line summary, e.g.
``localize: 120 images in 3.2 s (37.5 images/s)``. Leaving the block with an exception prints
no summary (the error's own line says what happened) and clears a TTY's progress line.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Count work done out of ``total`` and show it on ``stream`` (stderr by default)."""

    def __init__(self, total: int, desc: str, unit: str = "images", quiet: bool = False,
                 stream: TextIO | None = None, min_interval: float = 0.1):
        self.total = max(int(total), 0)
        self.desc = desc
        self.unit = unit
        self.quiet = quiet
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.min_interval = min_interval
        self.done = 0
        self.start = time.perf_counter()
        self._last_draw = 0.0
        self._next_decile = 1
        self._closed = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
            return
        if not self._closed and self.tty and not self.quiet:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
        self._closed = True

    def _rate(self) -> float:
        elapsed = time.perf_counter() - self.start
        return self.done / elapsed if elapsed > 0 else 0.0

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.quiet:
            return
        if self.tty:
            now = time.perf_counter()
            if now - self._last_draw >= self.min_interval or self.done >= self.total:
                self._last_draw = now
                pct = f" {100 * self.done / self.total:3.0f}%" if self.total else ""
                self.stream.write(f"\r{self.desc}:{pct} {self.done}/{self.total} {self.unit} "
                                  f"({self._rate():.1f} {self.unit}/s)\x1b[K")
                self.stream.flush()
            return
        if not self.total:
            return
        decile = (10 * self.done) // self.total
        if decile >= self._next_decile:
            self._next_decile = decile + 1
            self.stream.write(f"{self.desc}: {self.done}/{self.total} {self.unit} "
                              f"({100 * self.done / self.total:.0f}%)\n")
            self.stream.flush()

    def write(self, text: str) -> None:
        """A message line (e.g. a skipped file) that does not garble the progress line."""
        if self.quiet:
            return
        prefix = "\r\x1b[K" if self.tty else ""
        self.stream.write(f"{prefix}{text}\n")
        self.stream.flush()
        self._last_draw = 0.0  # redraw the progress line on the next update

    def close(self, summary: str | None = None) -> None:
        """Finish the line and print the summary (once); ``summary`` replaces the default text."""
        if self._closed:
            return
        self._closed = True
        if self.quiet:
            return
        elapsed = time.perf_counter() - self.start
        text = summary or (f"{self.done} {self.unit} in {elapsed:.1f} s "
                           f"({self.done / elapsed if elapsed > 0 else 0.0:.1f} {self.unit}/s)")
        prefix = "\r" if self.tty else ""
        suffix = "\x1b[K" if self.tty else ""
        self.stream.write(f"{prefix}{self.desc}: {text}{suffix}\n")
        self.stream.flush()
