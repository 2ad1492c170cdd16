"""`ornet figures KIND RUN_DIR`: draw a run's figures as PNG files (docs/figures.md).

    ornet figures all runs/ornet                       # every figure the run's files allow
    ornet figures failures runs/ornet --n 12
    ornet figures grid runs/ornet --data.name dogs --data.root /data/dogs --out dogs_maps

KIND: overlay, evolution, histogram, failures, threshold-curve, grid or all. Sources:

| kind            | reads                                                                   |
| --------------- | ----------------------------------------------------------------------- |
| threshold-curve | curves.json                                                             |
| evolution       | snapshots/ (written during stage 2 by `viz.snapshots.MapSnapshots`)     |
| overlay, grid,  | the model (model.safetensors + model.json) re-run on the run's dataset  |
| histogram       | (config.yaml's data section; --data.* overrides), evaluated split       |
| failures        | predictions.csv (lowest IoU) + the model on those images               |

Images go through the evaluation transform (resize, centre crop), so boxes and maps are those
the metrics saw; predicted boxes come from predictions.csv when it lists the image. PNGs go to
RUN_DIR/figures (or --out); writing there also refreshes RUN_DIR/report.html. With KIND=all a
figure whose source is missing (no snapshots in a CAM run, say) is skipped with a note; naming
that KIND alone is an error (exit 2). `render()` is the library entry point.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..cli_args import UsageParser
from ..errors import OrnetError

KINDS = ("threshold-curve", "evolution", "overlay", "histogram", "failures", "grid")
FIGURE_FILE = re.compile(r"^(threshold_curve|evolution|histogram|failures|grid|overlay_\d+)\.png$")
"""Names of the files this command writes: a folder holding only these is redrawn without --force."""
DEFAULT_N = {"overlay": 4, "evolution": 8, "histogram": 8, "failures": 8, "grid": 16}
SAMPLE_SEED = 0


class MissingSource(OrnetError):
    """A figure's input is not in the run folder (skipped under KIND=all)."""


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = UsageParser(prog=prog, description=(
        "Draw a run's figures as PNG files (default: RUN_DIR/figures, which also refreshes "
        "RUN_DIR/report.html). See docs/figures.md for what each figure shows."))
    p.add_argument("kind", metavar="KIND", choices=(*KINDS, "all"), help=f"one of: {', '.join(KINDS)}, all")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by `ornet train` / `ornet evaluate`")
    p.add_argument("--out", default=None, help="folder for the PNGs (default: RUN_DIR/figures, refreshed)")
    p.add_argument("--force", action="store_true",
                   help="write into an --out folder that holds files other than ornet's figures")
    p.add_argument("--n", type=int, default=None,
                   help="images per figure (defaults: " + ", ".join(f"{k} {v}" for k, v in DEFAULT_N.items()) + ")")
    p.add_argument("--split", default=None, help="dataset split to draw (default: the evaluated one, else test)")
    p.add_argument("--data.root", dest="data_root", default=None, help="dataset root (default: config.yaml's)")
    p.add_argument("--data.name", dest="data_name", default=None,
                   help="dataset reader (default: config.yaml's); with --data.root, maps on another dataset")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda when available")
    p.add_argument("--batch-size", type=int, default=16, help="images per forward pass (default 16)")
    return p


# --- run files ------------------------------------------------------------------------------------

def read_json(path: Path) -> dict:
    from ..viz.report import read_json_object

    if not path.is_file():
        raise MissingSource(f"{path} does not exist")
    return read_json_object(path)


def _iou_label(level, strict: bool) -> str:
    try:
        v = float(level)
    except (TypeError, ValueError):
        return str(level)
    v = v / 100 if v > 1 else v
    return f"IoU {'>' if strict else '>='} {v:g}"


