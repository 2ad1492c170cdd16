"""Drawing primitives: colour maps, overlays, boxes, captions, tiles (STYLE.md, habit 9).

Every function is pure: numpy arrays in, a new ``H x W x 3`` ``uint8`` RGB array out; nothing
here reads or writes files. Conventions:

- **image**: ``H x W x 3`` RGB, ``uint8`` or float in [0, 1] (``as_rgb8`` also accepts
  ``3 x H x W`` and grey ``H x W``).
- **map**: 2-D float array in [0, 1] of any resolution; it is resized to the image
  (bilinear) before it is coloured. Values outside [0, 1] are clipped, NaN is an error.
- **boxes**: ``N x 4`` ``x0, y0, x1, y1`` in pixels of the image being drawn on; the edges are
  drawn on the pixels ``round(x0) .. round(x1)`` (inclusive), clipped to the image.
- **colours** (the seed's convention for failure figures, METHOD.md): predicted boxes
  GREEN ``(0, 255, 0)``, ground-truth boxes BLUE ``(0, 0, 255)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

GREEN = (0, 255, 0)
"""Predicted boxes."""
BLUE = (0, 0, 255)
"""Ground-truth boxes."""
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)


def as_rgb8(image: np.ndarray) -> np.ndarray:
    """Any displayable image -> ``H x W x 3`` ``uint8`` RGB (a copy).

    Accepts ``H x W x 3``, ``3 x H x W`` (a torch-style channel-first array), ``H x W`` (grey)
    and ``H x W x 1``; ``uint8`` as it is, floats as values in [0, 1] (clipped).
    """
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[2] not in (1, 3):
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3, 3 x H x W or H x W image, got shape {a.shape}")
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a).copy()
    if a.dtype == bool or not np.issubdtype(a.dtype, np.number):
        raise TypeError(f"expected a uint8 or float image, got dtype {a.dtype}")
    a = a.astype(np.float32)
    if np.isnan(a).any():
        raise ValueError("image contains NaN")
    return np.ascontiguousarray((np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))


def check_map(activation: np.ndarray) -> np.ndarray:
    """A 2-D float32 map in [0, 1] (``1 x h x w`` is squeezed); raises on other shapes or NaN."""
    m = np.asarray(activation)
    if m.ndim == 3 and m.shape[0] == 1:
        m = m[0]
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"expected a 2-D map (h x w), got shape {m.shape}")
    if m.dtype == np.uint8:
        return m.astype(np.float32) / 255.0
    m = m.astype(np.float32)
    if np.isnan(m).any():
        raise ValueError("map contains NaN")
    return np.clip(m, 0.0, 1.0)


def resize_map(activation: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a map to ``height x width`` (float32, still in [0, 1])."""
    m = check_map(activation)
    if m.shape == (height, width):
        return m
    return np.clip(cv2.resize(m, (width, height), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)


def colorize(activation: np.ndarray, colormap: int = cv2.COLORMAP_JET) -> np.ndarray:
    """A map in [0, 1] -> ``h x w x 3`` uint8 RGB with a jet-like colour map (0 blue, 1 red)."""
    m = check_map(activation)
    grey = (m * 255.0 + 0.5).astype(np.uint8)
    bgr = cv2.applyColorMap(grey, colormap)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def overlay_map(image: np.ndarray, activation: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend the coloured map over the image: ``(1 - alpha) * image + alpha * colour(map)``.

    The map is resized to the image (bilinear). ``alpha`` in [0, 1]; 0 gives the image back.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    img = as_rgb8(image)
    h, w = img.shape[:2]
    colour = colorize(resize_map(activation, h, w))
    out = (1.0 - alpha) * img.astype(np.float32) + alpha * colour.astype(np.float32)
    return (out + 0.5).astype(np.uint8)


def _as_boxes(boxes) -> np.ndarray:
    b = np.asarray(boxes if boxes is not None else np.zeros((0, 4)), dtype=np.float64)
    if b.size == 0:
        return np.zeros((0, 4))
    if b.ndim == 1:
        b = b[None]
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"expected boxes N x 4 (x0, y0, x1, y1), got shape {b.shape}")
    if not np.isfinite(b).all():
        raise ValueError("boxes contain NaN or infinity")
    return b


def box_pixels(box: Sequence[float], height: int, width: int) -> tuple[int, int, int, int] | None:
    """The inclusive pixel rectangle a box's edges are drawn on, clipped; None if off the image."""
    x0, y0, x1, y1 = (float(v) for v in box)
    if x1 < x0:
        x0, x1 = x1, x0
    if y1 < y0:
        y0, y1 = y1, y0
    if x1 < 0 or y1 < 0 or x0 > width - 1 or y0 > height - 1:
        return None
    c = lambda v, hi: int(min(max(round(v), 0), hi))  # noqa: E731
    return c(x0, width - 1), c(y0, height - 1), c(x1, width - 1), c(y1, height - 1)


def draw_boxes(image: np.ndarray, boxes, color: tuple[int, int, int] = GREEN,
               thickness: int = 2) -> np.ndarray:
    """Draw box outlines (solid colour, no anti-aliasing) on a copy of the image.

    The outline starts on the box's edge pixels and grows inwards by ``thickness - 1``, so the
    drawn colour sits exactly on ``x0``, ``x1``, ``y0`` and ``y1`` and never outside the box.
    """
    if thickness < 1:
        raise ValueError(f"thickness must be >= 1, got {thickness}")
    out = as_rgb8(image)
    h, w = out.shape[:2]
    for box in _as_boxes(boxes):
        px = box_pixels(box, h, w)
        if px is None:
            continue
        x0, y0, x1, y1 = px
        t = max(0, min(thickness - 1, (x1 - x0) // 2, (y1 - y0) // 2))
        out[y0:y0 + t + 1, x0:x1 + 1] = color
        out[y1 - t:y1 + 1, x0:x1 + 1] = color
        out[y0:y1 + 1, x0:x0 + t + 1] = color
        out[y0:y1 + 1, x1 - t:x1 + 1] = color
    return out


def annotate(image: np.ndarray, activation: np.ndarray | None = None, pred_boxes=None, gt_boxes=None,
             alpha: float = 0.5, thickness: int = 2) -> np.ndarray:
    """Map overlay + ground-truth boxes (blue) + predicted boxes (green, drawn last, on top)."""
    out = as_rgb8(image) if activation is None else overlay_map(image, activation, alpha)
    if gt_boxes is not None:
        out = draw_boxes(out, gt_boxes, BLUE, thickness)
    if pred_boxes is not None:
        out = draw_boxes(out, pred_boxes, GREEN, thickness)
    return out


def caption(image: np.ndarray, text: str, height: int = 18, scale: float = 0.42) -> np.ndarray:
    """The image with a black band on top holding ``text`` in white, one band line per ``\\n``.

    A line too long for the width keeps its end (``~`` marks the cut): for ids and file names
    the end is the telling part.
    """
    img = as_rgb8(image)
    w = img.shape[1]
    font = cv2.FONT_HERSHEY_SIMPLEX
    lines = [" ".join(line.split()) for line in str(text).split("\n")] or [""]
    band = np.zeros((height * len(lines), w, 3), dtype=np.uint8)
    for k, line in enumerate(lines):
        if line and cv2.getTextSize(line, font, scale, 1)[0][0] > w - 4:
            while len(line) > 1 and cv2.getTextSize("~" + line, font, scale, 1)[0][0] > w - 4:
                line = line[1:]
            line = "~" + line if len(line) > 1 else ""
        if line:
            base = k * height + (height + cv2.getTextSize(line, font, scale, 1)[0][1]) // 2
            cv2.putText(band, line, (2, base), font, scale, WHITE, 1, cv2.LINE_AA)
    return np.concatenate([band, img], axis=0)


def fit(image: np.ndarray, size: int) -> np.ndarray:
    """Resize an image so that its longer side is ``size`` pixels (area filter down, linear up)."""
    img = as_rgb8(image)
    h, w = img.shape[:2]
    scale = size / max(h, w)
    if scale == 1:
        return img
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(img, (nw, nh), interpolation=interp)


def tile(images: Sequence[np.ndarray], cols: int, pad: int = 4, background: tuple[int, int, int] = WHITE
         ) -> np.ndarray:
    """Lay images out row by row, ``cols`` per row; each cell is as big as the largest image.

    Smaller images sit at the top-left of their cell. Raises on an empty list.
    """
    if not images:
        raise ValueError("tile needs at least one image")
    if cols < 1:
        raise ValueError(f"cols must be >= 1, got {cols}")
    imgs = [as_rgb8(i) for i in images]
    ch = max(i.shape[0] for i in imgs)
    cw = max(i.shape[1] for i in imgs)
    cols = min(cols, len(imgs))
    rows = -(-len(imgs) // cols)
    out = np.empty((rows * ch + (rows + 1) * pad, cols * cw + (cols + 1) * pad, 3), dtype=np.uint8)
    out[:] = background
    for k, img in enumerate(imgs):
        r, c = divmod(k, cols)
        y, x = pad + r * (ch + pad), pad + c * (cw + pad)
        out[y:y + img.shape[0], x:x + img.shape[1]] = img
    return out
