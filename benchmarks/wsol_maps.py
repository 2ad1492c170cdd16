"""Seeded score maps and wsolevaluation folders for benchmarks/bench_evaluate_maps.py.

Maps are 224 x 224 float32 saved as ``<image_id>.npy`` (what wsolevaluation's inference writes),
min-max normalised to [0, 1]:

- realistic (CAM-like): a main blob per ground-truth box (near the box, sized from it), 1-4
  distractor blobs, smooth noise at two scales and sparse speckle; at most thresholds such a map
  has several regions, and holes;
- smooth: one blob near the first box and 0-2 weak distractors (the maps of the first benchmark).

Box cases reuse real wsolevaluation metadata (image ids, sizes, boxes); the mask case builds an
OpenImages-layout folder (``image_ids.txt``, ``class_labels.txt``, ``localization.txt`` with
``id,mask,ignore`` lines, PNG masks and ignore masks at their own image sizes) from synthetic
ellipses, since no OpenImages masks are on this machine.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

SIZE = 224


def _blob(rng, cx: float, cy: float, sx: float, sy: float) -> np.ndarray:
    """An axis-aligned Gaussian (peak 1) as an outer product: 224 x 224 float32."""
    axis = np.arange(SIZE, dtype=np.float32)
    return np.outer(np.exp(-((axis - cy) ** 2) / (2 * sy * sy)), np.exp(-((axis - cx) ** 2) / (2 * sx * sx)))


def _noise(rng, cell: int) -> np.ndarray:
    """Smooth noise: a coarse standard-normal grid (one value per ``cell`` pixels), bicubic-upsampled."""
    n = max(2, SIZE // cell)
    return cv2.resize(rng.standard_normal((n, n)).astype(np.float32), (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)


def _normalise(m: np.ndarray) -> np.ndarray:
    m = m - m.min()
    return (m / m.max()).astype(np.float32)


def realistic_map(rng: np.random.Generator, boxes) -> np.ndarray:
    """A CAM-like map for ground-truth boxes given at 224 x 224 (x0, y0, x1, y1)."""
    m = np.zeros((SIZE, SIZE), np.float32)
    for x0, y0, x1, y1 in boxes:
        cx, cy = (x0 + x1) / 2 + rng.normal(0, 6), (y0 + y1) / 2 + rng.normal(0, 6)
        sx, sy = max(3.0, (x1 - x0) / rng.uniform(2.5, 5)), max(3.0, (y1 - y0) / rng.uniform(2.5, 5))
        m += rng.uniform(0.7, 1.0) * _blob(rng, cx, cy, sx, sy)
    for _ in range(rng.integers(1, 5)):  # distractors
        cx, cy = rng.uniform(0, SIZE, 2)
        s = rng.uniform(5, 25)
        m += rng.uniform(0.2, 0.7) * _blob(rng, cx, cy, s * rng.uniform(0.6, 1.6), s)
    m += 0.08 * _noise(rng, 16) + 0.04 * _noise(rng, 6)
    speckle = rng.random((SIZE, SIZE)) < 0.002
    m[speckle] += rng.uniform(-0.3, 0.3, int(speckle.sum())).astype(np.float32)
    return _normalise(m)


def smooth_map(rng: np.random.Generator, boxes) -> np.ndarray:
    """One blob around the first box and 0-2 weak distractors, no noise."""
    x0, y0, x1, y1 = boxes[0]
    cx, cy = (x0 + x1) / 2 + rng.normal(0, 8), (y0 + y1) / 2 + rng.normal(0, 8)
    m = _blob(rng, cx, cy, max(4.0, (x1 - x0) / rng.uniform(2.5, 5)), max(4.0, (y1 - y0) / rng.uniform(2.5, 5)))
    for _ in range(rng.integers(0, 3)):
        cx, cy = rng.uniform(0, SIZE, 2)
        s = rng.uniform(6, 30)
        m += rng.uniform(0.2, 0.8) * _blob(rng, cx, cy, s, s)
    return _normalise(m)


MAKERS = {"realistic": realistic_map, "smooth": smooth_map}


def _lines(path: Path) -> list[str]:
    return [ln for ln in path.read_text().splitlines() if ln.strip()]


def read_boxes(meta: Path) -> tuple[list[str], dict, dict]:
    """(ids, {id: (w, h)}, {id: [boxes]}) of a wsolevaluation box folder."""
    ids = _lines(meta / "image_ids.txt")
    sizes = {i: (int(w), int(h)) for i, w, h in (ln.split(",") for ln in _lines(meta / "image_sizes.txt"))}
    boxes: dict[str, list] = {}
    for ln in _lines(meta / "localization.txt"):
        i, *b = ln.split(",")
        boxes.setdefault(i, []).append(tuple(int(v) for v in b))
    return ids, sizes, boxes


def pick_ids(meta: Path, n: int, min_boxes: int = 1) -> list[str]:
    """The first n ids (in image_ids.txt order) with at least ``min_boxes`` boxes."""
    ids, _, boxes = read_boxes(meta)
    chosen = [i for i in ids if len(boxes.get(i, ())) >= min_boxes][:n]
    if len(chosen) < n:
        raise SystemExit(f"{meta}: only {len(chosen)} images with >= {min_boxes} boxes, {n} wanted")
    return chosen


def box_case(src: Path, out: Path, ids: list[str], kind: str, seed: int, copies: int = 1,
             workers: int = 1) -> tuple[Path, Path]:
    """A metadata folder for ``ids`` of ``src`` and one ``kind`` map per image; returns (metadata,
    scoremaps). ``copies`` > 1 repeats the ids under prefixes c0/, c1/, ...: the maps of c0/ are
    written, the others are hard links to them (the same files on disk, under other names)."""
    meta, maps = out / "metadata", out / "scoremaps"
    meta.mkdir(parents=True)
    keep = set(ids)
    all_ids, sizes, boxes = read_boxes(src)
    order = [i for i in all_ids if i in keep]
    names = [f"c{c}/{i}" if copies > 1 else i for c in range(copies) for i in order]
    original = {name: name.split("/", 1)[1] if copies > 1 else name for name in names}
    labels = dict(ln.split(",") for ln in _lines(src / "class_labels.txt"))
    (meta / "image_ids.txt").write_text("".join(f"{n}\n" for n in names))
    (meta / "class_labels.txt").write_text("".join(f"{n},{labels[original[n]]}\n" for n in names))
    (meta / "image_sizes.txt").write_text("".join(f"{n},{sizes[original[n]][0]},{sizes[original[n]][1]}\n"
                                                  for n in names))
    (meta / "localization.txt").write_text("".join(f"{n},{','.join(map(str, b))}\n"
                                                   for n in names for b in boxes[original[n]]))
    jobs = [(maps, kind, seed, k, name, sizes[original[name]], boxes[original[name]])
            for k, name in enumerate(names[:len(order)])]
    if workers > 1:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(workers) as pool:
            for _ in pool.imap_unordered(_write_map, jobs, chunksize=64):
                pass
    else:
        for job in jobs:
            _write_map(job)
    for name in names[len(order):]:
        link = maps / f"{name}.npy"
        link.parent.mkdir(parents=True, exist_ok=True)
        os.link(maps / f"c0/{original[name]}.npy", link)
    return meta, maps


def _write_map(job: tuple) -> None:
    maps, kind, seed, k, name, (w, h), boxes = job
    rng = np.random.default_rng([seed, k])  # per image: the same map whatever the process
    scaled = [(x0 * SIZE / w, y0 * SIZE / h, x1 * SIZE / w, y1 * SIZE / h) for x0, y0, x1, y1 in boxes]
    path = maps / f"{name}.npy"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, MAKERS[kind](rng, scaled))


def mask_case(out: Path, n: int, seed: int) -> tuple[Path, Path, Path]:
    """An OpenImages-layout folder of n images: 1-3 elliptic instance masks each and an ignore mask
    (a rectangle, as OpenImages' ignore boxes), PNGs at random image sizes; realistic maps with a
    blob on each instance. Returns (metadata, scoremaps, mask root)."""
    meta, maps, masks = out / "metadata", out / "scoremaps", out / "masks"
    rng = np.random.default_rng(seed)
    ids, labels, loc = [], [], []
    for k in range(n):
        cls = f"c{k % 10}"
        image_id = f"test/{cls}/{k:05d}.jpg"
        w, h = (int(v) for v in rng.integers(200, 500, 2))
        boxes = []
        for j in range(rng.integers(1, 4)):
            mask = np.zeros((h, w), np.uint8)
            center = (int(rng.integers(w // 5, 4 * w // 5)), int(rng.integers(h // 5, 4 * h // 5)))
            axes = (int(rng.integers(w // 12, w // 3)), int(rng.integers(h // 12, h // 3)))
            cv2.ellipse(mask, center, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
            ys, xs = np.nonzero(mask)
            boxes.append((xs.min() * SIZE / w, ys.min() * SIZE / h, xs.max() * SIZE / w, ys.max() * SIZE / h))
            rel = f"test/{cls}/{k:05d}_m{j}.png"
            (masks / rel).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(masks / rel), mask)
            ignore_rel = ""
            if j == 0:  # one ignore mask per image, named on its first line
                ignore = np.zeros((h, w), np.uint8)
                x0, y0 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
                cv2.rectangle(ignore, (x0, y0), (x0 + w // 3, y0 + h // 3), 255, -1)
                ignore_rel = f"test/{cls}/{k:05d}_ignore.png"
                cv2.imwrite(str(masks / ignore_rel), ignore)
            loc.append(f"{image_id},{rel},{ignore_rel}")
        ids.append(image_id)
        labels.append(f"{image_id},{k % 10}")
        path = maps / f"{image_id}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, realistic_map(rng, boxes))
    meta.mkdir(parents=True)
    (meta / "image_ids.txt").write_text("".join(f"{i}\n" for i in ids))
    (meta / "class_labels.txt").write_text("".join(f"{ln}\n" for ln in labels))
    (meta / "localization.txt").write_text("".join(f"{ln}\n" for ln in loc))
    return meta, maps, masks
