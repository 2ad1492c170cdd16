"""Speed of `ornet localize`'s map path against a CAM model of the same backbone.

    python benchmarks/bench_localize.py                     # resnet50, 224 px, batch 32, CPU
    python benchmarks/bench_localize.py --backbone vgg16 --iters 3 --device cuda

Measures images per second of forward passes (inference mode, eval mode) on random input:

- ``ornet maps``: stem F_c1 + generator F_g only (METHOD.md, Inference: the map of ORNet needs
  neither F_c2 nor the evaluator);
- ``cam predict``: the CAM baseline's whole network + the CAM of the predicted class;
- ``ornet predict``: what `ornet localize` runs per batch, the map path plus the evaluator on
  the raw image for the class prediction (skipped with ``--evaluator none``).

Models are untrained (weights none): speed does not depend on the weights. Writes a Markdown
table with the date, the machine and the command to benchmarks/results/localize.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from machine import cpu_model  # benchmarks/machine.py (scripts run from benchmarks/)


def timed_round_robin(fns, x, warmup: int, iters: int) -> list[list[float]]:
    """Per function, `iters` timings of one batch. The functions take turns batch by batch, so
    that other load on the machine hits every row alike."""
    import torch

    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    times: list[list[float]] = [[] for _ in fns]
    with torch.inference_mode():
        for _ in range(warmup):
            for fn in fns:
                fn(x)
        sync()
        for _ in range(iters):
            for k, fn in enumerate(fns):
                t0 = time.perf_counter()
                fn(x)
                sync()
                times[k].append(time.perf_counter() - t0)
    return times


def gflops(fn, x, part: str | None = None) -> float:
    """Forward GFLOP per image (torch's FlopCounterMode: convolutions and matrix products);
    with `part`, only the module of that name in the counter's table (e.g. a generator block)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        fn(x[:1])
    if part is None:
        return counter.get_total_flops() / 1e9
    counts = counter.get_flop_counts()
    return sum(counts.get(part, {}).values()) / 1e9


def flop_table(backbone: str, class_counts: list[int], size: int, evaluator: str | None) -> list[str]:
    """GFLOP per image of each path for several class counts (the generator ends in K channels)."""
    import torch

    from ornet.models.cam_network import CAMModel
    from ornet.models.ornet_network import ORNet

    x = torch.randn(1, 3, size, size)
    lines = ["| classes K | ornet maps | of which the generator's last up block (K channels) | cam predict | "
             "ornet predict |", "| ---: | ---: | ---: | ---: | ---: |"]
    for k in class_counts:
        ornet = ORNet(backbone, k, evaluator=evaluator, generator_width=64).eval()
        cam = CAMModel(backbone, k).eval()
        name = f"{type(ornet.generator).__name__}.up3"
        row = [gflops(ornet.maps, x), gflops(ornet.maps, x, name), gflops(cam.predict, x),
               gflops(ornet.predict, x) if evaluator else float("nan")]
        lines.append(f"| {k} | " + " | ".join(f"{v:.2f}" for v in row) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backbone", default="resnet50")
    p.add_argument("--evaluator", default="vgg16", help="evaluator of `ornet predict`, or none to skip that row")
    p.add_argument("--classes", type=int, default=200, help="number of classes (CUB: 200)")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--flops-classes", default="200,1000",
                   help="class counts of the FLOP table (comma-separated; empty: no table)")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "localize.md"))
    ns = p.parse_args(argv)

    import torch

    from ornet.models.cam_network import CAMModel
    from ornet.models.ornet_network import ORNet

    if ns.threads:
        torch.set_num_threads(ns.threads)
    torch.manual_seed(0)
    device = torch.device(ns.device)
    x = torch.randn(ns.batch_size, 3, ns.size, ns.size, device=device)
    evaluator = None if ns.evaluator == "none" else ns.evaluator
    ornet = ORNet(ns.backbone, ns.classes, evaluator=evaluator, generator_width=64).to(device).eval()
    cam = CAMModel(ns.backbone, ns.classes).to(device).eval()

    def params(module) -> float:
        return sum(p.numel() for p in module.parameters()) / 1e6

    rows = [("ornet maps (stem + generator)", ornet.maps, params(ornet.stem) + params(ornet.generator)),
            (f"cam predict ({ns.backbone}, full network)", cam.predict, params(cam))]
    if evaluator:
        rows.append((f"ornet predict (maps + {evaluator} evaluator: what localize runs)", ornet.predict,
                     params(ornet.stem) + params(ornet.generator) + params(ornet.evaluator)))
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    results = []
    all_times = timed_round_robin([fn for _, fn, _ in rows], x, ns.warmup, ns.iters)
    for (name, _, mparams), times in zip(rows, all_times):
        med = statistics.median(times)
        results.append((name, mparams, med, ns.batch_size / med))
        print(f"{name:<70} {ns.batch_size / med:8.1f} images/s  (median {med:.3f} s per batch of "
              f"{ns.batch_size}, {mparams:.1f} M parameters)", flush=True)

    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    base = results[1][3]
    command = "python benchmarks/bench_localize.py " + " ".join(argv if argv is not None else sys.argv[1:])
    device_desc = (torch.cuda.get_device_name(device) if device.type == "cuda"
                   else f"{cpu_model()}, {os.cpu_count()} logical cores, torch threads {torch.get_num_threads()}")
    lines = [
        "# Localization speed: ORNet's map path vs CAM",
        "",
        f"- date: {dt.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- machine: {device_desc}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}",
        f"- load average (1 min) before / after: {load_before:.2f} / {load_after:.2f} "
        "(other work on the machine slows every row alike only roughly)",
        f"- software: Python {platform.python_version()}, torch {torch.__version__}, {platform.platform()}",
        f"- command: `{command.strip()}`",
        f"- setting: {ns.backbone} backbone, {ns.classes} classes, {ns.size} x {ns.size} input, batch "
        f"{ns.batch_size}, {ns.warmup} warm-up + {ns.iters} timed batches per path (median; the paths take "
        "turns batch by batch), inference mode, "
        "untrained weights (speed does not depend on them), random input",
        "",
        "| path | parameters (M) | s / batch (median) | images / s | vs CAM |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, mparams, med, ips in results:
        lines.append(f"| {name} | {mparams:.1f} | {med:.3f} | {ips:.1f} | {ips / base:.2f}x |")
    counts = [int(v) for v in ns.flops_classes.split(",") if v.strip()]
    if counts:
        lines += ["", f"GFLOP per image at {ns.size} px (torch FlopCounterMode; counted, not timed):", ""]
        lines += flop_table(ns.backbone, counts, ns.size, evaluator)
    lines += [
        "",
        "`ornet maps` is the whole cost of an ORNet box (METHOD.md, Inference). `ornet localize` also",
        "reports a class, so it runs the evaluator on the raw image as well (last row); a CAM",
        "model gets its class from the same forward pass as its map.",
        "",
        "The generator's last up block outputs K channels (one per class) at 1/4 of the input",
        "resolution (the release's design, METHOD.md Notation), so the map path's cost grows with",
        "the number of classes: compare the FLOP rows for K = 200 (CUB) and K = 1000 (ImageNet)",
        "before calling ORNet's inference cheaper than a full CAM backbone.",
        "",
    ]
    out = Path(ns.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
