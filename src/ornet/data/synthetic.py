"""A procedural WSOL benchmark written in the CUB-200-2011 layout (numpy + cv2 + PIL, torch-free).

Each object is a large blob-like body (deformed superellipse, optional tail) that carries a
SMALL, strongly class-specific part at its front end, like a bird's head: two palette colours
in one of four patterns inside one of four shapes. The body's colour, texture and shape come
from distributions shared by every class (only a weak hue preference per class), so a
classifier learns the part and its activation map fires there: the box from the map comes out
too small, which is the core difficulty of WSOL (METHOD.md, "The task"). Backgrounds carry thin
strokes and speckle ("twigs and gravel", failure mode 3) in the body's colours; a fraction of
test images holds two objects of the class (failure mode 2). docs/synthetic.md has the details.

Every image is drawn from `np.random.default_rng((seed, STREAM_IMAGE, index))`, so the output
depends only on the arguments, never on the number of workers.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ..errors import OrnetError
from ..runtime.atomic import replace_dir
from .synthetic_classes import (  # noqa: F401  (AREA_RANGE*: the guarantees, imported from here)
    AREA_RANGE,
    AREA_RANGE_TWO,
    MAX_CLASSES,
    STREAM_IMAGE,
    STREAM_SECOND,
    ClassSpec,
    class_specs,
)
from .synthetic_draw import Box, render_image

MIN_SIZE, MAX_SIZE = 32, 1024
FORMAT_VERSION = 1


@dataclass(frozen=True)
class SynthConfig:
    classes: int = 10
    train: int = 1200
    """Training images in total, split evenly over classes (the first train % classes get one more)."""
    test: int = 400
    """Test images in total, split the same way."""
    size: int = 96
    seed: int = 0
    second_object: float = 0.0
    """Share of TEST images that hold a second object of the same class."""
    body_cue: float = 0.0
    """Share of objects whose body wears its class's own style (hue, texture): class evidence in the
    whole body, as real objects have; 0 (the default): only the part names the class."""

    def validate(self) -> None:
        if not 1 <= self.classes <= MAX_CLASSES:
            raise OrnetError(f"--classes must be in 1..{MAX_CLASSES}, got {self.classes}")
        for name, n in (("--train", self.train), ("--test", self.test)):
            if n < self.classes:
                raise OrnetError(f"{name} must be at least --classes ({self.classes}) so every class "
                                 f"has an image in each split, got {n}")
        if not MIN_SIZE <= self.size <= MAX_SIZE:
            raise OrnetError(f"--size must be in {MIN_SIZE}..{MAX_SIZE} pixels, got {self.size}")
        if self.seed < 0:
            raise OrnetError(f"--seed must be >= 0, got {self.seed}")
        if not 0.0 <= self.second_object <= 1.0:
            raise OrnetError(f"--second-object must be a share in [0, 1], got {self.second_object}")
        if not 0.0 <= self.body_cue <= 1.0:
            raise OrnetError(f"--body-cue must be a share in [0, 1], got {self.body_cue}")


# ---------------------------------------------------------------- the dataset on disk

@dataclass(frozen=True)
class _Job:
    index: int  # 0-based position in images.txt
    label: int
    rel: str
    train: bool
    objects: int


def plan(cfg: SynthConfig) -> tuple[list[ClassSpec], list[_Job]]:
    """Every image's class, split, file and object count, in images.txt order (class by class)."""
    specs = class_specs(cfg.classes, cfg.seed)
    per = [[n // cfg.classes + (c < n % cfg.classes) for c in range(cfg.classes)] for n in (cfg.train, cfg.test)]
    entries = []
    for c, spec in enumerate(specs):
        folder = spec.name
        entries += [(c, f"{folder}/train_{k:05d}.jpg", True) for k in range(per[0][c])]
        entries += [(c, f"{folder}/test_{k:05d}.jpg", False) for k in range(per[1][c])]
    test_pos = [i for i, e in enumerate(entries) if not e[2]]
    n_two = round(cfg.second_object * len(test_pos))
    rng = np.random.default_rng((cfg.seed, STREAM_SECOND))
    two = set(np.asarray(test_pos)[rng.permutation(len(test_pos))[:n_two]].tolist())
    jobs = [_Job(i, c, rel, tr, 2 if i in two else 1) for i, (c, rel, tr) in enumerate(entries)]
    return specs, jobs


def _encode(job: _Job, spec: ClassSpec, cfg: SynthConfig) -> tuple[bytes, bytes, list[Box], list[Box]]:
    r = render_image(spec, cfg.size, np.random.default_rng((cfg.seed, STREAM_IMAGE, job.index)), job.objects,
                     cfg.body_cue)
    buf = io.BytesIO()
    # 4:4:4 chroma: a part is a few pixels wide and 4:2:0 would smear its colours.
    Image.fromarray(r.image).save(buf, format="JPEG", quality=95, subsampling=0)
    ok, png = cv2.imencode(".png", r.mask)
    if not ok:
        raise RuntimeError(f"could not encode the mask of {job.rel}")
    return buf.getvalue(), png.tobytes(), r.boxes, r.parts


def _write_chunk(args: tuple[SynthConfig, str, list[_Job]]) -> list[tuple[list[Box], list[Box]]]:
    cfg, tmp, jobs = args
    cv2.setNumThreads(1)
    specs = class_specs(cfg.classes, cfg.seed)
    out = []
    for job in jobs:
        jpg, png, boxes, parts = _encode(job, specs[job.label], cfg)
        (Path(tmp) / "images" / job.rel).write_bytes(jpg)
        (Path(tmp) / "segmentations" / job.rel).with_suffix(".png").write_bytes(png)
        out.append((boxes, parts))
    return out


def _is_synth(folder: Path) -> bool:
    return (folder / "synth.json").is_file()


@dataclass(frozen=True)
class SynthSummary:
    images: int
    train: int
    test: int
    two_objects: int
    classes: int
    seconds: float


def generate(cfg: SynthConfig, out: str | Path, workers: int = 2, force: bool = False,
             quiet: bool = True) -> SynthSummary:
    """Write the dataset to `out`, atomically: into a hidden folder beside it, renamed at the end.

    A non-empty `out` is refused; with `force` it is replaced, but only when an earlier run of
    this generator wrote it (it holds synth.json), so a mistyped path never loses other files.
    """
    cfg.validate()
    if workers < 1:
        raise OrnetError(f"--workers must be >= 1, got {workers}")
    start = time.perf_counter()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OrnetError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise OrnetError(f"{out} is not empty; pass --force to replace an earlier `ornet synth` output")
        if not _is_synth(out):
            raise OrnetError(f"{out} is not empty and was not written by `ornet synth` (no synth.json); "
                             "refusing to replace it even with --force")
    if not out.parent.is_dir():
        raise OrnetError(f"parent folder {out.parent} does not exist")
    specs, jobs = plan(cfg)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        for sub in ("images", "segmentations"):
            for spec in specs:
                (tmp / sub / spec.name).mkdir(parents=True)
        chunk = 32
        tasks = [(cfg, str(tmp), jobs[i:i + chunk]) for i in range(0, len(jobs), chunk)]
        from ..runtime.progress_lines import Progress

        results = []
        with Progress(len(jobs), "synth", quiet=quiet) as progress:
            if workers == 1 or len(tasks) == 1:
                chunks = (_write_chunk(t) for t in tasks)
                for rs in chunks:
                    results += rs
                    progress.update(len(rs))
            else:
                # OpenCV's thread pool does not survive a fork: a child calling cv2.setNumThreads
                # hangs once the parent's pool has gone idle (OpenCV 4.14; a long-lived process
                # such as a test run or a notebook). Forked with a one-thread pool, it does not.
                cv_threads = cv2.getNumThreads()
                cv2.setNumThreads(1)
                try:
                    with get_context("fork" if hasattr(os, "fork") else "spawn").Pool(min(workers, len(tasks))) as pool:
                        for rs in pool.imap(_write_chunk, tasks):
                            results += rs
                            progress.update(len(rs))
                finally:
                    cv2.setNumThreads(cv_threads)
        _write_text(tmp, cfg, specs, jobs, results)
        replace_dir(tmp, out)
    except Exception as e:
        from ..runtime.diskspace import disk_full_cause, disk_full_error, is_disk_full

        if not is_disk_full(e):
            raise
        cause = disk_full_cause(e)  # the file, named where it would have been: under OUT
        name = getattr(cause, "filename", None)
        where = out / Path(name).relative_to(tmp) if name and Path(name).is_relative_to(tmp) else out
        shutil.rmtree(tmp, ignore_errors=True)  # first: the line says the space free without it
        raise disk_full_error(where, e) from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    n_train = sum(j.train for j in jobs)
    return SynthSummary(images=len(jobs), train=n_train, test=len(jobs) - n_train,
                        two_objects=sum(j.objects == 2 for j in jobs), classes=cfg.classes,
                        seconds=time.perf_counter() - start)


def _write_text(root: Path, cfg: SynthConfig, specs: list[ClassSpec], jobs: list[_Job],
                results: list[tuple[list[Box], list[Box]]]) -> None:
    def lines(rows) -> str:
        return "".join(" ".join(str(v) for v in row) + "\n" for row in rows)

    def xywh(iid, b):
        return (iid, *(f"{float(v):.1f}" for v in b))

    ids = [j.index + 1 for j in jobs]
    files = {
        "classes.txt": [(c + 1, s.name) for c, s in enumerate(specs)],
        "images.txt": [(i, j.rel) for i, j in zip(ids, jobs)],
        "image_class_labels.txt": [(i, j.label + 1) for i, j in zip(ids, jobs)],
        "train_test_split.txt": [(i, int(j.train)) for i, j in zip(ids, jobs)],
        "bounding_boxes.txt": [xywh(i, b) for i, (boxes, _) in zip(ids, results) for b in boxes],
        "parts.txt": [xywh(i, p) for i, (_, parts) in zip(ids, results) for p in parts],
    }
    for name, rows in files.items():
        (root / name).write_text(lines(rows))
    meta = {"generator": "ornet synth", "format_version": FORMAT_VERSION, **asdict(cfg),
            "images": len(jobs), "two_object_images": sum(j.objects == 2 for j in jobs)}
    (root / "synth.json").write_text(json.dumps(meta, indent=1) + "\n")


# ---------------------------------------------------------------- looking at it

def contact_sheet(root: str | Path, n: int = 24, cols: int = 6, zoom: int = 2, masks: int = 4) -> np.ndarray:
    """A grid of `n` images of the CUB-layout dataset at `root` (H x W x 3 uint8; writes nothing).

    GT boxes are drawn in blue and, when parts.txt exists, part boxes in yellow; the last
    `masks` tiles show the segmentation (background dimmed). Two-object test images come first,
    then classes in turn, alternating splits.
    """
    from ..config.schema import DataConfig
    from .io import load_image, load_mask
    from .readers import read_index

    index = read_index(DataConfig(name="cub", root=str(root), val_per_class=0))
    index.raise_problems()
    records = index.splits["train"] + index.splits["test"]
    parts: dict[str, list[tuple[float, ...]]] = {}
    if (Path(root) / "parts.txt").is_file():
        rel = dict(line.split() for line in (Path(root) / "images.txt").read_text().splitlines())
        for line in (Path(root) / "parts.txt").read_text().splitlines():
            iid, x, y, w, h = line.split()
            x, y, w, h = map(float, (x, y, w, h))
            parts.setdefault(rel[iid], []).append((x, y, x + w, y + h))
    by_class: dict[int, list] = {}
    for r in sorted(records, key=lambda r: (r.label, r.image_id.split("/")[-1].startswith("test"), r.image_id)):
        by_class.setdefault(r.label, []).append(r)
    pool = [r for group in itertools.zip_longest(*by_class.values()) for r in group if r is not None]
    multi = [r for r in pool if len(r.boxes) > 1][: n // 6]
    chosen = (multi + [r for r in pool if r not in multi])[:n]
    tiles = []
    for k, rec in enumerate(chosen):
        img = np.asarray(load_image(rec.path), np.float32)
        if k >= len(chosen) - masks and rec.mask_path is not None:
            m = np.asarray(load_mask(rec.mask_path, rec.size), np.float32)[..., None] / 255
            img = img * (0.25 + 0.75 * m)
        img = np.ascontiguousarray(np.repeat(np.repeat(img, zoom, 0), zoom, 1).clip(0, 255).astype(np.uint8))
        for box_list, colour in ((parts.get(rec.image_id, []), (255, 220, 0)), (rec.boxes, (40, 90, 255))):
            for b in box_list:
                x0, y0, x1, y1 = (int(round(v * zoom)) for v in b)
                cv2.rectangle(img, (x0 - 1, y0 - 1), (x1, y1), colour, 1)
        tiles.append(img)
    h, w = max(t.shape[0] for t in tiles), max(t.shape[1] for t in tiles)
    rows = -(-len(tiles) // cols)
    gap = 4
    sheet = np.full((rows * (h + gap) + gap, cols * (w + gap) + gap, 3), 255, np.uint8)
    for k, t in enumerate(tiles):
        y, x = gap + (k // cols) * (h + gap), gap + (k % cols) * (w + gap)
        sheet[y:y + t.shape[0], x:x + t.shape[1]] = t
    return sheet
