"""FGVC-Aircraft 2013b in its release layout (root = fgvc-aircraft-2013b/ or its data/).

    data/images/<id>.jpg
    data/images_box.txt                         <id> <xmin> <ymin> <xmax> <ymax>  (1-based, inclusive)
    data/images_<level>_{train,val,test}.txt    <id> <class name, may contain spaces>
    data/variants.txt, families.txt, manufacturers.txt   class names, one per line (line k = class k)

`data.options.level`: variant (100 classes, default), family (70) or manufacturer (30).
Boxes: the 1-based inclusive pixels xmin..xmax become continuous edges
x0 = xmin - 1, y0 = ymin - 1, x1 = xmax, y1 = ymax.

Every image carries a copyright banner along its bottom (20 pixels). With
`crop_banner: true` (default) Record.crop_bottom = banner_height (20): the loader cuts it,
Record.size is the size after the cut and each box is clipped to the new height (a box
that lies entirely inside the banner is a problem). Splits come from the files: train,
val (native; `data.val_per_class` is not used) and test.
"""

from __future__ import annotations

from pathlib import Path

from ..config.schema import DataConfig
from ..errors import ConfigError, DataError
from .folder import collect, reader_options
from .io import image_size, iter_fields, parse_float, require_file
from .readers import READERS, finish_index
from .records import Box, DatasetIndex, Record, check_box, check_image_id

LEVELS = {"variant": "variants.txt", "family": "families.txt", "manufacturer": "manufacturers.txt"}
OPTIONS = {"level": "variant", "crop_banner": True, "banner_height": 20}


def crop_banner_box(box: Box, height: int, file: Path, line: int, image_id: str) -> Box:
    """Clip a box (original pixels) to an image whose bottom is cut at `height`."""
    x0, y0, x1, y1 = box
    if y0 >= height:
        raise DataError(f"box {box} of {image_id} lies entirely inside the bottom banner (rows >= {height})",
                        file=str(file), line=line)
    return (x0, y0, x1, min(y1, float(height)))


@READERS.register("aircraft")
def read_aircraft(cfg: DataConfig) -> DatasetIndex:
    root = Path(cfg.root)
    opts = reader_options(cfg, "aircraft", OPTIONS, choices={"level": tuple(LEVELS)})
    banner = opts["banner_height"] if opts["crop_banner"] else 0
    if banner < 0:
        raise ConfigError(f"data.options.banner_height must be >= 0, got {banner}")
    data = root / "data" if (root / "data").is_dir() else root
    level = opts["level"]
    problems: list[DataError] = []

    f = require_file(data / LEVELS[level], "class list")
    classes = [line.strip() for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(set(classes)) != len(classes):
        raise DataError("class names are not unique", file=str(f))
    label_of = {c: i for i, c in enumerate(classes)}

    boxes: dict[str, tuple[Box, int]] = {}
    box_file = data / "images_box.txt"
    for lineno, (iid, *vals) in iter_fields(box_file, 5):
        try:
            xmin, ymin, xmax, ymax = (parse_float(v, box_file, lineno, "box value") for v in vals)
        except DataError as e:
            problems.append(e)
            continue
        if iid in boxes:
            problems.append(DataError(f"image {iid} has a second box", file=str(box_file), line=lineno))
            continue
        boxes[iid] = ((xmin - 1, ymin - 1, xmax, ymax), lineno)

    splits: dict[str, list[Record]] = {}
    for split in ("train", "val", "test"):
        f = require_file(data / f"images_{level}_{split}.txt", "split list")
        splits[split] = []
        for lineno, raw in enumerate(f.read_text(encoding="utf-8").splitlines(), start=1):
            if not raw.strip():
                continue
            iid, _, name = raw.strip().partition(" ")
            name = name.strip()
            if not name:
                problems.append(DataError(f"expected '<image id> <{level}>', got {raw.strip()[:80]!r}",
                                          file=str(f), line=lineno))
                continue
            if name not in label_of:
                problems.append(DataError(f"unknown {level} {name!r} (not in {LEVELS[level]})", file=str(f), line=lineno))
                continue
            image_id = f"{iid}.jpg"
            try:
                check_image_id(image_id, f, lineno)
            except DataError as e:
                problems.append(e)
                continue
            if iid not in boxes:
                problems.append(DataError(f"image {iid} has no box in images_box.txt", file=str(f), line=lineno))
                continue
            path = data / "images" / image_id
            size = collect(problems, image_size, path)
            if size is None:
                continue
            box, bline = boxes[iid]
            b = collect(problems, check_box, box, size, cfg.clip_boxes, box_file, bline, iid)
            if b is None:
                continue
            if banner:
                w, h = size
                if h <= banner:
                    problems.append(DataError(f"image height {h} is not larger than the {banner}-pixel banner",
                                              file=str(path)))
                    continue
                size = (w, h - banner)
                b = collect(problems, crop_banner_box, b, size[1], box_file, bline, iid)
                if b is None:
                    continue
            splits[split].append(Record(image_id=image_id, path=path, label=label_of[name], boxes=(b,),
                                        size=size, crop_bottom=banner))

    index = DatasetIndex(name="aircraft", root=root, classes=classes, splits=splits, problems=problems)
    return finish_index(index)
