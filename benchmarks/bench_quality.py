"""Quality benchmark: ORNet (configs/demo.yaml) against the CAM baseline (configs/demo_cam.yaml)
and Grad-CAM (the grad-cam package on ORNet's trained evaluator) on the synthetic benchmark, over
several training seeds.

    .venv/bin/python benchmarks/bench_quality.py [--data DIR] [--seeds 0 1 2] [--work DIR]
        [--methods ornet cam gradcam] [--override KEY=VALUE ...] [--results benchmarks/results/quality.md]

Generates the data with `ornet synth` when DIR does not hold it yet, trains each method once per
seed with `ornet train` (a subprocess each, timed), reads each run's metrics.json and writes a
Markdown table (mean, sample standard deviation, min-max) plus every run's numbers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from machine import cpu_model  # benchmarks/machine.py (scripts run from benchmarks/)

from ornet.fsutil import write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
METHODS = {  # name -> (preset, extra flags)
    "ornet": ("configs/demo.yaml", []),
    "cam": ("configs/demo_cam.yaml", []),
    # the same ORNet preset with the paper's weighted-entropy weight (see the analysis)
    "ornet_paper_loss": ("configs/demo.yaml", ["--method.entropy_weight", "1.5"]),
    # the same ORNet preset with the paper's attentive erasing (the demo preset has none)
    "ornet_attentive_erasing": ("configs/demo.yaml", ["--method.erasing", "attentive"]),
    # no training: Grad-CAM (the grad-cam package) on the stage-0 evaluator of the ornet run of the
    # same seed (benchmarks/gradcam_eval.py); its seconds are the evaluation's only
    "gradcam": ("gradcam_eval.py", []),
}
KEYS = ["gt_known_loc", "top1_loc", "max_box_acc_v2", "pxap", "top1_cls", "seconds"]


def ornet_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("ornet")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "ornet"]



def run(cmd: list[str], log: Path) -> float:
    start = time.perf_counter()
    with log.open("w") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}; see {log}")
    return time.perf_counter() - start


def stats(values: list[float]) -> str:
    if not values:
        return "-"
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.1f} ± {sd:.1f} ({min(values):.1f}-{max(values):.1f})"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="/tmp/ornet-bench/synth", help="synthetic data folder (created if absent)")
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--methods", nargs="+", default=["ornet", "cam", "gradcam"], choices=list(METHODS),
                   help="gradcam needs the ornet run of the same seed (list ornet first)")
    p.add_argument("--work", default="/tmp/ornet-bench/runs", help="run folders")
    p.add_argument("--override", nargs="*", default=[], help="extra train flags as KEY=VALUE (e.g. refine.epochs=3)")
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "quality.md"))
    p.add_argument("--threads", type=int, default=1,
                   help="OMP_NUM_THREADS of each run (1: as `ornet demo` trains, two at once on 2 cores)")
    p.add_argument("--no-train", action="store_true", help="with --reuse: report only the runs already finished")
    p.add_argument("--notes", default=None, help="a Markdown file appended to the report (analysis)")
    p.add_argument("--reuse", action="store_true",
                   help="use runs already finished in --work (their metrics.json and recorded seconds) instead of "
                        "training again; e.g. runs started by hand in parallel")
    args = p.parse_args()

    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    data, work = Path(args.data), Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if not (data / "images.txt").is_file():
        run([*ornet_cmd(), "synth", str(data), "--seed", str(args.data_seed)], work / "synth.log")
    extra = []
    for item in args.override:
        key, _, value = item.partition("=")
        extra += [f"--{key}", value]
    results: dict[str, list[dict]] = {m: [] for m in args.methods}
    commands = []
    for seed in args.seeds:
        for method in args.methods:
            out = work / f"{method}_seed{seed}"
            preset, flags = METHODS[method]
            if method == "gradcam":
                cmd = [sys.executable, str(ROOT / "benchmarks" / "gradcam_eval.py"), str(work / f"ornet_seed{seed}"),
                       "--out", str(out)]
                commands.append(f"python benchmarks/gradcam_eval.py {work}/ornet_seed{seed} --out {out}")
            else:
                cmd = [*ornet_cmd(), "train", "--config", preset, "--data.root", str(data), "--out", str(out),
                       "--trainer.seed", str(seed), "--trainer.progress", "false", "--force", "--quiet", *flags,
                       *extra]
                commands.append("ornet " + " ".join(cmd[len(ornet_cmd()):]))
            if args.reuse and (out / "metrics.json").is_file():
                metrics = json.loads((out / "metrics.json").read_text())  # seconds: as the run recorded it
            elif args.no_train:
                continue
            else:
                seconds = run(cmd, work / f"{method}_seed{seed}.log")
                metrics = json.loads((out / "metrics.json").read_text())
                metrics["seconds"] = round(seconds, 1)  # wall clock of the whole command
            metrics["seed"] = seed
            results[method].append(metrics)
            print(f"{method} seed {seed}: " + ", ".join(
                f"{k} {metrics[k]:.1f}" for k in KEYS if isinstance(metrics.get(k), (int, float))), flush=True)
    write_report(Path(args.results), args, results, commands)
    print(f"wrote {args.results}")
    return 0


def write_report(path: Path, args, results: dict[str, list[dict]], commands: list[str]) -> None:
    import torch

    lines = [
        "# Quality: ORNet vs CAM vs Grad-CAM on the synthetic benchmark",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {cpu_model()}, {os.cpu_count()} cores visible, {args.threads} thread(s) per training run; "
        f"torch {torch.__version__}, Python {platform.python_version()}",
        f"- data: `ornet synth {args.data} --seed {args.data_seed}` (defaults: 10 classes, 1200 train / 400 test, 96 px)",
        f"- training seeds: {' '.join(map(str, args.seeds))}; presets: "
        + ", ".join(f"{m} = `{' '.join([METHODS[m][0], *METHODS[m][1]])}`" for m in args.methods)
        + (f"; overrides: `{' '.join(args.override)}`" if args.override else ""),
        "- command: `cd benchmarks && ../.venv/bin/python bench_quality.py "
        + " ".join(f"--{k} {v}" for k, v in (("data", args.data), ("work", args.work),
                                              ("methods", " ".join(args.methods)), ("threads", args.threads)))
        + "`",
        "- threshold chosen on the held-out val split (5 images per class carved from train), applied to test;",
        "  boxes from the largest region, IoU >= 0.5, maps min-max normalised (wsolevaluation conventions).",
        "- seconds: wall clock of the whole `ornet train` (all stages + evaluation); for gradcam, of its",
        "  evaluation only (it reuses the ornet run's stage-0 evaluator: ResNet-18, target layer layer4[-1]).",
        "  Other jobs may have shared the CPU while this ran, so times are noisy and usually pessimistic.",
        "",
        "| method | GT-known Loc | Top-1 Loc | MaxBoxAccV2 | PxAP | Top-1 Cls | seconds |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for method, runs in results.items():
        cells = [stats([r[k] for r in runs if isinstance(r.get(k), (int, float))]) for k in KEYS]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += ["", "mean ± sample standard deviation (min-max) over seeds.", "", "## Every run", "",
              "| method | seed | " + " | ".join(KEYS) + " | threshold |",
              "| --- | --- | " + " | ".join("---" for _ in KEYS) + " | --- |"]
    for method, runs in results.items():
        for r in runs:
            cells = [f"{r[k]:.1f}" if isinstance(r.get(k), (int, float)) else "-" for k in KEYS]
            lines.append(f"| {method} | {r['seed']} | " + " | ".join(cells) + f" | {r.get('threshold', 0):.2f} |")
    if results.get("ornet") and results.get("cam") and any(o["seed"] in {c["seed"] for c in results["cam"]} for o in results["ornet"]):
        cam = {r["seed"]: r for r in results["cam"]}
        gaps = [o["gt_known_loc"] - cam[o["seed"]]["gt_known_loc"] for o in results["ornet"] if o["seed"] in cam]
        lines += ["", f"ORNet - CAM, GT-known Loc, per seed: {', '.join(f'{g:+.1f}' for g in gaps)} "
                      f"(mean {statistics.fmean(gaps):+.1f} points)."]
    if args.notes:
        lines += ["", Path(args.notes).read_text().rstrip()]
    lines += ["", "## Commands", "", "```", *commands, "```", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, "\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
