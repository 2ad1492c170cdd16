"""`ornet localize`: boxes, classes and maps for your own images with a trained model.

    ornet localize runs/ornet photos/ more/*.jpg one.png --out boxes/

MODEL is a run folder (or its model.safetensors / model.json). INPUTs are image files, folders
(searched recursively for image files) or glob patterns. OUT receives:

- ``boxes.json``: per image its boxes in ORIGINAL pixel coordinates (``x0, y0, x1, y1``,
  inclusive, after EXIF rotation), the predicted class and its probability (top 5 too), the
  threshold and box mode used and the map's resolution; unreadable images are listed under
  ``errors``. Written atomically.
- ``overlays/<name>.png``: the image (longer side at most 1024 px) with the map and the
  predicted boxes (green).
- with ``--save-maps``: ``maps/<name>.png`` (the map as thresholded, at the image's size,
  grey 0-255) and ``maps/<name>.npy`` (the network's raw map, float32 h x w).

Preprocessing (a decision, docs/figures.md): the WHOLE image is resized to crop x crop
(model.json ``preprocessing.crop``), with no centre crop, so that objects near the border are
seen; the map is resized to crop x crop, normalised and thresholded exactly as in evaluation
(``localization.boxes``), and the boxes are scaled back to the original width and height.
Evaluation instead resizes to resize x resize and centre-crops (the benchmark protocol).
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import shlex
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..cli_args import UsageParser
from ..errors import DataError, OrnetError
from ..fsutil import atomic_path, write_npy_atomic
from ..outdir import check_out_dir, make_out_dir, nonempty

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"}
OVERLAY_MAX_SIDE = 1024
_GLOB_CHARS = set("*?[")


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = UsageParser(prog=prog, description=(
        "Predict boxes, classes and maps for your own images with a trained model. Writes "
        "OUT/boxes.json (boxes in original pixels) and one overlay PNG per image."))
    p.add_argument("model", metavar="MODEL", help="run folder, or its model.safetensors / model.json")
    p.add_argument("inputs", metavar="INPUT", nargs="+", help="image files, folders (recursive) or glob patterns")
    p.add_argument("--out", default="localize_out", help="output folder (default: localize_out)")
    p.add_argument("--threshold", type=float, default=None,
                   help="map threshold in [0, 1] (default: the one chosen at evaluation, in model.json)")
    p.add_argument("--box-mode", choices=("all", "largest", "multi"), default=None,
                   help="all: one box around every pixel above threshold; largest: the largest region; "
                        "multi: one box per region (default: model.json's)")
    p.add_argument("--batch-size", type=int, default=16, help="images per forward pass (default 16)")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda when available")
    p.add_argument("--save-maps", action="store_true", help="also write maps/<name>.png and maps/<name>.npy")
    p.add_argument("--quiet", action="store_true", help="no progress and no summary")
    p.add_argument("--force", action="store_true",
                   help="write into a non-empty OUT (replaces boxes.json, overlays/ and maps/ there)")
    return p


# --- inputs -------------------------------------------------------------------------------------

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


def output_names(paths: list[Path]) -> list[str]:
    """A unique, file-system-safe stem per input (``name``, then ``name_2``, ... on collisions)."""
    names, used = [], set()
    for p in paths:
        base = "".join(c if c.isalnum() or c in "-_." else "_" for c in p.stem) or "image"
        name, k = base, 1
        while name.lower() in used:
            k += 1
            name = f"{base}_{k}"
        used.add(name.lower())
        names.append(name)
    return names


# --- geometry -----------------------------------------------------------------------------------

def scale_box(box, crop: int, width: int, height: int) -> list[int]:
    """An inclusive-pixel box on the crop x crop input -> inclusive pixels of the original image.

    Pixel column ``x`` of the input covers ``[x, x + 1) * width / crop`` of the original, so
    ``x0 -> floor(x0 * sx)`` and ``x1 -> ceil((x1 + 1) * sx) - 1``, clipped to the image.
    """
    x0, y0, x1, y1 = (int(v) for v in box)
    sx, sy = width / crop, height / crop
    ox0 = min(max(math.floor(x0 * sx), 0), width - 1)
    oy0 = min(max(math.floor(y0 * sy), 0), height - 1)
    ox1 = min(max(math.ceil((x1 + 1) * sx - 1e-9) - 1, ox0), width - 1)
    oy1 = min(max(math.ceil((y1 + 1) * sy - 1e-9) - 1, oy0), height - 1)
    return [ox0, oy0, ox1, oy1]


@dataclass
class Loaded:
    """One decoded input: the network's tensor, a display copy and the original size."""

    tensor: object  # 3 x crop x crop float, normalised
    display: np.ndarray  # H' x W' x 3 uint8, longer side <= OVERLAY_MAX_SIDE
    width: int
    height: int


