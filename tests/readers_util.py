"""Builders of tiny dataset trees in each reader's real on-disk format (tests only).

Each `write_*` function writes a tree under `root` and returns what a test needs to check
it; `BUILDERS` maps every registered reader name to a function(tmp_path) -> DataConfig so
that tests can parametrize over the registry. Images are tiny JPEGs: a bright rectangle
(the object, inside the box) on dark noise.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ornet.config.schema import DataConfig

SIZE = (40, 30)  # width, height


def write_image(path: Path, size: tuple[int, int] = SIZE, box: tuple[int, int, int, int] | None = None,
                seed: int = 0, fmt: str = "JPEG") -> None:
    """A w x h image; `box` = x0, y0, x1, y1 (continuous edges) is painted bright."""
    from PIL import Image

    w, h = size
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 60, size=(h, w, 3), dtype=np.uint8)
    if box is not None:
        x0, y0, x1, y1 = box
        arr[y0:y1, x0:x1] = (200, 180, 60)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format=fmt, quality=90)


def voc_xml(size: tuple[int, int] | None, objects: list[tuple[str, tuple[float, ...]]], folder: str = "val",
            filename: str = "x") -> str:
    """A PASCAL-VOC annotation as the ILSVRC / Stanford Dogs releases write them."""
    parts = ["<annotation>", f"\t<folder>{folder}</folder>", f"\t<filename>{filename}</filename>",
             "\t<source>", "\t\t<database>ILSVRC_2012</database>", "\t</source>"]
    if size is not None:
        parts += ["\t<size>", f"\t\t<width>{size[0]}</width>", f"\t\t<height>{size[1]}</height>",
                  "\t\t<depth>3</depth>", "\t</size>"]
    parts.append("\t<segmented>0</segmented>")
    for name, (x0, y0, x1, y1) in objects:
        parts += ["\t<object>", f"\t\t<name>{name}</name>", "\t\t<pose>Unspecified</pose>",
                  "\t\t<truncated>0</truncated>", "\t\t<difficult>0</difficult>", "\t\t<bndbox>",
                  f"\t\t\t<xmin>{x0:g}</xmin>", f"\t\t\t<ymin>{y0:g}</ymin>",
                  f"\t\t\t<xmax>{x1:g}</xmax>", f"\t\t\t<ymax>{y1:g}</ymax>", "\t\t</bndbox>", "\t</object>"]
    parts.append("</annotation>")
    return "\n".join(parts) + "\n"


def _box(rng: np.random.Generator, size: tuple[int, int] = SIZE) -> tuple[int, int, int, int]:
    w, h = size
    bw, bh = int(rng.integers(w // 4, w // 2)), int(rng.integers(h // 4, h // 2))
    x0, y0 = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
    return x0, y0, x0 + bw, y0 + bh


# ---------------------------------------------------------------------------------------- ILSVRC
WNIDS = ("n01440764", "n01443537", "n01484850")


def write_ilsvrc_tree(root: Path, train_per_class: int = 3, val_per_class: int = 4, layout: str = "flat",
                      seed: int = 0) -> dict[str, list]:
    """train/<wnid>/*.JPEG, val/ (flat or per wnid), val_annotations/*.xml; every 3rd val image has 2 objects.

    Returns {image id: [boxes]} of the val images.
    """
    rng = np.random.default_rng(seed)
    for c, wnid in enumerate(WNIDS):
        for k in range(train_per_class):
            write_image(root / "train" / wnid / f"{wnid}_{k + 1}.JPEG", box=_box(rng), seed=c * 100 + k)
    boxes: dict[str, list] = {}
    n = 0
    for wnid in WNIDS:
        for _ in range(val_per_class):
            n += 1
            stem = f"ILSVRC2012_val_{n:08d}"
            rel = f"val/{stem}.JPEG" if layout == "flat" else f"val/{wnid}/{stem}.JPEG"
            objs = [_box(rng) for _ in range(2 if n % 3 == 0 else 1)]
            write_image(root / rel, box=objs[0], seed=1000 + n)
            xml = root / "val_annotations" / f"{stem}.xml"
            xml.parent.mkdir(parents=True, exist_ok=True)
            xml.write_text(voc_xml(SIZE, [(wnid, b) for b in objs], filename=stem))
            boxes[rel] = objs
    return boxes


# ------------------------------------------------------------------------------------------ wsol
def write_wsol_tree(root: Path, meta: Path, classes: int = 2, per_class: int = 3, masks: bool = False) -> None:
    """Images under root and wsolevaluation metadata (train / val / test) under meta.

    Box form (CUB / ILSVRC) by default; masks=True writes the OpenImages form for val/test.
    """
    from PIL import Image

    rng = np.random.default_rng(3)
    for split in ("train", "val", "test"):
        ids, labels, sizes, loc = [], [], [], []
        for c in range(classes):
            for k in range(per_class):
                iid = f"{split}/{c:03d}.class_{c}/img_{k}.jpg"
                b = _box(rng)
                write_image(root / iid, box=b, seed=len(ids) + 10 * c)
                ids.append(iid)
                labels.append(f"{iid},{c}")
                sizes.append(f"{iid},{SIZE[0]},{SIZE[1]}")
                if masks:
                    m = np.zeros(SIZE[::-1], dtype=np.uint8)
                    m[b[1]:b[3], b[0]:b[2]] = 255
                    mask_id = f"masks/{split}/img_{c}_{k}.png"
                    (root / mask_id).parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(m).save(root / mask_id)
                    ignore = ""
                    if k == 0:
                        ignore = f"masks/{split}/ignore_{c}_{k}.png"
                        Image.fromarray(np.zeros_like(m)).save(root / ignore)
                    loc.append(f"{iid},{mask_id},{ignore}")
                else:
                    loc.append(f"{iid},{b[0]},{b[1]},{b[2]},{b[3]}")
                    if k == 1:  # a second object
                        loc.append(f"{iid},0,0,{SIZE[0] // 4},{SIZE[1] // 4}")
        d = meta / split
        d.mkdir(parents=True, exist_ok=True)
        for name, lines in (("image_ids.txt", ids), ("class_labels.txt", labels), ("image_sizes.txt", sizes)):
            (d / name).write_text("\n".join(lines) + "\n")
        if split != "train":
            (d / "localization.txt").write_text("\n".join(loc) + "\n")


# ------------------------------------------------------------------------------------------ dogs
BREEDS = ("n02085620-Chihuahua", "n02085782-Japanese_spaniel", "n02085936-Maltese_dog")


def write_dogs_tree(root: Path, train_per_class: int = 3, test_per_class: int = 2) -> dict[str, list]:
    """Images/, Annotation/ (XML without extension), lists/{train,test}_list.mat; every 4th image has 2 dogs."""
    rng = np.random.default_rng(1)
    boxes: dict[str, list] = {}
    lists: dict[str, list[tuple[str, str, int]]] = {"train": [], "test": []}
    n = 0
    for c, folder in enumerate(BREEDS):
        wnid, breed = folder.split("-", 1)
        for k in range(train_per_class + test_per_class):
            n += 1
            stem = f"{wnid}_{1000 + k}"
            rel = f"{folder}/{stem}.jpg"
            objs = [_box(rng) for _ in range(2 if n % 4 == 0 else 1)]
            write_image(root / "Images" / rel, box=objs[0], seed=n)
            ann = root / "Annotation" / folder / stem
            ann.parent.mkdir(parents=True, exist_ok=True)
            ann.write_text(voc_xml(SIZE, [(breed, b) for b in objs], folder=wnid[1:], filename=stem))
            boxes[rel] = objs
            lists["train" if k < train_per_class else "test"].append((rel, f"{folder}/{stem}", c + 1))
    (root / "lists").mkdir(exist_ok=True)
    for split, rows in lists.items():
        write_dogs_list(root / "lists" / f"{split}_list.mat", rows)
    return boxes


def write_dogs_list(path: Path, rows: list[tuple[str, str, int]]) -> None:
    """A split list as the release stores it: cell arrays of paths, labels as an N x 1 double."""
    import scipy.io

    files = np.empty((len(rows), 1), dtype=object)
    anns = np.empty((len(rows), 1), dtype=object)
    for i, (f, a, _) in enumerate(rows):
        files[i, 0], anns[i, 0] = f, a
    labels = np.array([[float(y)] for _, _, y in rows])
    scipy.io.savemat(str(path), {"file_list": files, "annotation_list": anns, "labels": labels})


# -------------------------------------------------------------------------------------- aircraft
AIRCRAFT = (  # variant, family, manufacturer
    ("707-320", "Boeing 707", "Boeing"),
    ("A300B4", "A300", "Airbus"),
    ("Cessna 172", "Cessna 172", "Cessna"),
)
AIRCRAFT_SIZE = (40, 50)  # 40 x 30 after the 20-pixel banner


def write_aircraft_tree(root: Path, per_split: int = 2) -> dict[str, tuple[int, int, int, int]]:
    """fgvc-aircraft-2013b/data/...; returns {id: (xmin, ymin, xmax, ymax)} as written (1-based)."""
    rng = np.random.default_rng(2)
    data = root / "data"
    (data / "images").mkdir(parents=True, exist_ok=True)
    boxes: dict[str, tuple[int, int, int, int]] = {}
    levels = {"variant": [], "family": [], "manufacturer": []}
    split_lines: dict[tuple[str, str], list[str]] = {}
    n = 0
    for variant, family, maker in AIRCRAFT:
        for split in ("train", "val", "test"):
            for _ in range(per_split):
                n += 1
                iid = f"{1000000 + n:07d}"
                x0, y0, x1, y1 = _box(rng, (40, 30))
                write_image(data / "images" / f"{iid}.jpg", AIRCRAFT_SIZE, box=(x0, y0, x1, y1), seed=n)
                boxes[iid] = (x0 + 1, y0 + 1, x1, y1)  # 1-based inclusive
                for level, name in (("variant", variant), ("family", family), ("manufacturer", maker)):
                    split_lines.setdefault((level, split), []).append(f"{iid} {name}")
    for variant, family, maker in AIRCRAFT:
        for level, name in (("variant", variant), ("family", family), ("manufacturer", maker)):
            if name not in levels[level]:
                levels[level].append(name)
    for (level, split), lines in split_lines.items():
        (data / f"images_{level}_{split}.txt").write_text("\n".join(lines) + "\n")
    for level, file in (("variant", "variants.txt"), ("family", "families.txt"), ("manufacturer", "manufacturers.txt")):
        (data / file).write_text("\n".join(levels[level]) + "\n")
    (data / "images_box.txt").write_text("".join(f"{i} {' '.join(map(str, b))}\n" for i, b in boxes.items()))
    return boxes


# ------------------------------------------------------------------------------------------ reid
def reid_name(style: str, pid: int, cam: int, k: int) -> str:
    ident = "-1" if pid == -1 else f"{pid:04d}"
    if style == "market1501":
        return f"{ident}_c{cam}s1_{k * 25 + 1:06d}_0{k % 3 + 1}.jpg"
    return f"{ident}_c{cam}_f{k * 1000 + 46182:07d}.jpg"


def write_reid_tree(root: Path, style: str = "market1501", train_ids: tuple[int, ...] = (2, 7, 15),
                    per_id: int = 4) -> None:
    """Market-1501 / DukeMTMC-reID folders; junk (-1) and distractors (0000) in every folder."""
    size = (16, 32)
    n = 0
    for folder, ids in (("bounding_box_train", train_ids + (0, -1)), ("bounding_box_test", (3, 9, 0, -1)),
                        ("query", (3, 9))):
        for pid in ids:
            for k in range(per_id if pid > 0 else 1):
                n += 1
                write_image(root / folder / reid_name(style, pid, k % 6 + 1, k), size, box=(4, 4, 12, 28), seed=n)
    (root / "bounding_box_train" / "Thumbs.db").write_bytes(b"\0")


def write_msmt_tree(root: Path, train_ids: tuple[int, ...] = (0, 1, 2), per_id: int = 4) -> None:
    """MSMT17_V1: train/<id>/..., test/<id>/..., list_{train,val,query,gallery}.txt."""
    size = (16, 32)
    lines: dict[str, list[str]] = {"train": [], "val": [], "query": [], "gallery": []}
    n = 0
    for pid in train_ids:
        for k in range(per_id + 1):
            n += 1
            rel = f"{pid:04d}/{pid:04d}_{k:03d}_01_0303morning_{n:04d}_0.jpg"
            write_image(root / "train" / rel, size, box=(4, 4, 12, 28), seed=n)
            lines["val" if k == per_id else "train"].append(f"{rel} {pid}")
    for pid in (0, 1):
        for k in range(3):
            n += 1
            rel = f"{pid:04d}/{pid:04d}_{k:03d}_05_0113noon_{n:04d}_1.jpg"
            write_image(root / "test" / rel, size, box=(4, 4, 12, 28), seed=n)
            lines["query" if k == 0 else "gallery"].append(f"{rel} {pid}")
    for name, ls in lines.items():
        (root / f"list_{name}.txt").write_text("\n".join(ls) + "\n")


# ---------------------------------------------------------------------------------------- folder
def write_folder_tree(root: Path, classes: tuple[str, ...] = ("cat", "dog"), per_class: int = 5,
                      split_layout: bool = False, boxes: bool = True) -> Path | None:
    """root/<class>/*.jpg (or root/train|test/<class>/), plus boxes.csv when asked; returns the CSV path."""
    rng = np.random.default_rng(4)
    rows = ["image,x0,y0,x1,y1"]
    exts = (".jpg", ".png", ".JPEG")
    for c, cls in enumerate(classes):
        for k in range(per_class):
            base = root / (("test" if k % 3 == 0 else "train") if split_layout else "") / cls
            ext = exts[k % len(exts)]
            path = base / f"img_{k}{ext}"
            b = _box(rng)
            write_image(path, box=b, seed=10 * c + k, fmt="PNG" if ext == ".png" else "JPEG")
            rel = path.relative_to(root).as_posix()
            rows.append(f"{rel},{b[0]},{b[1]},{b[2]},{b[3]}")
            if k == 1:
                rows.append(f"{rel},0,0,5,5")
    if not boxes:
        return None
    csv = root / "boxes.csv"
    csv.write_text("\n".join(rows) + "\n")
    return csv


# ------------------------------------------------------------------------------- one per reader
def _cub(tmp: Path) -> DataConfig:
    from conftest import write_cub_tree

    return DataConfig(name="cub", root=str(write_cub_tree(tmp / "cub", size=SIZE)), val_per_class=1)


def _ilsvrc(tmp: Path) -> DataConfig:
    write_ilsvrc_tree(tmp / "ilsvrc")
    return DataConfig(name="ilsvrc", root=str(tmp / "ilsvrc"), val_per_class=1)


def _wsol(tmp: Path) -> DataConfig:
    write_wsol_tree(tmp / "images", tmp / "meta")
    return DataConfig(name="wsol", root=str(tmp / "images"), metadata=str(tmp / "meta"))


def _dogs(tmp: Path) -> DataConfig:
    write_dogs_tree(tmp / "dogs")
    return DataConfig(name="dogs", root=str(tmp / "dogs"), val_per_class=1)


def _aircraft(tmp: Path) -> DataConfig:
    write_aircraft_tree(tmp / "aircraft")
    return DataConfig(name="aircraft", root=str(tmp / "aircraft"))


def _reid(name: str) -> Callable[[Path], DataConfig]:
    def build(tmp: Path) -> DataConfig:
        if name == "msmt17":
            write_msmt_tree(tmp / name)
        else:
            write_reid_tree(tmp / name, style=name)
        return DataConfig(name=name, root=str(tmp / name), val_per_class=1, options={"test_per_id": 1})

    return build


def _folder(tmp: Path) -> DataConfig:
    csv = write_folder_tree(tmp / "folder")
    return DataConfig(name="folder", root=str(tmp / "folder"), val_per_class=1, options={"boxes": str(csv)})


BUILDERS: dict[str, Callable[[Path], DataConfig]] = {
    "cub": _cub, "ilsvrc": _ilsvrc, "wsol": _wsol, "dogs": _dogs, "aircraft": _aircraft,
    "market1501": _reid("market1501"), "dukemtmc": _reid("dukemtmc"), "msmt17": _reid("msmt17"),
    "folder": _folder,
}
