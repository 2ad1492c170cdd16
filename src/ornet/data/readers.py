"""The dataset-reader registry and what every reader shares (torch-free)."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np

from ..config.schema import DataConfig
from ..errors import DataError, OrnetError
from ..registry import Registry
from ..runtime.seeding import derive_seed
from .records import DatasetIndex, Record

READERS: Registry = Registry("dataset")
"""name -> function(DataConfig) -> DatasetIndex."""

# Modules that register readers; imported on first use so that `import ornet.data` stays light.
_READER_MODULES = ("cub", "ilsvrc", "wsol_metadata", "dogs", "aircraft", "reid", "folder")


def _load_readers() -> None:
    for mod in _READER_MODULES:
        try:
            importlib.import_module(f"{__package__}.{mod}")
        except ModuleNotFoundError as e:
            if e.name != f"{__package__}.{mod}":
                raise


def read_index(cfg: DataConfig) -> DatasetIndex:
    """Read the dataset `cfg.name` at `cfg.root`; problems are collected in the index.

    With ``cfg.tune_per_class > 0`` a ``tune`` split is carved from what the reader left in
    train (`carve_tune`); with 0 (the default) the index is exactly the reader's."""
    _load_readers()
    reader = READERS.get(cfg.name)
    if cfg.root is None:
        raise OrnetError("no dataset root given (set --data.root DIR)")
    root = Path(cfg.root)
    if not root.is_dir():
        raise DataError("dataset root does not exist or is not a folder", file=str(root))
    if cfg.val_per_class < 0:
        raise OrnetError(f"data.val_per_class must be >= 0, got {cfg.val_per_class}")
    if cfg.tune_per_class < 0:
        raise OrnetError(f"data.tune_per_class must be >= 0, got {cfg.tune_per_class}")
    if cfg.tune_list is not None and cfg.tune_per_class > 0:
        raise OrnetError(f"data.tune_list and data.tune_per_class ({cfg.tune_per_class}) both carve the tune split; set one")
    index = reader(cfg)
    if cfg.tune_per_class > 0:
        carve_tune(index, cfg.tune_per_class, cfg.split_seed)
    if cfg.tune_list is not None:
        take_tune_list(index, Path(cfg.tune_list))
    return index


def take_tune_list(index: DatasetIndex, path: Path) -> DatasetIndex:
    """Move the training (or val) images that `path` lists into a ``tune`` split (in place).

    One image id per line (the first whitespace-separated field; blank lines and ``#`` comments
    skipped). Raises a DataError naming the file and line for an id the dataset does not have, a
    test image (tune never holds test) or an id listed twice; an empty list is an error too.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read the tune list ({e.__class__.__name__}: {e})", file=str(path)) from None
    where = {r.image_id: name for name, records in index.splits.items() for r in records}
    wanted: dict[str, int] = {}
    for n, line in enumerate(lines, 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        iid = fields[0]
        if iid in wanted:
            raise DataError(f"image id {iid!r} is listed twice (first on line {wanted[iid]})", file=str(path), line=n)
        split = where.get(iid)
        if split is None:
            raise DataError(f"image id {iid!r} is not in dataset {index.name!r} at {index.root}", file=str(path), line=n)
        if split not in ("train", "val"):
            raise DataError(f"image id {iid!r} is in the {split} split; the tune split takes training images only",
                            file=str(path), line=n)
        wanted[iid] = n
    if not wanted:
        raise DataError("the tune list names no image", file=str(path))
    taken = [r for name in ("train", "val") for r in index.splits.get(name, []) if r.image_id in wanted]
    for name in ("train", "val"):
        if name in index.splits:
            index.splits[name] = [r for r in index.splits[name] if r.image_id not in wanted]
    index.splits["tune"] = sorted(taken, key=lambda r: wanted[r.image_id])
    if not index.splits.get("train"):
        index.problems.append(DataError("the tune list takes every training image; none is left to train on",
                                        file=str(path)))
    return index


def carve_tune(index: DatasetIndex, per_class: int, split_seed: int) -> DatasetIndex:
    """Move `per_class` training images of each class into a ``tune`` split (in place).

    The split to choose settings on (benchmarks, `benchmarks/studies/tune.py`) without reading
    test: carved from train after the reader carved ``val`` (the threshold's images) and test
    out of it, so it never holds either, and val stays what it is without a tune split. Seeded
    by ``data.split_seed`` on a stream of its own (`carve_val`'s rule: a class keeps at least
    one training image). A tune split left empty (every class has a single training image) is a
    problem of the index.
    """
    train, tune = carve_val(index.splits.get("train", []), index.num_classes, per_class,
                            derive_seed("tune", split_seed))
    index.splits["train"], index.splits["tune"] = train, tune
    if not tune:
        index.problems.append(DataError(f"data.tune_per_class is {per_class} but no class has a training image to "
                                        "spare for the tune split", file=str(index.root)))
    return index


def carve_val(train: list[Record], num_classes: int, per_class: int, seed: int) -> tuple[list[Record], list[Record]]:
    """Move `per_class` images of each class from train to a held-out validation split.

    Seeded and independent of the order of classes; a class keeps at least one training
    image (with fewer than per_class + 1 images it gives what it can spare). The threshold
    is chosen on this split, never on test (wsolevaluation's protocol).
    """
    if per_class == 0:
        return list(train), []
    rng = np.random.default_rng(seed)
    by_class: dict[int, list[int]] = {}
    for i, r in enumerate(train):
        by_class.setdefault(r.label, []).append(i)
    val_idx: set[int] = set()
    for label in sorted(by_class):
        idx = by_class[label]
        take = min(per_class, len(idx) - 1)
        if take > 0:
            chosen = rng.choice(len(idx), size=take, replace=False)
            val_idx.update(idx[j] for j in chosen)
    kept = [r for i, r in enumerate(train) if i not in val_idx]
    val = [r for i, r in enumerate(train) if i in val_idx]
    return kept, val


def finish_index(index: DatasetIndex) -> DatasetIndex:
    """Checks every reader shares: classes exist, no split is empty, labels in range."""
    if index.num_classes == 0:
        index.problems.append(DataError("dataset has zero classes", file=str(index.root)))
    for name, records in index.splits.items():
        if not records and name != "val":  # an empty val split is an error only when used
            index.problems.append(DataError(f"split {name!r} is empty", file=str(index.root)))
        for r in records:
            if not 0 <= r.label < max(index.num_classes, 1):
                index.problems.append(DataError(f"label {r.label} of {r.image_id} is out of range", file=str(r.path)))
    return index
