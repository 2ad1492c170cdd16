"""The data path with and without `data.cache_mb` (issue 28): seconds per epoch of loading alone.

    .venv/bin/python benchmarks/bench_data_cache.py --data DIR [--resize 192] [--batch 32]
        [--epochs 3] [--rounds 2] [--threads 1] [--cache-mb 1024]
        [--results benchmarks/results/data_cache.md]

`--data` is a CUB-format set (e.g. `benchmarks/realistic_sets objects DIR --seed 0`). Each round
builds a `WSOLDataModule` as a run does (loading in the main process, `--resize` = crop, the
ImageNet normalisation), once with `data.cache_mb: 0` and once with `--cache-mb`, in turn, and
times `--epochs` epochs of the training loader (`EpochSampler` seeded per epoch: the draws of a
run) and one pass of the test loader after them. Nothing else runs: no network. The first epoch
with the cache fills it (each image decoded and resized once); the later ones read from it. The
whole-run effect is this saving times the run's epochs; bench_train_speed.py times whole runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import cpu_model, git_commit  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="a CUB-format set")
    p.add_argument("--resize", type=int, default=192)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cache-mb", type=int, default=1024)
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "data_cache.md"))
    args = p.parse_args(argv)
    for name in ("resize", "batch", "epochs", "rounds", "threads", "cache_mb"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if not Path(args.data).is_dir():
        p.error(f"--data {args.data}: no such folder")
    return args


def measure(args) -> tuple[dict[str, list[list[float]]], dict]:
    """Per variant ("off", "on"), per round: the seconds of each epoch, then of the test pass.
    Also what the cache held at the end (entries, MiB) and the images per epoch."""
    import torch

    from ornet.config.schema import DataConfig
    from ornet.data.datamodule import WSOLDataModule

    torch.set_num_threads(args.threads)
    times: dict[str, list[list[float]]] = {"off": [], "on": []}
    info: dict = {}
    for _ in range(args.rounds):
        for variant, mb in (("off", 0), ("on", args.cache_mb)):
            dm = WSOLDataModule(DataConfig(name="cub", root=args.data, resize=args.resize, crop=args.resize,
                                           batch_size=args.batch, num_workers=0, cache_mb=mb))
            row = []
            for epoch in range(args.epochs):
                dm.train_sampler.start(epoch, seed=0, stream="bench")
                start, n = time.perf_counter(), 0
                for batch in dm.train_dataloader():
                    n += len(batch)
                row.append(time.perf_counter() - start)
            start = time.perf_counter()
            tests = sum(len(batch) for batch in dm.loader("test"))
            row.append(time.perf_counter() - start)
            times[variant].append(row)
            info.update(train_images=n, test_images=tests)
            if dm.cache is not None:
                info.update(entries=len(dm.cache), mib=dm.cache.bytes / 2**20)
    return times, info


def write_report(args, times: dict[str, list[list[float]]], info: dict, load: tuple[float, float], path: Path) -> None:
    import torch

    def med(variant: str, column: int) -> float:
        return statistics.median(row[column] for row in times[variant])

    columns = [f"epoch {k + 1}" for k in range(args.epochs)] + ["test pass"]
    lines = [
        "# The data path with and without the image cache (`data.cache_mb`, issue 28)",
        "",
        f"Written by `.venv/bin/python benchmarks/bench_data_cache.py {' '.join(sys.argv[1:])}`; do not edit by hand.",
        "",
        f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- machine: {cpu_model()}, {os.cpu_count()} cores visible; torch {torch.__version__}; {args.threads} thread(s)",
        f"- commit: {git_commit(ROOT)}",
        f"- load average (1 min) at the start / end: {load[0]:.2f} / {load[1]:.2f}",
        f"- data: {args.data}; {info.get('train_images')} training images an epoch (batch {args.batch}), "
        f"{info.get('test_images')} test images; resize = crop = {args.resize} px; loading in the main process",
        f"- the cache at the end: {info.get('entries', 0)} images, {info.get('mib', 0.0):.1f} MiB "
        f"(limit {args.cache_mb} MiB)",
        f"- {args.rounds} rounds, each: the loader without the cache, then with it (a fresh `WSOLDataModule` each)",
        "",
        "Median seconds over the rounds (each round's figures in brackets):",
        "",
        "| data.cache_mb | " + " | ".join(columns) + " |",
        "| --- | " + " | ".join("---" for _ in columns) + " |",
    ]
    for variant, label in (("off", "0"), ("on", str(args.cache_mb))):
        cells = [f"{med(variant, c):.2f} ({' / '.join(f'{row[c]:.2f}' for row in times[variant])})"
                 for c in range(len(columns))]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    later = range(1, args.epochs)
    if later:
        off = statistics.median(statistics.mean(row[c] for c in later) for row in times["off"])
        on = statistics.median(statistics.mean(row[c] for c in later) for row in times["on"])
        lines += ["", f"Epochs after the first: {off:.2f} s without the cache, {on:.2f} s with it "
                      f"({off - on:.2f} s saved per epoch, {off / on:.2f}x)."]
    from ornet.runtime.atomic import write_text_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, "\n".join(lines) + "\n")


def main(argv=None) -> int:
    args = parse_args(argv)
    start_load = os.getloadavg()[0]
    times, info = measure(args)
    write_report(args, times, info, (start_load, os.getloadavg()[0]), Path(args.results))
    print(Path(args.results).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
