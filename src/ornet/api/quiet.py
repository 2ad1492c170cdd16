"""Lightning's console banners (GPU available, tips, fit stopped, ...) off for a `quiet` call."""

from __future__ import annotations

import logging
from contextlib import contextmanager

LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric")


@contextmanager
def lightning_banners(quiet: bool):
    """Within the block, Lightning logs warnings only when `quiet`; the levels are put back after."""
    if not quiet:
        yield
        return
    import lightning.pytorch  # noqa: F401  (its import sets its loggers to INFO: import it before setting them)

    loggers = [logging.getLogger(name) for name in LIGHTNING_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(max(lg.level, logging.WARNING))
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
