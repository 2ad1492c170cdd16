"""GPU training throughput and peak memory of the CUB-scale presets, per stage and precision,
beside an older checkout's in the same session.

    .venv/bin/python benchmarks/bench_gpu.py [--baseline OLD_CHECKOUT] [--data DIR] [--steps 40]
        [--warmup 8] [--precisions 32-true 16-mixed] [--batch N] [--workers N] [--repeats 1]
        [--set KEY=VALUE ...] [--results benchmarks/results/gpu_speed.md]
    .venv/bin/python benchmarks/bench_gpu.py --cpu-check [--baseline OLD_CHECKOUT] --steps 3 --warmup 1 --batch 2

The stages of `configs/cub_resnet50.yaml` (224 px crops of 256 px images, batch 16: a VGG-16
evaluator in stage 0, the ResNet-50 stem + generator (width 64) + ResNet-50 rest in stage 1, the
stem + generator + frozen VGG-16 evaluator in stage 2) and the CAM baseline of
`configs/cub_cam_resnet50.yaml` run through Lightning as `ornet train` runs them (the stage's
LightningModule in the preset's memory layout, `trainer.channels_last`, with its optimiser and data
loader at the preset's batch size and workers), for `--steps` training steps each; the first
`--warmup` are not timed. Networks start from their initialisation (`*_weights: none`: nothing is
downloaded; throughput does not depend on the weights). Data: the synthetic benchmark at 256 px
(`ornet synth --size 256`, made if absent), 200 classes as on CUB. A second table times each stage's
training loader alone (the same batches, no network): the most images/s the loader could feed.

`--baseline OLD_CHECKOUT`: that checkout's own `benchmarks/bench_gpu.py` runs in a subprocess
(this interpreter, its `src/` on PYTHONPATH, its folder as the working directory) with the same
`--data --steps --warmup --precisions --batch --workers`, its table written to a temporary file
and read back; with `--repeats N` the old and the new rows alternate N times and the report gives
medians and their ratio per row (issue 28 asks for 3x `gpu.md`'s run 1, the a8a58be code, on the
same card kind). A checkout of a8a58be: `git worktree add /tmp/old a8a58be`; for a machine that
gets a copy of the working tree without its history, `git archive a8a58be | tar -x -C old_a8a58be`
beforehand (an untracked folder travels with the tree; do not commit it). `--set KEY=VALUE`
changes this checkout's config only (e.g. `trainer.channels_last=false` to see what the layout
alone gives), so a lever can be measured beside the old code in the same session.

Peak memory is `torch.cuda.max_memory_allocated()` over the stage's steps (tensors the caching
allocator handed out; `reserved` is what it held from the driver). Without CUDA the script says so
and exits 2 unless `--cpu-check` (a few steps on the CPU at 32-true, printed, nothing written: to
check the script and the baseline's call). The demo presets' CPU training time, against an older
checkout, is `bench_train_speed.py`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_train_speed import check_import, version_env  # noqa: E402  (the same old-checkout handling)
from machine import cpu_model, git_commit  # noqa: E402

STAGES = (("evaluator", "cub_resnet50"), ("coarse", "cub_resnet50"), ("refine", "cub_resnet50"),
          ("cam", "cub_cam_resnet50"))


def load_preset(name: str, data: Path, workers: int | None, settings: dict | None = None):
    """The preset with the benchmark's data and workers, no weight files, and `settings` (`--set`)."""
    import yaml

    import ornet

    raw = yaml.safe_load((ROOT / "configs" / f"{name}.yaml").read_text())
    overrides = {"data.root": str(data), **(settings or {})}
    if workers is not None:
        overrides["data.num_workers"] = workers
    for key in ("backbone_weights", "evaluator_weights"):  # no download: speed does not depend on them
        if key in raw.get("model", {}):
            overrides[f"model.{key}"] = "none"
    return ornet.load_config(ROOT / "configs" / f"{name}.yaml", overrides)


def datamodule(stage: str, cfg, batch: int | None):
    """The stage's data as `ornet train` loads it, at `batch` or the stage's batch size."""
    from ornet.data.datamodule import WSOLDataModule
    from ornet.models.weights_spec import input_normalization

    dm = WSOLDataModule(cfg.data, normalization=input_normalization(cfg.model))
    dm.batch_size = batch or getattr(cfg, stage).batch_size or cfg.data.batch_size
    return dm