def parse_curves(curves: dict, source: str = "curves.json", box_mode: str | None = None,
                 iou_strict: bool | None = None) -> tuple[np.ndarray, dict[str, np.ndarray], int | None]:
    """(thresholds, {legend label: box accuracy % per threshold}, chosen index) from curves.json.

    Layouts read: ``evaluation.curves`` (percentages under ``accuracy`` keyed by IoU level in
    percent, for the run's box mode; ``accuracy_by_mode`` for the others), ready percentages
    under ``box_accuracy`` (fractions or percents as keys), or sweep counters
    (``localization.sweep.SweepResult.to_dict()``: ``hits`` modes x thresholds x IoU levels,
    ``num_images``). ``box_mode`` picks another mode where the file has it. The chosen index
    is ``chosen_index`` or ``threshold_index`` when present.
    """
    thresholds = curves.get("thresholds")
    if not isinstance(thresholds, list) or not thresholds:
        raise OrnetError(f"{source}: no 'thresholds' list")
    strict = bool(curves.get("iou_strict", False) if iou_strict is None else iou_strict)
    out: dict[str, np.ndarray] = {}
    if "hits" in curves:
        from ..localization.boxes import MODES

        try:
            hits = np.asarray(curves["hits"], dtype=np.float64)
            modes = list(curves.get("modes") or MODES)
            mode = box_mode or curves.get("box_mode") or "largest"
            levels = list(curves["iou_thresholds"])
            num = float(curves["num_images"])
            table = hits[modes.index(mode)]
        except (KeyError, ValueError, IndexError, TypeError) as e:
            raise OrnetError(f"{source}: malformed sweep counters ({type(e).__name__}: {e})") from None
        if table.shape != (len(thresholds), len(levels)) or num <= 0:
            raise OrnetError(f"{source}: hits of shape {hits.shape} do not fit {len(thresholds)} thresholds "
                             f"x {len(levels)} IoU levels, or no image")
        for j, level in enumerate(levels):
            out[_iou_label(level, strict)] = table[:, j] * 100.0 / num
    else:
        by_mode = curves.get("accuracy_by_mode")
        table = None
        if box_mode and box_mode != curves.get("box_mode") and isinstance(by_mode, dict):
            table = by_mode.get(box_mode)
        if not isinstance(table, dict):
            table = next((curves[k] for k in ("accuracy", "box_accuracy", "box_acc", "curves")
                          if isinstance(curves.get(k), dict)), None)
        if table is None:
            raise OrnetError(f"{source}: neither 'accuracy' per IoU level nor sweep counters ('hits')")
        for level, values in table.items():
            out[_iou_label(level, strict)] = np.asarray(values, dtype=np.float64)
    chosen = next((curves[k] for k in ("chosen_index", "threshold_index") if curves.get(k) is not None), None)
    return np.asarray(thresholds, dtype=np.float64), out, None if chosen is None else int(chosen)


@dataclass
class Prediction:
    label: int | None
    pred: int | None
    box: list[float] | None
    iou: float


def read_predictions(path: Path) -> dict[str, Prediction]:
    """image_id -> Prediction from predictions.csv (boxes in the evaluated image's pixels)."""
    if not path.is_file():
        raise MissingSource(f"{path} does not exist (run `ornet evaluate`)")
    out: dict[str, Prediction] = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        cols = set(reader.fieldnames or ())
        need = {"image_id", "iou"}
        if not need <= cols:
            raise OrnetError(f"{path}: expected columns {sorted(need)}, got {sorted(cols)}")
        has_box = {"x0", "y0", "x1", "y1"} <= cols
        for line, row in enumerate(reader, start=2):
            try:
                iou = float(row["iou"]) if row["iou"] not in ("", None) else float("nan")
                box = [float(row[k]) for k in ("x0", "y0", "x1", "y1")] if has_box and row["x0"] not in ("", None) else None
                label = int(row["label"]) if row.get("label") not in ("", None) else None
                pred = int(row["pred"]) if row.get("pred") not in ("", None) else None
            except ValueError as e:
                raise OrnetError(f"{path}:{line}: {e}") from None
            out[row["image_id"]] = Prediction(label, pred, box, iou)
    return out


