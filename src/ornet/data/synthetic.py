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

import colorsys
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

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30), "yellow": (240, 220, 30), "green": (30, 170, 50), "cyan": (40, 200, 220),
    "blue": (30, 60, 220), "magenta": (210, 40, 200), "white": (245, 245, 245), "black": (20, 20, 20),
}
PATTERNS = ("ring", "halves", "bands", "eyes")
"""Part patterns, each symmetric about the body axis so a horizontal flip keeps the class."""
SHAPES = ("disc", "square", "diamond", "triangle")
COLOUR_PAIRS = list(itertools.combinations(PALETTE, 2))
MAX_CLASSES = len(COLOUR_PAIRS) * len(PATTERNS) * len(SHAPES)
MIN_SIZE, MAX_SIZE = 32, 1024
AREA_RANGE = (0.10, 0.60)
"""Guaranteed box area / image area of a one-object image (targets are drawn in 0.12-0.55)."""
AREA_RANGE_TWO = (0.04, 0.25)
"""The same for each object of a two-object image (targets 0.08-0.22, shrunk until both fit)."""
STREAM_CLASSES, STREAM_IMAGE, STREAM_SECOND = 1, 2, 3
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


@dataclass(frozen=True)
class ClassSpec:
    """What identifies a class: its part. `body_hue` is a weak preference of the body colour."""

    name: str
    colours: tuple[tuple[int, int, int], tuple[int, int, int]]
    pattern: str
    shape: str
    body_hue: float


def class_specs(classes: int, seed: int) -> list[ClassSpec]:
    """Distinct parts: up to 28 classes every class has its own colour pair; beyond, the pair
    repeats with another (pattern, shape)."""
    rng = np.random.default_rng((seed, STREAM_CLASSES))
    pair_order = rng.permutation(len(COLOUR_PAIRS))
    styles = list(itertools.product(PATTERNS, SHAPES))
    offsets = rng.integers(0, len(styles), size=len(COLOUR_PAIRS))
    specs = []
    for c in range(classes):
        slot, layer = c % len(COLOUR_PAIRS), c // len(COLOUR_PAIRS)
        names = list(COLOUR_PAIRS[pair_order[slot]])
        if rng.random() < 0.5:
            names.reverse()
        pattern, shape = styles[(offsets[slot] + layer) % len(styles)]
        specs.append(ClassSpec(name=f"{c + 1:03d}.{names[0]}_{names[1]}_{pattern}_{shape}",
                               colours=(PALETTE[names[0]], PALETTE[names[1]]), pattern=pattern,
                               shape=shape, body_hue=float(rng.uniform(0, 1))))
    return specs


# ---------------------------------------------------------------- drawing one image

Box = tuple[int, int, int, int]
"""x, y, width, height of the tight box of a mask, in pixels (CUB's bounding_boxes.txt)."""


@dataclass
class Rendered:
    image: np.ndarray  # H x W x 3 uint8
    mask: np.ndarray  # H x W uint8, 0 or 255: every object, parts included
    boxes: list[Box]  # one per object
    parts: list[Box]  # the part of each object


def _natural_colour(rng: np.random.Generator, hue: float | None = None) -> np.ndarray:
    """A muted colour from the distribution shared by bodies, backgrounds and clutter."""
    h = rng.uniform(0, 1) if hue is None else (hue + rng.normal(0, 0.07)) % 1.0
    return 255 * np.array(colorsys.hsv_to_rgb(h, rng.uniform(0.12, 0.6), rng.uniform(0.3, 0.85)))


def _body_colour(spec: ClassSpec, rng: np.random.Generator) -> np.ndarray:
    # The weak class signal: a quarter of bodies take a hue near the class's preference.
    return _natural_colour(rng, spec.body_hue if rng.random() < 0.5 else None)


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], cells: int = 4) -> np.ndarray:
    """Low-frequency noise in [0, 1] of `shape` (h, w)."""
    grid = rng.uniform(0, 1, size=(cells, cells)).astype(np.float32)
    return cv2.resize(grid, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC).clip(0, 1)


