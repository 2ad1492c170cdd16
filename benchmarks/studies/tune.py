"""Tuning sweep: many `ornet train` runs in parallel processes, results as JSON lines.

    python benchmarks/studies/tune.py VARIANTS.json --work DIR [--jobs 12] [--deadline 270]
        [--accelerator cpu|gpu] [--results FILE.jsonl] [--data NAME=DIR ...]

VARIANTS.json is a list of runs, in priority order:

    [{"name": "objects_base", "config": "configs/demo.yaml", "data": "objects",
      "overrides": {"refine.epochs": 6, "method.entropy_weight": 1.5}}, ...]

`data` names a folder given with `--data NAME=DIR` (or is a folder itself). Each run is
`python -m ornet train --config CONFIG --data.root DIR --out WORK/NAME --trainer.progress false
--quiet --force` plus the overrides, with OMP_NUM_THREADS=1 (`--threads`), on `--accelerator`.
At most `--jobs` run at once; no run starts after `--deadline` seconds (runs under way finish).
Each finished run appends one line to `--results`: name, data, overrides, the metrics of
metrics.json, the seconds per stage and the exit code (a failed run's last log line). The file
is written as runs finish, so a sweep cut short still leaves every finished run's line.
Used for the tuning log in benchmarks/results/quality.md (the GPU sweep and CPU confirmations).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

KEEP = ("gt_known_loc", "top1_loc", "max_box_acc_v2", "pxap", "top1_cls", "threshold")


def command(run: dict, data: dict[str, str], work: Path, accelerator: str) -> list[str]:
    root = data.get(run["data"], run["data"])
    cmd = [sys.executable, "-m", "ornet", "train", "--config", run["config"], "--data.root", root,
           "--out", str(work / run["name"]), "--trainer.progress", "false", "--quiet", "--force",
           "--trainer.accelerator", accelerator, "--trainer.devices", "1"]
    for key, value in run.get("overrides", {}).items():
        cmd += [f"--{key}", json.dumps(value) if isinstance(value, (list, dict)) else str(value)]
    return cmd


def finished(run: dict, proc: subprocess.Popen, work: Path, log: Path, seconds: float) -> dict:
    out = {"name": run["name"], "data": run["data"], "config": run["config"],
           "overrides": run.get("overrides", {}), "rc": proc.returncode, "wall": round(seconds, 1)}
    metrics_file = work / run["name"] / "metrics.json"
    if proc.returncode == 0 and metrics_file.is_file():
        metrics = json.loads(metrics_file.read_text())
        out.update({k: metrics.get(k) for k in KEEP})
        out["seconds_per_stage"] = metrics.get("seconds_per_stage")
    else:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        out["error"] = lines[-1][-300:] if lines else "no output"
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("variants", type=Path)
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--results", type=Path, default=None, help="default: WORK/results.jsonl")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--deadline", type=float, default=float("inf"), help="seconds after which no run starts")
    p.add_argument("--accelerator", default="cpu")
    p.add_argument("--data", nargs="*", default=[], help="NAME=DIR pairs")
    p.add_argument("--only", nargs="*", default=None, help="run only these names")
    args = p.parse_args()

    runs = json.loads(args.variants.read_text())
    if args.only is not None:
        runs = [r for r in runs if r["name"] in set(args.only)]
    data = dict(item.split("=", 1) for item in args.data)
    args.work.mkdir(parents=True, exist_ok=True)
    results = args.results or args.work / "results.jsonl"
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
           "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    pending = list(runs)
    active: dict[str, tuple[dict, subprocess.Popen, Path, float]] = {}
    while pending or active:
        while pending and len(active) < args.jobs and time.perf_counter() - start < args.deadline:
            run = pending.pop(0)
            log = args.work / f"{run['name']}.log"
            f = log.open("w")
            proc = subprocess.Popen(command(run, data, args.work, args.accelerator), stdout=f,
                                    stderr=subprocess.STDOUT, env=env)
            active[run["name"]] = (run, proc, log, time.perf_counter())
            print(f"[{time.perf_counter() - start:6.0f} s] start {run['name']}", flush=True)
        if pending and time.perf_counter() - start >= args.deadline and not active:
            break
        for name, (run, proc, log, t0) in list(active.items()):
            if proc.poll() is not None:
                row = finished(run, proc, args.work, log, time.perf_counter() - t0)
                with results.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                del active[name]
                gt = row.get("gt_known_loc")
                print(f"[{time.perf_counter() - start:6.0f} s] done {name}: rc {row['rc']}, GT-known "
                      f"{gt if gt is None else round(gt, 1)}, top-1 cls {row.get('top1_cls')}, "
                      f"{row['wall']} s", flush=True)
        if pending and time.perf_counter() - start >= args.deadline:
            pending.clear()
            print("deadline: no further runs start", flush=True)
        time.sleep(0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
