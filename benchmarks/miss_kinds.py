"""What kind of misses a finished run makes: of its test images (predictions.csv), the share
localised (IoU >= 0.5) and, among the misses, the share whose box is too big (area > 1.5x the GT
box's), too small (< 2/3) or of about the right size but elsewhere.

    .venv/bin/python benchmarks/miss_kinds.py RUN [RUN ...] --data-root DIR

Boxes are compared in the frame the metrics used: predictions.csv's inclusive-pixel boxes against
the GT boxes after the run's evaluation transform (its config's data section, the root replaced);
an image with several GT boxes counts its largest. The figures are quoted in results/quality.md.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

TOO_BIG, TOO_SMALL = 1.5, 2 / 3


def miss_kinds(run: Path, data_root: str) -> dict[str, float]:
    import yaml

    from ornet.config import RunConfig, from_dict
    from ornet.data.datamodule import WSOLDataModule
    from ornet.normalization import model_normalizations

    cfg = from_dict(RunConfig, yaml.safe_load((run / "config.yaml").read_text()))
    cfg.data.root = data_root
    dm = WSOLDataModule(cfg.data, normalization=model_normalizations(cfg.model)[0])
    test = dm.dataset("test")
    gt_area = {}
    for i in range(len(test)):
        s = test[i]
        gt_area[s.image_id] = max((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in s.boxes.tolist())
    with open(run / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    if len(rows) != len(gt_area) or any(r["image_id"] not in gt_area for r in rows):
        raise SystemExit(f"{run}/predictions.csv does not list the test split of {data_root}")
    counts = {"localised": 0, "too big": 0, "too small": 0, "elsewhere": 0}
    for r in rows:
        area = (float(r["x1"]) - float(r["x0"]) + 1) * (float(r["y1"]) - float(r["y0"]) + 1)
        ratio = area / gt_area[r["image_id"]]
        kind = ("localised" if float(r["iou"]) >= 0.5 else "too big" if ratio > TOO_BIG
                else "too small" if ratio < TOO_SMALL else "elsewhere")
        counts[kind] += 1
    return {k: 100 * v / len(rows) for k, v in counts.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", type=Path, nargs="+")
    p.add_argument("--data-root", required=True)
    args = p.parse_args(argv)
    print("| run | localised | too big | too small | elsewhere |")
    print("| --- | --- | --- | --- | --- |")
    for run in args.runs:
        if not (run / "predictions.csv").is_file() or not (run / "config.yaml").is_file():
            p.error(f"{run}: not a finished run folder (needs predictions.csv and config.yaml)")
        k = miss_kinds(run, args.data_root)
        print(f"| {run} | {k['localised']:.1f}% | {k['too big']:.1f}% | {k['too small']:.1f}% | {k['elsewhere']:.1f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
