"""CUB-200-2011 in its release layout.

    root/images.txt               <id> <relative path>
    root/image_class_labels.txt   <id> <class id, 1-based>
    root/train_test_split.txt     <id> <1 = train, 0 = test>
    root/bounding_boxes.txt       <id> <x> <y> <width> <height>   (pixels, float)
    root/classes.txt              <class id> <name>
    root/images/<relative path>
    root/segmentations/<relative path with .png>   (optional masks)

Several lines of bounding_boxes.txt may name the same id (several objects).
"""

from __future__ import annotations

from pathlib import Path

from ..config.schema import DataConfig
from ..errors import DataError
from .folder import reader_options
from .io import image_size, iter_fields, parse_float, parse_int
from .readers import READERS, carve_val, finish_index
from .records import DatasetIndex, Record, check_box, check_image_id


@READERS.register("cub")
def read_cub(cfg: DataConfig) -> DatasetIndex:
    reader_options(cfg, "cub", {})  # no options: a given one is a typo, not silently ignored
    root = Path(cfg.root)
    problems: list[DataError] = []

    def collect(fn):
        try:
            return fn()
        except DataError as e:
            problems.append(e)
            return None

    classes: dict[int, str] = {}
    f = root / "classes.txt"
    for lineno, (cid, *name) in iter_fields(f, (2,), sep=None):
        classes[parse_int(cid, f, lineno, "class id")] = name[0]
    if not classes:
        raise DataError("no classes", file=str(f))
    ids = sorted(classes)
    if ids != list(range(1, len(ids) + 1)):
        raise DataError(f"class ids must be 1..{len(ids)}, got {ids[:5]}...", file=str(f))

    paths: dict[str, tuple[str, int]] = {}
    f = root / "images.txt"
    for lineno, (iid, rel) in iter_fields(f, 2):
        if iid in paths:
            problems.append(DataError(f"image id {iid} listed twice", file=str(f), line=lineno))
            continue
        try:
            check_image_id(rel, f, lineno)
        except DataError as e:
            problems.append(e)
            continue
        paths[iid] = (rel, lineno)

    failed: set[str] = set()  # ids with a reported problem: not reported again as "missing"
    labels: dict[str, int] = {}
    f = root / "image_class_labels.txt"
    for lineno, (iid, lab) in iter_fields(f, 2):
        label = parse_int(lab, f, lineno, "class id")
        if label not in classes:
            problems.append(DataError(f"label {label} of image {iid} is out of range 1..{len(classes)}",
                                      file=str(f), line=lineno))
            failed.add(iid)
            continue
        labels[iid] = label - 1

    is_train: dict[str, bool] = {}
    f = root / "train_test_split.txt"
    for lineno, (iid, flag) in iter_fields(f, 2):
        if flag not in ("0", "1"):
            problems.append(DataError(f"split flag {flag!r} of image {iid} must be 0 or 1", file=str(f), line=lineno))
            failed.add(iid)
            continue
        is_train[iid] = flag == "1"

    boxes: dict[str, list[tuple[tuple[float, float, float, float], int]]] = {}
    f = root / "bounding_boxes.txt"
    box_file = f
    for lineno, (iid, *xywh) in iter_fields(f, 5):
        try:
            x, y, w, h = (parse_float(v, f, lineno, "box value") for v in xywh)
        except DataError as e:
            problems.append(e)
            failed.add(iid)
            continue
        boxes.setdefault(iid, []).append(((x, y, x + w, y + h), lineno))

    seg_root = root / "segmentations"
    has_masks = seg_root.is_dir()
    splits: dict[str, list[Record]] = {"train": [], "test": []}
    images_txt = root / "images.txt"
    for iid, (rel, lineno) in paths.items():
        if iid in failed:
            continue
        missing = [n for n, d in (("image_class_labels.txt", labels), ("train_test_split.txt", is_train),
                                  ("bounding_boxes.txt", boxes)) if iid not in d]
        if missing:
            problems.append(DataError(f"image id {iid} ({rel}) has no entry in {', '.join(missing)}",
                                      file=str(images_txt), line=lineno))
            continue
        path = root / "images" / rel
        size = collect(lambda path=path: image_size(path))
        if size is None:
            continue
        try:
            checked = [check_box(box, size, cfg.clip_boxes, box_file, blin, rel) for box, blin in boxes[iid]]
        except DataError as e:
            problems.append(e)
            continue
        mask = seg_root / Path(rel).with_suffix(".png") if has_masks else None
        if mask is not None and not mask.is_file():
            problems.append(DataError(f"mask of {rel} is missing", file=str(mask)))
            continue
        rec = Record(image_id=rel, path=path, label=labels[iid], boxes=tuple(checked), size=size, mask_path=mask)
        splits["train" if is_train[iid] else "test"].append(rec)

    names = [classes[i] for i in ids]
    train, val = carve_val(splits["train"], len(names), cfg.val_per_class, cfg.split_seed)
    index = DatasetIndex(name="cub", root=root, classes=names,
                         splits={"train": train, "val": val, "test": splits["test"]},
                         problems=problems, has_boxes=True, has_masks=has_masks)
    return finish_index(index)