class _Object:
    """One object's geometry in its own frame: body semi-major axis 1 along +u, front at +u."""

    def __init__(self, rng: np.random.Generator):
        self.b = rng.uniform(0.45, 0.75)  # body semi-minor axis
        self.n = rng.uniform(1.7, 3.0)  # superellipse exponent
        self.harm = [(k, rng.uniform(0, 0.08), rng.uniform(0, 2 * np.pi)) for k in (2, 3, 4, 5)]
        self.r = rng.uniform(0.24, 0.30)  # part radius
        self.part_u = self.radius(0.0) + self.r * rng.uniform(-0.5, 0.2)  # at the body's front edge
        back = self.radius(np.pi)
        self.tail = None if rng.random() < 0.35 else (
            -0.8 * back, -back - rng.uniform(0.2, 0.6), 0.12, rng.uniform(0.18, 0.45))
        self.angle = rng.uniform(0, 2 * np.pi)

    def radius(self, theta):
        c, s = np.abs(np.cos(theta)), np.abs(np.sin(theta)) / self.b
        r = (c ** self.n + s ** self.n) ** (-1.0 / self.n)
        return r * (1 + sum(a * np.cos(k * theta + p) for k, a, p in self.harm))

    def outline(self) -> np.ndarray:
        """Points enclosing the object (its own frame), for its extent after rotation."""
        t = np.linspace(0, 2 * np.pi, 96, endpoint=False)
        pts = [np.stack([self.radius(t) * np.cos(t), self.radius(t) * np.sin(t)], 1)]
        pts.append(np.stack([self.part_u + self.r * np.cos(t), self.r * np.sin(t)], 1))
        if self.tail:
            u0, u1, w0, w1 = self.tail
            pts.append(np.array([[u0, -w0], [u0, w0], [u1, -w1], [u1, w1]]))
        pts = np.concatenate(pts)
        c, s = np.cos(self.angle), np.sin(self.angle)
        return pts @ np.array([[c, s], [-s, c]])

    def extent(self) -> tuple[np.ndarray, np.ndarray]:
        pts = self.outline()
        return pts.min(0), pts.max(0)


def _part_masks(spec: ClassSpec, pu: np.ndarray, pv: np.ndarray, r: float) -> tuple[np.ndarray, np.ndarray]:
    """(inside the part, secondary colour) for part-frame coordinates (pu along the axis, outwards)."""
    au, av = np.abs(pu), np.abs(pv)
    inside = {"disc": pu ** 2 + pv ** 2 < r ** 2, "square": np.maximum(au, av) < 0.75 * r,
              "diamond": au + av < r,
              # equilateral, pointing forward, inscribed in the circle of radius r
              "triangle": (pu > -0.5 * r) & (np.sqrt(3) * av < r - pu)}[spec.shape]
    second = {"ring": pu ** 2 + pv ** 2 < (0.5 * r) ** 2, "halves": pu > 0.1 * r,
              "bands": np.abs(pu) < 0.22 * r,
              "eyes": (pu - 0.1 * r) ** 2 + (av - 0.42 * r) ** 2 < (0.24 * r) ** 2}[spec.pattern]
    return inside, inside & second


def _draw_object(img: np.ndarray, mask: np.ndarray, part_mask: np.ndarray, obj: _Object, spec: ClassSpec,
                 scale: float, centre: np.ndarray, rng: np.random.Generator) -> None:
    size = img.shape[0]
    lo, hi = obj.extent()
    x0, y0 = np.floor(centre + scale * lo).astype(int) - 1
    x1, y1 = np.ceil(centre + scale * hi).astype(int) + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, size), min(y1, size)
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32) + 0.5  # pixel centres
    dx, dy = xs - centre[0], ys - centre[1]
    c, s = np.cos(obj.angle), np.sin(obj.angle)
    u, v = (dx * c + dy * s) / scale, (-dx * s + dy * c) / scale
    body = np.hypot(u, v) < obj.radius(np.arctan2(v, u))
    tail = np.zeros_like(body)
    if obj.tail:
        u0, u1, w0, w1 = obj.tail
        tail = (u < u0) & (u > u1) & (np.abs(v) < w0 + (w1 - w0) * (u0 - u) / (u0 - u1))
    part, second = _part_masks(spec, u - obj.part_u, v, obj.r)

    # Body: a shared-distribution colour, shaded, with a texture any class may have.
    base = _body_colour(spec, rng)
    other = np.clip(base * rng.uniform(0.55, 1.35) + rng.normal(0, 20, 3), 0, 255)
    texture = rng.integers(0, 4)
    if texture == 1:  # spots
        k = rng.integers(3, 9)
        cu, cv_, cr = rng.uniform(-0.9, 0.8, k), rng.uniform(-0.6, 0.6, k), rng.uniform(0.08, 0.2, k)
        alt = ((u[..., None] - cu) ** 2 + (v[..., None] - cv_) ** 2 < cr ** 2).any(-1)
    elif texture == 2:  # bands across the body
        alt = np.sin(u * rng.uniform(5, 12) + rng.uniform(0, 6.3)) > rng.uniform(0.2, 0.7)
    elif texture == 3:  # mottled
        alt = _smooth_field(rng, u.shape, 6) > rng.uniform(0.5, 0.65)
    else:
        alt = np.zeros_like(body)
    shade = 0.8 + 0.4 * _smooth_field(rng, u.shape, 3)
    colour = np.where(alt[..., None], other, base) * shade[..., None]
    colour = np.where(tail[..., None] & ~body[..., None], base * rng.uniform(0.6, 0.9), colour)
    # Part: the class's colours with a little lighting jitter.
    c1, c2 = (np.asarray(cc, np.float32) * rng.uniform(0.85, 1.1) + rng.normal(0, 8, 3) for cc in spec.colours)
    colour = np.where(part[..., None], np.where(second[..., None], c2, c1), colour)
    obj_mask = body | tail | part
    window = img[y0:y1, x0:x1]
    window[obj_mask] = np.clip(colour[obj_mask], 0, 255)
    mask[y0:y1, x0:x1][obj_mask] = 255
    part_mask[y0:y1, x0:x1] = part


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    img = np.empty((size, size, 3), np.float32)
    a, b = _natural_colour(rng), _natural_colour(rng)
    w = _smooth_field(rng, (size, size), int(rng.integers(2, 6)))[..., None]
    img[:] = a * w + b * (1 - w)
    # Twigs: thin strokes, mostly in body colours, a few in part colours.
    palette = list(PALETTE.values())
    for _ in range(rng.integers(4, 22)):
        col = palette[rng.integers(len(palette))] if rng.random() < 0.15 else _natural_colour(rng)
        n = int(rng.integers(2, 6))
        p = rng.uniform(0, size, 2) + np.cumsum(rng.normal(0, size * 0.12, (n, 2)), 0)
        cv2.polylines(img, [np.round(p * 16).astype(np.int32)], False, tuple(map(float, col)),
                      thickness=1, lineType=cv2.LINE_AA, shift=4)
    # Gravel: speckle pixels and small pebbles.
    k = int(rng.uniform(0.01, 0.1) * size * size)
    ys, xs = rng.integers(0, size, k), rng.integers(0, size, k)
    img[ys, xs] = img[ys, xs] * rng.uniform(0.3, 1.7, (k, 1))
    for _ in range(rng.integers(0, 12)):
        cv2.circle(img, tuple(int(t) for t in rng.integers(0, size, 2)), int(rng.integers(1, 3)),
                   tuple(map(float, _natural_colour(rng))), -1, cv2.LINE_AA)
    return img


