"""Stanford Dogs (120 breeds, ImageNet images) in its release layout.

    root/Images/<wnid>-<breed>/<wnid>_<n>.jpg
    root/Annotation/<wnid>-<breed>/<wnid>_<n>       PASCAL-VOC XML without extension,
                                                    one <object> per dog (several are kept)
    root/lists/train_list.mat, test_list.mat         (or directly in root/; lists.tar)
        file_list        image paths relative to Images/
        annotation_list  annotation paths relative to Annotation/
        labels           class numbers, 1-based

Class k is the folder name of label k + 1 (e.g. n02085620-Chihuahua). Box coordinates
are taken as written; boxes are checked against the image's header size (the XML's own
<size> is not trusted over the image). Splits: train and test from the lists, val
carved from train (`data.val_per_class`). Reading .mat files needs scipy
(`pip install ornet[datasets]`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config.schema import DataConfig
from ..errors import DataError, OrnetError
from .folder import collect, reader_options
from .io import image_size
from .readers import READERS, carve_val, finish_index
from .records import DatasetIndex, Record, check_box, check_image_id
from .voc_xml import parse_voc


def _loadmat(path: Path) -> dict:
    try:
        import scipy.io
    except ImportError:
        raise OrnetError("reading Stanford Dogs' .mat lists needs scipy: pip install ornet[datasets]") from None
    if not path.is_file():
        raise DataError("missing split list", file=str(path))
    try:
        return scipy.io.loadmat(str(path))
    except (scipy.io.matlab.MatReadError, ValueError, TypeError, OSError, NotImplementedError) as e:
        raise DataError(f"unreadable .mat file ({e})", file=str(path)) from None


def _strings(mat: dict, key: str, path: Path) -> list[str]:
    if key not in mat:
        raise DataError(f"no variable {key!r} in the .mat file", file=str(path))
    out = []
    for i, cell in enumerate(np.asarray(mat[key], dtype=object).ravel()):
        value = cell
        while isinstance(value, np.ndarray) and value.size == 1:  # cell -> char array -> str
            value = value.ravel()[0]
        if not isinstance(value, str) or not value:
            raise DataError(f"entry {i + 1} of {key!r} is not a path: {cell!r}", file=str(path))
        out.append(value)
    return out


def _read_list(path: Path) -> list[tuple[str, str, int, int]]:
    """(image path, annotation path, label 1-based, entry number) per entry of a split list."""
    mat = _loadmat(path)
    files = _strings(mat, "file_list", path)
    anns = _strings(mat, "annotation_list", path)
    if "labels" not in mat:
        raise DataError("no variable 'labels' in the .mat file", file=str(path))
    labels = np.asarray(mat["labels"]).ravel()
    if not (len(files) == len(anns) == len(labels)):
        raise DataError(f"file_list, annotation_list and labels have {len(files)}, {len(anns)} and "
                        f"{len(labels)} entries", file=str(path))
    if labels.size and (not np.issubdtype(labels.dtype, np.number) or np.any(labels != np.round(labels))
                        or labels.min() < 1):
        raise DataError("labels must be integers from 1", file=str(path))
    return [(f, a, int(y), i + 1) for i, (f, a, y) in enumerate(zip(files, anns, labels))]


@READERS.register("dogs")
def read_dogs(cfg: DataConfig) -> DatasetIndex:
    root = Path(cfg.root)
    reader_options(cfg, "dogs", {})
    lists = root / "lists" if (root / "lists").is_dir() else root
    problems: list[DataError] = []
    entries = {split: _read_list(lists / f"{split}_list.mat") for split in ("train", "test")}

    folders: dict[int, str] = {}
    for split, rows in entries.items():
        for file, _, label, i in rows:
            folder = Path(file).parts[0] if len(Path(file).parts) > 1 else ""
            if folders.setdefault(label, folder) != folder:
                problems.append(DataError(f"label {label} names folders {folders[label]!r} and {folder!r} "
                                          f"(entry {i})", file=str(lists / f"{split}_list.mat")))
    num = max(folders, default=0)
    classes = [folders.get(k, "") for k in range(1, num + 1)]
    missing = [k for k in range(1, num + 1) if k not in folders]
    if missing:
        problems.append(DataError(f"labels {missing[:5]} have no image in either list", file=str(lists)))

    splits: dict[str, list[Record]] = {}
    for split, rows in entries.items():
        mat = lists / f"{split}_list.mat"
        splits[split] = []
        for file, ann_rel, label, i in rows:
            try:
                check_image_id(file, mat, None)
                check_image_id(ann_rel, mat, None)
            except DataError as e:
                problems.append(DataError(f"{e.what} (entry {i})", file=str(mat)))
                continue
            path = root / "Images" / file
            ann_path = root / "Annotation" / ann_rel
            if not ann_path.is_file():
                problems.append(DataError(f"no annotation for image {file} (entry {i} of {mat.name})",
                                          file=str(ann_path)))
                continue
            ann = collect(problems, parse_voc, ann_path)
            size = collect(problems, image_size, path)
            if ann is None or size is None:
                continue
            boxes = [b for o in ann.objects
                     if (b := collect(problems, check_box, o.box, size, cfg.clip_boxes, ann_path, o.line, file))
                     is not None]
            if len(boxes) != len(ann.objects):
                continue
            splits[split].append(Record(image_id=file, path=path, label=label - 1, boxes=tuple(boxes), size=size))

    train, val = carve_val(splits["train"], len(classes), cfg.val_per_class, cfg.split_seed)
    index = DatasetIndex(name="dogs", root=root, classes=classes,
                         splits={"train": train, "val": val, "test": splits["test"]}, problems=problems)
    return finish_index(index)
