"""Training logs that a full disk or a kill cannot leave half-written: `metrics.csv` and
`hparams.yaml` of Lightning's CSV logger, rewritten atomically.

Lightning's `CSVLogger` appends rows to `metrics.csv` and, when a new column appears (as at
the first save of a resumed stage), reads the file back and rewrites it in place: a full disk
or a kill in the middle truncates the log, and the rewrite raises "dict contains fields not
in fieldnames" when the old rows have columns the new header lacks. `AtomicCSVLogger` keeps
every row and column: each save writes the old rows, the new ones and the union of the
columns to a temporary file and renames it over `metrics.csv` (`fsutil.atomic_path`, no
fsync: a log). A full disk raises `DiskFull` naming the file; the old log stays whole.

TensorBoard's event files are only appended to; a full disk there can cut the last record,
which TensorBoard's reader skips. Its writer thread keeps the OS error for the next write of
the main thread (which stops the stage with one line) but also lets it escape the thread,
which would print a traceback: `quiet_writer_threads` drops that second report, for the
block only (the previous `threading.excepthook` is put back).
"""

from __future__ import annotations

import csv
import io
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.core.saving import save_hparams_to_yaml
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from .atomic import atomic_path, write_text_atomic
from .diskspace import is_disk_full


class AtomicExperimentWriter(ExperimentWriter):
    """`ExperimentWriter` whose files are replaced atomically (module docstring)."""

    def log_hparams(self, params: dict) -> None:
        self.hparams.update(params)
        with atomic_path(os.path.join(self.log_dir, self.NAME_HPARAMS_FILE), fsync=False) as tmp:
            save_hparams_to_yaml(tmp, self.hparams)

    def save(self) -> None:
        if not self.metrics:
            return
        rows: list[dict] = []
        keys: list[str] = []
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                keys = list(reader.fieldnames or [])
                rows = list(reader)
        new = {k for row in self.metrics for k in row} - set(keys)
        keys = sorted(set(keys) | new | set(self.metrics_keys))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
        writer.writerows(self.metrics)
        write_text_atomic(self.metrics_file_path, buf.getvalue(), fsync=False)
        self.metrics_keys = keys
        self.metrics = []


class AtomicCSVLogger(CSVLogger):
    """Lightning's `CSVLogger` writing through `AtomicExperimentWriter`."""

    @property
    @rank_zero_experiment
    def experiment(self) -> AtomicExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AtomicExperimentWriter(log_dir=self.log_dir)
        return self._experiment


@contextmanager
def quiet_writer_threads() -> Iterator[None]:
    """Inside the block, a full disk in TensorBoard's writer thread is left to the main thread."""
    previous = threading.excepthook

    def hook(args) -> None:
        if type(args.thread).__name__ == "_AsyncWriterThread" and args.exc_value is not None \
                and is_disk_full(args.exc_value):
            return  # raised again by the writer in the main thread, where the stage turns it into one line
        previous(args)

    threading.excepthook = hook
    try:
        yield
    finally:
        for thread in threading.enumerate():  # a writer that failed is ending: let it report under our hook
            if type(thread).__name__ == "_AsyncWriterThread" and getattr(thread, "exception", None) is not None:
                thread.join(timeout=2)
        threading.excepthook = previous
