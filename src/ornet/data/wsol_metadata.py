"""wsolevaluation metadata (clovaai/wsolevaluation, "Evaluating WSOL Methods Right").

    data.metadata/<split>/image_ids.txt      <image id>                 (path relative to data.root)
    data.metadata/<split>/class_labels.txt   <image id>,<label, 0-based>
    data.metadata/<split>/image_sizes.txt    <image id>,<width>,<height>   (optional)
    data.metadata/<split>/localization.txt   <image id>,x0,y0,x1,y1   one line per box (CUB, ILSVRC)
                                             <image id>,<mask>,<ignore>   (OpenImages: paths relative
                                             to data.options.mask_root, default data.root; ignore may be empty)

with <split> among train, val (wsolevaluation's full-supervision split, where thresholds
are chosen) and test; the splits present are read, and the train split's boxes are not
needed (weak supervision). localization.txt is required for val and test.

Sizes come from image_sizes.txt; images are opened only with `check_images: true` (or
when a split has no image_sizes.txt): then a missing image or a size different from the
metadata is a problem. Class names are the images' parent folder when every image of a
label shares one (CUB: 001.Black_footed_Albatross), else the label number.

OpenImages lists several mask lines for an image with several instances; a Record holds
one mask, so such an image is reported as a problem for now.
"""

from __future__ import annotations

from pathlib import Path

from ..config.schema import DataConfig
from ..errors import DataError, OrnetError
from .folder import collect, reader_options, resolve
from .io import image_size, iter_fields, parse_float, parse_int
from .readers import READERS, finish_index
from .records import Box, DatasetIndex, Record, check_box, check_image_id

OPTIONS = {"mask_root": None, "check_images": False}
SPLITS = ("train", "val", "test")


def _valid_id(problems: list[DataError], image_id: str, file: Path, line: int) -> bool:
    try:
        check_image_id(image_id, file, line)
    except DataError as e:
        problems.append(e)
        return False
    return True


