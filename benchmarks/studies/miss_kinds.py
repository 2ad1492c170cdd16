"""What kind of misses a finished run makes: of its test images (predictions.csv), the share
localised (IoU >= 0.5) and, among the misses, the share whose box is too big (area > 1.5x the GT
box's), too small (< 2/3) or of about the right size but elsewhere; and the share of the misses
**on background**: more than half of the predicted box lies outside every GT box, i.e. the map
fired on the background (texture, clutter) rather than on part of the object. Too-small misses
inside the object are not on background; most too-big and elsewhere misses are.

    .venv/bin/python benchmarks/studies/miss_kinds.py RUN [RUN ...] --data-root DIR [--split val]
        [--by-background [--leave-out PHOTO ...]] [--best-threshold]

Boxes are compared in the frame the metrics used: predictions.csv's inclusive-pixel boxes against
the GT boxes after the run's evaluation transform (its config's data section, the root replaced);
an image with several GT boxes counts its largest. The figures are quoted in results/quality_presets.md.

- `--by-background`: a second table, the share localised per background photo (the set's
  `backgrounds.txt`, written by `benchmarks/realistic_sets` since format version 2); `--leave-out` adds a
  column with the share over the images on the other photos.
- `--split val`: the run's val carve (train photos) instead of its test split; the rows come from
  `ornet.evaluate(RUN, split="val")` (the threshold chosen on val, as the run's own).
- `--best-threshold`: also the share of the images that *some* threshold of the sweep localises,
  each image at its own best one: how much a per-image threshold could recover, i.e. whether a
  miss is the map's shape (no threshold works) or the one threshold chosen on val. The run's maps
  are recomputed (`ornet.evaluate(..., save_scoremaps=...)` into a temporary folder) and swept with
  the run's eval settings; the script checks that at the run's own threshold it reproduces the
  per-image IoUs it reports (predictions.csv's for test).

"Localised" follows the run's IoU rule (`eval.iou_strict`); each run is evaluated at most once.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from pathlib import Path

TOO_BIG, TOO_SMALL = 1.5, 2 / 3


def split_boxes(run: Path, data_root: str, split: str) -> tuple[object, dict]:
    """The run's config (data root replaced) and {image_id: GT boxes (N x 4) after the evaluation
    transform} of `split`."""
    import ornet

    # no public names: the samples after the evaluation transform
    from ornet.data.datamodule import WSOLDataModule
    from ornet.models.weights_spec import model_normalizations

    cfg = ornet.load_config(run / "config.yaml", {"data.root": data_root})
    dm = WSOLDataModule(cfg.data, normalization=model_normalizations(cfg.model)[0])
    images = dm.dataset(split)
    return cfg, {s.image_id: s.boxes.numpy() for s in (images[i] for i in range(len(images)))}


def localised(iou: float, strict: bool) -> bool:
    return iou > 0.5 if strict else iou >= 0.5


def evaluate_rows(run: Path, data_root: str, split: str, scoremap_dir: str | None) -> list[dict]:
    """Per-image rows (image_id, x0, y0, x1, y1, iou, ...) of `ornet.evaluate` on `split` (the
    threshold chosen as the run chose its own), the maps written to `scoremap_dir` if given."""
    import ornet

    result = ornet.evaluate(run, {"root": data_root}, split=split, save_scoremaps=scoremap_dir, quiet=True)
    return [{k: str(v) for k, v in r.items()} for r in result.rows]


def background_share(box: tuple[float, float, float, float], gt_boxes: list) -> float:
    """The share of `box` (inclusive pixels x0, y0, x1, y1) outside every GT box, counted on the
    pixel grid so that overlapping GT boxes count once. GT corners are rounded to pixels and taken
    as inclusive too: one pixel at an edge does not move a share across the 0.5 that counts."""
    import numpy as np

    x0, y0, x1, y1 = (int(round(v)) for v in box)
    if x1 < x0 or y1 < y0:
        return 0.0
    inside = np.zeros((y1 - y0 + 1, x1 - x0 + 1), dtype=bool)
    for g in gt_boxes:
        gx0, gy0, gx1, gy1 = (int(round(v)) for v in g)
        ax0, ay0, ax1, ay1 = max(gx0, x0), max(gy0, y0), min(gx1, x1), min(gy1, y1)
        if ax1 >= ax0 and ay1 >= ay0:
            inside[ay0 - y0:ay1 - y0 + 1, ax0 - x0:ax1 - x0 + 1] = True
    return 1.0 - float(inside.mean())


def miss_kinds(rows: dict[str, dict], boxes: dict, strict: bool) -> dict[str, float]:
    """Shares (percent of the images) localised / too big / too small / elsewhere, and "on background"
    as a percent of the misses (`background_share` > 0.5; 0 when nothing is missed)."""
    counts = {"localised": 0, "too big": 0, "too small": 0, "elsewhere": 0}
    on_background = 0
    for image_id, r in rows.items():
        gt = boxes[image_id].tolist()
        box = tuple(float(r[k]) for k in ("x0", "y0", "x1", "y1"))
        gt_area = max((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in gt)
        ratio = (box[2] - box[0] + 1) * (box[3] - box[1] + 1) / gt_area
        kind = ("localised" if localised(float(r["iou"]), strict) else "too big" if ratio > TOO_BIG
                else "too small" if ratio < TOO_SMALL else "elsewhere")
        counts[kind] += 1
        on_background += kind != "localised" and background_share(box, gt) > 0.5
    out = {k: 100 * v / len(rows) for k, v in counts.items()}
    misses = len(rows) - counts["localised"]
    out["on background"] = 100 * on_background / misses if misses else 0.0
    return out


def best_threshold(cfg, boxes: dict, rows: dict[str, dict], scoremap_dir: str, index: int) -> dict[str, bool]:
    """{image_id: whether some threshold of the run's sweep localises it}; checks that threshold
    `index` gives the IoU of `rows`."""
    import numpy as np

    from ornet.localization.boxes import cam_thresholds, map_levels, sweep_best_iou, truncate_boxes

    e = cfg.eval
    thresholds = cam_thresholds(e.cam_curve_interval)
    out = {}
    for image_id, gt in boxes.items():
        values, levels = map_levels(np.load(Path(scoremap_dir) / f"{image_id}.npy"), thresholds,
                                    relative=e.normalize == "minmax")
        iou = sweep_best_iou(values, levels, truncate_boxes(gt), modes=(e.box_mode,))[0]
        if abs(iou[index] - float(rows[image_id]["iou"])) > 1e-4:
            raise SystemExit(f"{image_id} has IoU {iou[index]:.4f} at the run's threshold, the predictions say "
                             f"{rows[image_id]['iou']}: not the run's frame")
        out[image_id] = any(localised(v, e.iou_strict) for v in iou)
    return out


def analyse(run: Path, data_root: str, split: str, with_best: bool) -> tuple[dict, dict[str, bool], dict | None]:
    """(miss kinds, {image_id: localised}, {image_id: localised at its best threshold} or None)."""
    cfg, boxes = split_boxes(run, data_root, split)
    strict = cfg.eval.iou_strict
    with tempfile.TemporaryDirectory() as tmp:
        maps = tmp if with_best else None
        if split == "test":
            with open(run / "predictions.csv", newline="") as f:
                rows = list(csv.DictReader(f))
            if with_best:
                evaluate_rows(run, data_root, split, maps)
        else:
            rows = evaluate_rows(run, data_root, split, maps)
        by_id = {r["image_id"]: r for r in rows}
        if len(rows) != len(boxes) or set(by_id) != set(boxes):
            raise SystemExit(f"{run}: the predictions do not list the {split} split of {data_root}")
        index = int(json.loads((run / "metrics.json").read_text())["threshold_index"])
        try:
            best = best_threshold(cfg, boxes, by_id, tmp, index) if with_best else None
        except SystemExit as e:
            raise SystemExit(f"{run}: {e}") from None
    ok = {k: localised(float(r["iou"]), strict) for k, r in by_id.items()}
    return miss_kinds(by_id, boxes, strict), ok, best


def backgrounds(data_root: str) -> dict[str, str]:
    """{image path as in images.txt: background photo} from the set's backgrounds.txt."""
    root = Path(data_root)
    if not (root / "backgrounds.txt").is_file():
        raise SystemExit(f"{root}/backgrounds.txt not found: --by-background needs a set written by "
                         "benchmarks/realistic_sets (format version 2; rebuild the set with --force)")
    paths = dict(line.split(maxsplit=1) for line in (root / "images.txt").read_text().splitlines() if line.strip())
    out = {}
    for n, line in enumerate((root / "backgrounds.txt").read_text().splitlines(), 1):
        parts = line.split()
        if len(parts) != 2 or parts[0] not in paths:
            raise SystemExit(f"{root}/backgrounds.txt line {n}: expected '<image_id> <photo>' with an id of "
                             f"images.txt, got {line!r}")
        out[paths[parts[0]].strip()] = parts[1]
    return out


def share(ok: dict[str, bool], keep) -> tuple[float, int]:
    """(percent localised, images) over the image ids for which keep(image_id) holds."""
    chosen = [v for k, v in ok.items() if keep(k)]
    return 100 * sum(chosen) / max(len(chosen), 1), len(chosen)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", type=Path, nargs="+")
    p.add_argument("--data-root", required=True)
    p.add_argument("--split", choices=("test", "val"), default="test",
                   help="val: the run's val carve, evaluated now (default: test, from predictions.csv)")
    p.add_argument("--by-background", action="store_true", help="also the share localised per background photo")
    p.add_argument("--leave-out", nargs="+", default=[], metavar="PHOTO",
                   help="with --by-background: also the share over the images on the other photos")
    p.add_argument("--best-threshold", action="store_true",
                   help="also the share localised at each image's own best threshold (recomputes the maps)")
    args = p.parse_args(argv)
    for run in args.runs:
        if not all((run / f).is_file() for f in ("predictions.csv", "config.yaml", "metrics.json")):
            p.error(f"{run}: not a finished run folder (needs predictions.csv, config.yaml and metrics.json)")
    if args.leave_out and not args.by_background:
        p.error("--leave-out needs --by-background")
    photos = backgrounds(args.data_root) if args.by_background else {}
    unknown = sorted(set(args.leave_out) - set(photos.values()))
    if unknown:
        p.error(f"--leave-out: no image of {args.data_root} is on {', '.join(unknown)}; "
                f"photos: {', '.join(sorted(set(photos.values())))}")
    from ornet.errors import OrnetError

    found = {}
    for run in args.runs:
        try:
            k, ok, best = analyse(run, args.data_root, args.split, args.best_threshold)
        except OrnetError as e:  # a data root that is not the run's set, a run that does not load: one line, exit 2
            print(f"miss_kinds.py: {run}: {e}", file=sys.stderr)
            return 2
        if not found:  # the header with the first row: a first run that cannot be read prints nothing here
            print("| run | localised | too big | too small | elsewhere | misses on background |"
                  + (" localised at each image's best threshold |" if args.best_threshold else ""))
            print("| --- " * (6 + args.best_threshold) + "|")
        line = (f"| {run} | {k['localised']:.1f}% | {k['too big']:.1f}% | {k['too small']:.1f}% "
                f"| {k['elsewhere']:.1f}% | {k['on background']:.1f}% |")
        print(line + (f" {share(best, lambda _: True)[0]:.1f}% |" if best else ""), flush=True)
        found[run] = (ok, best)
    if not photos:
        return 0
    missing = sorted(k for ok, _ in found.values() for k in ok if k not in photos)
    if missing:
        raise SystemExit(f"{args.data_root}/backgrounds.txt has no line for {missing[0]} "
                         f"({len(missing)} images without one)")
    ok0 = next(iter(found.values()))[0]
    columns = [(f"{name} ({share(ok0, lambda i, n=name: photos[i] == n)[1]})", lambda i, n=name: photos[i] == n, 0)
               for name in sorted({photos[i] for i in ok0})]
    if args.leave_out:
        rest = lambda i: photos[i] not in args.leave_out  # noqa: E731
        columns.append((f"all but {', '.join(args.leave_out)} ({share(ok0, rest)[1]})", rest, 1))
    print()
    print("| run | " + " | ".join(title for title, _, _ in columns) + " |")
    print("| --- " * (len(columns) + 1) + "|")
    for run, (ok, best) in found.items():
        cells = [f"{share(ok, keep)[0]:.{d}f}" + (f" ({share(best, keep)[0]:.{d}f})" if best else "")
                 for _, keep, d in columns]
        print(f"| {run} | " + " | ".join(cells) + " |")
    if args.best_threshold:
        print("\n(in brackets: at each image's own best threshold)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
