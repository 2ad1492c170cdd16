"""Readers of a run's files: config.yaml, metrics.json / curves.json, predictions.csv (torch-free).

Each reader names the file (and line) of what it cannot read, as an `OrnetError`; a file that is
simply absent is a `MissingSource` (a figure that needs it is skipped under ``figures all``).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import OrnetError


class MissingSource(OrnetError):
    """A file a reader needs is not in the run folder (figures: skipped under KIND=all)."""


def read_json_object(path: Path) -> dict:
    """A run file holding one JSON object (metrics.json, curves.json); OrnetError naming it otherwise."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise OrnetError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise OrnetError(f"{path}: expected a JSON object")
    return data


def read_json(path: Path) -> dict:
    """`read_json_object`, with a missing file a `MissingSource`."""
    if not Path(path).is_file():
        raise MissingSource(f"{path} does not exist")
    return read_json_object(path)


def read_config(path: Path) -> dict:
    """A run's config.yaml as a plain dict (`config.from_dict(RunConfig, ...)` makes a `RunConfig`).

    A missing file is a `MissingSource`; one that is not YAML, or not a mapping whose data and
    eval sections are mappings, an OrnetError naming the file.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise MissingSource(f"{path} does not exist")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise OrnetError(f"{path}: cannot read the run's config ({' '.join(str(e).split())})") from None
    if not isinstance(loaded, dict) or not isinstance(loaded.get("data") or {}, dict) \
            or not isinstance(loaded.get("eval") or {}, dict):
        raise OrnetError(f"{path}: not a run config (expected a mapping with data and eval sections)")
    return loaded


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
class PredictionRow:
    """One line of predictions.csv (``evaluation.ROW_FIELDS``)."""

    label: int | None
    pred: int | None
    box: list[float] | None
    iou: float


def read_predictions(path: Path) -> dict[str, PredictionRow]:
    """image_id -> PredictionRow from predictions.csv (boxes in the evaluated image's pixels)."""
    if not path.is_file():
        raise MissingSource(f"{path} does not exist (run `ornet evaluate`)")
    out: dict[str, PredictionRow] = {}
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
            out[row["image_id"]] = PredictionRow(label, pred, box, iou)
    return out