@dataclass
class Run:
    """A run folder and what the figures read from it, loaded on first use."""

    root: Path
    data_root: str | None = None
    data_name: str | None = None
    split: str | None = None
    device: str | None = None
    batch_size: int = 16
    _cache: dict = field(default_factory=dict)

    def metrics(self) -> dict:
        if "metrics" not in self._cache:
            p = self.root / "metrics.json"
            self._cache["metrics"] = read_json(p) if p.is_file() else {}
        return self._cache["metrics"]

    def config(self):
        if "config" not in self._cache:
            import yaml

            from ..tasks.base import run_config

            path = self.root / "config.yaml"
            if not path.is_file():
                raise MissingSource(f"{path} does not exist")
            try:
                raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except yaml.YAMLError as e:
                raise OrnetError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from None
            cfg = run_config(raw)
            if self.data_root is not None:
                cfg.data.root = self.data_root
            if self.data_name is not None:
                cfg.data.name = self.data_name
            self._cache["config"] = cfg
        return self._cache["config"]

    def model(self):
        if "model" not in self._cache:
            from ..tasks.export import load_model

            if not (self.root / "model.safetensors").is_file():
                raise MissingSource(f"{self.root} has no model.safetensors (train or evaluate the run first)")
            self._cache["model"] = load_model(self.root, device=self.torch_device())
        return self._cache["model"]

    def torch_device(self):
        import torch

        if self.device == "cuda" and not torch.cuda.is_available():
            raise OrnetError("--device cuda was asked for but CUDA is not available")
        return torch.device(self.device or ("cuda" if torch.cuda.is_available() else "cpu"))

    def split_name(self) -> str:
        return self.split or self.metrics().get("split") or "test"

    def records(self):
        if "records" not in self._cache:
            from ..data.readers import read_dataset

            cfg = self.config()
            if cfg.data.root is None:
                raise OrnetError("config.yaml names no dataset root; pass --data.root DIR")
            index = read_dataset(cfg.data)
            self._cache["records"] = index.split(self.split_name())
        return self._cache["records"]

    def localization(self) -> dict:
        """threshold, box mode, normalisation: metrics.json first, then model.json, then config."""
        _, meta = self.model()
        loc = dict(meta.get("localization") or {})
        m = self.metrics()
        for key in ("threshold", "box_mode", "normalize"):
            if m.get(key) is not None:
                loc[key] = m[key]
        cfg = self.config().eval
        loc.setdefault("box_mode", cfg.box_mode)
        loc.setdefault("normalize", cfg.normalize)
        return loc


@dataclass
class Drawn:
    """Images of the evaluated split with what the figures draw on them."""

    ids: list[str]
    images: list[np.ndarray]  # crop x crop x 3 uint8
    raw_maps: list[np.ndarray]  # the network's maps (h x w float32)
    eval_maps: list[np.ndarray]  # resized to the image and normalised as in evaluation
    gt_boxes: list[np.ndarray]
    pred_boxes: list[np.ndarray]
    ious: list[float]


def sample_indices(count: int, n: int, seed: int = SAMPLE_SEED) -> list[int]:
    """n indices out of count, seeded and sorted (spread over the split, same on every rerun)."""
    if n >= count:
        return list(range(count))
    return sorted(np.random.default_rng(seed).choice(count, size=n, replace=False).tolist())


