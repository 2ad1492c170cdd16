"""What the commands print besides their results: the ``ornet`` logger's messages on stderr.

`setup_logging(quiet)` is called by the commands that train or evaluate (`ornet train`,
`ornet evaluate`): INFO messages of the ``ornet`` logger (stage starts, checkpoints, what was
written) go to stderr, one plain line each; ``quiet`` keeps warnings only and silences
Lightning's banners and summaries (`api.quiet.LIGHTNING_LOGGERS`).
"""

from __future__ import annotations

import logging
import sys


class StderrHandler(logging.StreamHandler):
    """Writes to `sys.stderr` as it is at each message (not the stream of the first run in this process)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup_logging(quiet: bool) -> None:
    """The ``ornet`` logger at INFO (WARNING when quiet) on stderr; quiet also quiets Lightning."""
    from ..api.quiet import LIGHTNING_LOGGERS

    logging.getLogger("ornet").setLevel(logging.WARNING if quiet else logging.INFO)
    if not logging.getLogger("ornet").handlers:
        handler = StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logging.getLogger("ornet").addHandler(handler)
    if quiet:
        import lightning.pytorch  # noqa: F401  (its import sets its loggers to INFO: import it before setting them)

        for name in LIGHTNING_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