def measure(stage: str, cfg, steps: int, warmup: int, precision: str, accelerator: str = "gpu",
            batch: int | None = None) -> dict:
    """images/s over the timed steps and peak CUDA memory of one stage at one precision."""
    import lightning as L
    import torch

    cuda = accelerator == "gpu"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    from ornet.models.memory_format import use_channels_last
    from ornet.training.pipeline import build_task, quiet_lightning_warnings

    class Clock(L.Callback):
        def __init__(self):
            self.start = self.end = None
            self.images = 0

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if batch_idx == warmup:
                sync()
                self.start = time.perf_counter()

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            if batch_idx >= warmup:
                self.images += len(batch)
                sync()
                self.end = time.perf_counter()

    quiet_lightning_warnings()
    L.seed_everything(0, verbose=False)
    dm = datamodule(stage, cfg, batch)
    task = build_task(cfg, stage, dm.num_classes, dm.classes)
    use_channels_last(task, cfg.trainer.channels_last)  # as `ornet train` (training.pipeline.run_stage)
    clock = Clock()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    trainer = L.Trainer(accelerator=accelerator, devices=1, precision=precision, max_epochs=1,
                        limit_train_batches=steps, limit_val_batches=0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[clock])
    trainer.fit(task, datamodule=dm)
    return {"ips": clock.images / (clock.end - clock.start),
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan"),
            "reserved_gib": torch.cuda.max_memory_reserved() / 2**30 if cuda else float("nan"),
            "batch": dm.batch_size, "workers": cfg.data.num_workers}


def measure_loader(stage: str, cfg, steps: int, warmup: int, batch: int | None = None) -> float:
    """images/s of the stage's training loader alone (the same sampler, transforms, workers and
    collation as `measure`'s; no network), over the batches after `warmup`."""
    images, start = 0, None
    for i, b in enumerate(datamodule(stage, cfg, batch).train_dataloader()):
        if i == warmup:
            start = time.perf_counter()
        elif i > warmup:
            images += len(b)
        if i == steps:
            break
    if start is None or images == 0:
        raise SystemExit(f"bench_gpu.py: the {stage} loader gave at most {warmup} batches; make the data "
                         f"larger or --warmup smaller")
    return images / (time.perf_counter() - start)


ROW = re.compile(r"^\|\s*(evaluator|coarse|refine|cam)\s*\|")
CPU_LINE = re.compile(r"^(evaluator|coarse|refine|cam)\s+cpu\s+(\S+)\s+([0-9.]+) images/s\s*$")


def parse_table(text: str) -> dict[tuple[str, str], dict]:
    """Rows of a results table written by this script at any version (stage, preset, precision,
    batch, loader workers, images/s, peak GiB, reserved GiB): {(stage, precision): row}."""
    rows = {}
    for line in text.splitlines():
        if not ROW.match(line):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 8:
            raise ValueError(f"a results row with {len(cells)} cells, not 8: {line!r}")
        stage, _, precision, batch, workers, ips, peak, reserved = cells
        rows[(stage, precision)] = {"ips": float(ips), "peak_gib": float(peak), "reserved_gib": float(reserved),
                                    "batch": int(batch), "workers": int(workers)}
    return rows


def parse_cpu_lines(text: str) -> dict[tuple[str, str], dict]:
    """`--cpu-check`'s printed lines ("coarse     cpu 32-true     1.23 images/s"): {(stage, precision): row}."""
    rows = {}
    for line in text.splitlines():
        m = CPU_LINE.match(line)
        if m:
            rows[(m.group(1), m.group(2))] = {"ips": float(m.group(3)), "peak_gib": float("nan"),
                                              "reserved_gib": float("nan")}
    return rows


def bench_args(args) -> list[str]:
    """The arguments both versions of the script run with (the measurement, not the output)."""
    out = ["--data", str(args.data), "--steps", str(args.steps), "--warmup", str(args.warmup)]
    if not args.cpu_check:
        out += ["--precisions", *args.precisions]
    if args.batch:
        out += ["--batch", str(args.batch)]
    if args.workers is not None:
        out += ["--workers", str(args.workers)]
    return out + (["--cpu-check"] if args.cpu_check else [])


def baseline_command(checkout: Path, args, results: Path | None) -> tuple[list[str], dict]:
    """The older checkout's own script with this run's arguments: (argv, environment: its src/ on
    PYTHONPATH, this process's OMP_NUM_THREADS; `bench_train_speed.version_env`)."""
    cmd = [sys.executable, str(checkout / "benchmarks" / "bench_gpu.py"), *bench_args(args)]
    if results is not None:
        cmd += ["--results", str(results)]
    return cmd, version_env(checkout, os.environ.get("OMP_NUM_THREADS"))


