"""Paired seeds: does a setting move quality on average, or only send each seed down another path?

    python benchmarks/studies/paired_seeds.py --data DIR --work DIR --seeds 1 2 ... [--config configs/demo.yaml]
        [--override KEY=VALUE ...] [--variant KEY=VALUE ...] [--jobs 2] [--threads 1]
        [--results benchmarks/results/FILE.md] [--report-only]

For each seed, two `ornet train` runs of the same config on the same data: "as is" (the config and
`--override`s) and "variant" (the same plus every `--variant` setting), two at a time (`--jobs`, one
thread each: `--threads`), in WORK/sS_on and WORK/sS_off (the variant). Made for issue 28's speed
switches, `--variant trainer.fold_frozen_bn=false --variant trainer.channels_last=false`: they change
float rounding only, and a training that starts from other rounding follows another trajectory
(`benchmarks/results/plain_map_notes.md`), so single seeds move by points either way; whether the mean
moves is a question for many paired seeds.

The report gives per seed the run's own figures from its metrics.json: on val, the plain map's
GT-known (class gate 0) and the default evaluation's (the gate chosen there, `cam_gate_scores`; a CAM
run's one map: `val_gt_known_loc`, or its curves.json for runs from before that key); on
test, GT-known; and each run's seconds. Then the paired differences (as is - variant) with their mean,
standard deviation and standard error, and the median time ratio. Val is where a choice between the two
would be made; test is issue 28's "quality holds" figure, reported, not chosen on. `--report-only`
writes the report from the run folders already in WORK (seeds with both runs finished).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_train_speed import pairs  # noqa: E402
from machine import cpu_model, git_commit  # noqa: E402


def settings(items: list[str], flag: str, p: argparse.ArgumentParser) -> list[str]:
    """KEY=VALUE items as `ornet train` flags (--KEY VALUE, `bench_train_speed.pairs`); a malformed one
    is refused by `p` in one line."""
    try:
        return pairs(items)
    except SystemExit as e:
        p.error(f"{flag} {e}")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="the dataset root (data.root)")
    p.add_argument("--work", type=Path, required=True, help="the runs' folder (WORK/sS_on, WORK/sS_off)")
    p.add_argument("--seeds", type=int, nargs="+", required=True)
    p.add_argument("--config", default=str(ROOT / "configs" / "demo.yaml"))
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE", help="both runs")
    p.add_argument("--variant", action="append", default=[], metavar="KEY=VALUE", help="the variant's runs only")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of each run")
    p.add_argument("--results", type=Path, default=None, help="the report (markdown); default: print it")
    p.add_argument("--report-only", action="store_true", help="no training: report the runs in WORK")
    args = p.parse_args(argv)
    args.both = settings(args.override, "--override", p)
    args.extra = settings(args.variant, "--variant", p)
    if not args.extra:
        p.error("give the variant's settings with --variant KEY=VALUE (what the pairs compare)")
    if args.jobs < 1 or args.threads < 1:
        p.error(f"--jobs and --threads must be at least 1, got {args.jobs} and {args.threads}")
    if len(set(args.seeds)) != len(args.seeds):
        p.error(f"--seeds: each seed once, got {args.seeds}")
    if not args.report_only and not args.data.is_dir():
        p.error(f"--data {args.data}: no such folder")
    return args


def command(args, seed: int, variant: bool) -> list[str]:
    out = args.work / f"s{seed}_{'off' if variant else 'on'}"
    return [sys.executable, "-m", "ornet", "train", "--config", str(args.config), "--data.root", str(args.data),
            "--out", str(out), "--force", "--quiet", "--trainer.progress", "false", *args.both,
            "--trainer.seed", str(seed), *(args.extra if variant else [])]


def train(args) -> None:
    """Every seed's two runs, `--jobs` at a time (a seed's pair side by side); a failed run stops the
    study, naming its log."""
    args.work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    queue = [(s, v) for s in args.seeds for v in (False, True)]
    running: list[tuple[subprocess.Popen, Path]] = []
    while queue or running:
        while queue and len(running) < args.jobs:
            seed, variant = queue.pop(0)
            log = args.work / f"s{seed}_{'off' if variant else 'on'}.log"
            with open(log, "w") as f:
                running.append((subprocess.Popen(command(args, seed, variant), env=env, stdout=f,
                                                 stderr=subprocess.STDOUT, cwd=ROOT), log))
        time.sleep(2)
        for proc, log in list(running):
            if proc.poll() is not None:
                running.remove((proc, log))
                if proc.returncode != 0:
                    for other, _ in running:
                        other.terminate()
                    raise SystemExit(f"paired_seeds.py: a run failed (exit {proc.returncode}); its log: {log}")


def read_pairs(work: Path, seeds: list[int]) -> list[tuple[int, dict, dict]]:
    """(seed, as-is metrics, variant metrics) for the seeds whose two runs both finished."""
    out = []
    for s in seeds:
        runs = [work / f"s{s}_{v}" for v in ("on", "off")]
        if all((r / "metrics.json").is_file() for r in runs):
            out.append((s, *(read_metrics(r) for r in runs)))
    return out


def read_metrics(run: Path) -> dict:
    """The run's metrics.json; for a run without gate candidates written before metrics.json had
    `val_gt_known_loc`, that figure read from its curves.json (val's curve at the chosen threshold)."""
    m = json.loads((run / "metrics.json").read_text())
    curves = run / "curves.json"
    if "val_gt_known_loc" not in m and not m.get("cam_gate_scores") and curves.is_file():
        c = json.loads(curves.read_text())
        if c.get("split") == "val":
            m["val_gt_known_loc"] = float(c["accuracy"]["50"][c["chosen_index"]])
    return m


def val_figures(m: dict) -> tuple[float, float]:
    """(the plain map's val GT-known, the default evaluation's): class gate 0 and the chosen gate
    in `cam_gate_scores`; a run without gate candidates (CAM) has one map: `val_gt_known_loc` for
    both; NaN when the run has no val figure."""
    scores = m.get("cam_gate_scores") or {}
    if not scores:
        v = float(m.get("val_gt_known_loc", float("nan")))
        return v, v
    chosen = m.get("cam_gate", 0.0)
    return float(scores.get("0.0", float("nan"))), float(scores.get(str(float(chosen)), float("nan")))


def spread(values: list[float]) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:  # runs that chose nothing on val
        return "- (the runs' metrics.json have no such figure)"
    n = len(values)
    mean = statistics.mean(values)
    if n < 2:
        return f"{mean:+.2f} (one seed)"
    sd = statistics.stdev(values)
    return f"{mean:+.2f} (sd {sd:.2f}, se {sd / n ** 0.5:.2f}, n {n})"


def _cell(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def report(args, pairs: list[tuple[int, dict, dict]]) -> str:
    if not pairs:
        raise SystemExit(f"paired_seeds.py: no seed of {args.seeds} has both runs finished in {args.work}")
    rows, d_val, d_plain, d_test, ratios = [], [], [], [], []
    for s, on, off in pairs:
        (p_on, v_on), (p_off, v_off) = val_figures(on), val_figures(off)
        t_on, t_off = on["gt_known_loc"], off["gt_known_loc"]
        d_val.append(v_on - v_off)
        d_plain.append(p_on - p_off)
        d_test.append(t_on - t_off)
        ratios.append(off["seconds"] / on["seconds"])
        rows.append(f"| {s} | {_cell(p_on)} / {_cell(p_off)} | {_cell(v_on)} / {_cell(v_off)} | {t_on:.1f} / {t_off:.1f} | "
                    f"{t_on - t_off:+.1f} | {on['seconds']:.0f} / {off['seconds']:.0f} |")
    flags = " ".join(f"--variant {v}" for v in args.variant)
    return "\n".join([
        "# Paired seeds: the config as is against a variant", "",
        f"- written by `python benchmarks/studies/paired_seeds.py --data {args.data} --work {args.work} --seeds "
        f"{' '.join(map(str, args.seeds))} --config {args.config} "
        + "".join(f"--override {o} " for o in args.override) + f"{flags}`",
        f"- date: {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; commit of this script: "
        f"{git_commit(ROOT)}",
        f"- machine: {cpu_model()}, {os.cpu_count()} cores visible; Python {platform.python_version()}; "
        f"{args.jobs} runs at a time, OMP_NUM_THREADS={args.threads} each (a seed's two runs side by side)",
        f"- as is: `{args.config}`" + (f" with {', '.join(args.override)}" if args.override else "")
        + f"; variant: the same with {', '.join(args.variant)}", "",
        "| seed | val, plain map: as is / variant | val, default evaluation | test GT-known | test: as is - variant "
        "| seconds |",
        "| --- | --- | --- | --- | --- | --- |",
        *rows, "",
        f"- as is - variant, val (default evaluation): {spread(d_val)}",
        f"- as is - variant, val (plain map): {spread(d_plain)}",
        f"- as is - variant, test GT-known: {spread(d_test)}",
        f"- seconds, variant / as is: median {statistics.median(ratios):.2f} "
        f"({' / '.join(f'{r:.2f}' for r in ratios)})", "",
    ])


def main(argv=None) -> int:
    args = parse_args(argv)
    if not args.report_only:
        train(args)
    text = report(args, read_pairs(args.work, args.seeds))
    if args.results is None:
        print(text)
    else:
        from ornet.runtime.atomic import write_text_atomic

        write_text_atomic(args.results, text)
        print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