def draw_records(run: Run, records: Sequence, predictions: dict[str, Prediction] | None = None) -> Drawn:
    """Evaluate the model on `records` (evaluation transform) and collect maps and boxes."""
    import torch

    from ..data.dataset import WSOLDataset
    from ..data.sample import collate
    from ..data.transforms import build_transform, denormalize
    from ..localization.boxes import boxes_from_map
    from .localize import eval_maps

    cfg = run.config()
    model, meta = run.model()
    loc = run.localization()
    threshold = loc.get("threshold")
    norm = (meta["preprocessing"]["mean"], meta["preprocessing"]["std"])  # the run's input normalisation
    dataset = WSOLDataset(list(records), build_transform(False, cfg.data.resize, cfg.data.crop, False, *norm),
                          with_masks=False)
    out = Drawn([], [], [], [], [], [], [])
    device = run.torch_device()
    for start in range(0, len(dataset), run.batch_size):
        batch = collate([dataset[i] for i in range(start, min(start + run.batch_size, len(dataset)))])
        with torch.inference_mode():
            maps, _ = model.predict(batch.images.to(device), batch.labels.to(device))
        maps = maps.float().cpu()
        size = batch.images.shape[-1]
        evald = eval_maps(maps, size, loc.get("normalize", "minmax"))
        pixels = (denormalize(batch.images, *norm) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        for j, image_id in enumerate(batch.image_ids):
            pred = (predictions or {}).get(image_id)
            if pred is not None and pred.box is not None:
                pbox = np.asarray([pred.box])
            elif threshold is not None:
                pbox = np.asarray(boxes_from_map(evald[j], float(threshold), loc.get("box_mode", "largest"),
                                                 relative=loc.get("normalize", "minmax") == "minmax")).reshape(-1, 4)
            else:
                pbox = np.zeros((0, 4))
            out.ids.append(image_id)
            out.images.append(pixels[j])
            out.raw_maps.append(maps[j, 0].numpy())
            out.eval_maps.append(evald[j])
            out.gt_boxes.append(batch.boxes[j].numpy())
            out.pred_boxes.append(pbox)
            out.ious.append(pred.iou if pred is not None else float("nan"))
    return out


def _short(image_id: str, width: int = 28) -> str:
    """The image id, cut from the left to `width` characters (the file name end is the telling part)."""
    return image_id if len(image_id) <= width else "~" + image_id[-(width - 1):]


OVERLAY_MIN_SIDE = 320


def _enlarge(image: np.ndarray, boxes: Sequence, size: int) -> tuple[np.ndarray, list]:
    """Upscale a small image (longer side < size) before drawing, so that lines stay crisp;
    boxes (inclusive pixels) scale with it."""
    from ..viz.draw import fit

    h, w = image.shape[:2]
    if max(h, w) >= size:
        return image, list(boxes)
    big = fit(image, size)
    sy, sx = big.shape[0] / h, big.shape[1] / w
    scaled = []
    for b in boxes:
        b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
        scaled.append(np.column_stack([b[:, 0] * sx, b[:, 1] * sy, (b[:, 2] + 1) * sx - 1, (b[:, 3] + 1) * sy - 1]))
    return big, scaled


# --- one function per figure: arrays from the run -> {file name: image} -------------------------

def fig_threshold_curve(run: Run, n: int | None) -> dict[str, np.ndarray]:
    from ..viz.figures import threshold_curve

    m = run.metrics()
    data = read_json(run.root / "curves.json")
    mode = data.get("box_mode") or m.get("box_mode")
    thresholds, curves, chosen = parse_curves(data, box_mode=mode, iou_strict=m.get("iou_strict"))
    if chosen is None and m.get("threshold_index") is not None:
        chosen = int(m["threshold_index"])
    chooser = m.get("threshold_split") or data.get("split")
    note = f"chosen on {chooser}" if chooser else None
    title = "Box accuracy vs threshold" + (f" on the {data['split']} split" if data.get("split") else "")
    title += f", box mode {mode}" if mode else ""
    return {"threshold_curve.png": threshold_curve(thresholds, curves, chosen, note=note, title=title)}


def fig_evolution(run: Run, n: int | None) -> dict[str, np.ndarray]:
    from ..viz.figures import evolution_grid
    from ..viz.snapshots import load_snapshots

    try:
        snap = load_snapshots(run.root / "snapshots")
    except FileNotFoundError as e:
        raise MissingSource(f"no stage-2 snapshots ({e}); they are written while stage 2 (refine) trains") from None
    rows = min(n or DEFAULT_N["evolution"], len(snap.images))
    columns = [("start" if epoch == 0 else f"epoch {epoch}", maps[:rows]) for epoch, maps in snap.epochs]
    return {"evolution.png": evolution_grid(list(snap.images[:rows]), columns)}


def fig_overlay(run: Run, n: int | None) -> dict[str, np.ndarray]:
    from ..viz.figures import overlay

    records = run.records()
    picked = [records[i] for i in sample_indices(len(records), n or DEFAULT_N["overlay"])]
    preds = _predictions_or_none(run)
    d = draw_records(run, picked, preds)
    out = {}
    for k in range(len(d.ids)):
        title = _short(d.ids[k], 60) + (f"  IoU {d.ious[k]:.2f}" if not np.isnan(d.ious[k]) else "")
        image, (pred, gt) = _enlarge(d.images[k], [d.pred_boxes[k], d.gt_boxes[k]], OVERLAY_MIN_SIDE)
        out[f"overlay_{k:02d}.png"] = overlay(image, d.eval_maps[k], pred, gt, title=title)
    return out


def fig_histogram(run: Run, n: int | None) -> dict[str, np.ndarray]:
    from ..viz.figures import histogram

    records = run.records()
    picked = [records[i] for i in sample_indices(len(records), n or DEFAULT_N["histogram"])]
    d = draw_records(run, picked)
    method = run.model()[1].get("method", "")
    title = f"Distribution of raw map values per image ({method}, {run.split_name()} split)"
    return {"histogram.png": histogram(d.raw_maps, [_short(i) for i in d.ids], title=title)}


def fig_failures(run: Run, n: int | None) -> dict[str, np.ndarray]:
    from ..viz.figures import failures

    preds = read_predictions(run.root / "predictions.csv")
    scored = sorted((p.iou, image_id) for image_id, p in preds.items() if not np.isnan(p.iou))
    if not scored:
        raise MissingSource("predictions.csv has no IoU (a dataset without boxes?)")
    worst = [image_id for _, image_id in scored[:n or DEFAULT_N["failures"]]]
    by_id = {r.image_id: r for r in run.records()}
    missing = [i for i in worst if i not in by_id]
    if missing:
        raise OrnetError(f"predictions.csv lists {missing[0]!r}, not in split {run.split_name()!r} of the dataset")
    d = draw_records(run, [by_id[i] for i in worst], preds)
    return {"failures.png": failures(d.images, d.eval_maps, d.gt_boxes, d.pred_boxes, d.ious, n=len(d.ids),
                                     labels=[_short(i, 40) for i in d.ids])}


def fig_grid(run: Run, n: int | None) -> dict[str, np.ndarray]:
    from ..viz.figures import grid

    records = run.records()
    picked = [records[i] for i in sample_indices(len(records), n or DEFAULT_N["grid"])]
    d = draw_records(run, picked)
    return {"grid.png": grid(d.images, d.eval_maps, labels=[_short(i, 40) for i in d.ids])}


FIGURES = {"threshold-curve": fig_threshold_curve, "evolution": fig_evolution, "overlay": fig_overlay,
           "histogram": fig_histogram, "failures": fig_failures, "grid": fig_grid}


def _predictions_or_none(run: Run) -> dict[str, Prediction] | None:
    try:
        return read_predictions(run.root / "predictions.csv")
    except MissingSource:
        return None


def save_png(path: Path, image: np.ndarray) -> None:
    """Write an RGB uint8 array as PNG atomically (temporary file, then rename)."""
    from PIL import Image

    from ..fsutil import atomic_path

    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(image)).save(tmp, format="PNG")