def run_baseline(checkout: Path, args) -> dict[tuple[str, str], dict]:
    """One run of the older checkout's script; its rows (the table it wrote, or with --cpu-check its
    printed lines). A failed run or one that gives no row stops the benchmark, naming the checkout."""
    with tempfile.TemporaryDirectory() as tmp:
        results = None if args.cpu_check else Path(tmp) / "old.md"
        cmd, env = baseline_command(checkout, args, results)
        check_import(checkout, env)  # not this checkout's ornet, timed as the old one
        done = subprocess.run(cmd, env=env, cwd=checkout, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"bench_gpu.py: the baseline {checkout} failed (exit {done.returncode}):\n"
                             f"{(done.stderr or done.stdout)[-2000:]}")
        rows = parse_cpu_lines(done.stdout) if args.cpu_check else parse_table(results.read_text())
    if not rows:
        raise SystemExit(f"bench_gpu.py: the baseline {checkout} gave no rows; its output:\n{done.stdout[-2000:]}")
    return rows


def medians(runs: list[dict[tuple[str, str], dict]]) -> dict[tuple[str, str], dict]:
    """Per row, the median images/s over the runs (and the largest peak memory)."""
    out = {}
    for key in runs[0]:
        got = [r[key] for r in runs if key in r]
        out[key] = {**got[0], "ips": statistics.median(g["ips"] for g in got), "each": [g["ips"] for g in got],
                    "peak_gib": max(g["peak_gib"] for g in got), "reserved_gib": max(g["reserved_gib"] for g in got)}
    return out


def _ips(row: dict) -> str:
    """The median images/s, and each run's in brackets when there were several."""
    each = row.get("each", [])
    return f"{row['ips']:.1f}" + (f" ({' / '.join(f'{v:.1f}' for v in each)})" if len(each) > 1 else "")


def _gib(row: dict | None, key: str) -> str:
    return "-" if row is None or row[key] != row[key] else f"{row[key]:.2f}"  # nan: not measured (CPU)


