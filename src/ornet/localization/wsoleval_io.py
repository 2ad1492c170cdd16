"""wsolevaluation's files, read with the checks its scorer relies on: the metadata folder,
score maps and ground-truth masks (the formats: `ornet.localization.wsoleval`'s docstring).

No torch anywhere on this path.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import cv2
import numpy as np

from ..data.io import iter_fields, parse_int
from ..data.records import check_image_id
from ..errors import DataError
from .boxes import scale_boxes

RESIZE_LENGTH = 224


@dataclass
class Metadata:
    """One wsolevaluation metadata folder. Boxes are in original pixels; sizes are (width, height)."""

    root: Path
    image_ids: list[str]
    image_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    boxes: dict[str, list[tuple[int, int, int, int]]] = field(default_factory=dict)
    mask_paths: dict[str, list[str]] = field(default_factory=dict)
    ignore_paths: dict[str, str | None] = field(default_factory=dict)

    @property
    def has_masks(self) -> bool:
        return bool(self.mask_paths)

    def resized_boxes(self, size: int = RESIZE_LENGTH) -> dict[str, np.ndarray]:
        """Ground-truth boxes scaled to ``size`` x ``size`` (int64, N x 4) per image id."""
        return {i: scale_boxes(self.boxes[i], self.image_sizes[i], (size, size), "wsolevaluation")
                for i in self.image_ids}


def _mask_path(value: str, file: Path, line: int, what: str) -> str:
    """A mask path that stays inside the mask root: relative, no '..'."""
    p = PurePosixPath(value.replace("\\", "/"))
    if not value or p.is_absolute() or ".." in p.parts:
        raise DataError(f"{what} {value!r} must be a relative path without '..'", file=str(file), line=line)
    return value


def read_metadata(root: str | Path, masks: bool = False) -> Metadata:
    """Read and check a metadata folder; DataError names the file and line of the first problem.

    masks=False expects box lines (and image_sizes.txt), masks=True mask lines. Every listed
    image needs at least one box (mask); a box must lie inside its image
    (``0 <= x0 <= x1 <= width - 1``, same for y); ids outside image_ids.txt are errors.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError("metadata folder not found", file=str(root))
    ids_file = root / "image_ids.txt"
    image_ids: list[str] = []
    where: dict[str, int] = {}
    for line, (image_id,) in iter_fields(ids_file, 1, sep=","):
        check_image_id(image_id, ids_file, line)  # ids are joined to the score-map folder
        if image_id in where:
            raise DataError(f"image id {image_id!r} repeats line {where[image_id]}", file=str(ids_file), line=line)
        where[image_id] = line
        image_ids.append(image_id)
    if not image_ids:
        raise DataError("no image id listed", file=str(ids_file))
    meta = Metadata(root=root, image_ids=image_ids)
    loc_file = root / "localization.txt"

    def known(image_id: str, file: Path, line: int) -> str:
        if image_id not in where:
            raise DataError(f"unknown image id {image_id!r} (not in image_ids.txt)", file=str(file), line=line)
        return image_id

    if masks:
        for line, (image_id, mask, ignore) in iter_fields(loc_file, 3, sep=","):
            known(image_id, loc_file, line)
            mask = _mask_path(mask, loc_file, line, "mask path")
            ignore = _mask_path(ignore, loc_file, line, "ignore path") if ignore else None
            if image_id in meta.mask_paths:
                if ignore is not None:
                    raise DataError(f"image {image_id!r} has a second ignore mask; only its first line may name one",
                                    file=str(loc_file), line=line)
                meta.mask_paths[image_id].append(mask)
            else:
                meta.mask_paths[image_id] = [mask]
                meta.ignore_paths[image_id] = ignore
        missing = [i for i in image_ids if i not in meta.mask_paths]
        what = "mask"
    else:
        sizes_file = root / "image_sizes.txt"
        for line, (image_id, w, h) in iter_fields(sizes_file, 3, sep=","):
            known(image_id, sizes_file, line)
            size = (parse_int(w, sizes_file, line, "width"), parse_int(h, sizes_file, line, "height"))
            if min(size) <= 0:
                raise DataError(f"image size must be positive, got {size[0]}x{size[1]}", file=str(sizes_file), line=line)
            meta.image_sizes[image_id] = size
        unsized = [i for i in image_ids if i not in meta.image_sizes]
        if unsized:
            raise DataError(f"{len(unsized)} image(s) have no size, first {unsized[0]!r}", file=str(sizes_file))
        for line, fields in iter_fields(loc_file, (5, 3), sep=","):
            if len(fields) == 3:
                raise DataError("a mask line (id,mask,ignore) but no --mask-root given; box lines are id,x0,y0,x1,y1",
                                file=str(loc_file), line=line)
            image_id = known(fields[0], loc_file, line)
            x0, y0, x1, y1 = (parse_int(v, loc_file, line, n) for v, n in zip(fields[1:], ("x0", "y0", "x1", "y1")))
            w, h = meta.image_sizes[image_id]
            if not (0 <= x0 <= x1 <= w - 1 and 0 <= y0 <= y1 <= h - 1):
                raise DataError(f"box ({x0}, {y0}, {x1}, {y1}) of {image_id!r} is inverted or outside its "
                                f"{w}x{h} image (need 0 <= x0 <= x1 <= {w - 1}, 0 <= y0 <= y1 <= {h - 1})",
                                file=str(loc_file), line=line)
            meta.boxes.setdefault(image_id, []).append((x0, y0, x1, y1))
        missing = [i for i in image_ids if i not in meta.boxes]
        what = "box"
    if missing:
        raise DataError(f"{len(missing)} image(s) have no {what}, first {missing[0]!r}", file=str(loc_file))
    return meta


