"""Figures + `report.html` for a finished run or evaluation folder (called by train / evaluate)."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("ornet")


def publish(folder: Path, **run_options) -> Path:
    """Draw every figure whose source exists in `folder`, then write `folder/report.html`.

    A figure without its source (e.g. no model in an evaluation folder) is skipped with a note;
    the report then lists what is there. Returns the report's path.
    """
    from .render import render
    from .run_report import write_report

    written, skipped = render(folder, strict=False, **run_options)
    for kind, why in skipped.items():
        log.info("figure %s skipped: %s", kind, why)
    report = write_report(folder)
    log.info("wrote %d figures and %s", len(written), report)
    return report
