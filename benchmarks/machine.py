"""What every benchmark result file says about the machine it was measured on."""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def git_commit(root: Path) -> str:
    """The checkout's commit (short hash), ``+ uncommitted changes (FILES)`` naming up to three
    tracked files that differ from it; ``unknown (not a git checkout)`` without git."""
    import subprocess

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)

    try:
        head = git("rev-parse", "--short", "HEAD")
        if head.returncode != 0:
            return "unknown (not a git checkout)"
        dirty = [line[3:] for line in git("status", "--porcelain", "--untracked-files=no").stdout.splitlines()]
    except OSError:
        return "unknown (git not found)"
    if not dirty:
        return head.stdout.strip()
    named = ", ".join(dirty[:3]) + (f" and {len(dirty) - 3} more" if len(dirty) > 3 else "")
    return f"{head.stdout.strip()} + uncommitted changes ({named})"
