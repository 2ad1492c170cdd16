"""GPU training throughput and peak memory of the CUB-scale presets, per stage and precision.

    .venv/bin/python benchmarks/bench_gpu.py [--data DIR] [--steps 40] [--precisions 32-true 16-mixed]
        [--batch N] [--workers N] [--results benchmarks/results/gpu.md]

The stages of `configs/cub_resnet50.yaml` (224 px crops of 256 px images, batch 16: a VGG-16
evaluator in stage 0, the ResNet-50 stem + generator (width 64) + ResNet-50 rest in stage 1, the
stem + generator + frozen VGG-16 evaluator in stage 2) and the CAM baseline of
`configs/cub_cam_resnet50.yaml` run through Lightning as `ornet train` runs them (the stage's
LightningModule, optimiser and data loader with the preset's batch size and workers), for `--steps`
training steps each; the first `--warmup` are not timed. Networks start from their initialisation
(`*_weights: none`: nothing is downloaded; throughput does not depend on the weights). Data: the
synthetic benchmark at 256 px (`ornet synth --size 256`, made if absent), 200 classes as on CUB.

Peak memory is `torch.cuda.max_memory_allocated()` over the stage's steps (tensors the caching
allocator handed out; `reserved` is what it held from the driver). Without CUDA the script says so
and exits 2 (the demo presets' CPU training time, against an older checkout, is `bench_train_speed.py`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import cpu_model  # noqa: E402

STAGES = (("evaluator", "cub_resnet50"), ("coarse", "cub_resnet50"), ("refine", "cub_resnet50"),
          ("cam", "cub_cam_resnet50"))


def load_preset(name: str, data: Path, workers: int | None):
    import yaml

    import ornet

    raw = yaml.safe_load((ROOT / "configs" / f"{name}.yaml").read_text())
    overrides = {"data.root": str(data)}
    if workers is not None:
        overrides["data.num_workers"] = workers
    for key in ("backbone_weights", "evaluator_weights"):  # no download: speed does not depend on them
        if key in raw.get("model", {}):
            overrides[f"model.{key}"] = "none"
    return ornet.load_config(ROOT / "configs" / f"{name}.yaml", overrides)


def measure(stage: str, cfg, steps: int, warmup: int, precision: str, accelerator: str = "gpu",
            batch: int | None = None) -> dict:
    """images/s over the timed steps and peak CUDA memory of one stage at one precision."""
    import lightning as L
    import torch

    cuda = accelerator == "gpu"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    from ornet.data.datamodule import WSOLDataModule
    from ornet.models.weights_spec import input_normalization
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
    dm = WSOLDataModule(cfg.data, normalization=input_normalization(cfg.model))
    dm.batch_size = batch or getattr(cfg, stage).batch_size or cfg.data.batch_size
    task = build_task(cfg, stage, dm.num_classes, dm.classes)
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="/tmp/ornet-bench/synth256", help="synthetic data (made if absent)")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup", type=int, default=8)
    p.add_argument("--workers", type=int, default=None, help="data loader workers (default: the preset's)")
    p.add_argument("--batch", type=int, default=None, help="batch size of every stage (default: the preset's, 16)")
    p.add_argument("--precisions", nargs="+", default=["32-true", "16-mixed"])
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "gpu.md"))
    p.add_argument("--cpu-check", action="store_true",
                   help="run the same code on the CPU (a few steps, 32-true) to check the script; writes nothing")
    args = p.parse_args()

    import logging

    import torch

    if args.cpu_check:
        data = Path(args.data)
        if not (data / "images.txt").is_file():
            subprocess.run([sys.executable, "-m", "ornet", "synth", str(data), "--size", "256", "--classes", "4",
                            "--train", "64", "--test", "8", "--quiet"], check=True)
        for stage, preset in STAGES:
            r = measure(stage, load_preset(preset, data, 0), args.steps, args.warmup, "32-true", "cpu", args.batch)
            print(f"{stage:<10} cpu 32-true {r['ips']:8.2f} images/s", flush=True)
        return 0
    if not torch.cuda.is_available():
        print("bench_gpu.py: no CUDA device here; run it on a GPU machine", file=sys.stderr)
        return 2
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    data = Path(args.data)
    if not (data / "images.txt").is_file():
        batches = args.steps * (args.batch or 16)
        subprocess.run([sys.executable, "-m", "ornet", "synth", str(data), "--size", "256",
                        "--classes", "200", "--train", str(max(2 * batches, 1000)), "--test", "200",
                        "--workers", str(min(8, os.cpu_count() or 1)), "--quiet"], check=True)
    rows = []
    for stage, preset in STAGES:
        cfg = load_preset(preset, data, args.workers)
        for precision in args.precisions:
            r = measure(stage, cfg, args.steps, args.warmup, precision, batch=args.batch)
            rows.append((stage, preset, precision, r))
            print(f"{stage:<10} {precision:<10} {r['ips']:8.1f} images/s  peak {r['peak_gib']:.2f} GiB "
                  f"(reserved {r['reserved_gib']:.2f})", flush=True)
    gpu = torch.cuda.get_device_name(0)
    lines = [
        "# GPU training throughput and memory, CUB-scale presets", "",
        f"- date: {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {gpu} ({torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB), "
        f"{cpu_model()}, {os.cpu_count()} cores visible; torch {torch.__version__}, "
        f"Python {platform.python_version()}",
        f"- command: `.venv/bin/python benchmarks/bench_gpu.py --steps {args.steps} --warmup {args.warmup} "
        f"--precisions {' '.join(args.precisions)}"
        + (f" --batch {args.batch}" if args.batch else "") + (f" --workers {args.workers}" if args.workers else "") + "`",
        f"- {args.steps} training steps per row through Lightning (the stage's module, optimiser and data "
        f"loader), the first {args.warmup} not timed; synthetic data at 256 px resized to 256 and cropped "
        "to 224 as the presets do; 200 classes; networks from their initialisation (no download). "
        "32-true convolutions use cuDNN's default (TF32 allowed for convolutions, not for matmuls).", "",
        "| stage | preset | precision | batch | loader workers | images/s | peak allocated GiB | reserved GiB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *[f"| {s} | configs/{pr}.yaml | {prec} | {r['batch']} | {r['workers']} | {r['ips']:.1f} | "
          f"{r['peak_gib']:.2f} | {r['reserved_gib']:.2f} |" for s, pr, prec, r in rows], "",
    ]
    path = Path(args.results)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
