"""`trainer.keep_freed_memory` (runtime/heap.py): glibc serves large tensors from its heap, where a freed one is
reused, instead of mapping and unmapping them; other C libraries left alone; the study that times it. (`ornet train`
and `ornet evaluate` setting it as the key says: tests/test_speed_settings.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

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
    print(min(faults[3:]), min(mapped))
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
    assert faults >= 50_000  # ... faulted in afresh every step (53,248 pages)
    label, faults, mapped = probe("1")
    assert label == "set"
    assert mapped < 2**25  # from the heap
    # a step reuses the pages of the first ones; the quietest of steps 4-6, because the kernel may reclaim
    # freed-but-kept pages now and then (seen on the 2-core CI machine: one tensor of one step, in about one
    # run of eight; the sum over the steps then failed a suite)
    assert faults < 1000


def test_other_c_libraries_are_left_alone(monkeypatch):
    monkeypatch.setattr(heap, "_applied", False)
    monkeypatch.setattr(heap.sys, "platform", "darwin")
    assert heap._glibc() is None
    assert heap.keep_freed_memory() is False


def test_the_cost_study_trains_each_network_and_tabulates_both_settings(capsys, monkeypatch):
    from conftest import load_study

    study = load_study("heap_step_cost")
    got = study.child("cam", False, 64, 2, 2, 1)  # in this process, without the setting
    assert got["set"] is False and got["seconds"] > 0 and got["faults"] >= 0 and got["peak_mib"] > 100
    calls = []

    def fake(net_name, keep, args):  # each process's figures, as `child` prints them
        calls.append((net_name, keep))
        return {"set": keep, "seconds": 1.0 if keep else 1.5 + len(calls) / 10, "faults": 0 if keep else 9000,
                "peak_mib": 900.0}

    monkeypatch.setattr(study, "measure", fake)
    assert study.main(["--rounds", "2"]) == 0
    assert calls == [("evaluator", False), ("evaluator", True), ("evaluator", True), ("evaluator", False),
                     ("cam", False), ("cam", True), ("cam", True), ("cam", False)]
    rows = [line.split("|")[1:-1] for line in capsys.readouterr().out.splitlines() if line.startswith("| ")][2:]
    # by hand: evaluator default 1.6 and 1.9 -> median 1.75; cam 2.0 and 2.3 -> 2.15
    assert [r[2].strip() for r in rows] == ["1.75", "1.00", "1.75x", "2.15", "1.00", "2.15x"]
    assert rows[0][1].strip() == "glibc's default" and rows[1][1].strip() == "freed memory kept"
    assert rows[0][3].strip() == "9000" and rows[1][3].strip() == "0"


def test_the_localize_study_alternates_the_variants_and_counts_different_boxes(tmp_path):
    from conftest import load_study

    study = load_study("localize_cost")
    calls = []

    def fake(cmd, log, moved=0):  # one `ornet localize` command: write its boxes.json, give its figures
        out, default = Path(cmd[cmd.index("--out") + 1]), cmd[-1] != "--no-keep-freed-memory"
        calls.append((int(cmd[cmd.index("--batch-size") + 1]), default))
        out.mkdir(parents=True, exist_ok=True)
        shift = moved if default else 0  # the first `moved` images get another box under the defaults
        (out / "boxes.json").write_text(json.dumps({"images": [
            {"file": f"{i}.jpg", "boxes": [[0, 0, 3 + (i < shift), 3]]} for i in range(10)]}))
        return {"seconds": 2.0 if default else 3.0 + len(calls) / 10, "faults": 10 if default else 5000,
                "peak_mib": 500.0 + default}

    off = ["--no-keep-freed-memory"]
    rows, count, differ = study.study(Path("run"), "imgs/*.jpg", off, [16, 64], 2, tmp_path, measure=fake)
    assert calls == [(16, False), (16, True), (16, True), (16, False), (64, False), (64, True), (64, True),
                     (64, False)]
    assert count == 10 and differ == 0
    lines = study.table(rows, count, off).splitlines()[2:]
    cells = [[c.strip() for c in line.split("|")[1:-1]] for line in lines]
    # by hand: batch 16 off runs 3.1 and 3.4 -> median 3.25 (3.2 printed), 10 / 3.25 = 3.1 images/s
    assert cells[0][1] == "`--no-keep-freed-memory`" and cells[1][1] == "the defaults"
    assert cells[0][2] == "3.2 (3.1 / 3.4)" and cells[0][3] == "3.1" and cells[0][4] == "5,000"
    assert cells[1][2] == "2.0 (2.0 / 2.0)" and cells[1][3] == "5.0" and cells[1][5] == "501"
    assert cells[2][2] == "1.62x"  # 3.25 / 2.0
    assert cells[5][2] == "1.82x"  # batch 64: 3.5 and 3.8 -> 3.65 / 2.0 (1.8249... in floats)
    cmd = study.command(Path("run"), "imgs/*.jpg", Path("o"), 16, off)
    assert cmd[2:5] == ["ornet", "localize", "run"] and cmd[-1] == "--no-keep-freed-memory"

    _, _, differ = study.study(Path("run"), "imgs/*.jpg", off, [16], 1, tmp_path / "b", measure=lambda c, log: fake(c, log, 3))
    assert differ == 3
    with pytest.raises(SystemExit, match=r"batch 16: boxes.json differs between the two variants \(3 images\)"):
        study.study(Path("run"), "imgs/*.jpg", off, [16], 1, tmp_path / "c", exact=True, measure=lambda c, log: fake(c, log, 3))