def _mask_box(mask: np.ndarray) -> Box:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


def _place(objects: list[_Object], size: int, rng: np.random.Generator) -> list[tuple[float, np.ndarray]]:
    """(scale, centre) per object: one object anywhere; two side by side, boxes 3+ px apart."""
    room = size - 2.0  # one pixel of margin on each side
    if len(objects) == 1:
        (lo, hi), = [o.extent() for o in objects]
        ext = hi - lo
        scale = min(np.sqrt(rng.uniform(0.12, 0.55) * size * size / np.prod(ext)), *(room / ext))
        corner = 1 + rng.uniform(0, 1, 2) * (room - scale * ext)
        return [(scale, corner - scale * lo)]
    exts = [o.extent() for o in objects]
    scales = [np.sqrt(rng.uniform(0.08, 0.22) * size * size / np.prod(hi - lo)) for lo, hi in exts]
    axis = int(rng.integers(2))
    while True:
        sizes = [s * (hi - lo) for s, (lo, hi) in zip(scales, exts)]
        free = room - 3 - sizes[0][axis] - sizes[1][axis]
        if free >= 0 and all(sz[1 - axis] <= room for sz in sizes):
            break
        scales = [s * 0.92 for s in scales]
    first = rng.uniform(0, free)
    gap = 3 + rng.uniform(0, free - first)
    starts = [1 + first, 1 + first + sizes[0][axis] + gap]
    out = []
    for (lo, _), s, sz, start in zip(exts, scales, sizes, starts):
        corner = np.empty(2)
        corner[axis] = start
        corner[1 - axis] = 1 + rng.uniform(0, room - sz[1 - axis])
        out.append((s, corner - s * lo))
    return out


def render_image(spec: ClassSpec, size: int, rng: np.random.Generator, objects: int = 1) -> Rendered:
    """Draw one image of class `spec` with 1 or 2 objects; deterministic given `rng`'s state."""
    img = _background(rng, size)
    mask = np.zeros((size, size), np.uint8)
    objs = [_Object(rng) for _ in range(objects)]
    boxes, parts = [], []
    for obj, (scale, centre) in zip(objs, _place(objs, size, rng)):
        own, part = np.zeros_like(mask), np.zeros(mask.shape, bool)
        _draw_object(img, own, part, obj, spec, scale, centre, rng)
        mask |= own
        boxes.append(_mask_box(own))
        parts.append(_mask_box(part))
    img = cv2.GaussianBlur(img, (0, 0), 0.5)  # camera softness, also on the object's edge
    img += rng.normal(0, rng.uniform(1, 5), img.shape).astype(np.float32)
    return Rendered(np.clip(img + 0.5, 0, 255).astype(np.uint8), mask, boxes, parts)


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
    r = render_image(spec, cfg.size, np.random.default_rng((cfg.seed, STREAM_IMAGE, job.index)), job.objects)
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
        from ..progress import Progress

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
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old)
        else:
            tmp.rename(out)
    except Exception as e:
        from ..diskspace import disk_full_cause, disk_full_error, is_disk_full

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
    from ..config import DataConfig
    from .io import load_image, load_mask
    from .readers import read_dataset

    index = read_dataset(DataConfig(name="cub", root=str(root), val_per_class=0))
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
