"""Training throughput per stage (images/s) with the demo presets, on the synthetic benchmark.

    .venv/bin/python benchmarks/bench_train_speed.py [--data DIR] [--steps 25] [--threads 1 2]
        [--results benchmarks/results/train_speed.md]

Each stage (evaluator, coarse, refine from configs/demo.yaml; cam from configs/demo_cam.yaml) runs
through Lightning exactly as `ornet train` does (its LightningModule, optimiser, data loader with
the preset's batch size and num_workers), for `--steps` training steps; the first 3 are warm-up and
not timed. Networks start from their initialisation (throughput does not depend on the weights).
On a CUDA machine it also measures precision 32 against 16-mixed (and bf16-mixed where supported).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path

from bench_quality import ROOT, ornet_cmd, run  # benchmarks/ (scripts run from there)
from machine import cpu_model

from ornet.runtime.atomic import write_text_atomic

WARMUP = 3


def load_preset(name: str, data: Path):
    import ornet

    return ornet.load_config(ROOT / "configs" / f"{name}.yaml", {"data.root": str(data)})


def measure(stage: str, cfg, steps: int, accelerator: str, precision: str) -> float:
    """Images per second over the timed steps of one stage."""
    import lightning as L
    import torch

    from ornet.data.datamodule import WSOLDataModule
    from ornet.models.weights_spec import input_normalization
    from ornet.training.pipeline import build_task, quiet_lightning_warnings

    class Clock(L.Callback):
        def __init__(self):
            self.start = self.end = None
            self.images = 0

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if batch_idx == WARMUP:
                if accelerator == "gpu":
                    torch.cuda.synchronize()
                self.start = time.perf_counter()

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            if batch_idx >= WARMUP:
                self.images += len(batch)
                if accelerator == "gpu":
                    torch.cuda.synchronize()
                self.end = time.perf_counter()

    quiet_lightning_warnings()
    L.seed_everything(0, verbose=False)
    dm = WSOLDataModule(cfg.data, normalization=input_normalization(cfg.model))
    dm.batch_size = getattr(cfg, stage).batch_size or cfg.data.batch_size
    task = build_task(cfg, stage, dm.num_classes, dm.classes)
    clock = Clock()
    trainer = L.Trainer(accelerator=accelerator, devices=1, precision=precision, max_epochs=1,
                        limit_train_batches=steps, limit_val_batches=0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[clock])
    trainer.fit(task, datamodule=dm)
    return clock.images / (clock.end - clock.start)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="/tmp/ornet-bench/synth", help="synthetic data folder (created if absent)")
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="CPU thread counts to measure")
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "train_speed.md"))
    args = p.parse_args()

    import logging

    import torch

    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    data = Path(args.data)
    if not (data / "images.txt").is_file():
        run([*ornet_cmd(), "synth", str(data)], data.parent / "synth.log")
    stages = [("evaluator", "demo"), ("coarse", "demo"), ("refine", "demo"), ("cam", "demo_cam")]
    settings = [("cpu", "32-true", n) for n in args.threads]
    if torch.cuda.is_available():
        settings += [("gpu", "32-true", None), ("gpu", "16-mixed", None)]
        if torch.cuda.is_bf16_supported():
            settings.append(("gpu", "bf16-mixed", None))
    rows = []
    for stage, preset in stages:
        cfg = load_preset(preset, data)
        for accelerator, precision, threads in settings:
            if threads is not None:
                torch.set_num_threads(threads)
            ips = measure(stage, cfg, args.steps, accelerator, precision)
            where = f"CPU, {threads} thread{'s' * (threads > 1)}" if threads else f"GPU, {precision}"
            rows.append((stage, preset, cfg.data.crop, getattr(cfg, stage).batch_size or cfg.data.batch_size,
                         where, ips))
            print(f"{stage:<10} {where:<22} {ips:7.1f} images/s", flush=True)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    lines = [
        "# Training throughput per stage", "",
        f"- date: {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {cpu_model()}, {os.cpu_count()} cores visible; GPU: {gpu}; torch {torch.__version__}, "
        f"Python {platform.python_version()}",
        f"- command: `cd benchmarks && ../.venv/bin/python bench_train_speed.py --data {args.data} "
        f"--steps {args.steps} --threads {' '.join(map(str, args.threads))}`",
        f"- {args.steps} training steps per row through Lightning (the stage's module, optimiser and data "
        f"loader), the first {WARMUP} not timed; synthetic benchmark, 64 px crops, the presets' batch size and "
        "num_workers 0 (data loading is part of the time, as in the demo).", "",
        "| stage | preset | crop | batch | device | images/s |", "| --- | --- | --- | --- | --- | --- |",
        *[f"| {s} | configs/{pr}.yaml | {c} | {b} | {w} | {v:.1f} |" for s, pr, c, b, w, v in rows], "",
    ]
    if gpu == "none":
        lines += ["No GPU on this machine: the GPU rows (precision 32 vs 16-mixed / bf16-mixed) are measured "
                  "by the same script on a CUDA machine.", ""]
    path = Path(args.results)
    write_text_atomic(path, "\n".join(lines))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
