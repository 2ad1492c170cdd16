"""The argparse parser of the argparse-based commands: usage errors are one line, exit 2.

Plain `argparse` prints the usage block and then the message (several stderr lines) and exits
on its own; `UsageParser.error` raises an `OrnetError` instead, which `ornet.cli` prints as the
usual single ``ornet CMD: error: ...`` line with exit code 2. `--help` is unchanged.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

from ..errors import OrnetError


class UsageParser(argparse.ArgumentParser):
    """argparse.ArgumentParser whose errors (bad choice, bad number, unknown flag) are OrnetErrors."""

    def error(self, message: str) -> NoReturn:
        raise OrnetError(message)
