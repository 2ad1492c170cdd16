"""Your images for inference: finding them (files, folders, globs) and decoding them ahead.

`expand_inputs` turns command-line style inputs into image paths; `prefetch` decodes batches in
threads (decoding releases the GIL) while the previous batch runs through the model, keeping a
display copy of each image (longer side at most `OVERLAY_MAX_SIDE`) for overlays. An image that
cannot be decoded comes back as its `DataError`, so one bad file does not stop a folder.
"""

from __future__ import annotations

import glob
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError, OrnetError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"}
OVERLAY_MAX_SIDE = 1024
_GLOB_CHARS = set("*?[")


def _is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def expand_inputs(inputs: list[str], exclude: Path | None = None) -> list[Path]:
    """Files as given, folders searched recursively for image files, globs expanded; in order,
    without duplicates. A path that does not exist, or a pattern or folder without images, is an
    OrnetError. Files under ``exclude`` (the output folder) are skipped."""
    out: list[Path] = []
    seen: set[Path] = set()
    excl = exclude.resolve() if exclude is not None else None

    def add(path: Path) -> None:
        key = path.resolve()
        if key in seen or (excl is not None and excl in key.parents):
            return
        seen.add(key)
        out.append(path)

    def add_folder(folder: Path) -> int:
        found = sorted(p for p in folder.rglob("*") if p.is_file() and _is_image_name(p)
                       and not any(part.startswith(".") for part in p.relative_to(folder).parts))
        for p in found:
            add(p)
        return len(found)

    for arg in inputs:
        path = Path(arg)
        if path.is_file():
            add(path)
        elif path.is_dir():
            if add_folder(path) == 0:
                raise OrnetError(f"{path}: folder holds no image file ({', '.join(sorted(IMAGE_SUFFIXES))})")
        elif _GLOB_CHARS & set(arg):
            matches = sorted(glob.glob(arg, recursive=True))
            files = [Path(m) for m in matches if Path(m).is_file()]
            for folder in (Path(m) for m in matches if Path(m).is_dir()):
                add_folder(folder)
            for f in files:
                add(f)
            if not matches:
                raise OrnetError(f"{arg}: pattern matches no file")
        else:
            raise OrnetError(f"{arg}: no such file or folder")
    if not out:
        raise OrnetError("no input image found")
    return out


@dataclass
class Loaded:
    """One decoded input: the network's tensor, a display copy and the original size."""

    tensor: object  # 3 x crop x crop float, normalised
    display: np.ndarray  # H' x W' x 3 uint8, longer side <= OVERLAY_MAX_SIDE
    width: int
    height: int


def load_input(path: Path, transform) -> Loaded:
    """Decode (EXIF-rotated RGB), preprocess with `transform` (`inference.Preprocess`) and keep a
    display copy."""
    from torchvision.transforms.v2 import functional as F

    from ..data.io import load_image

    pil = load_image(path)
    width, height = pil.size
    t = F.pil_to_tensor(pil)
    x = transform.from_uint8(t)
    scale = min(1.0, OVERLAY_MAX_SIDE / max(width, height))
    disp = t if scale == 1.0 else F.resize(t, [max(1, round(height * scale)), max(1, round(width * scale))],
                                           antialias=True)
    display = disp.permute(1, 2, 0).contiguous().numpy().astype(np.uint8)
    return Loaded(x, display, width, height)


def prefetch(paths: list[Path], batch_size: int, transform, workers: int = 4):
    """Yield (start index, [Loaded or DataError]) batch by batch, decoding the next batch while
    the current one is processed (threads: decoding releases the GIL)."""

    def load(p: Path):
        try:
            return load_input(p, transform)
        except DataError as e:
            return e

    with ThreadPoolExecutor(max_workers=workers) as pool:
        starts = list(range(0, len(paths), batch_size))
        pending = [pool.submit(load, p) for p in paths[0:batch_size]] if starts else []
        for k, start in enumerate(starts):
            nxt = starts[k + 1] if k + 1 < len(starts) else None
            upcoming = [pool.submit(load, p) for p in paths[nxt:nxt + batch_size]] if nxt is not None else []
            yield start, [f.result() for f in pending]
            pending = upcoming
