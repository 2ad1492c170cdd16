"""What kind of misses a finished run makes: of its test images (predictions.csv), the share
localised (IoU >= 0.5) and, among the misses, the share whose box is too big (area > 1.5x the GT
box's), too small (< 2/3) or of about the right size but elsewhere.

    .venv/bin/python benchmarks/miss_kinds.py RUN [RUN ...] --data-root DIR [--split val]
        [--by-background] [--best-threshold]

Boxes are compared in the frame the metrics used: predictions.csv's inclusive-pixel boxes against
the GT boxes after the run's evaluation transform (its config's data section, the root replaced);
an image with several GT boxes counts its largest. The figures are quoted in results/quality.md.

- `--by-background`: a second table, the share localised per background photo (the set's
  `backgrounds.txt`, written by `realistic_sets.py` since format version 2).
- `--split val`: the run's val carve (train photos) instead of its test split; the rows come from
  `ornet.evaluate(RUN, split="val")` (the threshold chosen on val, as the run's own).
- `--best-threshold`: also the share of the images that *some* threshold of the sweep localises,
  each image at its own best one: how much a per-image threshold could recover, i.e. whether a
  miss is the map's shape (no threshold works) or the one threshold chosen on val. The run's maps
  are recomputed (`ornet.evaluate(..., save_scoremaps=...)` into a temporary folder) and swept with
  the run's eval settings; the script checks that at the run's own threshold it reproduces
  predictions.csv's IoUs.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from pathlib import Path

TOO_BIG, TOO_SMALL = 1.5, 2 / 3


def _split_boxes(run: Path, data_root: str, split: str) -> tuple[object, dict]:
    """The run's config and {image_id: GT boxes (N x 4, float) after the evaluation transform}."""
    import yaml

    from ornet.config import RunConfig, from_dict
    from ornet.data.datamodule import WSOLDataModule
    from ornet.normalization import model_normalizations

    cfg = from_dict(RunConfig, yaml.safe_load((run / "config.yaml").read_text()))
    cfg.data.root = data_root
    dm = WSOLDataModule(cfg.data, normalization=model_normalizations(cfg.model)[0])
    images = dm.dataset(split)
    boxes = {}
    for i in range(len(images)):
        s = images[i]
        boxes[s.image_id] = s.boxes.numpy()
    return cfg, boxes


def predictions(run: Path, data_root: str, split: str) -> list[dict]:
    """Per-image rows (image_id, x0, y0, x1, y1, iou, ...): test: the run's predictions.csv; val:
    evaluated now (threshold chosen on val)."""
    if split == "test":
        with open(run / "predictions.csv", newline="") as f:
            return list(csv.DictReader(f))
    import ornet

    return [{k: str(v) for k, v in r.items()} for r in
            ornet.evaluate(run, {"root": data_root}, split=split, quiet=True).rows]


def _check_rows(run: Path, rows: list[dict], ids, split: str) -> list[dict]:
    if len(rows) != len(ids) or any(r["image_id"] not in ids for r in rows):
        raise SystemExit(f"{run}: the predictions do not list the {split} split of the data root")
    return rows


