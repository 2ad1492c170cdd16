"""ILSVRC 2012 (ImageNet-1k) with the boxes of the localization release.

    root/train/<wnid>/*.JPEG                      training images (no boxes: weak supervision)
    root/val/ILSVRC2012_val_*.JPEG                validation images, flat ...
    root/val/<wnid>/ILSVRC2012_val_*.JPEG         ... or sorted into class folders
    root/val_annotations/ILSVRC2012_val_*.xml     one PASCAL-VOC XML per validation image
                                                  (ILSVRC2012_bbox_val_v3.tgz), or <wnid>/*.xml

Classes are the sorted wnids of train/, or the lines of `data.options.class_index`
(`<wnid> [name ...]` per line, line k = class k: LOC_synset_mapping.txt or Caffe's
synset_words.txt). Class names are the wnids. A flat val image takes its class from the
objects of its XML (they must agree); a val image in a class folder must agree with it.
Every object's box is kept. Coordinates are taken as written (the convention of the
WSOL codebases; ILSVRC's pixel indices are off from continuous edges by under a pixel).

Splits: train = train/; test = the annotated val images; val (threshold selection) =
`data.val_per_class` images per class carved from the annotated val images
(`heldout_from_val: true`, the default: thresholds need boxes and train has none), or
from train (`heldout_from_val: false`; that val split has no boxes). wsolevaluation's
exact protocol (ImageNetV2 as val) is the `wsol` reader with its ILSVRC metadata.

Image sizes come from the XMLs; train images are not opened unless
`check_images: true` (1.28M headers take a while; `ornet check-data` decodes them all).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..config.schema import DataConfig
from ..errors import DataError
from .folder import collect, list_dirs, list_images, reader_options, resolve
from .io import image_size, iter_fields
from .readers import READERS, carve_val, finish_index
from .records import DatasetIndex, Record, check_box
from .voc_xml import parse_voc

OPTIONS = {"val_annotations": None, "class_index": None, "heldout_from_val": True, "check_images": False}


def _class_index(path: Path) -> list[str]:
    wnids: list[str] = []
    seen: dict[str, int] = {}
    for lineno, fields in iter_fields(path, tuple(range(1, 100))):
        wnid = fields[0]
        if wnid in seen:
            raise DataError(f"wnid {wnid} listed twice (first on line {seen[wnid]})", file=str(path), line=lineno)
        seen[wnid] = lineno
        wnids.append(wnid)
    if not wnids:
        raise DataError("class index lists no classes", file=str(path))
    return wnids


def _find_xml(ann_root: Path, stem: str, folder: str | None) -> Path:
    flat = ann_root / f"{stem}.xml"
    if folder is not None and not flat.is_file():
        nested = ann_root / folder / f"{stem}.xml"
        if nested.is_file():
            return nested
    return flat


@READERS.register("ilsvrc")
def read_ilsvrc(cfg: DataConfig) -> DatasetIndex:
    root = Path(cfg.root)
    opts = reader_options(cfg, "ilsvrc", OPTIONS)
    problems: list[DataError] = []
    train_dir, val_dir = root / "train", root / "val"
    for d in (train_dir, val_dir):
        if not d.is_dir():
            raise DataError("missing folder (expected root/train/<wnid>/ and root/val/)", file=str(d))
    ann_root = resolve(root, opts["val_annotations"], "val_annotations")
    if not ann_root.is_dir():
        raise DataError("missing folder of validation XML files (set data.options.val_annotations)",
                        file=str(ann_root))

    train_folders = list_dirs(train_dir)
    index_file = resolve(root, opts["class_index"])
    wnids = _class_index(index_file) if index_file is not None else train_folders
    if not wnids:
        raise DataError("no class folders in train/", file=str(train_dir))
    label_of = {w: i for i, w in enumerate(wnids)}

    train: list[Record] = []
    for wnid in train_folders:
        if wnid not in label_of:
            problems.append(DataError(f"class folder {wnid} is not in the class index {index_file}",
                                      file=str(train_dir / wnid)))
            continue
        for name in list_images(train_dir / wnid):
            path = train_dir / wnid / name
            size = collect(problems, image_size, path) if opts["check_images"] else None
            if opts["check_images"] and size is None:
                continue
            train.append(Record(image_id=f"train/{wnid}/{name}", path=path, label=label_of[wnid], size=size))

    # Validation images: flat files and / or class folders.
    val_images: list[tuple[Path, str | None]] = [(val_dir / n, None) for n in list_images(val_dir)]
    for folder in list_dirs(val_dir):
        if folder not in label_of:
            problems.append(DataError(f"val folder {folder} is not a known wnid", file=str(val_dir / folder)))
            continue
        val_images += [(val_dir / folder / n, folder) for n in list_images(val_dir / folder)]

    annotated: list[Record] = []
    for path, folder in val_images:
        image_id = path.relative_to(root).as_posix()
        xml = _find_xml(ann_root, os.path.splitext(path.name)[0], folder)
        if not xml.is_file():
            problems.append(DataError(f"no annotation XML for val image {image_id}", file=str(xml)))
            continue
        ann = collect(problems, parse_voc, xml)
        if ann is None:
            continue
        unknown = [o for o in ann.objects if o.name not in label_of]
        if unknown:
            problems.append(DataError(f"unknown wnid {unknown[0].name!r} (not a class of this dataset)",
                                      file=str(xml), line=unknown[0].line))
            continue
        names = {o.name for o in ann.objects}
        expected = folder if folder is not None else ann.objects[0].name
        if names != {expected}:
            where = f"its folder {folder}" if folder is not None else "each other"
            problems.append(DataError(f"objects of {image_id} name {', '.join(sorted(names))}, "
                                      f"which disagree with {where}", file=str(xml)))
            continue
        size = ann.size
        if opts["check_images"] or size is None:
            header = collect(problems, image_size, path)
            if header is None:
                continue
            if size is not None and header != size:
                problems.append(DataError(f"XML says {size[0]}x{size[1]} but {image_id} is {header[0]}x{header[1]}",
                                          file=str(xml)))
                continue
            size = header
        boxes = [b for o in ann.objects
                 if (b := collect(problems, check_box, o.box, size, cfg.clip_boxes, xml, o.line, image_id)) is not None]
        if len(boxes) != len(ann.objects):
            continue
        annotated.append(Record(image_id=image_id, path=path, label=label_of[expected], boxes=tuple(boxes), size=size))

    if opts["heldout_from_val"]:
        test, val = carve_val(annotated, len(wnids), cfg.val_per_class, cfg.split_seed)
    else:
        test = annotated
        train, val = carve_val(train, len(wnids), cfg.val_per_class, cfg.split_seed)
    index = DatasetIndex(name="ilsvrc", root=root, classes=list(wnids),
                         splits={"train": train, "val": val, "test": test}, problems=problems, has_boxes=True)
    return finish_index(index)
