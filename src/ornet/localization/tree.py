"""Boxes at every level in one pass over the pixels: the component tree (C extension ``_ctree``).

wsolevaluation traces OpenCV contours once per threshold; on cluttered maps that is most of
its time. The regions of ``values > level`` for all levels at once come from a union-find over
the pixels taken from the highest value down (a max-tree), and every contour of OpenCV's
``RETR_TREE`` has a counterpart there (checked on thousands of random maps, tests/test_tree.py):

- an outer contour per 8-connected region, whose ``boundingRect`` is the region's extent;
- a hole contour per 4-connected background component that does not touch the image border,
  traced through the region's pixels 4-adjacent to it: its extent grown by one pixel each side;
- ``cv2.contourArea`` of a region's outer contour (the shoelace formula on the traced boundary
  through pixel centres) is the number of 2 x 2 pixel windows inside the region with its holes
  filled, three-pixel windows counting one half. The largest contour is always some region's
  outer contour (a hole's lies inside its region's). Where two regions tie for the largest
  area, OpenCV's contour order decides: those levels are traced by :mod:`.contours`.

Maps reach the extension as a "band" image: the number of levels below each pixel's value,
so that the foreground at level ``i`` is ``band > i`` whatever the map's dtype.
"""

from __future__ import annotations

import cv2
import numpy as np

try:
    from . import _ctree
except ImportError:  # not built (no C compiler at install): boxes.py uses contours.py instead
    _ctree = None

AVAILABLE = _ctree is not None
MAX_LEVELS = 65534
MAX_SIDE = 32000


def band_image(values: np.ndarray, reps: np.ndarray) -> np.ndarray:
    """uint16 H x W: how many of the sorted levels ``reps`` lie below each value (so the pixel is
    above level ``i`` iff band > i)."""
    if values.dtype == np.uint8:
        lut = np.searchsorted(reps, np.arange(256), side="left").astype(np.uint16)
        return cv2.LUT(np.ascontiguousarray(values), lut)
    return np.searchsorted(reps, values, side="left").astype(np.uint16)


def supports(values: np.ndarray, reps: np.ndarray) -> bool:
    """Whether the extension is built and can take this map and number of levels."""
    return AVAILABLE and len(reps) <= MAX_LEVELS and max(values.shape) <= MAX_SIDE


def sweep_tree(values: np.ndarray, reps: np.ndarray, want_largest: bool, want_multi: bool
               ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The regions of ``values > reps[i]`` for every sorted representative level ``reps[i]``.

    Returns ``(largest, multi)``: ``largest`` (n x 5 int32) holds per level the box of the region
    of largest outer-contour area and a flag (0: no pixel above the level, box 0; 1: that region
    is the only one of that area; 2: a tie, ask OpenCV); ``multi`` (K x 5 int32) holds
    ``level index, x0, y0, x1, y1`` for every contour (regions and holes) of every level, in no
    particular order. Boxes are in boundingRect's convention (see boxes.py).
    """
    if not supports(values, reps):
        raise ValueError("the component-tree sweep is not built or cannot take this map")
    height, width = values.shape
    n = len(reps)
    band = np.ascontiguousarray(band_image(values, reps))
    largest, multi = _ctree.sweep(band, height, width, n, want_largest, want_multi)
    return (np.frombuffer(largest, dtype=np.int32).reshape(n, 5) if want_largest else None,
            np.frombuffer(multi, dtype=np.int32).reshape(-1, 5) if want_multi else None)
