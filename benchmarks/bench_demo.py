"""Run `ornet demo` (what `make demo` runs) and write benchmarks/results/demo.md from what it printed.

    .venv/bin/python benchmarks/bench_demo.py [--out /tmp/ornet-demo] [--fast] [--results benchmarks/results/demo.md]

Runs `ornet demo --out OUT --force` as a subprocess (its output goes to OUT.log) and measures the
wall clock of the whole command (synthetic data, both trainings, evaluation, figures and reports).
The results file is written here and nowhere else: a header (this command, the commit it ran at,
the machine, the load average before and after), then the comparison table and the ORNet - CAM line
exactly as the demo printed them (copied from OUT.log; checked against OUT/summary.json). Notes
that are not generated live in results/demo_notes.md, which the file links.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from bench_quality import ROOT, ornet_cmd  # benchmarks/ (scripts run from there)
from machine import cpu_model, git_commit

from ornet.commands.demo import format_table
from ornet.runtime.atomic import write_text_atomic

NOTES = "demo_notes.md"
"""Hand-written notes beside the results file (linked from it when present)."""


def printed_table(log: str) -> list[str]:
    """The comparison table and the ORNet - CAM line, as `ornet demo` printed them into `log`."""
    lines = log.splitlines()
    start = next((i for i, line in enumerate(lines[:-1]) if line.startswith("method ")
                  and set(lines[i + 1]) == {"-"}), None)
    if start is None:
        raise SystemExit("the demo's output has no comparison table")
    end = start
    while end < len(lines) and lines[end].strip():
        end += 1
    gap = next((line for line in lines[end:] if line.startswith("ORNet - CAM on GT-known")), None)
    if gap is None:
        raise SystemExit("the demo's output has no 'ORNet - CAM on GT-known' line")
    return [*lines[start:end], "", gap]


def render(printed: list[str], summary: dict, *, command: str, commit: str, machine: str, date: str,
           load: tuple[float, float], seconds: float, fast: bool, notes: bool) -> str:
    """demo.md: the header, then `printed` verbatim (it must be `format_table(summary)`'s table)."""
    table = printed[:printed.index("")]
    if table != format_table(summary).splitlines():
        raise SystemExit("the printed table differs from summary.json's numbers")
    lines = [
        f"# `ornet demo{' --fast' if fast else ''}`", "",
        f"Written by `{command}` (it runs `ornet demo`, what `make demo` runs); do not edit by hand.", "",
        f"- commit: {commit}",
        f"- date: {date}",
        f"- machine: {machine}",
        f"- load average (1 min) before / after: {load[0]:.2f} / {load[1]:.2f}",
        f"- wall clock of the whole demo: **{seconds:.0f} s ({seconds / 60:.1f} min)**: synthetic data, "
        "both trainings, evaluation, figures, reports",
        "", "What the demo printed (its `seconds`: each method's `ornet train`, the two at the same time "
        "on 2 or more cores):", "", "```text", *printed, "```", "",
    ]
    if notes:
        lines += [f"Notes (not generated): [{NOTES}]({NOTES}).", ""]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="/tmp/ornet-demo")
    p.add_argument("--fast", action="store_true")
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "demo.md"))
    args = p.parse_args()

    out = Path(args.out)
    commit = git_commit(ROOT)  # before the run: the code that ran
    cmd = [*ornet_cmd(), "demo", "--out", str(out), "--force", *(["--fast"] if args.fast else [])]
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    with open(f"{out}.log", "w") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    seconds = time.perf_counter() - start
    load_after = os.getloadavg()[0]
    if proc.returncode != 0:
        raise SystemExit(f"`ornet demo` failed ({proc.returncode}); see {out}.log")
    summary = json.loads((out / "summary.json").read_text())
    printed = printed_table(Path(f"{out}.log").read_text())

    import torch

    results = Path(args.results)
    text = render(
        printed, summary, commit=commit, fast=args.fast, seconds=seconds, load=(load_before, load_after),
        command=" ".join(["benchmarks/bench_demo.py", *sys.argv[1:]]),
        date=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        machine=f"{cpu_model()}, {os.cpu_count()} cores visible, no GPU used; torch {torch.__version__}, "
                f"Python {platform.python_version()}",
        notes=(results.parent / NOTES).is_file())
    write_text_atomic(results, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
