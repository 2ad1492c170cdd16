"""Keep freed tensor memory in the process (glibc's malloc), so that a training step stops paying page faults.

glibc serves every allocation above its mmap threshold (at most 32 MiB) with a fresh ``mmap`` and
returns it with ``munmap`` when freed. A CPU training step allocates and frees the same large
activations every step (Lite0 at 192 px, batch 32: 38-113 MB each), so each of them is mapped again and
its pages are faulted in and zeroed by the kernel: on the 2-core machine of the issue-28 benchmarks a fresh
113 MB tensor cost 67 ms to fill against 8 ms for a reused one, and one training step of the ORNet preset's
evaluator took 2.88 s against 1.72 s once freed memory stayed in the heap
(`benchmarks/studies/heap_step_cost.py`; docs/training.md).

`keep_freed_memory` sets ``M_MMAP_MAX = 0`` (every allocation from the heap, where freed chunks are
reused) and ``M_TRIM_THRESHOLD`` to 2 GiB (free memory at the top of the heap is returned to the kernel
only beyond that). Numbers are unchanged (only where memory comes from); the process keeps up to its
peak memory mapped instead of returning it between steps, and glibc's ``memalign`` (PyTorch asks for
64-byte alignment) leaves some freed chunks unused, so the peak rises a little (a whole demo-preset run:
4,360-4,421 -> 4,500-4,600 MiB). It acts on the whole process and stays
set. Other C libraries (musl, macOS, Windows) are left alone: the call returns False.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1  # <malloc.h>
M_MMAP_MAX = -4
TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int: 2 GiB

_applied = False


def _glibc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        return libc if hasattr(libc, "gnu_get_libc_version") else None  # glibc only (not musl)
    except OSError:
        return None


def keep_freed_memory() -> bool:
    """Serve large allocations from the reusable heap for the rest of this process; True if set."""
    global _applied
    if _applied:
        return True
    libc = _glibc()
    if libc is None:
        return False
    mallopt = libc.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    _applied = mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    return _applied
