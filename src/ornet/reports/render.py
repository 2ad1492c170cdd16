"""Figure assembly for a run folder: the run's files and model -> PNG files (docs/figures.md).

`render(run_dir, kinds, out)` draws each KIND with one function of arrays from `viz.figures`:

| kind            | reads                                                                   |
| --------------- | ----------------------------------------------------------------------- |
| threshold-curve | curves.json                                                             |
| evolution       | snapshots/ (written during stage 2 by `methods.ornet.map_snapshots`)   |
| overlay, grid,  | the model (model.safetensors + model.json) re-run on the run's dataset  |
| histogram       | (config.yaml's data section; --data.* overrides), evaluated split       |
| failures        | predictions.csv (lowest IoU) + the model on those images               |
| gate            | the model, when it has a class gate: its map without and with the gate |

Images go through the evaluation transform (resize, centre crop), so boxes and maps are those
the metrics saw; predicted boxes come from predictions.csv when it lists the image. A figure
whose source is missing raises `runs.files.MissingSource`, or is skipped with ``strict=False``.
Used by `ornet figures` and, after train / evaluate, by `reports.publish`. The run
and its model are a `reports.run_model.ModelRun`; the drawing is `viz.figures` (arrays in).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import OrnetError
from ..runs.files import MissingSource, PredictionRow, read_json, read_predictions
from .run_model import ModelRun

KINDS = ("threshold-curve", "evolution", "overlay", "histogram", "failures", "grid", "gate")
FIGURE_FILE = re.compile(r"^(threshold_curve|evolution|histogram|failures|grid|gate|overlay_\d+)\.png$")
"""Names of the files `render` writes: `ornet figures` redraws a folder holding only these without --force."""
DEFAULT_N = {"overlay": 4, "evolution": 8, "histogram": 8, "failures": 8, "grid": 16, "gate": 6}
SAMPLE_SEED = 0


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


def draw_records(run: ModelRun, records: Sequence, predictions: dict[str, PredictionRow] | None = None) -> Drawn:
    """Evaluate the model on `records` (evaluation transform) and collect maps and boxes."""
    import torch

    from ..data.dataset import WSOLDataset
    from ..data.sample import collate
    from ..data.transforms import build_transform, denormalize
    from ..inference.localizer import eval_maps
    from ..localization.boxes import boxes_from_map

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
    from ..localization.boxes import scale_boxes
    from ..viz.draw import fit

    h, w = image.shape[:2]
    if max(h, w) >= size:
        return image, list(boxes)
    big = fit(image, size)
    return big, [scale_boxes(b, (w, h), (big.shape[1], big.shape[0]), "pixels") for b in boxes]


# --- one function per figure: arrays from the run -> {file name: image} -------------------------

def fig_threshold_curve(run: ModelRun, n: int | None) -> dict[str, np.ndarray]:
    from ..runs.files import parse_curves
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


def fig_evolution(run: ModelRun, n: int | None) -> dict[str, np.ndarray]:
    from ..runs.snapshots import load_snapshots
    from ..viz.figures import evolution_grid

    try:
        snap = load_snapshots(run.root / "snapshots")
    except FileNotFoundError as e:
        raise MissingSource(f"no stage-2 snapshots ({e}); they are written while stage 2 (refine) trains") from None
    rows = min(n or DEFAULT_N["evolution"], len(snap.images))
    columns = [("start" if epoch == 0 else f"epoch {epoch}", maps[:rows]) for epoch, maps in snap.epochs]
    return {"evolution.png": evolution_grid(list(snap.images[:rows]), columns)}


def fig_overlay(run: ModelRun, n: int | None) -> dict[str, np.ndarray]:
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


def fig_histogram(run: ModelRun, n: int | None) -> dict[str, np.ndarray]:
    from ..viz.figures import histogram

    records = run.records()
    picked = [records[i] for i in sample_indices(len(records), n or DEFAULT_N["histogram"])]
    d = draw_records(run, picked)
    method = run.model()[1].get("method", "")
    title = f"Distribution of raw map values per image ({method}, {run.split_name()} split)"
    return {"histogram.png": histogram(d.raw_maps, [_short(i) for i in d.ids], title=title)}


def fig_failures(run: ModelRun, n: int | None) -> dict[str, np.ndarray]:
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


def fig_grid(run: ModelRun, n: int | None) -> dict[str, np.ndarray]:
    from ..viz.figures import grid

    records = run.records()
    picked = [records[i] for i in sample_indices(len(records), n or DEFAULT_N["grid"])]
    d = draw_records(run, picked)
    return {"grid.png": grid(d.images, d.eval_maps, labels=[_short(i, 40) for i in d.ids])}


def fig_gate(run: ModelRun, n: int | None) -> dict[str, np.ndarray]:
    """Rows: images of the split; columns: ORNet's own map p_a (the class gate off) and the map the run was
    scored on (gated, `ORNet.set_cam_gate`), both normalised as in evaluation. Only for a model whose class
    gate is on (eval.cam_gate chose an exponent > 0): otherwise the plain map is the scored map."""
    from ..viz.figures import evolution_grid

    model, _ = run.model()
    alpha = float(getattr(model, "cam_gate", 0.0) or 0.0)
    if alpha <= 0:
        raise MissingSource("no class gate chosen (cam_gate 0): the scored map is the plain map")
    records = run.records()
    picked = [records[i] for i in sample_indices(len(records), n or DEFAULT_N["gate"])]
    gated = draw_records(run, picked)
    model.set_cam_gate(0.0)
    try:
        plain = draw_records(run, picked)
    finally:
        model.set_cam_gate(alpha)
    columns = [("plain p_a", np.stack(plain.eval_maps)),  # short: a label wider than its tile is cut
               (f"gated {alpha:g}", np.stack(gated.eval_maps))]
    return {"gate.png": evolution_grid(gated.images, columns, tile_size=128)}


FIGURES = {"threshold-curve": fig_threshold_curve, "evolution": fig_evolution, "overlay": fig_overlay,
           "histogram": fig_histogram, "failures": fig_failures, "grid": fig_grid,
           "gate": fig_gate}


def _predictions_or_none(run: ModelRun) -> dict[str, PredictionRow] | None:
    try:
        return read_predictions(run.root / "predictions.csv")
    except MissingSource:
        return None


def save_png(path: Path, image: np.ndarray) -> None:
    """Write an RGB uint8 array as PNG atomically (temporary file, then rename)."""
    from PIL import Image

    from ..runtime.atomic import atomic_path

    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(image)).save(tmp, format="PNG")


def render(run_dir: str | os.PathLike, kinds: Sequence[str] = KINDS, out: str | os.PathLike | None = None,
           n: int | None = None, strict: bool = True, **run_options) -> tuple[list[Path], dict[str, str]]:
    """Draw `kinds` for a run; returns (written files, {kind: why skipped}).

    strict: a missing source raises (MissingSource, exit 2); otherwise that kind is skipped.
    run_options: data_root, data_name, split, device, batch_size (see `ModelRun`).
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
    from ..runtime.outdir import check_out_dir

    check_out_dir(target, "--out")  # before any figure is drawn
    run = ModelRun(root, **run_options)
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
