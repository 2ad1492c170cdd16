"""What `ornet localize --keep-freed-memory` (its default) saves: whole `ornet localize` commands on a folder
of images with glibc's default malloc (`--no-keep-freed-memory`: every tensor above its mmap threshold mapped
and unmapped on each allocation) and with freed memory kept for reuse (`runtime/heap.py`).

    .venv/bin/python benchmarks/studies/localize_heap_cost.py --model RUN --images DIR \\
        [--batch-sizes 16 64] [--rounds 3] [--results benchmarks/results/localize_heap.md]

Each command is a fresh process (the setting acts on a whole process), the two settings alternating over
`--rounds` rounds for each batch size. A row gives the median wall seconds of the whole command (start,
loading the model, every batch, overlays and boxes.json), images per second, the command's minor page
faults (the kernel zero-filling fresh pages) and its peak resident memory, from `os.wait4`; the two
outputs' boxes.json are compared (the setting changes where memory comes from, not a number).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCH))
from machine import cpu_model, git_commit  # noqa: E402  (benchmarks/machine.py)

ROOT = BENCH.parent


def command(model: Path, images: str, out: Path, batch: int, keep: bool) -> list[str]:
    return [sys.executable, "-m", "ornet", "localize", str(model), images, "--out", str(out), "--force",
            "--quiet", "--batch-size", str(batch), "--keep-freed-memory" if keep else "--no-keep-freed-memory"]


def timed(cmd: list[str]) -> dict:
    """Wall seconds, minor page faults and peak resident MiB of one command (`os.wait4`; Linux counts the
    spawner's resident set in `ru_maxrss`, small for this script: no torch imported); a failure stops the
    study with the command's output."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {shlex.join(cmd)}\n{output[-2000:]}")
    return {"seconds": seconds, "faults": usage.ru_minflt, "peak_mib": usage.ru_maxrss / 1024}


def boxes(out: Path) -> list:
    return json.loads((out / "boxes.json").read_text())["images"]


def study(model: Path, images: str, batch_sizes: list[int], rounds: int, work: Path,
          measure=timed) -> tuple[list[dict], int]:
    """Rows (batch, setting, medians) and the number of images; `measure` runs one command (tests stub it)."""
    rows, count = [], None
    for batch in batch_sizes:
        runs: dict[bool, list[dict]] = {False: [], True: []}
        for r in range(rounds):
            for keep in ((False, True) if r % 2 == 0 else (True, False)):
                out = work / f"b{batch}_{'kept' if keep else 'default'}"
                runs[keep].append(measure(command(model, images, out, batch, keep)))
        found = {keep: boxes(work / f"b{batch}_{'kept' if keep else 'default'}") for keep in (False, True)}
        if found[False] != found[True]:
            raise SystemExit(f"batch {batch}: boxes.json differs between the two settings")
        count = len(found[True])
        for keep in (False, True):
            med = {key: statistics.median(run[key] for run in runs[keep]) for key in ("seconds", "faults", "peak_mib")}
            rows.append({"batch": batch, "keep": keep, **med, "all_seconds": [run["seconds"] for run in runs[keep]]})
    return rows, count or 0


def table(rows: list[dict], count: int) -> str:
    lines = ["| batch | malloc | seconds (median; each run) | images / s | minor page faults | peak memory (MiB) |",
             "| --- | --- | --- | --- | --- | --- |"]
    by = {(r["batch"], r["keep"]): r for r in rows}
    for batch in sorted({r["batch"] for r in rows}):
        for keep in (False, True):
            r = by[batch, keep]
            label = "freed memory kept (default)" if keep else "glibc's default (`--no-keep-freed-memory`)"
            each = " / ".join(f"{s:.1f}" for s in r["all_seconds"])
            lines.append(f"| {batch} | {label} | {r['seconds']:.1f} ({each}) | {count / r['seconds']:.1f} | "
                         f"{r['faults']:,.0f} | {r['peak_mib']:,.0f} |")
        lines.append(f"| {batch} | default / kept | {by[batch, False]['seconds'] / by[batch, True]['seconds']:.2f}x "
                     f"| | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, type=Path, help="a trained run folder (or its model.json)")
    parser.add_argument("--images", required=True, help="a folder of images, or a glob pattern (quoted), to localize")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[16, 64])
    parser.add_argument("--rounds", type=int, default=3, help="commands per batch size and setting (default 3)")
    parser.add_argument("--results", type=Path, default=None, help="write the table here (markdown)")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="localize_heap_") as work:
        rows, count = study(args.model.resolve(), args.images, args.batch_sizes, args.rounds, Path(work))
    import torch  # after the commands: only for the version line

    text = "\n".join([
        "# `ornet localize` with and without `--keep-freed-memory` (issue 28)", "",
        f"Written by `.venv/bin/python benchmarks/studies/localize_heap_cost.py --model {args.model} --images "
        f"{shlex.quote(args.images)} --batch-sizes {' '.join(map(str, args.batch_sizes))} --rounds {args.rounds}"
        + (f" --results {args.results}" if args.results else "") + "`; do not edit by hand.", "",
        f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- machine: {cpu_model()}, {os.cpu_count()} cores visible; torch {torch.__version__}, Python "
        f"{platform.python_version()}; threads: torch's default",
        f"- commit: {git_commit(ROOT)}",
        f"- load average (1 min) at the start / end: {load[0]:.2f} / {os.getloadavg()[0]:.2f}",
        f"- {count} images; each row's commands are fresh processes, the two settings alternating; boxes.json the "
        "same under both settings", "",
        table(rows, count), ""])
    print(text)
    if args.results:
        args.results.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