def find_scoremap(root: str | Path, image_id: str) -> Path:
    """``root/<id>.npy`` (wsolevaluation's name, e.g. a/b.jpg.npy) or ``root/<id without ext>.npy``."""
    root = Path(root)
    candidates = [root / f"{image_id}.npy"]
    stem, ext = os.path.splitext(image_id)
    if ext:
        candidates.append(root / f"{stem}.npy")
    for path in candidates:
        if path.is_file():
            return path
    raise DataError(f"no score map for image id {image_id!r} (looked for {' and '.join(str(c) for c in candidates)})")


# The header NumPy writes for a plain 2-D array; anything else goes through numpy.load.
_NPY_HEADER = re.compile(rb"\{'descr': '([<>|]?[fiub][1248])', 'fortran_order': False, 'shape': \((\d+), (\d+)\), \} *\n")


def _read_npy(path: Path) -> np.ndarray:
    """numpy.load without pickles; a plain 2-D array is read without evaluating its header
    (``numpy.load`` parses it with ``ast.literal_eval``, a fifth of the time of a small map)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] == b"\x93NUMPY\x01\x00":
        start = 10 + int.from_bytes(data[8:10], "little")
        m = _NPY_HEADER.fullmatch(data[10:start])
        if m is not None:
            dtype, shape = np.dtype(m.group(1).decode()), (int(m.group(2)), int(m.group(3)))
            if len(data) - start == dtype.itemsize * shape[0] * shape[1]:
                return np.frombuffer(data, dtype=dtype, offset=start).reshape(shape)
    return np.load(io.BytesIO(data), allow_pickle=False)


def load_scoremap(path: str | Path, image_id: str, shape: tuple[int, int] = (RESIZE_LENGTH, RESIZE_LENGTH)) -> np.ndarray:
    """A validated float64 score map: 2-D of ``shape``, finite, in [0, 1]; DataError otherwise."""
    def bad(what: str) -> DataError:
        return DataError(f"score map of {image_id!r} {what}", file=str(path))

    try:
        arr = _read_npy(Path(path))
    except (OSError, ValueError, EOFError) as e:
        raise bad(f"is not a readable .npy array ({e})") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiub":
        raise bad(f"must be a real-valued array, got {getattr(arr, 'dtype', type(arr))}")
    if arr.ndim != 2:
        raise bad(f"must be 2-D, got shape {arr.shape}")
    if arr.shape != tuple(shape):
        raise bad(f"must be {shape[0]}x{shape[1]} (wsolevaluation's resized image), got {arr.shape[0]}x{arr.shape[1]}")
    arr = np.asarray(arr, dtype=np.float64)
    lo, hi = arr.min(), arr.max()  # NaN propagates into both, so one test covers it
    if not (0.0 <= lo and hi <= 1.0):
        if not np.isfinite(arr).all():
            raise bad("contains NaN or infinite values")
        raise bad(f"must lie in [0, 1], got min {lo:g}, max {hi:g}")
    return arr


def _read_mask(path: Path, size: int) -> np.ndarray:
    """Grey mask (as cv2.imread's IMREAD_GRAYSCALE, decoded from the bytes so that OpenCV prints
    no warning of its own), resized with nearest neighbour, foreground where > 0.5."""
    try:
        data = path.read_bytes()
    except OSError:
        raise DataError("mask file is missing or unreadable", file=str(path)) from None
    grey = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE) if data else None
    if grey is None:
        raise DataError("mask file is not a readable image", file=str(path))
    return cv2.resize(np.float32(grey), (size, size), interpolation=cv2.INTER_NEAREST) > 0.5


def load_gt_mask(mask_root: str | Path, mask_paths: Sequence[str], ignore_path: str | None,
                 size: int = RESIZE_LENGTH) -> tuple[np.ndarray, np.ndarray | None]:
    """(foreground, ignore) boolean masks at ``size`` x ``size``: the union of the instance masks,
    and the ignore mask minus the foreground (None without an ignore file)."""
    root = Path(mask_root)
    fg = np.logical_or.reduce([_read_mask(root / p, size) for p in mask_paths])
    ignore = None if ignore_path is None else _read_mask(root / ignore_path, size) & ~fg
    return fg, ignore
