"""The seed paper's ablations at our scale: stage 2 (refine) variants from the same stage 0 and 1.

    .venv/bin/python benchmarks/bench_ablations.py --runs /tmp/ornet-bench/runs [--seeds 0 1 2]
        [--variants ...] [--results benchmarks/results/ablations.md]

For every seed, `RUNS/ornet_attentive_erasing_seed<S>` must be a finished `configs/demo.yaml
--method.erasing attentive` run (bench_quality.py --methods ornet_attentive_erasing makes them): the
base is the paper's attentive erasing, and every variant starts from it (the demo preset itself
has no erasing, the winner of this table). Each variant copies that run's `evaluator.ckpt` and `coarse.ckpt` into its own folder
and reruns only stage 2 with one setting changed:

    ornet train --config configs/demo.yaml --data.root DATA --out VARIANT --stages '[refine]' \\
        --trainer.seed S --data.resize R --data.crop R --method.erasing attentive --method.<key> <value>

(R: the base run's size) so the variants differ only in stage 2 (stages are seeded at their start). The base row is the
quality run itself. Groups: erasing strategy (seed Table 1: none / RE / ER / AE), f_max (seed
Table 2: 0.3 / 0.4 / 0.5 / 0.6) and the loss terms (without weighted entropy, without area loss,
faithful vs bounded area loss, the paper's entropy weight).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import sys
from pathlib import Path

import yaml
from bench_quality import ROOT, ornet_cmd, run, stats  # benchmarks/ (scripts run from there)
from machine import cpu_model

from ornet.runtime.atomic import write_text_atomic

BASE = "AE, f_max 0.5, demo loss (base: ornet_attentive_erasing)"
# name -> (group, train flags); the base row (the quality run) has no flags
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "no erasing": ("erasing (seed Table 1)", ["--method.erasing", "none"]),
    "RE: random rectangle": ("erasing (seed Table 1)", ["--method.erasing", "random"]),
    "ER: whole rectangle at the peak": ("erasing (seed Table 1)", ["--method.erasing", "rectangle"]),
    "f_max 0.3": ("f_max (seed Table 2)", ["--method.f_max", "0.3"]),
    "f_max 0.4": ("f_max (seed Table 2)", ["--method.f_max", "0.4"]),
    "f_max 0.6": ("f_max (seed Table 2)", ["--method.f_max", "0.6"]),
    "without L_we (entropy weight 0)": ("loss terms", ["--method.entropy_weight", "0"]),
    "paper entropy weight 1.5": ("loss terms", ["--method.entropy_weight", "1.5"]),
    "without L_a (area weight 0)": ("loss terms", ["--method.area_weight", "0"]),
    "faithful area loss (on f_a)": ("loss terms", ["--method.area_form", "faithful"]),
}
KEYS = ["gt_known_loc", "top1_loc", "max_box_acc_v2", "pxap"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", default="/tmp/ornet-bench/runs", help="folder of bench_quality.py's runs")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), metavar="NAME")
    p.add_argument("--work", default="/tmp/ornet-bench/ablations", help="variant run folders")
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "ablations.md"))
    p.add_argument("--threads", type=int, default=1, help="as the quality runs whose stages 0-1 are reused")
    p.add_argument("--reuse", action="store_true", help="keep variants already finished in --work")
    p.add_argument("--notes", default=None, help="a Markdown file appended to the report (analysis)")
    args = p.parse_args()

    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    runs, work = Path(args.runs), Path(args.work)
    rows: dict[str, dict[int, dict]] = {BASE: {}, **{v: {} for v in args.variants}}
    commands: list[str] = []
    for seed in args.seeds:
        base = runs / f"ornet_attentive_erasing_seed{seed}"  # the paper's erasing, else the demo preset
        if not (base / "metrics.json").is_file():
            raise SystemExit(f"{base} is not a finished run: run bench_quality.py first")
        rows[BASE][seed] = json.loads((base / "metrics.json").read_text())
        base_data = yaml.safe_load((base / "config.yaml").read_text())["data"]
        # stage 2 at the base run's size (bench_quality trains the synthetic set at 128 px, as the demo)
        data, size = base_data["root"], ["--data.resize", str(base_data["resize"]), "--data.crop", str(base_data["crop"])]
        for name in args.variants:
            flags = VARIANTS[name][1]
            out = work / f"seed{seed}_{'_'.join(f.lstrip('-').replace('method.', '') for f in flags)}"
            cmd = [*ornet_cmd(), "train", "--config", "configs/demo.yaml", "--data.root", str(data),
                   "--out", str(out), "--stages", "[refine]", "--trainer.seed", str(seed),
                   "--trainer.progress", "false", "--quiet", *size, "--method.erasing", "attentive", *flags]
            commands.append("ornet " + " ".join(cmd[len(ornet_cmd()):]))
            if not (args.reuse and (out / "metrics.json").is_file()):
                if out.exists():
                    shutil.rmtree(out)
                (out / "checkpoints").mkdir(parents=True)
                for stage in ("evaluator", "coarse"):
                    shutil.copy2(base / "checkpoints" / f"{stage}.ckpt", out / "checkpoints" / f"{stage}.ckpt")
                run(cmd, work / f"{out.name}.log")
            rows[name][seed] = json.loads((out / "metrics.json").read_text())
            m = rows[name][seed]
            print(f"seed {seed} {name}: " + ", ".join(f"{k} {m[k]:.1f}" for k in KEYS), flush=True)
    write_report(Path(args.results), args, rows, commands)
    print(f"wrote {args.results}")
    return 0


def write_report(path: Path, args, rows: dict[str, dict[int, dict]], commands: list[str]) -> None:
    import torch

    base = rows[BASE]
    lines = [
        "# Ablations of stage 2 at our scale (synthetic benchmark, configs/demo.yaml)", "",
        f"- date: {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {cpu_model()}, {os.cpu_count()} cores visible, {args.threads} thread(s) per run; "
        f"torch {torch.__version__}, Python {platform.python_version()}; no GPU",
        f"- command: `cd benchmarks && ../.venv/bin/python bench_ablations.py --runs {args.runs} --seeds "
        f"{' '.join(map(str, args.seeds))} --threads {args.threads}` (variants may run as two such commands "
        "at once, split by `--variants`, then once more with `--reuse` to gather them)",
        "- every variant reruns stage 2 only, from the stage-0 and stage-1 checkpoints of the quality run of",
        "  the same seed (benchmarks/results/quality_presets.md); test split, threshold chosen on val, IoU >= 0.5.",
        "- cells: mean ± sample standard deviation over seeds; Δ = mean per-seed difference to the base row",
        "  in GT-known Loc (positive: the variant is better).", "",
        "| group | variant | GT-known Loc | Δ GT-known | Top-1 Loc | MaxBoxAccV2 | PxAP |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, by_seed in rows.items():
        group = "base" if name == BASE else VARIANTS[name][0]
        seeds = sorted(by_seed)
        cells = [stats([by_seed[s][k] for s in seeds if isinstance(by_seed[s].get(k), (int, float))]) for k in KEYS]
        deltas = [by_seed[s]["gt_known_loc"] - base[s]["gt_known_loc"] for s in seeds if s in base]
        delta = "-" if name == BASE else f"{statistics.fmean(deltas):+.1f}"
        lines.append(f"| {group} | {name} | {cells[0]} | {delta} | " + " | ".join(cells[1:]) + " |")
    lines += ["", "## Every run", "", "| variant | seed | " + " | ".join(KEYS) + " |",
              "| --- | --- | " + " | ".join("---" for _ in KEYS) + " |"]
    for name, by_seed in rows.items():
        for s in sorted(by_seed):
            lines.append(f"| {name} | {s} | " + " | ".join(f"{by_seed[s][k]:.1f}" for k in KEYS) + " |")
    if args.notes:
        lines += ["", Path(args.notes).read_text().rstrip()]
    lines += ["", "## Commands", "", "```", *commands, "```", ""]
    write_text_atomic(path, "\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
