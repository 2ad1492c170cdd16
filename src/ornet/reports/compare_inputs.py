"""What the comparison page compares: run folders and evaluation folders, as labelled columns.

A column is either

- a run folder (``ornet train --out RUN``): metrics.json, predictions.csv, config.yaml,
  model.json + model.safetensors; or
- an evaluation folder (``ornet evaluate RUN --out DIR``, with or without ``--eval.maps NAME``):
  metrics.json, predictions.csv, curves.json. Its metrics.json names the model it evaluated
  (``model``: the model.json path as `ornet evaluate` was given it, so possibly relative to the
  folder that command ran in); the run folder is that file's folder, looked up as written (from
  the current folder), then beside the evaluation folder (the default ``RUN/evaluate_<split>``).

Its label is the method, plus `` + <extractor>`` for maps of a map extractor (metrics.json's
``maps``, docs/maps.md): ``cam``, ``cam + gradcam``. Labels that would repeat are told apart by
ORNet's class gate when it differs between them (metrics.json's ``cam_gate``: ``ornet, no gate``
beside ``ornet, gate 0.25``, e.g. a run and its `ornet evaluate RUN --eval.cam_gate '[0]'`), else
by the folder's name, then its path, in brackets. Columns are comparable when they were evaluated on the same
split and their predictions.csv list the same image ids (an evaluation folder does not record its
dataset; the same ids on the same split is what the page needs: every column is drawn on the same
images). Every check raises an `OrnetError` of one line naming the folder, before anything is
written.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import OrnetError
from ..runs.files import read_json_object

RUN_FILES = ("config.yaml", "model.json", "model.safetensors")
"""What the run folder behind a column must hold (the model is re-run on the images)."""


@dataclass(frozen=True)
class Column:
    """One compared folder: ``root`` holds metrics.json and predictions.csv, ``run_dir`` the run's
    config.yaml and model (``root`` itself for a run folder)."""

    label: str
    root: Path
    run_dir: Path
    metrics: dict

    @property
    def is_evaluation(self) -> bool:
        return self.run_dir != self.root

    @property
    def maps(self) -> str:
        return self.metrics.get("maps") or "own"


def open_folder(folder: str | os.PathLike) -> tuple[Path, Path, dict]:
    """(root, run folder, metrics.json) of a run or evaluation folder; OrnetError naming it otherwise."""
    root = Path(folder)
    what = "a run folder (ornet train --out) or an evaluation folder (ornet evaluate --out)"
    if not root.is_dir():
        raise OrnetError(f"{root} is not a folder; expected {what}")
    if not (root / "metrics.json").is_file():
        raise OrnetError(f"{root} has no metrics.json: not {what}")
    metrics = read_json_object(root / "metrics.json")
    if not (root / "predictions.csv").is_file():
        raise OrnetError(f"{root / 'predictions.csv'} does not exist: {root} is not a finished run or evaluation")
    run_dir = root if (root / "model.json").is_file() else _evaluated_run(root, metrics)
    for need in RUN_FILES:
        if not (run_dir / need).is_file():
            raise OrnetError(f"{run_dir / need} does not exist: {root} is not a finished run folder")
    for key in ("method", "split"):
        if not isinstance(metrics.get(key), str):
            raise OrnetError(f"{root / 'metrics.json'} has no {key!r}: not written by `ornet train` or `ornet evaluate`")
    return root, run_dir, metrics


def _evaluated_run(root: Path, metrics: dict) -> Path:
    """The run folder an evaluation folder's metrics.json points to (its ``model``)."""
    model = metrics.get("model")
    if not isinstance(model, str) or not model:
        raise OrnetError(f"{root} has metrics.json but no model.json, and its metrics.json names no model: "
                         f"not a run or evaluation folder")
    named = Path(model)
    named = named if named.suffix == ".json" else named.with_suffix(".json")
    for candidate in (named, root.parent / "model.json"):
        if candidate.is_file():
            return candidate.parent
    raise OrnetError(f"{root / 'metrics.json'} names the model {model}, which does not exist (nor does "
                     f"{root.parent / 'model.json'}): run this from the folder `ornet evaluate` ran in")


def base_label(metrics: dict) -> str:
    """``<method>``, or ``<method> + <extractor>`` for a map extractor's maps."""
    maps = metrics.get("maps") or "own"
    return metrics["method"] if maps == "own" else f"{metrics['method']} + {maps}"


def gate_label(metrics: dict) -> str | None:
    """``no gate`` / ``gate <alpha>`` for an ORNet evaluation that records its class gate, else None."""
    gate = metrics.get("cam_gate")
    if isinstance(gate, bool) or not isinstance(gate, (int, float)):
        return None
    return "no gate" if gate == 0 else f"gate {gate:g}"


def label_columns(folders: Sequence[str | os.PathLike]) -> list[Column]:
    """Open each folder and give it a unique label (see the module's docstring)."""
    if not folders:
        raise OrnetError("no run to compare: name at least one run or evaluation folder")
    opened = [open_folder(f) for f in folders]
    seen: dict[Path, Path] = {}
    for root, _, _ in opened:
        same = seen.setdefault(root.resolve(), root)
        if same is not root:
            raise OrnetError(f"{root} is named twice (also as {same}): name each folder once")
    bases = [base_label(m) for _, _, m in opened]
    columns = []
    for (root, run_dir, m), base in zip(opened, bases):
        group = [r.name for (r, _, _), b in zip(opened, bases) if b == base]
        gates = [gate_label(om) for (_, _, om), b in zip(opened, bases) if b == base]
        if len(group) == 1:
            label = base
        elif None not in gates and len(set(gates)) == len(gates):  # the gate tells them apart
            label = f"{base}, {gate_label(m)}"
        else:
            label = f"{base} ({root.name})" if group.count(root.name) == 1 else f"{base} ({root})"
        columns.append(Column(label, root, run_dir, m))
    return columns


def prediction_ids(root: Path) -> list[str]:
    """The image ids of a folder's predictions.csv, in its order."""
    try:
        with open(root / "predictions.csv", newline="", encoding="utf-8") as f:
            rows = csv.DictReader(f)
            if "image_id" not in (rows.fieldnames or []):
                raise OrnetError(f"{root / 'predictions.csv'} has no image_id column")
            return [row["image_id"] for row in rows]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise OrnetError(f"{root / 'predictions.csv'}: cannot read it ({e})") from None


def check_comparable(columns: Sequence[Column], split: str | None = None) -> None:
    """Same split (``split`` when given) and the same image ids in every predictions.csv."""
    first = columns[0]
    for c in columns[1:]:
        if c.metrics["split"] != first.metrics["split"]:
            raise OrnetError(f"{first.root} was evaluated on the {first.metrics['split']} split and {c.root} on the "
                             f"{c.metrics['split']} split: compare evaluations of one split")
    if split is not None and first.metrics["split"] != split:
        raise OrnetError(f"{first.root} was evaluated on the {first.metrics['split']} split, not {split} (--split); "
                         f"evaluate it there with `ornet evaluate RUN --split {split} --out DIR`")
    ids = set(prediction_ids(first.root))
    for c in columns[1:]:
        other = set(prediction_ids(c.root))
        if other != ids:
            only = sorted(ids - other) or sorted(other - ids)
            where = first.root if ids - other else c.root
            raise OrnetError(f"{first.root} and {c.root} were evaluated on different images ({len(ids)} and "
                             f"{len(other)} image ids; {only[0]!r} only in {where}): compare runs of one dataset")
