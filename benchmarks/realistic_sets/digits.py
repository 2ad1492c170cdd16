"""The "digits" set of the realistic sets: real handwritten digits on real photo crops, with clutter.

Digits: scikit-learn's `load_digits` (1,797 digits of 8 x 8 pixels, grey levels 0-16, the test
part of the UCI optdigits set, written by 13 people). It has no writer ids, so the split is by
index range: train digits come from the first 75% (indices 0-1347), test digits from the rest
(1348-1796). If the file is ordered by writer this keeps the writers apart; that order is not
documented, so treat the split as disjoint digits, possibly shared writers. Within a split each
class's digits are used in a seeded order, cycling (with new augmentation) when more images are
asked for than the range holds (about 135 train and 45 test digits per class).

Held out ("digits_heldout"): there is no other source of real handwritten digits in the packages,
so the held-out set reuses the 1,797 digits with the split turned round: its TEST digits are the
first 449 (indices 0-448, `HELDOUT_TEST_END`), never a test digit of "digits" (whose test figures
chose settings), and its train digits are the rest (449-1796). With the new photos
(common.HELDOUT_TRAIN_PHOTOS / HELDOUT_TEST_PHOTOS), its own random stream and the same rendering
and clutter (`thicken` 0 by default, as "digits": the held-out set measures the same task on data
no choice was made on, not a harder one).

Rendering: the 8 x 8 glyph (padded by one pixel) is upscaled with bicubic interpolation, blurred
and passed through a smooth step, which turns the blocky grey levels into smooth strokes with
crisp edges; `thicken` dilates the strokes by that many original pixels. Height 40-80% of the
image side, width x 0.8-1.2, slant +-12 degrees, ink colour contrasting with the photo under it
(its luma at least 70 levels from the mean luma of the photo under it, where possible). Clutter, pasted before the digit: 2-6 random
strokes of about the digit's stroke width and 1-3 pieces (a random half) of other digits of the
same split, each smaller than the digit. Mask: the digit's ink > 0.5.
"""

from __future__ import annotations

import colorsys

import cv2
import numpy as np

from .common import background, finish, paste

TRAIN_END = 1348
"""load_digits indices [0, TRAIN_END) give train digits, [TRAIN_END, 1797) test digits."""
HELDOUT_TEST_END = 1797 - TRAIN_END
"""digits_heldout: indices [0, HELDOUT_TEST_END) give test digits, [HELDOUT_TEST_END, 1797) train digits
(the same 449 / 1,348 sizes as digits' split, turned round)."""


