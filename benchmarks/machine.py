"""What every benchmark result file says about the machine it was measured on."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path

VECTOR_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16")
"""The /proc/cpuinfo flags that set which float kernels PyTorch runs: two machines with the same model
name but other flags (an AVX2 and an AVX-512 EPYC) round a float32 training differently, enough to move
one seed's GT-known by several points (results/plain_map_notes.md), so every result file names them."""


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo with its `VECTOR_FLAGS` in brackets (e.g. ``AMD EPYC
    [avx2]``), else what `platform` knows."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), None)
    if name is None:
        return platform.processor() or platform.machine() or "unknown CPU"
    flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
    vector = [f for f in VECTOR_FLAGS if f in flags]
    return f"{name} [{' '.join(vector) or 'no AVX2'}]"


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


def run_measured(cmd: list[str], stdout, **popen) -> tuple[int, float, os.struct_rusage]:
    """Run `cmd` to its end with its stdout and stderr to the open file `stdout`; its exit code, wall seconds and
    resource usage (`os.wait4`: `ru_minflt` page faults,
    `ru_maxrss` peak resident KiB). Linux counts the spawning process's own resident set in a child's
    `ru_maxrss` (at exec): call it from a process without torch imported, whose resident set is small."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.STDOUT, **popen)
    _, status, usage = os.wait4(proc.pid, 0)
    return os.waitstatus_to_exitcode(status), time.perf_counter() - start, usage