def load_input(path: Path, crop: int, mean, std) -> Loaded:
    """Decode (EXIF-rotated RGB), resize the whole image to crop x crop and normalise."""
    from torchvision.transforms.v2 import functional as F

    from ..data.io import load_image

    pil = load_image(path)
    width, height = pil.size
    t = F.pil_to_tensor(pil)
    x = F.resize(t, [crop, crop], antialias=True).float().div_(255.0)
    x = F.normalize(x, mean=list(mean), std=list(std))
    scale = min(1.0, OVERLAY_MAX_SIDE / max(width, height))
    disp = t if scale == 1.0 else F.resize(t, [max(1, round(height * scale)), max(1, round(width * scale))],
                                           antialias=True)
    display = disp.permute(1, 2, 0).contiguous().numpy().astype(np.uint8)
    return Loaded(x, display, width, height)


def _prefetch(paths: list[Path], batch_size: int, crop: int, mean, std, workers: int = 4):
    """Yield (start index, [Loaded or DataError]) batch by batch, decoding the next batch while
    the current one is processed (threads: decoding releases the GIL)."""

    def load(p: Path):
        try:
            return load_input(p, crop, mean, std)
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


# --- main -----------------------------------------------------------------------------------------

def _device(name: str | None):
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise OrnetError("--device cuda was asked for but CUDA is not available")
    return torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))


def _check_out(out: Path, force: bool) -> None:
    """Before any work: OUT must be a writable folder (or creatable), empty unless --force."""
    check_out_dir(out, "--out")
    if nonempty(out) and not force:
        raise OrnetError(f"--out {out} exists and is not empty; pass --force to write into it")


def _prepare_out(out: Path, force: bool) -> None:
    """Once the model has loaded: clear an earlier run's outputs (--force) and create OUT."""
    _check_out(out, force)
    if nonempty(out):
        (out / "boxes.json").unlink(missing_ok=True)
        for sub in ("overlays", "maps"):
            if (out / sub).is_dir():
                shutil.rmtree(out / sub)
    make_out_dir(out / "overlays", "--out")


def main(argv: list[str], prog: str) -> int:
    ns = build_parser(prog).parse_args(argv)
    if ns.batch_size < 1:
        raise OrnetError(f"--batch-size must be >= 1, got {ns.batch_size}")
    if ns.threshold is not None and not 0.0 <= ns.threshold <= 1.0:
        raise OrnetError(f"--threshold must be in [0, 1], got {ns.threshold}")
    out = Path(ns.out)
    check_out_dir(out, "--out")
    from ..runlock import folder_to_lock, run_lock

    model_dir = Path(ns.model) if Path(ns.model).is_dir() else Path(ns.model).parent
    # One writer per folder: OUT (the run, when OUT is inside it). Reading the model takes no lock.
    with run_lock(folder_to_lock(out, model_dir), command=f"{prog} {shlex.join(argv)}"):
        return _localize(ns, out, prog)


