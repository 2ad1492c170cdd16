"""`trainer.keep_freed_memory` (runtime/heap.py): glibc serves large tensors from its heap, where a freed one is
reused, instead of mapping and unmapping them; set by `ornet train` as the key says."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from ornet.runtime import heap

glibc = pytest.mark.skipif(heap._glibc() is None, reason="glibc's malloc only")

PROBE = textwrap.dedent("""
    import ctypes, resource, sys
    import torch
    from ornet.runtime.heap import keep_freed_memory

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                     "keepcost")]

    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = MallInfo2
    print("set" if sys.argv[1] == "1" and keep_freed_memory() else "default")
    sizes = [2**24, 2**23, 3 * 2**23, 2**22]  # a step's activations: 64, 32, 96 and 16 MiB
    faults, mapped = [], []
    for _ in range(6):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        step = [torch.empty(n).fill_(1) for n in sizes]
        mapped.append(libc.mallinfo2().hblkhd)  # bytes in chunks served by mmap, while they live
        del step
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    print(sum(faults[3:]), min(mapped))
""")


def probe(setting: str) -> tuple[str, int, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, setting], capture_output=True, text=True, check=True).stdout
    label, numbers = out.splitlines()
    faults, mapped = map(int, numbers.split())
    return label, faults, mapped


@glibc
def test_large_tensors_come_from_the_heap_and_are_reused_once_set():
    label, faults, mapped = probe("0")
    assert label == "default"
    assert mapped >= 2**27  # glibc's default: each tensor above 32 MiB is its own mapping
    label, faults, mapped = probe("1")
    assert label == "set"
    assert mapped < 2**25  # from the heap
    assert faults < 1000  # steps 4-6 (3 x 53,248 pages) reuse the pages of the first ones


def test_other_c_libraries_are_left_alone(monkeypatch):
    monkeypatch.setattr(heap, "_applied", False)
    monkeypatch.setattr(heap.sys, "platform", "darwin")
    assert heap._glibc() is None
    assert heap.keep_freed_memory() is False