def miss_kinds(run: Path, data_root: str, rows: list[dict], split: str = "test") -> dict[str, float]:
    _, boxes = _split_boxes(run, data_root, split)
    gt_area = {k: max((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in b.tolist()) for k, b in boxes.items()}
    rows = _check_rows(run, rows, gt_area, split)
    counts = {"localised": 0, "too big": 0, "too small": 0, "elsewhere": 0}
    for r in rows:
        area = (float(r["x1"]) - float(r["x0"]) + 1) * (float(r["y1"]) - float(r["y0"]) + 1)
        ratio = area / gt_area[r["image_id"]]
        kind = ("localised" if float(r["iou"]) >= 0.5 else "too big" if ratio > TOO_BIG
                else "too small" if ratio < TOO_SMALL else "elsewhere")
        counts[kind] += 1
    return {k: 100 * v / len(rows) for k, v in counts.items()}


def backgrounds(data_root: str) -> dict[str, str]:
    """{image path as in images.txt: background photo} from the set's backgrounds.txt."""
    root = Path(data_root)
    if not (root / "backgrounds.txt").is_file():
        raise SystemExit(f"{root}/backgrounds.txt not found: --by-background needs a set written by "
                         "realistic_sets.py (format version 2; rebuild the set with --force)")
    paths = dict(line.split(maxsplit=1) for line in (root / "images.txt").read_text().splitlines() if line.strip())
    out = {}
    for n, line in enumerate((root / "backgrounds.txt").read_text().splitlines(), 1):
        parts = line.split()
        if len(parts) != 2 or parts[0] not in paths:
            raise SystemExit(f"{root}/backgrounds.txt line {n}: expected '<image_id> <photo>' with an id of "
                             f"images.txt, got {line!r}")
        out[paths[parts[0]].strip()] = parts[1]
    return out


def by_background(run: Path, photos: dict[str, str], ok: dict[str, bool]) -> dict[str, tuple[float, int]]:
    """{photo: (share localised in percent, images)} over the images of `ok`."""
    groups: dict[str, list[bool]] = {}
    for image_id, good in ok.items():
        if image_id not in photos:
            raise SystemExit(f"{run}: image {image_id} has no line in backgrounds.txt")
        groups.setdefault(photos[image_id], []).append(good)
    return {k: (100 * sum(v) / len(v), len(v)) for k, v in sorted(groups.items())}


def best_threshold(run: Path, data_root: str, rows: list[dict], split: str = "test") -> dict[str, bool]:
    """{image_id: whether some threshold of the run's sweep localises it (IoU >= 0.5)}."""
    import numpy as np

    import ornet
    from ornet.localization.boxes import cam_thresholds, map_levels, sweep_best_iou, truncate_boxes

    cfg, boxes = _split_boxes(run, data_root, split)
    e = cfg.eval
    rows = {r["image_id"]: r for r in _check_rows(run, rows, boxes, split)}
    index = int(json.loads((run / "metrics.json").read_text())["threshold_index"])
    thresholds = cam_thresholds(e.cam_curve_interval)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        ornet.evaluate(run, {"root": data_root}, split=split, save_scoremaps=tmp, quiet=True)
        for image_id, gt in boxes.items():
            scoremap = np.load(Path(tmp) / f"{image_id}.npy")
            values, levels = map_levels(scoremap, thresholds, relative=e.normalize == "minmax")
            iou = sweep_best_iou(values, levels, truncate_boxes(gt), modes=(e.box_mode,))[0]
            if abs(iou[index] - float(rows[image_id]["iou"])) > 1e-4:
                raise SystemExit(f"{run}: {image_id} has IoU {iou[index]:.4f} at the run's threshold, "
                                 f"the predictions say {rows[image_id]['iou']}: not the run's frame")
            hit = iou > 0.5 if e.iou_strict else iou >= 0.5
            out[image_id] = bool(hit.any())
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", type=Path, nargs="+")
    p.add_argument("--data-root", required=True)
    p.add_argument("--split", choices=("test", "val"), default="test",
                   help="val: the run's val carve, evaluated now (default: test, from predictions.csv)")
    p.add_argument("--by-background", action="store_true", help="also the share localised per background photo")
    p.add_argument("--best-threshold", action="store_true",
                   help="also the share localised at each image's own best threshold (recomputes the maps)")
    args = p.parse_args(argv)
    for run in args.runs:
        if not all((run / f).is_file() for f in ("predictions.csv", "config.yaml", "metrics.json")):
            p.error(f"{run}: not a finished run folder (needs predictions.csv, config.yaml and metrics.json)")
    photos = backgrounds(args.data_root) if args.by_background else None
    head = "| run | localised | too big | too small | elsewhere |"
    print(head + (" localised at each image's best threshold |" if args.best_threshold else ""))
    print("| --- " * (5 + args.best_threshold) + "|")
    found: dict[Path, tuple[dict, dict | None]] = {}
    for run in args.runs:
        rows = predictions(run, args.data_root, args.split)
        k = miss_kinds(run, args.data_root, rows, args.split)
        line = f"| {run} | {k['localised']:.1f}% | {k['too big']:.1f}% | {k['too small']:.1f}% | {k['elsewhere']:.1f}% |"
        best = best_threshold(run, args.data_root, rows, args.split) if args.best_threshold else None
        if best is not None:
            line += f" {100 * sum(best.values()) / len(best):.1f}% |"
        print(line, flush=True)
        found[run] = ({r["image_id"]: float(r["iou"]) >= 0.5 for r in rows}, best)
    if photos is not None:
        tables = {run: (by_background(run, photos, ok), by_background(run, photos, best) if best else None)
                  for run, (ok, best) in found.items()}
        names = list(next(iter(tables.values()))[0])
        print()
        print("| run | " + " | ".join(f"{n} ({tables[args.runs[0]][0][n][1]})" for n in names) + " |")
        print("| --- " * (len(names) + 1) + "|")
        for run, (shares, best) in tables.items():
            cells = [f"{shares[n][0]:.0f}" + (f" ({best[n][0]:.0f})" if best else "") for n in names]
            print(f"| {run} | " + " | ".join(cells) + " |")
        if args.best_threshold:
            print("\n(in brackets: at each image's own best threshold)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
