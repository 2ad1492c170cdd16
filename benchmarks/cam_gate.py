"""ORNet's map gated at test time by its own evaluator's CAM: a tried-and-not-kept variant
(results/quality.md), kept as a script so that its figures can be rerun.

    .venv/bin/python benchmarks/cam_gate.py RUN [RUN ...] --data-root DIR [--alpha 0.5] [--floor 0]
        [--out DIR]

For each finished ORNet run (an `ornet train` folder whose evaluator has a GAP + Linear head, e.g.
`configs/demo.yaml`'s EfficientNet-Lite0) the map becomes

    minmax(p_a) * (floor + (1 - floor) * minmax(CAM_c) ** alpha)

where CAM_c is the evaluator's class activation map (its last conv features weighted by the
classifier row of class c: the label, or the predicted class without one) at the evaluator's own
1/32 resolution, resized bilinearly to p_a's 1/4 grid. Everything else is `ornet.evaluate` on the
run as it is (threshold chosen on the run's val carve, wsolevaluation's protocol), so alpha = 0
reproduces the run's own metrics. Prints one line per run (GT-known Loc, Top-1 Loc, the
threshold chosen on val) and the mean GT-known.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ornet.models.cam import minmax_normalize  # noqa: E402


def classifier_linear(head: nn.Module) -> nn.Linear:
    """The Linear layer of a GAP + Linear head (ornet's `ClassifierHead` or timm's `TimmHead`)."""
    inner = getattr(head, "net", head)  # TimmHead wraps timm's model (pool + classifier left)
    pool = getattr(inner, "global_pool", None) or getattr(inner, "pool", None)
    fc = getattr(inner, "classifier", None)
    is_gap = (getattr(pool, "pool_type", None) == "avg"  # timm's SelectAdaptivePool2d
              or (isinstance(pool, nn.AdaptiveAvgPool2d) and pool.output_size in (1, (1, 1))))
    if not isinstance(fc, nn.Linear) or not is_gap:
        raise SystemExit(f"cam_gate.py: the evaluator's head is not GAP + Linear ({type(head).__name__}); "
                         "its CAM is not defined")
    return fc


class Gated(nn.Module):
    """An ORNet whose `predict` map is gated by the evaluator's CAM (see the module docstring)."""

    def __init__(self, net: nn.Module, alpha: float, floor: float):
        super().__init__()
        if getattr(net, "evaluator", None) is None:
            raise SystemExit("cam_gate.py: the run's network has no evaluator (is it an ORNet run?)")
        self.net, self.alpha, self.floor = net, alpha, floor
        self.fc = classifier_linear(net.evaluator.head)

    def predict(self, images: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        # ORNet.predict's map and logits, the evaluator's features computed once for the logits
        # and the CAM.
        maps = self.net.maps(images).p_a
        features = self.net.evaluator.features(self.net.to_evaluator(images))
        logits = self.net.evaluator.head(features)
        classes = logits.argmax(dim=1) if labels is None else labels
        cam = torch.einsum("bchw,bc->bhw", features, self.fc.weight[classes].to(features.dtype))[:, None]
        cam = minmax_normalize(F.interpolate(cam, size=maps.shape[-2:], mode="bilinear", align_corners=False))
        return minmax_normalize(maps) * (self.floor + (1 - self.floor) * cam ** self.alpha), logits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--data-root", required=True, type=Path)
    parser.add_argument("--alpha", type=float, default=0.5, help="power of the CAM (0: no gate)")
    parser.add_argument("--floor", type=float, default=0.0, help="the gate's value where the CAM is 0")
    parser.add_argument("--out", type=Path, help="also write each evaluation to OUT/<run name>")
    args = parser.parse_args(argv)
    if args.alpha < 0 or not 0 <= args.floor <= 1:
        parser.error("--alpha must be >= 0 and --floor in [0, 1]")

    import ornet

    gk = []
    for run in args.runs:
        out = args.out / run.name if args.out else None
        try:
            loc = ornet.load_model(run)
            loc.model = Gated(loc.model, args.alpha, args.floor).eval()
            result = ornet.evaluate(loc, {"root": str(args.data_root)}, quiet=True, out=out,
                                    force=out is not None)
        except ornet.OrnetError as err:
            raise SystemExit(f"cam_gate.py: {run}: {err}") from None
        m = result.metrics
        gk.append(m["gt_known_loc"])
        print(f"{run}: GT-known {m['gt_known_loc']:.1f}  Top-1 Loc {m['top1_loc']:.1f}  "
              f"threshold {m['threshold']:.2f}", flush=True)
    if len(gk) > 1:
        print(f"mean GT-known {statistics.mean(gk):.1f} over {len(gk)} runs (alpha {args.alpha}, floor {args.floor})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
