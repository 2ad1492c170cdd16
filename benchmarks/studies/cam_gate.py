"""ORNet's map gated by its own evaluator's CAM at one fixed exponent (`ORNet.set_cam_gate`), on
finished runs: the figures of results/quality_presets.md that compare fixed gates with the class gate
that `configs/demo.yaml` chooses on val (`eval.cam_gate`, docs/method.md, "The class gate").

    .venv/bin/python benchmarks/studies/cam_gate.py RUN [RUN ...] --data-root DIR [--alpha 0.5] [--out DIR]

For each finished ORNet run (an `ornet train` folder whose evaluator has a GAP + Linear head, e.g.
`configs/demo.yaml`'s EfficientNet-Lite0) the map becomes minmax(p_a) * minmax(CAM_c) ** alpha,
whatever gate the run chose; everything else is `ornet.evaluate` on the run as it is (threshold
chosen on the run's val carve, wsolevaluation's protocol), so alpha = 0 gives the plain map's
figures. Prints one line per run (GT-known Loc, Top-1 Loc, the threshold chosen on val) and the
mean GT-known. (The `--floor` variant quoted in quality_presets.md is this script at commit 783dc49.)
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--data-root", required=True, type=Path)
    parser.add_argument("--alpha", type=float, default=0.5, help="the CAM's exponent (0: no gate)")
    parser.add_argument("--out", type=Path, help="also write each evaluation to OUT/<run name>")
    args = parser.parse_args(argv)
    if not args.alpha >= 0:
        parser.error("--alpha must be >= 0")

    import ornet

    gk = []
    for run in args.runs:
        out = args.out / run.name if args.out else None
        try:
            loc = ornet.load_model(run)
            if not hasattr(loc.model, "set_cam_gate"):
                raise ornet.OrnetError("not an ORNet run (its model has no map to gate)")
            loc.model.set_cam_gate(args.alpha)
            # no candidates: the gate just set is the model's own and is used as it is
            result = ornet.evaluate(loc, {"root": str(args.data_root)}, eval={"cam_gate": []}, quiet=True,
                                    out=out, force=out is not None)
        except ornet.OrnetError as err:
            raise SystemExit(f"cam_gate.py: {run}: {err}") from None
        m = result.metrics
        gk.append(m["gt_known_loc"])
        print(f"{run}: GT-known {m['gt_known_loc']:.1f}  Top-1 Loc {m['top1_loc']:.1f}  "
              f"threshold {m['threshold']:.2f}", flush=True)
    if len(gk) > 1:
        print(f"mean GT-known {statistics.mean(gk):.1f} over {len(gk)} runs (alpha {args.alpha})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
