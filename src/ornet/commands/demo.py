"""`ornet demo`: synthetic data -> ORNet and the CAM baseline -> one comparison table.

It runs what a user would run, and echoes each step as the command line that does it: the
synthetic set (`ornet.make_synthetic`, with `ornet synth`'s flags), two trainings, then the
comparison page (`reports.compare.compare_page`, what `ornet compare` writes). The two trainings are independent: with
`--jobs 2` (the default when at least two cores are free) they run at the same time as two
`ornet train` processes, each with half the cores (one thread each on a 2-core laptop, about
1.2-1.3x the throughput of one 2-thread process); their output is relayed line by line, prefixed
with the method, and kept in OUT/<method>.log. With `--jobs 1` they run one after the other in
this process (the `train` command's `main`, which calls `ornet.train`). The thread count changes
floating-point reductions, so the two modes give slightly different numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..config.presets import preset_path
from ..errors import OrnetError
from ..runtime.atomic import write_json_atomic
from ..runtime.outdir import check_out_dir, make_out_dir
from .args import UsageParser

# (synth options, extra train overrides) for the full run and for the smoke check.
# The synthetic images are 128 px, so the demo trains the presets at that size (their 192 px is for
# photos): at 192 px this set takes 503 s instead of 200-240 (docs/synthetic.md, "The demo's size").
FULL = {"synth": ["--size", "128", "--train", "400", "--test", "200", "--body-cue", "0.8"],
        "train": ["--data.resize", "128", "--data.crop", "128"]}
FAST = {
    "synth": ["--classes", "4", "--train", "160", "--test", "48", "--size", "64"],
    "train": ["--trainer.max_epochs", "1", "--data.resize", "64", "--data.crop", "64", "--data.val_per_class", "3"],
}
TRAININGS = {"ornet": "demo", "cam": "demo_cam"}
"""The demo's trainings: run folder (and method) -> the preset it trains (configs/<preset>.yaml)."""
MARKER = ".ornet-demo"
NOISE = ("┏", "┃", "┡", "│", "└", "Trainable params", "Non-trainable params", "Total params",
         "Total estimated model params", "Modules in train mode", "Modules in eval mode", "Total FLOPs",
         "GPU available", "TPU available", "💡", "`Trainer(limit_", "`Trainer.fit` stopped",
         "Loading `train_dataloader`")
"""Lightning banners and model summaries: kept in OUT/<method>.log, not relayed to the console."""
COLUMNS = [("gt_known_loc", "GT-known"), ("top1_loc", "Top-1 Loc"), ("max_box_acc_v2", "MaxBoxAccV2"),
           ("pxap", "PxAP"), ("top1_cls", "Top-1 Cls"), ("seconds", "seconds")]
"""The table's columns: metrics.json's key (summary.json's `seconds`: the training's wall clock), title."""


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = UsageParser(prog=prog, description=(
        "Generate the synthetic benchmark, train ORNet (configs/demo.yaml) and the CAM baseline "
        "(configs/demo_cam.yaml) on it, evaluate both and print a comparison table. "
        "Writes OUT/data, OUT/ornet, OUT/cam, OUT/summary.json, OUT/index.html (the comparison page, as "
        "`ornet compare` writes it) and OUT/metrics.csv."))
    p.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    p.add_argument("--fast", action="store_true", help="a smaller, one-epoch run: a smoke check in about 2 minutes")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and of training (default 0)")
    p.add_argument("--jobs", type=int, choices=(1, 2), default=None,
                   help="2: train ORNet and CAM at the same time, each on half the cores; 1: one after the "
                        "other (default: 2 when at least 2 cores are available)")
    return p


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _run(command: str, argv: list[str]) -> None:
    """One step in this process, echoed as the command line that does the same: `synth` through
    `ornet.make_synthetic`, `train` through the train command (`ornet.train`, then its summary)."""
    print(f"$ ornet {command} {' '.join(argv)}", flush=True)
    try:
        if command == "synth":
            _synth(argv)
        else:
            from . import train

            train.main(argv, f"ornet {command}")
    except OrnetError as e:
        raise OrnetError(f"`ornet {command}` failed: {e}") from None


def _synth(argv: list[str]) -> None:
    """`ornet synth ARGV` as an API call: the flags parsed by the command's parser, its line printed."""
    from ..api.data import make_synthetic
    from ..runtime.outdir import check_out_dir
    from .synth import build_parser, summary_line

    a = build_parser("ornet synth").parse_args(argv)
    check_out_dir(a.out, "OUT")
    s = make_synthetic(a.out, classes=a.classes, train=a.train, test=a.test, size=a.size, seed=a.seed,
                       second_object=a.second_object, body_cue=a.body_cue, workers=a.workers, force=a.force,
                       quiet=a.quiet)
    print(summary_line(s, a.size, a.out))