def render(run_dir: str | os.PathLike, kinds: Sequence[str] = KINDS, out: str | os.PathLike | None = None,
           n: int | None = None, strict: bool = True, **run_options) -> tuple[list[Path], dict[str, str]]:
    """Draw `kinds` for a run; returns (written files, {kind: why skipped}).

    strict: a missing source raises (MissingSource, exit 2); otherwise that kind is skipped.
    run_options: data_root, data_name, split, device, batch_size (see `Run`).
    """
    root = Path(run_dir)
    if not root.is_dir():
        raise OrnetError(f"{root}: run folder does not exist")
    unknown = [k for k in kinds if k not in FIGURES]
    if unknown:
        raise OrnetError(f"unknown figure {unknown[0]!r}; figures: {', '.join(KINDS)}, all")
    if n is not None and n < 1:
        raise OrnetError(f"--n must be >= 1, got {n}")
    target = Path(out) if out is not None else root / "figures"
    from ..outdir import check_out_dir

    check_out_dir(target, "--out")  # before any figure is drawn
    run = Run(root, **run_options)
    written, skipped = [], {}
    for kind in kinds:
        try:
            images = FIGURES[kind](run, n)
        except MissingSource as e:
            if strict:
                raise
            skipped[kind] = str(e)
            continue
        if kind == "overlay":
            for old in target.glob("overlay_*.png"):
                old.unlink()
        for name, image in images.items():
            save_png(target / name, image)
            written.append(target / name)
    return written, skipped


def main(argv: list[str], prog: str) -> int:
    ns = build_parser(prog).parse_args(argv)
    if ns.batch_size < 1:
        raise OrnetError(f"--batch-size must be >= 1, got {ns.batch_size}")
    kinds = KINDS if ns.kind == "all" else (ns.kind,)
    out = Path(ns.out) if ns.out is not None else None
    run_dir = Path(ns.run_dir)
    if not run_dir.is_dir():
        raise OrnetError(f"{run_dir}: run folder does not exist")
    from ..outdir import check_out_dir
    from ..runlock import LOCK_NAME, folder_to_lock, run_lock

    target = out if out is not None else run_dir / "figures"
    check_out_dir(target, "--out")
    # One writer per folder: the run when the figures go inside it (RUN/figures), else --out.
    with run_lock(folder_to_lock(target, run_dir), command=f"{prog} {shlex.join(argv)}"):
        if out is not None and out.is_dir() and not ns.force:  # RUN_DIR/figures is always redrawn
            others = sorted(p.name for p in out.iterdir() if not FIGURE_FILE.match(p.name) and p.name != LOCK_NAME)
            if others:
                raise OrnetError(f"--out {out} holds files other than figures ({others[0]}"
                                 f"{f' and {len(others) - 1} more' if len(others) > 1 else ''}); "
                                 "pass --force to write into it")
        return _draw(ns, kinds, prog)


def _draw(ns, kinds, prog: str) -> int:
    written, skipped = render(ns.run_dir, kinds, ns.out, ns.n, strict=ns.kind != "all", data_root=ns.data_root,
                              data_name=ns.data_name, split=ns.split, device=ns.device, batch_size=ns.batch_size)
    for path in written:
        print(f"wrote {path}")
    for kind, why in skipped.items():
        print(f"{prog}: skipped {kind}: {why}", file=sys.stderr)
    if ns.out is None and written:
        from ..viz.report import write_report

        print(f"wrote {write_report(ns.run_dir)}")
    if not written:
        raise OrnetError("no figure could be drawn: " + "; ".join(f"{k}: {w}" for k, w in skipped.items()))
    return 0
