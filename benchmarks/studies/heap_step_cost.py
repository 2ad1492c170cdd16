"""What `trainer.keep_freed_memory` saves: training steps of the presets' networks with glibc's default malloc
(every tensor above 32 MiB mapped and unmapped on each allocation) and with freed memory kept for reuse
(`runtime/heap.py`).

    .venv/bin/python benchmarks/studies/heap_step_cost.py [--size 192] [--batch 32] [--steps 4] [--rounds 3] [--threads T]

The setting acts on a whole process, so each measurement is a fresh subprocess: one network (random
weights, channels-last, float32 as `ornet train` runs it) trained `--steps` steps (forward, cross entropy,
backward, Adam), the first left out; the two settings alternate over `--rounds` rounds. Networks: the ORNet
preset's evaluator (EfficientNet-Lite0) and the CAM preset's network (Lite0 at output_stride 16, with
`trainer.dilated_phases`). A row gives the median seconds per step, the page faults per step (minor:
the kernel zero-filling fresh pages) and the subprocess's peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
sys.path.insert(0, str(SRC))

NETWORKS = ("evaluator", "cam")


def child(net_name: str, keep: bool, size: int, batch: int, steps: int, threads: int | None) -> dict:
    import torch
    from torch import nn

    from ornet.models.backbones import build_cam_classifier
    from ornet.models.dilated_phases import use_dilated_phases
    from ornet.models.evaluator import build_evaluator
    from ornet.runtime.heap import keep_freed_memory

    set_ = keep_freed_memory() if keep else False
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    if net_name == "evaluator":
        net = build_evaluator("efficientnet_lite0", 20)
    else:
        net = build_cam_classifier("efficientnet_lite0", 20, "none", stride16=True)
        use_dilated_phases(net)
    net = net.to(memory_format=torch.channels_last).train()
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    x = torch.randn(batch, 3, size, size).contiguous(memory_format=torch.channels_last)
    labels = torch.arange(batch) % 20
    seconds, faults = [], []
    for _ in range(steps):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        opt.zero_grad()
        out = net(x)
        nn.functional.cross_entropy(out if torch.is_tensor(out) else out.logits, labels).backward()
        opt.step()
        seconds.append(time.perf_counter() - start)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"set": set_, "seconds": statistics.median(seconds[1:]), "faults": statistics.median(faults[1:]),
            "peak_mib": peak}


def measure(net_name: str, keep: bool, args: argparse.Namespace) -> dict:
    """One fresh process: `child`'s figures for `net_name` with or without the setting."""
    cmd = [sys.executable, __file__, "--child", net_name, "1" if keep else "0", "--size", str(args.size),
           "--batch", str(args.batch), "--steps", str(args.steps)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=192, help="image side in pixels (default 192, the presets')")
    parser.add_argument("--batch", type=int, default=32, help="images per step (default 32, the presets')")
    parser.add_argument("--steps", type=int, default=4, help="steps per process, the first left out (default 4)")
    parser.add_argument("--rounds", type=int, default=3, help="processes per network and setting (default 3)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--child", nargs=2, metavar=("NETWORK", "KEEP"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps < 2:
        parser.error("--steps must be at least 2 (the first step is left out)")
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1] == "1", args.size, args.batch, args.steps, args.threads)))
        return 0

    print(f"input {args.batch} x 3 x {args.size} x {args.size}; {args.steps} steps a process (the first left out), "
          f"{args.rounds} processes per row, the settings alternating; medians\n")
    print("| network | malloc | seconds per step | page faults per step | peak memory (MiB) |\n"
          "| --- | --- | --- | --- | --- |")
    for net_name in NETWORKS:
        runs: dict[bool, list[dict]] = {False: [], True: []}
        for r in range(args.rounds):
            for keep in ((False, True) if r % 2 == 0 else (True, False)):
                runs[keep].append(measure(net_name, keep, args))
        med = {k: {key: statistics.median(run[key] for run in v) for key in ("seconds", "faults", "peak_mib")}
               for k, v in runs.items()}
        for keep in (False, True):
            label = "freed memory kept" if keep else "glibc's default"
            if keep and not all(run["set"] for run in runs[True]):
                label += " (not set: no glibc)"
            m = med[keep]
            print(f"| {net_name} | {label} | {m['seconds']:.2f} | {m['faults']:.0f} | {m['peak_mib']:.0f} |")
        print(f"| {net_name} | default / kept | {med[False]['seconds'] / med[True]['seconds']:.2f}x | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
