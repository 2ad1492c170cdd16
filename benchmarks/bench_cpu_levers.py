"""Two CPU levers of issue 28 on one network step: bfloat16 autocast and `torch.compile`.

    .venv/bin/python benchmarks/bench_cpu_levers.py [--network efficientnet_lite0] [--size 192]
        [--batch 32] [--classes 28] [--threads 1] [--rounds 3] [--steps 3]
        [--results benchmarks/results/cpu_levers.md]

The network is ornet's own classifier (`build_evaluator`, random weights: the speed does not
depend on them), in channels-last as the trainer runs it, on a fixed random batch. Timed:

- a training step (forward, cross-entropy, backward, Adam's update), as the evaluator and coarse
  stages run it: float32 (the default), under ``torch.autocast("cpu", dtype=torch.bfloat16)``
  (what ``trainer.precision: bf16-mixed`` does), and through ``torch.compile`` (float32);
- an inference pass (eval mode, `torch.inference_mode`), as the evaluation runs it: float32 and
  bfloat16 autocast.

Each round times every variant once (``--steps`` calls after one warm-up call, mean per call), the
variants in turn, so load from other processes falls on all of them; the report gives every round
and the median per variant, and the compile time (the first compiled call). Whole-run effects are
measured with bench_train_speed.py (``--extra-new trainer.precision=bf16-mixed``).
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
    p.add_argument("--network", default="efficientnet_lite0")
    p.add_argument("--size", type=int, default=192)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--classes", type=int, default=28)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--no-compile", action="store_true", help="leave torch.compile out")
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "cpu_levers.md"))
    args = p.parse_args(argv)
    for name in ("size", "batch", "classes", "threads", "rounds", "steps"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    return args


def measure(args) -> tuple[dict[str, list[float]], float | None]:
    """Seconds per call of every variant, per round; the compile time (None without compile)."""
    import torch
    import torch.nn.functional as F

    from ornet.models import build_evaluator

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    net = build_evaluator(args.network, args.classes).to(memory_format=torch.channels_last)
    x = torch.randn(args.batch, 3, args.size, args.size).to(memory_format=torch.channels_last)
    y = torch.randint(0, args.classes, (args.batch,))
    opt = torch.optim.Adam(net.parameters(), 1e-4)

    def train_step(model, bf16: bool) -> None:
        model.train()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def infer(model, bf16: bool) -> None:
        model.eval()
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            model(x)

    variants = {"train float32": lambda: train_step(net, False), "train bf16 autocast": lambda: train_step(net, True),
                "inference float32": lambda: infer(net, False), "inference bf16 autocast": lambda: infer(net, True)}
    compile_s = None
    if not args.no_compile:
        compiled = torch.compile(net)
        start = time.perf_counter()
        train_step(compiled, False)
        compile_s = time.perf_counter() - start
        variants["train torch.compile"] = lambda: train_step(compiled, False)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, run in variants.items():
            run()  # warm-up (and a shape's first call)
            start = time.perf_counter()
            for _ in range(args.steps):
                run()
            times[name].append((time.perf_counter() - start) / args.steps)
    return times, compile_s


def cpu_bf16_flags() -> str:
    """The bfloat16 / VNNI / AMX flags /proc/cpuinfo lists (what makes bf16 fast on a CPU), or why none."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                found = sorted(f for f in line.split(":", 1)[1].split() if "bf16" in f or "vnni" in f or "amx" in f)
                return " ".join(found) or "no bf16 / VNNI / AMX flag"
    except OSError:
        pass
    return "unknown (no /proc/cpuinfo)"


def write_report(args, times: dict[str, list[float]], compile_s: float | None, load: tuple[float, float],
                 path: Path) -> None:
    import torch

    base = {"train": statistics.median(times["train float32"]), "inference": statistics.median(times["inference float32"])}
    lines = [
        "# CPU levers on one step: bfloat16 autocast and torch.compile (issue 28)",
        "",
        f"Written by `.venv/bin/python benchmarks/bench_cpu_levers.py {' '.join(sys.argv[1:])}`; do not edit by hand.",
        "",
        f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- machine: {cpu_model()}, {os.cpu_count()} cores visible; torch {torch.__version__}; "
        f"CPU flags: {cpu_bf16_flags()}",
        f"- commit: {git_commit(ROOT)}",
        f"- load average (1 min) at the start / end: {load[0]:.2f} / {load[1]:.2f}",
        f"- network: `build_evaluator({args.network!r}, {args.classes})`, channels-last, batch {args.batch} at "
        f"{args.size} px, {args.threads} thread(s); {args.rounds} rounds of {args.steps} timed calls per variant",
        "",
        "| variant | seconds per call, each round | median | speed-up over float32 |",
        "| --- | --- | --- | --- |",
    ]
    for name, values in times.items():
        med = statistics.median(values)
        ref = base["train" if name.startswith("train") else "inference"]
        lines.append(f"| {name} | {' / '.join(f'{v:.3f}' for v in values)} | {med:.3f} | {ref / med:.2f}x |")
    if compile_s is not None:
        lines += ["", f"torch.compile: the first compiled training step (compilation included) took {compile_s:.1f} s."]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)


def main(argv=None) -> int:
    args = parse_args(argv)
    start_load = os.getloadavg()[0]
    times, compile_s = measure(args)
    write_report(args, times, compile_s, (start_load, os.getloadavg()[0]), Path(args.results))
    print(Path(args.results).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