def _train_in_parallel(trainings: dict[str, list[str]], out: Path, threads: int, quiet: bool) -> dict[str, float]:
    """`ornet train` once per method, all at once, `threads` threads each; seconds per method.

    Every line a training prints goes to OUT/<method>.log and, unless quiet, to stdout prefixed
    with `[method]`. When one fails the others are stopped and its exit code is reported.
    """
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    procs: dict[str, subprocess.Popen] = {}
    relays: list[threading.Thread] = []
    start: dict[str, float] = {}
    seconds: dict[str, float] = {}
    print_lock = threading.Lock()

    def relay(method: str, stream, log: Path) -> None:
        with log.open("w") as f:
            for line in stream:
                f.write(line)
                f.flush()
                if not quiet and line.strip() and not line.lstrip().startswith(NOISE):
                    with print_lock:
                        print(f"[{method}] {line}", end="", flush=True)

    try:
        for method, argv in trainings.items():
            print(f"$ ornet train {' '.join(argv)}  ({threads} thread{'s' * (threads > 1)}, output in "
                  f"{out / (method + '.log')})", flush=True)
            start[method] = time.perf_counter()
            procs[method] = subprocess.Popen([sys.executable, "-m", "ornet", "train", *argv], env=env, text=True,
                                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=1)
            t = threading.Thread(target=relay, args=(method, procs[method].stdout, out / f"{method}.log"),
                                 daemon=True)
            t.start()
            relays.append(t)
        failed = None
        while len(seconds) < len(procs) and failed is None:
            for method, proc in procs.items():
                if method not in seconds and proc.poll() is not None:
                    seconds[method] = time.perf_counter() - start[method]
                    if proc.returncode != 0:
                        failed = (method, proc.returncode)
            time.sleep(0.2)
        if failed is not None:
            method, code = failed
            relays[list(procs).index(method)].join(timeout=5)
            log = out / f"{method}.log"
            lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
            last = f": {lines[-1].strip()}" if lines else ""
            raise OrnetError(f"`ornet train` of {method} failed with exit code {code}{last} (output: {log})")
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        for t in relays:
            t.join(timeout=5)
    return seconds


def format_table(summary: dict) -> str:
    header = f"{'method':<8}" + "".join(f"{title:>13}" for _, title in COLUMNS)
    lines = [header, "-" * len(header)]
    for method, m in summary.items():
        cells = []
        for key, _ in COLUMNS:
            v = m.get(key)
            cells.append(f"{v:>13.1f}" if isinstance(v, (int, float)) else f"{'-':>13}")
        lines.append(f"{method:<8}" + "".join(cells))
    return "\n".join(lines)


def results_text(summary: dict, seconds: float, out: Path) -> str:
    """What the demo prints at the end (benchmarks/bench_demo.py copies it into results/demo.md):
    a blank line, the table, a blank line, the ORNet - CAM line."""
    gap = summary["ornet"].get("gt_known_loc", 0) - summary["cam"].get("gt_known_loc", 0)
    return (f"\n{format_table(summary)}\n\nORNet - CAM on GT-known: {gap:+.1f} points; total {seconds:.0f} s; "
            f"reports: {out / 'ornet' / 'report.html'}, {out / 'cam' / 'report.html'}")


def main(argv: list[str], prog: str) -> int:
    ns = build_parser(prog).parse_args(argv)
    if ns.seed < 0:
        raise OrnetError(f"--seed must be >= 0, got {ns.seed}")
    out = Path(ns.out)
    check_out_dir(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        earlier_demo = (out / MARKER).is_file()
        if not (ns.force or earlier_demo):
            raise OrnetError(f"{out} exists and is not empty; pass --force to replace it")
        print(f"replacing {out}" + (" (an earlier demo's output)" if earlier_demo else ""), flush=True)
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    make_out_dir(out)
    (out / MARKER).write_text("written by `ornet demo`; a later demo replaces this folder\n")
    plan = FAST if ns.fast else FULL
    quiet = ["--quiet"] if ns.quiet else []
    seed = ["--seed", str(ns.seed)]
    start = time.perf_counter()
    _run("synth", [str(out / "data"), *plan["synth"], *seed, *quiet])
    trainings = {method: ["--config", str(preset_path(preset)), "--data.root", str(out / "data"),
                          "--out", str(out / method), "--trainer.seed", str(ns.seed), *plan["train"], *quiet]
                 for method, preset in TRAININGS.items()}
    jobs = ns.jobs or (2 if available_cores() >= 2 else 1)
    if jobs == 2:
        seconds = _train_in_parallel(trainings, out, threads=max(1, available_cores() // 2), quiet=ns.quiet)
    else:
        seconds = {}
        for method, argv in trainings.items():
            t0 = time.perf_counter()
            _run("train", argv)
            seconds[method] = time.perf_counter() - t0
    summary: dict[str, dict] = {}
    for method in trainings:
        metrics = json.loads((out / method / "metrics.json").read_text())
        metrics["seconds"] = round(seconds[method], 1)
        summary[method] = metrics
    write_json_atomic(out / "summary.json", summary)
    print(results_text(summary, time.perf_counter() - start, out))
    from ..reports.compare import compare_page

    # what `ornet compare OUT/ornet OUT/cam --out OUT` writes, with the demo's labels
    page = compare_page({"ORNet": out / "ornet", "CAM": out / "cam"}, out / "index.html", csv=out / "metrics.csv")
    print(f"comparison page (both methods on test images): {page}; its table: {out / 'metrics.csv'}")
    return 0
