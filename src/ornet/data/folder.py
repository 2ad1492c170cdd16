"""A plain folder of images, one sub-folder per class; and what the other readers share.

    root/<class>/*.{jpg,jpeg,png,bmp,webp}                 split by data.options.test_fraction
    root/train/<class>/...  +  root/test/<class>/...       when both folders exist

Optional boxes: `data.options.boxes` names a CSV with the header `image,x0,y0,x1,y1`
(image relative to root, continuous pixels, several rows per image for several objects).
With a box file every image must have at least one box (the validation split is carved
from train and thresholds are chosen on it); without one the dataset has no boxes.

Shared helpers (used by the other readers of this package): `reader_options`
(validated `data.options`), `list_images`, `collect`.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ..config.schema import DataConfig
from ..errors import ConfigError, DataError
from .io import image_size, parse_float
from .readers import READERS, carve_val, finish_index
from .records import Box, DatasetIndex, Record, check_box, check_image_id

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
T = TypeVar("T")

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def reader_options(cfg: DataConfig, reader: str, defaults: dict[str, Any],
                   choices: dict[str, tuple[str, ...]] | None = None) -> dict[str, Any]:
    """`cfg.options` merged over `defaults`; unknown keys and ill-typed values are ConfigErrors.

    The type of each default decides how a value is read (bools also accept true/false
    strings from the command line); a default of None means an optional path (a string).
    """
    given = dict(cfg.options or {})
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        valid = ", ".join(sorted(defaults)) or "none"
        raise ConfigError(f"unknown data.options key(s) {', '.join(unknown)} for dataset {reader!r}; "
                          f"valid: {valid}")
    out = dict(defaults)
    for key, value in given.items():
        out[key] = _coerce(f"data.options.{key}", value, defaults[key])
        if choices and key in choices and out[key] not in choices[key]:
            raise ConfigError(f"data.options.{key} must be one of {', '.join(choices[key])}, got {value!r}")
    return out


def _coerce(key: str, value: Any, default: Any) -> Any:
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if isinstance(default, (int, float)):
        kind = type(default)
        try:
            if isinstance(value, bool) or (kind is int and isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return kind(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key} must be {'an integer' if kind is int else 'a number'}, got {value!r}") from None
    if value is None or isinstance(value, str):
        return value
    raise ConfigError(f"{key} must be a string, got {value!r}")


def resolve(root: Path, value: str | None, default: str | None = None) -> Path | None:
    """An option path: absolute as given, relative to the dataset root otherwise."""
    value = value if value is not None else default
    if value is None:
        return None
    p = Path(value).expanduser()
    return p if p.is_absolute() else root / p


def list_images(folder: Path) -> list[str]:
    """Sorted names of the image files directly in `folder` (extension case ignored, hidden skipped)."""
    with os.scandir(folder) as it:
        return sorted(e.name for e in it if e.is_file() and not e.name.startswith(".")
                      and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS)


def list_dirs(folder: Path) -> list[str]:
    """Sorted names of the sub-folders of `folder` (hidden ones skipped)."""
    with os.scandir(folder) as it:
        return sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))


def collect(problems: list[DataError], fn: Callable[..., T], *args: Any) -> T | None:
    """fn(*args), or None with its DataError appended to `problems`."""
    try:
        return fn(*args)
    except DataError as e:
        problems.append(e)
        return None


def _read_box_csv(path: Path, problems: list[DataError]) -> dict[str, list[tuple[Box, int]]]:
    boxes: dict[str, list[tuple[Box, int]]] = {}
    if not path.is_file():
        raise DataError("missing box file (data.options.boxes)", file=str(path))
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        want = ["image", "x0", "y0", "x1", "y1"]
        if header != want:
            raise DataError(f"header must be {','.join(want)}, got {','.join(header)!r}", file=str(path), line=1)
        for row in reader:
            lineno = reader.line_num
            if not any(v.strip() for v in row):
                continue
            if len(row) != 5:
                problems.append(DataError(f"expected 5 fields, got {len(row)}", file=str(path), line=lineno))
                continue
            image = row[0].strip()
            try:
                check_image_id(image, path, lineno)
                box = tuple(parse_float(v.strip(), path, lineno, "box value") for v in row[1:])
            except DataError as e:
                problems.append(e)
                continue
            boxes.setdefault(Path(image).as_posix(), []).append((box, lineno))
    return boxes


def _split_test(records: list[Record], fraction: float, seed: int) -> tuple[list[Record], list[Record]]:
    """Per class, move round(n * fraction) images (at least one when n >= 2, never all) to test."""
    by_class: dict[int, list[Record]] = {}
    for r in records:
        by_class.setdefault(r.label, []).append(r)
    train, test = [], []
    for label in sorted(by_class):
        recs = by_class[label]
        n = len(recs)
        k = min(max(round(n * fraction), 1 if fraction > 0 and n >= 2 else 0), n - 1)
        chosen = set(np.random.default_rng([seed, label]).choice(n, size=k, replace=False).tolist())
        for i, r in enumerate(recs):
            (test if i in chosen else train).append(r)
    return train, test


@READERS.register("folder")
def read_folder(cfg: DataConfig) -> DatasetIndex:
    root = Path(cfg.root)
    opts = reader_options(cfg, "folder", {"test_fraction": 0.2, "boxes": None})
    if not 0 <= opts["test_fraction"] < 1:
        raise ConfigError(f"data.options.test_fraction must be in [0, 1), got {opts['test_fraction']}")
    problems: list[DataError] = []
    split_layout = (root / "train").is_dir() and (root / "test").is_dir()
    bases = {"train": root / "train", "test": root / "test"} if split_layout else {"all": root}
    classes = sorted({c for base in bases.values() for c in list_dirs(base)})
    if not classes:
        raise DataError("no class folders (expected root/<class>/ or root/train/<class>/ and root/test/<class>/)",
                        file=str(root))
    label_of = {c: i for i, c in enumerate(classes)}
    box_path = resolve(root, opts["boxes"])
    boxes = _read_box_csv(box_path, problems) if box_path is not None else None
    used: set[str] = set()

    found: dict[str, list[Record]] = {}
    for split, base in bases.items():
        found[split] = []
        for cls in classes:
            folder = base / cls
            names = list_images(folder) if folder.is_dir() else []
            if not names:
                problems.append(DataError(f"class {cls!r} has no images in this folder", file=str(folder)))
            for name in names:
                path = folder / name
                image_id = path.relative_to(root).as_posix()
                size = collect(problems, image_size, path)
                if size is None:
                    continue
                checked: list[Box] = []
                if boxes is not None:
                    rows = boxes.get(image_id, [])
                    used.add(image_id)
                    if not rows:
                        problems.append(DataError(f"no box for image {image_id}", file=str(box_path)))
                        continue
                    checked = [b for box, line in rows
                               if (b := collect(problems, check_box, box, size, cfg.clip_boxes, box_path, line,
                                                image_id)) is not None]
                    if len(checked) != len(rows):
                        continue
                found[split].append(Record(image_id=image_id, path=path, label=label_of[cls],
                                           boxes=tuple(checked), size=size))
    if boxes is not None:
        for image_id in sorted(set(boxes) - used):
            problems.append(DataError(f"box for {image_id}, which is not an image of any class folder",
                                      file=str(box_path), line=boxes[image_id][0][1]))
    if split_layout:
        train, test = found["train"], found["test"]
    else:
        train, test = _split_test(found["all"], opts["test_fraction"], cfg.split_seed)
    train, val = carve_val(train, len(classes), cfg.val_per_class, cfg.split_seed)
    index = DatasetIndex(name="folder", root=root, classes=classes,
                         splits={"train": train, "val": val, "test": test},
                         problems=problems, has_boxes=boxes is not None)
    return finish_index(index)