def glyph(digit: np.ndarray, height: int, width: int, angle: float, thicken: float = 0.0) -> np.ndarray:
    """An 8 x 8 digit (0..16) -> ink in [0, 1] of about height x width (cut to its ink box, > 0.02)."""
    g = np.pad(np.asarray(digit, np.float32) / 16.0, 1)
    f = max(height, width) / 8.0
    big = cv2.resize(g, (round(10 * f * width / max(height, width)), round(10 * f * height / max(height, width))),
                     interpolation=cv2.INTER_CUBIC)
    big = cv2.GaussianBlur(big, (0, 0), 0.3 * f)
    ink = np.clip((big - 0.45) / 0.2, 0, 1)
    ink = ink * ink * (3 - 2 * ink)  # smooth step: crisp but anti-aliased stroke edges
    if thicken > 0:
        r = max(1, round(thicken * f / 2))
        ink = cv2.dilate(ink, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    h, w = ink.shape
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    ink = cv2.warpAffine(ink, rot, (w, h), flags=cv2.INTER_LINEAR)
    ys, xs = np.nonzero(ink > 0.02)
    return ink[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def luma(rgb: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of RGB values 0..255 (last axis)."""
    return rgb @ np.array([0.299, 0.587, 0.114], np.float32)


def ink_colour(under: np.ndarray, rng: np.random.Generator, contrast: float = 70.0) -> np.ndarray:
    """A random colour (RGB float32 0..255) whose luma differs from the mean luma of `under` (the
    photo pixels below the ink) by at least `contrast` where possible (up to 50 draws, then the best)."""
    mean = float(luma(under.reshape(-1, 3)).mean())
    best, gap = None, -1.0
    for _ in range(50):
        c = 255 * np.array(colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0, 0.9), rng.uniform(0, 1)), np.float32)
        g = abs(float(luma(c)) - mean)
        if g > gap:
            best, gap = c, g
        if g >= contrast:
            break
    return best


class DigitRenderer:
    """Renders one image of the digits set per (job, rng); see the module docstring."""

    def __init__(self, photos: dict, size: int, train: int, test: int, thicken: float = 0.0, heldout: bool = False):
        from sklearn.datasets import load_digits

        data = load_digits()
        self.images, self.target = data.images, data.target
        self.size, self.photos, self.thicken = size, photos, thicken
        self.class_names = [f"digit_{d}" for d in range(10)]
        if heldout:  # the split turned round (module docstring)
            ranges = {"train": range(HELDOUT_TEST_END, len(self.target)), "test": range(0, HELDOUT_TEST_END)}
        else:
            ranges = {"train": range(0, TRAIN_END), "test": range(TRAIN_END, len(self.target))}
        self.ranges = ranges
        self.pool = {s: np.array(list(r)) for s, r in ranges.items()}
        order = np.random.default_rng(0)  # a fixed order of digits per class; the seed varies the rest
        self.by_class = {s: [order.permutation([i for i in r if self.target[i] == c]) for c in range(10)]
                         for s, r in ranges.items()}
        self.counts = {"train": train, "test": test}

    def meta(self) -> dict:
        r = self.ranges
        return {"digits": "sklearn.datasets.load_digits", "train_indices": [r["train"].start, r["train"].stop],
                "test_indices": [r["test"].start, r["test"].stop], "thicken": self.thicken,
                "digits_per_class": {s: [len(v) for v in self.by_class[s]] for s in self.by_class}}

    def _ink(self, index: int, height: float, rng: np.random.Generator) -> np.ndarray:
        h = max(8, round(height))
        return glyph(self.images[index], h, max(6, round(h * rng.uniform(0.8, 1.2) * 0.75)), rng.uniform(-12, 12),
                     self.thicken)

    def __call__(self, job, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, str]:
        label, split, k = job
        s = self.size
        photo, img = background(self.photos[split], s, rng)
        height = rng.uniform(0.4, 0.8) * s
        stroke = max(2, round(height / 8 * (1.3 + self.thicken)))
        for _ in range(int(rng.integers(2, 7))):  # strokes
            n = int(rng.integers(2, 5))
            pts = rng.uniform(-0.1, 1.1, 2) * s + np.cumsum(rng.normal(0, 0.2 * s, (n, 2)), 0)
            col = tuple(float(c) for c in ink_colour(img, rng))
            cv2.polylines(img, [np.round(pts * 16).astype(np.int32)], False, col,
                          thickness=int(rng.integers(max(1, stroke // 3), stroke + 1)), lineType=cv2.LINE_AA,
                          shift=4)
        pool = self.pool[split]
        for _ in range(int(rng.integers(1, 4))):  # pieces of other digits
            ink = self._ink(int(pool[rng.integers(len(pool))]), height * rng.uniform(0.5, 0.85), rng)
            h, w = ink.shape
            if rng.random() < 0.5:
                ink = ink[: h // 2] if rng.random() < 0.5 else ink[h // 2:]
            else:
                ink = ink[:, : w // 2] if rng.random() < 0.5 else ink[:, w // 2:]
            x, y = int(rng.integers(-w // 4, s)), int(rng.integers(-h // 4, s))
            under = img[max(y, 0):y + h, max(x, 0):x + w]
            colour = np.broadcast_to(ink_colour(under if under.size else img, rng), (*ink.shape, 3))
            paste(img, colour, ink, x, y)
        digits = self.by_class[split][label]
        ink = self._ink(int(digits[k % len(digits)]), height, rng)
        h, w = ink.shape
        h, w = min(h, s), min(w, s)
        ink = ink[:h, :w]
        x, y = int(rng.integers(0, s - w + 1)), int(rng.integers(0, s - h + 1))
        colour = ink_colour(img[y:y + h, x:x + w], rng) * rng.uniform(0.95, 1.05, 3)
        paste(img, np.broadcast_to(colour, (h, w, 3)), ink, x, y)
        mask = np.zeros((s, s), np.uint8)
        mask[y:y + h, x:x + w][ink > 0.5] = 255
        return finish(img, rng), mask, photo