def _read_split(folder: Path, root: Path, mask_root: Path, cfg: DataConfig, check_images: bool,
                problems: list[DataError]) -> tuple[list[Record], bool]:
    """Records of one metadata split, and whether it has masks."""
    f = folder / "image_ids.txt"
    ids: dict[str, int] = {}
    for lineno, (iid,) in iter_fields(f, 1, sep=","):
        if iid in ids:
            problems.append(DataError(f"image id {iid} listed twice", file=str(f), line=lineno))
            continue
        if _valid_id(problems, iid, f, lineno):
            ids[iid] = lineno

    labels: dict[str, int] = {}
    f = folder / "class_labels.txt"
    for lineno, (iid, lab) in iter_fields(f, 2, sep=","):
        label = collect(problems, parse_int, lab, f, lineno, "class label")
        if label is None:
            continue
        if label < 0:
            problems.append(DataError(f"label {label} of {iid} is negative", file=str(f), line=lineno))
            continue
        labels[iid] = label

    sizes: dict[str, tuple[int, int]] | None = None
    f = folder / "image_sizes.txt"
    if f.is_file():
        sizes = {}
        for lineno, (iid, w, h) in iter_fields(f, 3, sep=","):
            wh = (collect(problems, parse_int, w, f, lineno, "width"), collect(problems, parse_int, h, f, lineno, "height"))
            if None in wh:
                continue
            if wh[0] <= 0 or wh[1] <= 0:
                problems.append(DataError(f"size {w}x{h} of {iid} is not positive", file=str(f), line=lineno))
                continue
            sizes[iid] = wh

    loc = folder / "localization.txt"
    need_loc = folder.name != "train"
    boxes: dict[str, list[tuple[Box, int]]] = {}
    masks: dict[str, list[tuple[str, str, int]]] = {}
    if loc.is_file():
        for lineno, fields in iter_fields(loc, (3, 5), sep=","):
            iid = fields[0]
            if len(fields) == 5:
                box = [collect(problems, parse_float, v, loc, lineno, "box value") for v in fields[1:]]
                if None not in box:
                    boxes.setdefault(iid, []).append((tuple(box), lineno))
            else:
                mask, ignore = fields[1], fields[2]
                if all(_valid_id(problems, p, loc, lineno) for p in (mask, ignore) if p):
                    masks.setdefault(iid, []).append((mask, ignore, lineno))
        if boxes and masks:
            raise DataError("mixes box lines (id,x0,y0,x1,y1) and mask lines (id,mask,ignore)", file=str(loc))
    elif need_loc:
        raise DataError("missing localization file (needed for the val and test splits)", file=str(loc))

    records: list[Record] = []
    ids_file = folder / "image_ids.txt"
    for iid in ids:
        if iid not in labels:
            problems.append(DataError(f"image {iid} has no class label", file=str(folder / "class_labels.txt")))
            continue
        path = root / iid
        size = sizes.get(iid) if sizes is not None else None
        if sizes is not None and size is None:
            problems.append(DataError(f"image {iid} has no size", file=str(folder / "image_sizes.txt")))
            continue
        if check_images or sizes is None:
            header = collect(problems, image_size, path)
            if header is None:
                continue
            if size is not None and header != size:
                problems.append(DataError(f"image_sizes.txt says {size[0]}x{size[1]} but {iid} is "
                                          f"{header[0]}x{header[1]}", file=str(folder / "image_sizes.txt")))
                continue
            size = header
        mask_path = ignore_path = None
        checked: list[Box] = []
        if masks:
            entries = masks.get(iid)
            if not entries:
                problems.append(DataError(f"image {iid} has no mask line", file=str(loc)))
                continue
            if len(entries) > 1:
                problems.append(DataError(f"image {iid} has {len(entries)} instance masks; only one mask per "
                                          "image is supported", file=str(loc), line=entries[1][2]))
                continue
            mask, ignore, _ = entries[0]
            mask_path = mask_root / mask
            ignore_path = mask_root / ignore if ignore else None
        elif boxes or need_loc:
            rows = boxes.get(iid, [])
            if not rows and need_loc:
                problems.append(DataError(f"image {iid} has no box", file=str(loc)))
                continue
            checked = [b for box, bl in rows
                       if (b := collect(problems, check_box, box, size, cfg.clip_boxes, loc, bl, iid)) is not None]
            if len(checked) != len(rows):
                continue
        records.append(Record(image_id=iid, path=path, label=labels[iid], boxes=tuple(checked), size=size,
                              mask_path=mask_path, ignore_path=ignore_path))
    for name, table in (("class_labels.txt", labels), ("localization.txt", boxes or masks)):
        extra = sorted(set(table) - set(ids))
        if extra:
            problems.append(DataError(f"{len(extra)} image(s) not in image_ids.txt, e.g. {extra[0]}",
                                      file=str(folder / name)))
    if not ids:
        problems.append(DataError("no image ids", file=str(ids_file)))
    return records, bool(masks)


def _class_names(splits: dict[str, list[Record]], num_classes: int) -> list[str]:
    parents: dict[int, set[str]] = {}
    for records in splits.values():
        for r in records:
            parents.setdefault(r.label, set()).add(Path(r.image_id).parent.name)
    names = [next(iter(parents[k])) if len(parents.get(k, ())) == 1 else "" for k in range(num_classes)]
    if all(names) and len(set(names)) == num_classes:
        return names
    width = len(str(num_classes - 1))
    return [f"{k:0{width}d}" for k in range(num_classes)]


@READERS.register("wsol")
def read_wsol(cfg: DataConfig) -> DatasetIndex:
    root = Path(cfg.root)
    opts = reader_options(cfg, "wsol", OPTIONS)
    if cfg.metadata is None:
        raise OrnetError("the wsol reader needs the metadata folder: set --data.metadata DIR "
                         "(holding train/, val/, test/ of wsolevaluation's metadata)")
    meta = Path(cfg.metadata)
    present = [s for s in SPLITS if (meta / s).is_dir()]
    if not present:
        raise DataError("no split folder (train/, val/ or test/) in the metadata folder", file=str(meta))
    mask_root = resolve(root, opts["mask_root"], ".")
    problems: list[DataError] = []
    splits: dict[str, list[Record]] = {}
    has_masks = False
    for split in present:
        splits[split], masked = _read_split(meta / split, root, mask_root, cfg, opts["check_images"], problems)
        has_masks |= masked
    num_classes = max((r.label for rs in splits.values() for r in rs), default=-1) + 1
    index = DatasetIndex(name="wsol", root=root, classes=_class_names(splits, num_classes), splits=splits,
                         problems=problems, has_boxes=not has_masks, has_masks=has_masks)
    return finish_index(index)
