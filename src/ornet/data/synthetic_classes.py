"""The synthetic benchmark's classes: what identifies each (a small part at the front of a
large, weakly informative body) and each class's own body style (numpy only).

`class_specs` is drawn from its own seeded streams, so a class list is the same on every
machine; `synthetic_draw.render_image` draws images of these classes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30), "yellow": (240, 220, 30), "green": (30, 170, 50), "cyan": (40, 200, 220),
    "blue": (30, 60, 220), "magenta": (210, 40, 200), "white": (245, 245, 245), "black": (20, 20, 20),
}
PATTERNS = ("ring", "halves", "bands", "eyes")
"""Part patterns, each symmetric about the body axis so a horizontal flip keeps the class."""
SHAPES = ("disc", "square", "diamond", "triangle")
COLOUR_PAIRS = list(itertools.combinations(PALETTE, 2))
MAX_CLASSES = len(COLOUR_PAIRS) * len(PATTERNS) * len(SHAPES)
AREA_RANGE = (0.10, 0.60)
"""Guaranteed box area / image area of a one-object image (targets are drawn in 0.12-0.55)."""
AREA_RANGE_TWO = (0.04, 0.25)
"""The same for each object of a two-object image (targets 0.08-0.22, shrunk until both fit)."""
STREAM_CLASSES, STREAM_IMAGE, STREAM_SECOND, STREAM_BODY = 1, 2, 3, 4
TEXTURES = ("plain", "spots", "bands", "mottled")


@dataclass(frozen=True)
class BodyStyle:
    """A class's own body (used by a share `body_cue` of its objects): hue, saturation, a
    texture with its parameters, and how the texture's second colour relates to the first."""

    hue: float
    saturation: float
    texture: int
    """1 spots, 2 bands, 3 mottled (`TEXTURES`; never plain: the style must show)."""
    frequency: float
    """bands: stripes per unit of the body's axis; spots: how many."""
    contrast: float
    """second colour = first colour x contrast (< 1 darker pattern, > 1 lighter)."""


@dataclass(frozen=True)
class ClassSpec:
    """What identifies a class: its part. `body_hue` is a weak preference of the body colour;
    `style` the class's own body, drawn on a share `body_cue` of its objects (`render_image`)."""

    name: str
    colours: tuple[tuple[int, int, int], tuple[int, int, int]]
    pattern: str
    shape: str
    body_hue: float
    style: BodyStyle | None = None


def class_specs(classes: int, seed: int) -> list[ClassSpec]:
    """Distinct parts: up to 28 classes every class has its own colour pair; beyond, the pair
    repeats with another (pattern, shape)."""
    rng = np.random.default_rng((seed, STREAM_CLASSES))
    pair_order = rng.permutation(len(COLOUR_PAIRS))
    styles = list(itertools.product(PATTERNS, SHAPES))
    offsets = rng.integers(0, len(styles), size=len(COLOUR_PAIRS))
    specs = []
    body = np.random.default_rng((seed, STREAM_BODY))  # its own stream: the parts stay as they were
    hues = (body.uniform(0, 1) + np.arange(classes) / max(classes, 1)) % 1.0  # spread round the wheel
    body.shuffle(hues)
    for c in range(classes):
        slot, layer = c % len(COLOUR_PAIRS), c // len(COLOUR_PAIRS)
        names = list(COLOUR_PAIRS[pair_order[slot]])
        if rng.random() < 0.5:
            names.reverse()
        pattern, shape = styles[(offsets[slot] + layer) % len(styles)]
        specs.append(ClassSpec(name=f"{c + 1:03d}.{names[0]}_{names[1]}_{pattern}_{shape}",
                               colours=(PALETTE[names[0]], PALETTE[names[1]]), pattern=pattern,
                               shape=shape, body_hue=float(rng.uniform(0, 1)),
                               style=BodyStyle(hue=float(hues[c]), saturation=float(body.uniform(0.3, 0.6)),
                                               texture=int(c % 3 + 1), frequency=float(body.uniform(0, 1)),
                                               contrast=float(body.choice([0.5, 1.45])))))
    return specs
