"""How long `trainer.fold_frozen_bn` takes to build its folded copy (`models/fold_bn.folded_copy`: one
probing forward, the float64 check, the copy) for the demo preset's networks, against another version
of `fold_bn.py` loaded from a file (e.g. the one before the copy was shared with the check).

    git show 0a4a920:src/ornet/models/fold_bn.py > /tmp/fold_bn_old.py
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/studies/fold_copy_cost.py --old /tmp/fold_bn_old.py [--repeats 4]

The networks are those of `configs/demo.yaml` (EfficientNet-Lite0 ORNet with a width-16 generator, its
evaluator; random weights, channels-last, one 192 px image, one thread): ORNet through `predict` (the
evaluation passes) and the evaluator alone (stage 2). The versions alternate; prints the median seconds
of each and old / new. Both copies are also checked to hold the same tensors, bit for bit.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))


def _load(path: Path):
    spec = importlib.util.spec_from_file_location("fold_bn_other", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _same(a, b) -> bool:
    """Both folded (not None: a version whose fold fails its own float64 check runs unfolded) to the same tensors."""
    import torch

    if a is None or b is None:
        return False
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", required=True, type=Path, help="another version of src/ornet/models/fold_bn.py")
    parser.add_argument("--repeats", type=int, default=4, help="builds per version and network (default 4)")
    parser.add_argument("--size", type=int, default=192)
    args = parser.parse_args(argv)
    if not args.old.is_file():
        parser.error(f"--old {args.old}: no such file")

    import torch

    from ornet.models import fold_bn
    from ornet.models.ornet_network import ORNet

    torch.set_num_threads(1)
    old = _load(args.old)
    torch.manual_seed(0)
    net = ORNet("efficientnet_lite0", 10, evaluator="efficientnet_lite0", generator_width=16).eval()
    net = net.to(memory_format=torch.channels_last)
    x = torch.randn(1, 3, args.size, args.size).contiguous(memory_format=torch.channels_last)
    y = torch.tensor([0])
    cases = {"ORNet (predict)": (net, lambda m: m.predict(x, y)), "evaluator": (net.evaluator, lambda m: m(x))}
    print("| network | old s | new s | old / new | same tensors |\n| --- | --- | --- | --- | --- |")
    for name, (module, run) in cases.items():
        seconds: dict[str, list[float]] = {"old": [], "new": []}
        copies = {}
        for i in range(args.repeats):
            order = [("old", old), ("new", fold_bn)] if i % 2 == 0 else [("new", fold_bn), ("old", old)]
            for version, impl in order:
                start = time.perf_counter()
                copies[version] = impl.folded_copy(module, run)
                seconds[version].append(time.perf_counter() - start)
        o, n = (statistics.median(seconds[v]) for v in ("old", "new"))
        print(f"| {name} | {o:.2f} | {n:.2f} | {o / n:.2f}x | {_same(copies['old'], copies['new'])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