def _localize(ns, out: Path, prog: str) -> int:
    _check_out(out, ns.force)
    paths = expand_inputs(ns.inputs, exclude=out)

    from ..tasks.export import load_model

    device = _device(ns.device)
    model, meta = load_model(ns.model, device=device)
    loc = meta["localization"]
    threshold = ns.threshold if ns.threshold is not None else loc.get("threshold")
    if threshold is None:
        raise OrnetError(f"{ns.model}: model.json has no chosen threshold (the run was not evaluated); "
                         "pass --threshold T")
    box_mode = ns.box_mode or loc.get("box_mode") or "largest"
    normalize = loc.get("normalize", "minmax")
    # The release's rule (model.json protocol release): raw map > t, one box around all cells x stride.
    release = loc.get("protocol") == "release" and box_mode == "all"
    _prepare_out(out, ns.force)
    if ns.save_maps:
        (out / "maps").mkdir(exist_ok=True)

    result = localize_paths(model, meta, paths, out, float(threshold), box_mode, normalize, ns.batch_size,
                            device, ns.save_maps, ns.quiet, release=release)
    result["model"] = str(ns.model)
    result["threshold_source"] = "--threshold" if ns.threshold is not None else "model.json"
    from ..fsutil import write_text_atomic

    write_text_atomic(out / "boxes.json", json.dumps(result, indent=2) + "\n")
    errors = result["errors"]
    if not ns.quiet:
        n_boxes = sum(len(e["boxes"]) for e in result["images"])
        print(f"{len(result['images'])} images, {n_boxes} boxes -> {out / 'boxes.json'}; "
              f"overlays in {out / 'overlays'}" + (f"; {len(errors)} unreadable" if errors else ""))
    if errors:
        names = ", ".join(e["file"] for e in errors[:10]) + (" ..." if len(errors) > 10 else "")
        print(f"{prog}: error: {len(errors)} image(s) could not be read (listed in boxes.json): {names}",
              file=sys.stderr)
        return 2
    return 0


def _save_image(image, path: Path) -> None:
    """A PIL image, atomically (a reader sees the whole file or none; not fsynced: one of many)."""
    from PIL import Image

    with atomic_path(path, fsync=False) as tmp:
        image.save(tmp, format=Image.registered_extensions().get(path.suffix.lower(), "PNG"))


def localize_paths(model, meta: dict, paths: list[Path], out: Path, threshold: float, box_mode: str,
                   normalize: str, batch_size: int, device, save_maps: bool = False,
                   quiet: bool = False, release: bool = False) -> dict:
    """Run the model over `paths` in batches; write overlays (and maps); return boxes.json's dict.

    `release`: boxes by the ORNet release's rule (`localization.release.release_boxes` on the
    raw map; no box when no cell is above the threshold) instead of the evaluation's.
    """
    import torch
    from PIL import Image

    from ..progress import Progress
    from ..viz.draw import annotate

    pre = meta["preprocessing"]
    crop = int(pre["crop"])
    classes = list(meta.get("classes") or [])
    names = output_names(paths)
    images, errors = [], []
    map_size = None
    with Progress(len(paths), "localize", quiet=quiet) as progress:
        for start, loaded in _prefetch(paths, batch_size, crop, pre["mean"], pre["std"]):
            ok = [(i, item) for i, item in enumerate(loaded) if not isinstance(item, DataError)]
            for i, item in enumerate(loaded):
                if isinstance(item, DataError):
                    path = paths[start + i]
                    errors.append({"file": str(path), "error": item.what})
                    progress.write(f"skipped {path}: {item.what}")
            if ok:
                x = torch.stack([item.tensor for _, item in ok]).to(device)
                with torch.inference_mode():
                    raw, logits = model.predict(x)
                raw = raw.float()
                map_size = [int(raw.shape[-2]), int(raw.shape[-1])]
                thresholded = eval_maps(raw, crop, normalize)
                probs = logits.float().softmax(dim=1).cpu() if logits is not None else None
                for j, (i, item) in enumerate(ok):
                    k = start + i
                    entry = _entry(paths[k], names[k], item, thresholded[j], probs[j] if probs is not None else None,
                                   classes, threshold, box_mode, crop, map_size, normalize,
                                   raw[j, 0].cpu().numpy() if release else None)
                    disp = item.display
                    dh, dw = disp.shape[:2]
                    boxes_disp = [[b[0] * dw / item.width, b[1] * dh / item.height,
                                   (b[2] + 1) * dw / item.width - 1, (b[3] + 1) * dh / item.height - 1]
                                  for b in entry["boxes"]]
                    panel = annotate(disp, thresholded[j], pred_boxes=boxes_disp or None,
                                     thickness=max(2, round(max(dh, dw) / 250)))
                    _save_image(Image.fromarray(panel), out / entry["overlay"])
                    if save_maps:
                        full = _resize_map(thresholded[j], item.height, item.width)
                        _save_image(Image.fromarray((full * 255 + 0.5).astype(np.uint8), mode="L"),
                                    out / entry["map_png"])
                        write_npy_atomic(out / entry["map_npy"], raw[j, 0].cpu().numpy().astype(np.float32))
                    else:
                        entry.pop("map_png")
                        entry.pop("map_npy")
                    images.append(entry)
            progress.update(len(loaded))
        progress.close(f"{len(images)} images localized, {len(errors)} unreadable "
                       f"in {_elapsed(progress):.1f} s")
    return {
        "method": meta.get("method"),
        "threshold": threshold,
        "box_mode": box_mode,
        "normalize": normalize,
        "box_rule": "release (raw map > threshold, one box around all cells x stride)" if release else "evaluation",
        "input_size": [crop, crop],
        "map_size": map_size,
        "preprocessing": f"whole image resized to {crop}x{crop} (no centre crop); boxes scaled back "
                         "to the original image",
        "box_format": "x0, y0, x1, y1: inclusive pixel coordinates of the original image (after EXIF rotation)",
        "images": images,
        "errors": errors,
    }


