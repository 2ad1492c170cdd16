"""Drawing the synthetic benchmark's images: parts, bodies, backgrounds (numpy + cv2).

What identifies a class is a small part at the front of a large, weakly informative body
(`synthetic_classes.class_specs`); `render_image` draws one image of a class with one or two objects and returns
the image, the object mask, the boxes and the parts' boxes. The dataset on disk (folders, files,
workers) is `synthetic.py`; docs/synthetic.md describes both.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import cv2
import numpy as np

from .synthetic_classes import (
    PALETTE,
    BodyStyle,
    ClassSpec,
)

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
    # The weak class signal: half of the bodies take a hue near the class's preference.
    return _natural_colour(rng, spec.body_hue if rng.random() < 0.5 else None)


def _styled_colour(style: BodyStyle, rng: np.random.Generator) -> np.ndarray:
    """The class's own body colour: its hue and saturation with a little jitter, any brightness."""
    h = (style.hue + rng.normal(0, 0.02)) % 1.0
    s = float(np.clip(style.saturation + rng.normal(0, 0.04), 0.05, 1.0))
    return 255 * np.array(colorsys.hsv_to_rgb(h, s, rng.uniform(0.4, 0.85)))


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
                 scale: float, centre: np.ndarray, rng: np.random.Generator, body_cue: float = 0.0) -> None:
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

    # Body: a shared-distribution colour, shaded, with a texture any class may have; or, for a
    # share `body_cue` of the objects (the draw is skipped at 0, so 0 gives the old images), the
    # class's own body style: its hue, saturation, texture, pattern frequency and contrast.
    style = spec.style if body_cue > 0 and spec.style is not None and rng.random() < body_cue else None
    if style is None:
        base = _body_colour(spec, rng)
        other = np.clip(base * rng.uniform(0.55, 1.35) + rng.normal(0, 20, 3), 0, 255)
        texture = rng.integers(0, 4)
    else:
        base = _styled_colour(style, rng)
        other = np.clip(base * style.contrast + rng.normal(0, 8, 3), 0, 255)
        texture = style.texture
    if texture == 1:  # spots
        k = rng.integers(3, 9) if style is None else 3 + int(round(5 * style.frequency))
        cu, cv_, cr = rng.uniform(-0.9, 0.8, k), rng.uniform(-0.6, 0.6, k), rng.uniform(0.08, 0.2, k)
        alt = ((u[..., None] - cu) ** 2 + (v[..., None] - cv_) ** 2 < cr ** 2).any(-1)
    elif texture == 2:  # bands across the body
        freq = rng.uniform(5, 12) if style is None else 5 + 7 * style.frequency + rng.normal(0, 0.3)
        alt = np.sin(u * freq + rng.uniform(0, 6.3)) > rng.uniform(0.2, 0.7)
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


def render_image(spec: ClassSpec, size: int, rng: np.random.Generator, objects: int = 1,
                 body_cue: float = 0.0) -> Rendered:
    """Draw one image of class `spec` with 1 or 2 objects; deterministic given `rng`'s state.

    `body_cue`: the share of objects drawn with their class's own body style (`BodyStyle`):
    class evidence in the whole body, as real objects have (0: only the part names the class)."""
    img = _background(rng, size)
    mask = np.zeros((size, size), np.uint8)
    objs = [_Object(rng) for _ in range(objects)]
    boxes, parts = [], []
    for obj, (scale, centre) in zip(objs, _place(objs, size, rng)):
        own, part = np.zeros_like(mask), np.zeros(mask.shape, bool)
        _draw_object(img, own, part, obj, spec, scale, centre, rng, body_cue)
        mask |= own
        boxes.append(_mask_box(own))
        parts.append(_mask_box(part))
    img = cv2.GaussianBlur(img, (0, 0), 0.5)  # camera softness, also on the object's edge
    img += rng.normal(0, rng.uniform(1, 5), img.shape).astype(np.float32)
    return Rendered(np.clip(img + 0.5, 0, 255).astype(np.uint8), mask, boxes, parts)
