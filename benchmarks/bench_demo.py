"""Time `ornet demo` (what `make demo` runs) and record its comparison table.

    .venv/bin/python benchmarks/bench_demo.py [--out /tmp/ornet-demo] [--fast] [--results benchmarks/results/demo.md]

Runs `ornet demo --out OUT --force` as a subprocess (its output goes to OUT.log), measures the wall
clock of the whole command (synthetic data, both trainings, evaluation, figures and reports) and
writes OUT/summary.json's numbers with the machine and the load average before and after.
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
from machine import cpu_model

from ornet.runtime.atomic import write_text_atomic

KEYS = [("gt_known_loc", "GT-known Loc"), ("top1_loc", "Top-1 Loc"), ("max_box_acc_v2", "MaxBoxAccV2"),
        ("pxap", "PxAP"), ("top1_cls", "Top-1 Cls"), ("seconds", "seconds")]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="/tmp/ornet-demo")
    p.add_argument("--fast", action="store_true")
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "demo.md"))
    args = p.parse_args()

    out = Path(args.out)
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

    import torch

    lines = [
        "# `ornet demo`" + (" --fast" if args.fast else ""), "",
        f"- date: {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {cpu_model()}, {os.cpu_count()} cores visible, no GPU used; torch {torch.__version__}, "
        f"Python {platform.python_version()}",
        f"- load average (1 min) before / after: {load_before:.2f} / {load_after:.2f}",
        f"- command: `.venv/bin/python benchmarks/bench_demo.py --out {out}{' --fast' if args.fast else ''}` "
        f"(runs `ornet demo --out {out} --force`, what `make demo` runs)",
        f"- wall clock of the whole demo: **{seconds:.0f} s ({seconds / 60:.1f} min)**: synthetic data, "
        "both trainings (at the same time, one thread each, on 2 cores), evaluation, figures, reports", "",
        "| method | " + " | ".join(title for _, title in KEYS) + " |",
        "| --- | " + " | ".join("---" for _ in KEYS) + " |",
    ]
    for method, m in summary.items():
        lines.append(f"| {method} | " + " | ".join(
            f"{m[k]:.1f}" if isinstance(m.get(k), (int, float)) else "-" for k, _ in KEYS) + " |")
    gap = summary["ornet"]["gt_known_loc"] - summary["cam"]["gt_known_loc"]
    lines += ["", f"ORNet - CAM on GT-known Loc: {gap:+.1f} points (seed 0; the spread over seeds is in quality.md).",
              "seconds: wall clock of each method's `ornet train` (the two run at the same time).", ""]
    path = Path(args.results)
    write_text_atomic(path, "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
