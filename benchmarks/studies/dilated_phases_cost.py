"""What `trainer.dilated_phases` saves: the CAM preset's network (EfficientNet-Lite0 at output_stride 16,
configs/demo_cam.yaml) trained one step with its dilated depthwise layers as PyTorch runs them and as
`models/dilated_phases.PhaseDepthwiseConv2d` runs them, layer by layer and for the whole step.

    .venv/bin/python benchmarks/studies/dilated_phases_cost.py [--size 192] [--batch 32] [--repeats 5] [--threads T]

Random weights, channels-last, float32 (as `ornet train` runs it). Per dilated layer: its forward and
backward on the input it sees at that size (median of `--repeats`, the two versions alternating); then
one training step of the whole network (forward, cross entropy, backward), alternating. Each row also
gives the largest difference of the two weight gradients relative to the largest gradient (float
rounding: ~1e-6) and whether the input gradients are bit for bit equal.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))


def _median_seconds(runs: dict, repeats: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in runs}
    for i in range(repeats):
        for name in (list(runs) if i % 2 == 0 else list(reversed(runs))):
            start = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def _layer(a, b, x, repeats: int) -> tuple[dict[str, float], float, bool]:
    """Forward + backward of PyTorch's layer `a` and the swapped copy `b` on input `x`: median seconds,
    the weight gradients' largest difference relative to the largest gradient, input gradients equal."""
    import torch

    inp = x.clone().requires_grad_()
    grad = torch.randn_like(a(inp))
    results = {}

    def step(conv, key):
        conv.zero_grad()
        inp.grad = None
        conv(inp).backward(grad)
        results[key] = (conv.weight.grad.clone(), inp.grad.clone())

    t = _median_seconds({"torch": lambda: step(a, "torch"), "phases": lambda: step(b, "phases")}, repeats)
    (wa, ia), (wb, ib) = results["torch"], results["phases"]
    return t, ((wa - wb).abs().max() / wa.abs().max()).item(), torch.equal(ia, ib)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=192, help="image side in pixels (default 192, the presets')")
    parser.add_argument("--batch", type=int, default=32, help="images per step (default 32, the presets')")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args(argv)

    import torch
    from torch import nn

    from ornet.models.backbones import build_cam_classifier
    from ornet.models.dilated_phases import PhaseDepthwiseConv2d, use_dilated_phases

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    native = build_cam_classifier("efficientnet_lite0", 20, "none", stride16=True).to(memory_format=torch.channels_last)
    phases = copy.deepcopy(native)
    use_dilated_phases(phases)
    layers = [n for n, m in phases.named_modules() if type(m) is PhaseDepthwiseConv2d]
    x = torch.randn(args.batch, 3, args.size, args.size).contiguous(memory_format=torch.channels_last)
    labels = torch.arange(args.batch) % 20
    inputs = {}
    hooks = [native.get_submodule(n).register_forward_hook(lambda m, a, out, n=n: inputs.setdefault(n, a[0].detach()))
             for n in layers]
    with torch.no_grad():
        native(x)
    for h in hooks:
        h.remove()

    print(f"threads: {torch.get_num_threads()}; input {args.batch} x 3 x {args.size} x {args.size}; "
          f"medians of {args.repeats}, alternating\n")
    print("| what | input | PyTorch ms | phases ms | PyTorch / phases | weight gradient: max rel. diff | "
          "input gradient bit for bit |\n| --- | --- | --- | --- | --- | --- | --- |")
    for name in layers:
        a, b = native.get_submodule(name), phases.get_submodule(name)
        t, rel, same_input_grad = _layer(a, b, inputs[name], args.repeats)
        shape = "x".join(map(str, inputs[name].shape))
        print(f"| {name} ({a.kernel_size[0]}x{a.kernel_size[1]}, dilation {a.dilation[0]}) | {shape} | "
              f"{t['torch'] * 1e3:.1f} | {t['phases'] * 1e3:.1f} | {t['torch'] / t['phases']:.2f}x | {rel:.1e} | "
              f"{same_input_grad} |")

    def train_step(net):
        net.zero_grad()
        nn.functional.cross_entropy(net(x), labels).backward()

    t = _median_seconds({"torch": lambda: train_step(native), "phases": lambda: train_step(phases)}, args.repeats)
    rel = max(((p.grad - q.grad).abs().max() / p.grad.abs().max().clamp_min(1e-30)).item()
              for p, q in zip(native.parameters(), phases.parameters()))
    print(f"| one training step, {len(layers)} dilated layers | {args.batch}x3x{args.size}x{args.size} | "
          f"{t['torch'] * 1e3:.0f} | {t['phases'] * 1e3:.0f} | {t['torch'] / t['phases']:.2f}x | {rel:.1e} | - |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
