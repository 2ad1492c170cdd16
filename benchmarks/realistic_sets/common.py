"""What both kinds of realistic set share: the bundled photos, background crops, alpha compositing,
the camera finish, the job plan and the CUB-layout writer (the sets themselves: the package's
docstring, `realistic_sets/__init__.py`)."""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ornet.runtime.atomic import replace_dir

TRAIN_PHOTOS = ("astronaut", "coffee", "motorcycle_left", "motorcycle_right", "china", "hubble_deep_field",
                "brick", "camera", "coins", "grass", "text", "cell")
TEST_PHOTOS = ("chelsea", "flower", "rocket", "retina", "immunohistochemistry", "gravel", "moon", "page",
               "clock")
TEMPLATES = Path("/usr/share/tuxpaint/templates")
"""Photos that Debian's tuxpaint-data ships as Tux Paint's colouring templates (JPEG, 604-1296 px;
installed with tuxpaint-stamps-default's recommended tuxpaint, or `apt-get install -y tuxpaint-data`)."""
HELDOUT_TRAIN_PHOTOS = ("burnt_bark", "cliff", "corn_maze", "jellyfish", "mossy_log", "mudstone", "ocean_waves",
                        "redwoods_above", "spiders_web", "sun_behind_clouds")
HELDOUT_TEST_PHOTOS = ("lighthouse", "mossy_bark", "ocean_splash", "rocks", "sun_behind_leaves", "trees_above",
                       "trees_at_dusk", "wool_mill_machine")
"""The held-out kinds' backgrounds: tuxpaint's template photos, none of them seen by the tuning sets
(which crop only scikit-image's and scikit-learn's photos). Each test photo has a train photo of a
similar scene (bark, water, trees, stone, sky) except wool_mill_machine (man-made clutter, as the
tuning sets' clock and page); sheep.jpg is left out (a flock of sheep, a class of the held-out objects)."""
FORMAT_VERSION = 2
KIND_STREAM = {"objects": 11, "digits": 12, "objects_heldout": 13, "digits_heldout": 14}
GENERATOR = "benchmarks/realistic_sets.py"
"""realistic.json's ``generator`` (the builder's path before it became this package; unchanged, so
that the same arguments still write the same bytes)."""

Box = tuple[int, int, int, int]
"""x, y, width, height of a mask's tight box in pixels (CUB's bounding_boxes.txt)."""


def load_photo(name: str, templates: Path = TEMPLATES) -> np.ndarray:
    """One bundled photo as H x W x 3 float32 in 0..255 (grey photos repeated over 3 channels); the
    names of HELDOUT_TRAIN_PHOTOS / HELDOUT_TEST_PHOTOS are read from tuxpaint's `templates`."""
    if name in HELDOUT_TRAIN_PHOTOS + HELDOUT_TEST_PHOTOS:
        path = templates / f"{name}.jpg"
        try:
            img = Image.open(path).convert("RGB")
        except OSError as e:
            raise SystemExit(f"{path}: cannot read the photo ({e}); apt-get install -y tuxpaint-data") from None
    elif name in ("china", "flower"):
        from sklearn.datasets import load_sample_images

        data = load_sample_images()
        img = data.images[[Path(f).stem for f in data.filenames].index(name)]
    elif name in ("motorcycle_left", "motorcycle_right"):
        import skimage.data

        img = skimage.data.stereo_motorcycle()[0 if name.endswith("left") else 1]
    else:
        import skimage.data

        img = getattr(skimage.data, name)()
    img = np.asarray(img)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.dtype != np.uint8:  # e.g. a float image in [0, 1]
        img = (np.clip(img, 0, 1) * 255) if img.max() <= 1 else img
    return np.ascontiguousarray(img[..., :3]).astype(np.float32)


def load_photos(train: Sequence[str] = TRAIN_PHOTOS, test: Sequence[str] = TEST_PHOTOS,
                templates: Path = TEMPLATES) -> dict[str, list[tuple[str, np.ndarray, bool]]]:
    """{"train": [(name, photo, is_grey)], "test": [...]} from the named photos (by default
    TRAIN_PHOTOS / TEST_PHOTOS)."""
    out = {}
    for split, names in (("train", train), ("test", test)):
        photos = []
        for name in names:
            img = load_photo(name, templates)
            photos.append((name, img, bool(np.allclose(img[..., 0], img[..., 1]) and np.allclose(img[..., 1], img[..., 2]))))
        out[split] = photos
    return out


