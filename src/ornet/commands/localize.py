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

``--eval.maps NAME`` takes the maps of a map extractor of the run's classifier (Grad-CAM, PC1, ...;
docs/maps.md) instead of the run's own; it needs ``--threshold`` (model.json's was chosen on the
own maps), and boxes.json records ``maps`` and ``maps_network``.

Preprocessing (a decision, docs/figures.md): the WHOLE image is resized to crop x crop
(model.json ``preprocessing.crop``), with no centre crop, so that objects near the border are
seen; the map is resized to crop x crop, normalised and thresholded exactly as in evaluation
(``localization.boxes``), and the boxes are scaled back to the original width and height.
Evaluation instead resizes to resize x resize and centre-crops (the benchmark protocol). The
model, the loop over the inputs and the boxes are `ornet.load_model` and
`Localizer.localize_files` (``inference/``); this module parses, writes the outputs and prints.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from pathlib import Path

import numpy as np

from ..errors import OrnetError
from ..inference.inputs import expand_inputs
from ..runtime.atomic import atomic_path, write_npy_atomic
from ..runtime.outdir import check_out_dir, make_out_dir, nonempty
from .args import UsageParser


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
    p.add_argument("--eval.maps", dest="maps", metavar="NAME", default="own",
                   help="map extractor (`ornet methods` lists them; docs/maps.md): own (default, the run's map), "
                        "or cam, gradcam, gradcam++, xgradcam, layercam, scorecam, pc1 on the run's classifier "
                        "(needs --threshold: model.json's was chosen on the run's own maps)")
    p.add_argument("--batch-size", type=int, default=16, help="images per forward pass (default 16)")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda when available")
    p.add_argument("--save-maps", action="store_true", help="also write maps/<name>.png and maps/<name>.npy")
    p.add_argument("--keep-freed-memory", action=argparse.BooleanOptionalAction, default=True,
                   help="large tensors freed by a batch stay in the process for the next one instead of being "
                        "mapped afresh (glibc; the same numbers; as trainer.keep_freed_memory, docs/training.md; "
                        "default: on)")
    p.add_argument("--quiet", action="store_true", help="no progress and no summary")
    p.add_argument("--force", action="store_true",
                   help="write into a non-empty OUT (replaces boxes.json, overlays/ and maps/ there)")
    return p


# --- outputs -------------------------------------------------------------------------------------

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


# --- main -----------------------------------------------------------------------------------------

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
    from ..extractors import DEFAULT_MAPS, check_maps

    if check_maps(ns.maps) != DEFAULT_MAPS and ns.threshold is None:
        raise OrnetError(f"--eval.maps {ns.maps}: model.json's threshold was chosen on the run's own maps; pass "
                         f"--threshold T (e.g. the threshold of `ornet evaluate MODEL --eval.maps {ns.maps}`)")
    out = Path(ns.out)
    check_out_dir(out, "--out")
    from ..runtime.runlock import folder_to_lock, run_lock

    model_dir = Path(ns.model) if Path(ns.model).is_dir() else Path(ns.model).parent
    # One writer per folder: OUT (the run, when OUT is inside it). Reading the model takes no lock.
    with run_lock(folder_to_lock(out, model_dir), command=f"{prog} {shlex.join(argv)}"):
        return _localize(ns, out, prog)


def _localize(ns, out: Path, prog: str) -> int:
    _check_out(out, ns.force)
    paths = expand_inputs(ns.inputs, exclude=out)

    from ..inference.loading import load_model, pick_device
    from ..runs.export import resolve

    if ns.keep_freed_memory:
        from ..runtime import heap

        heap.keep_freed_memory()
    info, _ = resolve(ns.model)  # a run folder or its model files (checkpoints are for the Python API)
    loc = load_model(info, device=pick_device(ns.device, "--device")).use_maps(ns.maps)
    threshold = ns.threshold if ns.threshold is not None else loc.threshold
    if threshold is None:
        raise OrnetError(f"{ns.model}: model.json has no chosen threshold (the run was not evaluated); "
                         "pass --threshold T")
    box_mode = ns.box_mode or loc.box_mode
    # The release's rule (model.json protocol release): raw map > t, one box around all cells x stride.
    release = loc.box_rule(box_mode) == "release"
    _prepare_out(out, ns.force)
    if ns.save_maps:
        (out / "maps").mkdir(exist_ok=True)

    result = localize_paths(loc, paths, out, float(threshold), box_mode, ns.batch_size, ns.save_maps, ns.quiet,
                            release=release)
    result["model"] = str(ns.model)
    result["maps"] = loc.maps
    if loc.maps_network is not None:
        result["maps_network"] = loc.maps_network
    result["threshold_source"] = "--threshold" if ns.threshold is not None else "model.json"
    from ..runtime.atomic import write_text_atomic

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


def localize_paths(loc, paths: list[Path], out: Path, threshold: float, box_mode: str, batch_size: int,
                   save_maps: bool = False, quiet: bool = False, release: bool = False) -> dict:
    """`Localizer.localize_files` over `paths`; write overlays (and maps); return boxes.json's dict.

    `release`: the boxes came by the ORNet release's rule (`Localizer.box_rule`), said in boxes.json.
    """
    from PIL import Image

    from ..localization.boxes import scale_boxes
    from ..viz.draw import annotate

    crop, normalize = loc.crop, loc.normalize
    names = dict(zip(paths, output_names(paths)))
    images, errors = [], []
    map_size = None
    for r in loc.localize_files(paths, threshold=threshold, box_mode=box_mode, batch_size=batch_size,
                                progress=not quiet):
        if r.error is not None:
            errors.append({"file": str(r.path), "error": r.error})
            continue
        map_size = [int(n) for n in r.raw_map.shape]
        entry = _entry(r, names[r.path], threshold, box_mode, map_size)
        disp = r.display
        dh, dw = disp.shape[:2]
        boxes_disp = scale_boxes(r.boxes, (r.width, r.height), (dw, dh), "pixels")
        panel = annotate(disp, r.scoremap, pred_boxes=boxes_disp if len(boxes_disp) else None,
                         thickness=max(2, round(max(dh, dw) / 250)))
        _save_image(Image.fromarray(panel), out / entry["overlay"])
        if save_maps:
            _save_image(Image.fromarray((r.image_map * 255 + 0.5).astype(np.uint8), mode="L"), out / entry["map_png"])
            write_npy_atomic(out / entry["map_npy"], r.raw_map)
        else:
            entry.pop("map_png")
            entry.pop("map_npy")
        images.append(entry)
    return {
        "method": loc.method,
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


def _entry(r, name: str, threshold: float, box_mode: str, map_size) -> dict:
    entry: dict = {
        "file": str(r.path),
        "width": r.width,
        "height": r.height,
        "boxes": r.boxes.tolist(),
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
    if r.probs is not None:
        top = r.probs.topk(min(5, r.probs.numel()))
        idx = [int(i) for i in top.indices]
        name_of = (lambda i: r.classes[i] if i < len(r.classes) else str(i))  # noqa: E731
        entry.update(class_index=idx[0], probability=round(float(top.values[0]), 6), **{"class": name_of(idx[0])})
        entry["top5"] = [{"class": name_of(i), "probability": round(float(v), 6)} for i, v in zip(idx, top.values)]
    return entry