def _elapsed(progress) -> float:
    import time

    return time.perf_counter() - progress.start


def eval_maps(raw, crop: int, normalize: str) -> np.ndarray:
    """B x 1 x h x w maps -> B x crop x crop float32, resized and normalised exactly as evaluation
    does (`localization.metrics.prepare_maps`)."""
    from ..localization.metrics import prepare_maps

    return prepare_maps(raw.float(), (crop, crop), normalize).astype(np.float32)


def _resize_map(m: np.ndarray, height: int, width: int) -> np.ndarray:
    from ..viz.draw import resize_map

    return resize_map(m, height, width)


def _entry(path: Path, name: str, item: Loaded, emap: np.ndarray, probs, classes: list[str], threshold: float,
           box_mode: str, crop: int, map_size, normalize: str, raw_map: np.ndarray | None = None) -> dict:
    from ..localization.boxes import boxes_from_map

    if raw_map is not None:  # the release's rule on the raw map; no cell above: no box
        from ..localization.release import release_boxes

        found = bool((raw_map > threshold).any())
        boxes = [[int(round(v)) for v in release_boxes(raw_map, [threshold], (crop, crop))[0]]] if found else []
    else:
        boxes = boxes_from_map(emap, threshold, box_mode, relative=normalize == "minmax")
        boxes = [b for b in np.asarray(boxes).reshape(-1, 4).tolist() if any(b)]  # [0,0,0,0]: nothing above
    entry: dict = {
        "file": str(path),
        "width": item.width,
        "height": item.height,
        "boxes": [scale_box(b, crop, item.width, item.height) for b in boxes],
        "class": None,
        "class_index": None,
        "probability": None,
        "top5": [],
        "threshold": threshold,
        "box_mode": box_mode,
        "map_size": map_size,
        "overlay": f"overlays/{name}.png",
        "map_png": f"maps/{name}.png",
        "map_npy": f"maps/{name}.npy",
    }
    if probs is not None:
        top = probs.topk(min(5, probs.numel()))
        idx = [int(i) for i in top.indices]
        name_of = (lambda i: classes[i] if i < len(classes) else str(i))  # noqa: E731
        entry.update(class_index=idx[0], probability=round(float(top.values[0]), 6), **{"class": name_of(idx[0])})
        entry["top5"] = [{"class": name_of(i), "probability": round(float(v), 6)} for i, v in zip(idx, top.values)]
    return entry