def background(photos: Sequence[tuple[str, np.ndarray, bool]], size: int,
               rng: np.random.Generator) -> tuple[str, np.ndarray]:
    """A random square crop (side 35-100% of the photo's short side) of a random photo, resized to
    size x size, maybe flipped, brightness-jittered, grey photos tinted: (the photo's name,
    size x size x 3 float32)."""
    name, img, grey = photos[int(rng.integers(len(photos)))]
    h, w = img.shape[:2]
    side = int(round(rng.uniform(0.35, 1.0) * min(h, w)))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = cv2.resize(img[y:y + side, x:x + side], (size, size), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    gain = rng.uniform(0.75, 1.2) * (rng.uniform(0.75, 1.25, 3) if grey else rng.uniform(0.92, 1.08, 3))
    return name, np.clip(crop * gain, 0, 255).astype(np.float32)


def paste(canvas: np.ndarray, colour: np.ndarray, alpha: np.ndarray, x: int, y: int) -> None:
    """Alpha-composite `colour` (h x w x 3) with `alpha` (h x w in [0, 1]) onto `canvas` at (x, y),
    in place; parts outside the canvas are cut off."""
    h, w = alpha.shape
    H, W = canvas.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
    if x0 >= x1 or y0 >= y1:
        return
    a = alpha[y0 - y:y1 - y, x0 - x:x1 - x, None]
    canvas[y0:y1, x0:x1] = canvas[y0:y1, x0:x1] * (1 - a) + colour[y0 - y:y1 - y, x0 - x:x1 - x] * a


def mask_box(mask: np.ndarray) -> Box:
    """Tight box (x, y, w, h) of the pixels > 0 of a 2-D mask; ValueError when it is empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        raise ValueError("empty mask")
    return int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


def finish(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Camera softness and sensor noise (also over the pasted edges) -> H x W x 3 uint8."""
    image = cv2.GaussianBlur(image, (0, 0), 0.5)
    image = image + rng.normal(0, rng.uniform(1, 4), image.shape).astype(np.float32)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


Job = tuple[int, str, int]
"""(label 0-based, "train" or "test", k-th image of that class and split)."""
Renderer = Callable[[Job, np.random.Generator], tuple[np.ndarray, np.ndarray, str]]
"""(job, rng) -> (image H x W x 3 uint8, mask H x W uint8 0 / 255 not empty, background photo's name)."""


def plan(classes: int, train: int, test: int) -> list[Job]:
    """Every image's (label, split, k) in images.txt order: class by class, train then test."""
    return [(c, split, k) for c in range(classes) for split, n in (("train", train), ("test", test))
            for k in range(n)]


def write_set(out: Path, kind: str, class_names: Sequence[str], jobs: Sequence[Job], render: Renderer, seed: int,
              meta: dict, force: bool = False, photos: tuple[Sequence[str], Sequence[str]] = (TRAIN_PHOTOS, TEST_PHOTOS),
              generator: str = GENERATOR) -> dict:
    """Render every job and write the CUB layout to `out` atomically; returns the summary written
    to realistic.json (`photos`: the train and test photo names it records; `generator`: the
    builder it names). A non-empty `out` is replaced only with `force` and only when this script
    wrote it (it holds realistic.json)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not force:
            raise SystemExit(f"{out} exists and is not empty; pass --force to replace an earlier set")
        if not (out / "realistic.json").is_file():
            raise SystemExit(f"{out} was not written by this script (no realistic.json); refusing to replace it")
    if not out.parent.is_dir():
        raise SystemExit(f"parent folder {out.parent} does not exist")
    folders = [f"{c + 1:03d}.{name}" for c, name in enumerate(class_names)]
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    start = time.perf_counter()
    try:
        for sub in ("images", "segmentations"):
            for folder in folders:
                (tmp / sub / folder).mkdir(parents=True)
        rows: dict[str, list[str]] = {k: [] for k in ("images", "labels", "split", "boxes", "backgrounds")}
        for i, job in enumerate(jobs):
            label, split, k = job
            image, mask, photo = render(job, np.random.default_rng((seed, KIND_STREAM[kind], i)))
            rel = f"{folders[label]}/{split}_{k:05d}.jpg"
            buf = io.BytesIO()
            Image.fromarray(image).save(buf, format="JPEG", quality=95, subsampling=0)
            (tmp / "images" / rel).write_bytes(buf.getvalue())
            Image.fromarray(mask).save(tmp / "segmentations" / rel.replace(".jpg", ".png"))
            x, y, w, h = mask_box(mask)
            iid = i + 1
            rows["images"].append(f"{iid} {rel}")
            rows["labels"].append(f"{iid} {label + 1}")
            rows["split"].append(f"{iid} {int(split == 'train')}")
            rows["boxes"].append(f"{iid} {x:.1f} {y:.1f} {w:.1f} {h:.1f}")
            rows["backgrounds"].append(f"{iid} {photo}")
        files = {"classes.txt": [f"{c + 1} {f}" for c, f in enumerate(folders)], "images.txt": rows["images"],
                 "image_class_labels.txt": rows["labels"], "train_test_split.txt": rows["split"],
                 "bounding_boxes.txt": rows["boxes"], "backgrounds.txt": rows["backgrounds"]}
        for name, lines in files.items():
            (tmp / name).write_text("\n".join(lines) + "\n")
        # GENERATOR is the name format versions 1 and 2 record, kept so that a set stays byte-identical
        summary = {"generator": f"{generator} {kind}", "format_version": FORMAT_VERSION,
                   "seed": seed, "classes": list(folders), "images": len(jobs),
                   "train": sum(j[1] == "train" for j in jobs), "test": sum(j[1] == "test" for j in jobs),
                   "train_photos": list(photos[0]), "test_photos": list(photos[1]), **meta}
        (tmp / "realistic.json").write_text(json.dumps(summary, indent=1) + "\n")
        replace_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary["seconds"] = round(time.perf_counter() - start, 1)
    return summary


def write_contact_sheet(root: Path, png: Path, n: int = 36, masks: int = 12) -> None:
    """A preview grid (GT boxes blue; the last `masks` tiles dim everything outside the mask)."""
    from ornet.data.synthetic import contact_sheet

    Image.fromarray(contact_sheet(root, n=n, cols=6, zoom=2, masks=masks)).save(png)
