"""Person re-identification sets: identity labels, no boxes (maps only, METHOD.md).

    market1501 / dukemtmc:  root/bounding_box_train/, root/bounding_box_test/, root/query/
        file names carry identity and camera: 0002_c1s1_000451_03.jpg (Market-1501),
        0001_c2_f0046182.jpg (DukeMTMC-reID); identity -1 is junk, 0000 a distractor.
    msmt17:  root/train/, root/test/ (or mask_train_v2/, mask_test_v2/) and
        root/list_{train,val,query,gallery}.txt, lines `<path relative to train/ or test/> <identity>`.

Training identities (Market/Duke: bounding_box_train without junk and distractors;
MSMT17: list_train.txt) are relabelled 0..K-1 in sorted order of their original ids; the
class names are the original ids. Re-id test identities differ from training ones, so
classification is only meaningful on training identities. Splits:
- test: `test_per_id` images per identity carved from the training images (seed
  data.split_seed + 1);
- val: `data.val_per_class` per identity carved from what is left (MSMT17: list_val.txt,
  its own held-out images of training identities);
- train: the rest;
- query / gallery (`query_gallery: true`): the re-id evaluation images, label -1 (their
  identity is no class here; junk removed, distractors kept in the gallery): for maps
  only, never for accuracy.
The index has has_boxes = False: box metrics are skipped downstream.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..config.schema import DataConfig
from ..errors import ConfigError, DataError
from .folder import collect, list_images, reader_options
from .io import image_size, iter_fields, parse_int
from .readers import READERS, carve_val, finish_index
from .records import DatasetIndex, Record, check_image_id

OPTIONS = {"test_per_id": 5, "query_gallery": True, "check_images": False}
NAME = re.compile(r"^(-?\d+)_c(\d+)")
JUNK, DISTRACTOR = -1, 0


def _folder_ids(root: Path, folder: str, problems: list[DataError]) -> list[tuple[str, int]]:
    """(image id, original identity) of a Market/Duke folder; bad file names are problems."""
    d = root / folder
    if not d.is_dir():
        raise DataError(f"missing folder {folder}/", file=str(d))
    out = []
    for name in list_images(d):
        m = NAME.match(name)
        if m is None:
            problems.append(DataError("file name does not start with <identity>_c<camera>", file=str(d / name)))
            continue
        out.append((f"{folder}/{name}", int(m.group(1))))
    return out


def _list_ids(root: Path, base: str, list_name: str, problems: list[DataError]) -> list[tuple[str, int]]:
    """(image id, identity) from an MSMT17 list file; paths are relative to `base`."""
    f = root / list_name
    out = []
    for lineno, (rel, ident) in iter_fields(f, 2):
        try:
            check_image_id(rel, f, lineno)
            pid = parse_int(ident, f, lineno, "identity")
        except DataError as e:
            problems.append(e)
            continue
        image_id = f"{base}/{rel}"
        if not (root / image_id).is_file():
            problems.append(DataError(f"image {image_id} is missing", file=str(f), line=lineno))
            continue
        out.append((image_id, pid))
    return out


def _records(root: Path, items: list[tuple[str, int]], label_of: dict[int, int] | None, check: bool,
             problems: list[DataError]) -> list[Record]:
    out = []
    for image_id, pid in items:
        path = root / image_id
        size = None
        if check and (size := collect(problems, image_size, path)) is None:
            continue
        out.append(Record(image_id=image_id, path=path, label=-1 if label_of is None else label_of[pid], size=size))
    return out


def _read_reid(cfg: DataConfig, name: str) -> DatasetIndex:
    root = Path(cfg.root)
    opts = reader_options(cfg, name, OPTIONS)
    if opts["test_per_id"] < 0:
        raise ConfigError(f"data.options.test_per_id must be >= 0, got {opts['test_per_id']}")
    problems: list[DataError] = []
    native_val: list[tuple[str, int]] = []
    if name == "msmt17":
        train_dir = "train" if (root / "train").is_dir() else "mask_train_v2"
        test_dir = "test" if (root / "test").is_dir() else "mask_test_v2"
        for d in (train_dir, test_dir):
            if not (root / d).is_dir():
                raise DataError(f"missing folder {d}/ (MSMT17_V1: train/, test/; V2: mask_train_v2/, mask_test_v2/)",
                                file=str(root / d))
        train_items = _list_ids(root, train_dir, "list_train.txt", problems)
        native_val = _list_ids(root, train_dir, "list_val.txt", problems)
        query = _list_ids(root, test_dir, "list_query.txt", problems) if opts["query_gallery"] else []
        gallery = _list_ids(root, test_dir, "list_gallery.txt", problems) if opts["query_gallery"] else []
    else:
        train_items = [(i, p) for i, p in _folder_ids(root, "bounding_box_train", problems)
                       if p not in (JUNK, DISTRACTOR)]
        query = gallery = []
        if opts["query_gallery"]:
            query = [(i, p) for i, p in _folder_ids(root, "query", problems) if p != JUNK]
            gallery = [(i, p) for i, p in _folder_ids(root, "bounding_box_test", problems) if p != JUNK]

    pids = sorted({p for _, p in train_items})
    label_of = {p: k for k, p in enumerate(pids)}
    for image_id, pid in native_val:
        if pid not in label_of:
            problems.append(DataError(f"identity {pid} of {image_id} is not a training identity",
                                      file=str(root / "list_val.txt")))
    check = opts["check_images"]
    pool = _records(root, train_items, label_of, check, problems)
    train, test = carve_val(pool, len(pids), opts["test_per_id"], cfg.split_seed + 1)
    if name == "msmt17":
        val = _records(root, [(i, p) for i, p in native_val if p in label_of], label_of, check, problems)
    else:
        train, val = carve_val(train, len(pids), cfg.val_per_class, cfg.split_seed)
    classes = [f"{p:04d}" for p in pids]
    index = finish_index(DatasetIndex(name=name, root=root, classes=classes,
                                      splits={"train": train, "val": val, "test": test},
                                      problems=problems, has_boxes=False))
    if opts["query_gallery"]:  # label -1: added after finish_index's label-range check on purpose
        index.splits["query"] = _records(root, query, None, check, problems)
        index.splits["gallery"] = _records(root, gallery, None, check, problems)
    return index


@READERS.register("market1501")
def read_market1501(cfg: DataConfig) -> DatasetIndex:
    return _read_reid(cfg, "market1501")


@READERS.register("dukemtmc")
def read_dukemtmc(cfg: DataConfig) -> DatasetIndex:
    return _read_reid(cfg, "dukemtmc")


@READERS.register("msmt17")
def read_msmt17(cfg: DataConfig) -> DatasetIndex:
    return _read_reid(cfg, "msmt17")