def table_lines(new: dict, old: dict | None, presets: dict[str, str]) -> list[str]:
    """The report's main table: per stage and precision, the new rows and, with a baseline, the
    old ones and new / old."""
    lines = ["| stage | preset | precision | batch | loader workers | old images/s | new images/s | new / old "
             "| old peak GiB | new peak GiB | new reserved GiB |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for (stage, precision), r in new.items():
        o = (old or {}).get((stage, precision))
        new_ips, old_ips = _ips(r), "-" if o is None else _ips(o)
        ratio = "-" if o is None else f"{r['ips'] / o['ips']:.2f}x"
        lines.append(f"| {stage} | configs/{presets[stage]}.yaml | {precision} | {r['batch']} | {r['workers']} | "
                     f"{old_ips} | {new_ips} | {ratio} | {_gib(o, 'peak_gib')} | {_gib(r, 'peak_gib')} | "
                     f"{_gib(r, 'reserved_gib')} |")
    return lines


def measure_new(args, data: Path, accelerator: str) -> dict[tuple[str, str], dict]:
    """This checkout's rows, one per stage and precision."""
    rows = {}
    precisions = ["32-true"] if accelerator == "cpu" else args.precisions
    for stage, preset in STAGES:
        cfg = load_preset(preset, data, 0 if accelerator == "cpu" and args.workers is None else args.workers,
                          args.settings)
        for precision in precisions:
            r = measure(stage, cfg, args.steps, args.warmup, precision, accelerator, args.batch)
            rows[(stage, precision)] = r
            print(f"{stage:<10} {precision:<10} {r['ips']:8.1f} images/s  peak {r['peak_gib']:.2f} GiB "
                  f"(reserved {r['reserved_gib']:.2f})", flush=True)
    return rows


def make_data(data: Path, args, cpu: bool) -> None:
    if (data / "images.txt").is_file():
        return
    if cpu:
        sizes = ["--classes", "4", "--train", "64", "--test", "8"]
    else:
        batches = args.steps * (args.batch or 16)
        sizes = ["--classes", "200", "--train", str(max(2 * batches, 1000)), "--test", "200",
                 "--workers", str(min(8, os.cpu_count() or 1))]
    data.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-m", "ornet", "synth", str(data), "--size", "256", *sizes, "--quiet"])
    if done.returncode != 0:
        raise SystemExit(f"bench_gpu.py: making the synthetic data in {data} failed (exit {done.returncode})")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="/tmp/ornet-bench/synth256", help="synthetic data (made if absent)")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup", type=int, default=8)
    p.add_argument("--workers", type=int, default=None, help="data loader workers (default: the preset's)")
    p.add_argument("--batch", type=int, default=None, help="batch size of every stage (default: the preset's, 16)")
    p.add_argument("--precisions", nargs="+", default=["32-true", "16-mixed"])
    p.add_argument("--baseline", type=Path, default=None,
                   help="an older checkout whose own bench_gpu.py runs beside this one (e.g. a8a58be)")
    p.add_argument("--repeats", type=int, default=1, help="old and new runs, alternating (with --baseline)")
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "gpu_speed.md"))
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="a config setting for this checkout's rows (not the baseline's), e.g. "
                        "trainer.channels_last=false; repeatable")
    p.add_argument("--cpu-check", action="store_true",
                   help="run the same code on the CPU (a few steps, 32-true) to check the script; writes nothing")
    args = p.parse_args(argv)
    import yaml

    args.settings = {}
    for item in args.sets:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            p.error(f"--set {item!r}: expected KEY=VALUE, e.g. trainer.channels_last=false")
        args.settings[key.strip()] = yaml.safe_load(value)
    if args.steps <= args.warmup:
        p.error(f"--steps ({args.steps}) must be more than --warmup ({args.warmup})")
    if args.repeats < 1:
        p.error(f"--repeats must be at least 1, got {args.repeats}")
    if args.baseline is not None and not (args.baseline / "benchmarks" / "bench_gpu.py").is_file():
        p.error(f"--baseline {args.baseline}: no benchmarks/bench_gpu.py there (a checkout of ornet?)")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    import logging

    import torch

    cpu = args.cpu_check
    if not cpu and not torch.cuda.is_available():
        print("bench_gpu.py: no CUDA device here; run it on a GPU machine (or --cpu-check)", file=sys.stderr)
        return 2
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    data = Path(args.data)
    make_data(data, args, cpu)
    from ornet.errors import OrnetError

    for preset in sorted({preset for _, preset in STAGES}):  # a bad --set: one line, before any run
        try:
            load_preset(preset, data, args.workers, args.settings)
        except OrnetError as e:
            print(f"bench_gpu.py: configs/{preset}.yaml with {' '.join(args.sets)}: {e}", file=sys.stderr)
            return 2
    old_runs, new_runs = [], []
    for _ in range(args.repeats):
        if args.baseline is not None:
            old_runs.append(run_baseline(args.baseline.resolve(), args))
        new_runs.append(measure_new(args, data, "cpu" if cpu else "gpu"))
    new, old = medians(new_runs), medians(old_runs) if old_runs else None
    presets = dict(STAGES)
    loader = {stage: measure_loader(stage, load_preset(preset, data, 0 if cpu and args.workers is None
                                                       else args.workers, args.settings),
                                    args.steps, args.warmup, args.batch)
              for stage, preset in STAGES}
    table = table_lines(new, old, presets)
    if cpu:
        print("\n".join(table))
        print("loader alone, images/s: " + ", ".join(f"{s} {v:.1f}" for s, v in loader.items()))
        return 0
    write_report(args, table, loader)
    return 0


def write_report(args, table: list[str], loader: dict[str, float]) -> None:
    import torch

    from ornet.runtime.atomic import write_text_atomic

    gpu = torch.cuda.get_device_name(0)
    command = "python benchmarks/bench_gpu.py " + " ".join(bench_args(args)) + (
        f" --baseline {args.baseline} --repeats {args.repeats}" if args.baseline else "") + "".join(
        f" --set {item}" for item in args.sets)
    lines = [
        "# GPU training throughput and memory, CUB-scale presets", "",
        f"- date: {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {gpu} ({torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB), "
        f"{cpu_model()}, {os.cpu_count()} cores visible; torch {torch.__version__}, "
        f"Python {platform.python_version()}",
        f"- commit: {git_commit(ROOT)}" + (f"; baseline: {args.baseline}" if args.baseline else ""),
        f"- command: `{command}`",
        f"- {args.steps} training steps per row through Lightning (the stage's module in the preset's memory "
        f"layout, optimiser and data loader), the first {args.warmup} not timed; synthetic data at 256 px "
        "resized to 256 and cropped to 224 as the presets do; 200 classes; networks from their "
        "initialisation (no download). 32-true convolutions use cuDNN's default (TF32 allowed for "
        "convolutions, not for matmuls)."
        + (f" Old and new alternate, {args.repeats} runs each; medians, each run in brackets." if
           args.baseline and args.repeats > 1 else ""), "",
        *table, "",
        "Each stage's training loader alone (no network), images/s: "
        + ", ".join(f"{s} {v:.1f}" for s, v in loader.items()) + ".", "",
    ]
    path = Path(args.results)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, "\n".join(lines))
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
