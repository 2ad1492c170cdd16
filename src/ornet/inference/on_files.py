"""`localize_files`: a `Localizer` over image files, folders and globs, one result per image.

    loc = ornet.load_model("runs/ornet")
    for r in loc.localize_files(["photos/", "more/*.jpg"], batch_size=16):
        if r.error is None:
            print(r.path, r.boxes, r.class_name)    # boxes: N x 4 int64 in the photo's pixels

Inputs are found by `inputs.expand_inputs` (files as given, folders searched recursively, globs
expanded; in order, without duplicates) and decoded ahead in threads (`inputs.prefetch`), a
batch at a time through `Localizer.predict`: the WHOLE image resized to crop x crop, the map
thresholded as evaluation does, the boxes scaled back to each photo
(`localization.boxes.scale_boxes`, rule ``cover``). An image that cannot be decoded is yielded
with its ``error`` and the rest go on. ``ornet localize`` is this loop plus the writing of
boxes.json, overlays and maps.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError


@dataclass
class FilePrediction:
    """One input file's result (`localize_files`). With ``error`` set (an unreadable file) only
    ``path`` and ``error`` are filled.

    ``boxes``: N x 4 int64, x0, y0, x1, y1 inclusive pixels of the photo (after EXIF rotation;
    N = 0 when nothing passes the threshold); ``probs``: K softmax probabilities (None for a model
    without a classifier); ``scoremap``: crop x crop float32 in [0, 1], the map that was
    thresholded; ``raw_map``: the network's map, h x w float32; ``display``: the photo for drawing
    (H' x W' x 3 uint8, longer side at most `inputs.OVERLAY_MAX_SIDE`).
    """

    path: Path
    width: int = 0
    height: int = 0
    boxes: np.ndarray | None = None
    probs: object = None  # torch.Tensor (K,) on the CPU
    classes: Sequence[str] = ()
    scoremap: np.ndarray | None = None
    raw_map: np.ndarray | None = None
    display: np.ndarray | None = None
    error: str | None = None

    @property
    def image_map(self) -> np.ndarray:
        """``scoremap`` at the photo's size: height x width float32 in [0, 1]."""
        from ..viz.draw import resize_map

        return resize_map(self.scoremap, self.height, self.width)

    @property
    def class_index(self) -> int | None:
        return None if self.probs is None else int(self.probs.argmax())

    @property
    def class_name(self) -> str | None:
        i = self.class_index
        return None if i is None else self.classes[i] if i < len(self.classes) else str(i)


def localize_files(loc, inputs: str | os.PathLike | Sequence[str | os.PathLike], *, threshold: float | None = None,
                   box_mode: str | None = None, batch_size: int = 16, exclude: str | os.PathLike | None = None,
                   progress: bool = False) -> Iterator[FilePrediction]:
    """Yield one `FilePrediction` per input image, in the order `inputs.expand_inputs` finds them.

    loc: a `Localizer`; inputs: image files, folders (recursive) or glob patterns (one or a
    list); threshold, box_mode: as `Localizer.predict` (default: the Localizer's); exclude: a
    folder whose files are skipped (the output folder); progress: a progress line on stderr, a
    ``skipped FILE: why`` line per unreadable file and a summary (`runtime.progress_lines`).
    A missing input, or a folder or pattern without images, is an OrnetError before any work.
    """
    import torch

    from ..runtime.progress_lines import Progress
    from .inputs import expand_inputs, prefetch

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    paths = expand_inputs([os.fspath(i) for i in inputs], exclude=None if exclude is None else Path(exclude))
    done = unreadable = 0
    with Progress(len(paths), "localize", quiet=not progress) as bar:
        for start, loaded in prefetch(paths, batch_size, loc.transform):
            ok = [(i, item) for i, item in enumerate(loaded) if not isinstance(item, DataError)]
            for i, item in enumerate(loaded):
                if isinstance(item, DataError):
                    bar.write(f"skipped {paths[start + i]}: {item.what}")
            results: dict[int, FilePrediction] = {}
            if ok:
                pred = loc.predict(torch.stack([item.tensor for _, item in ok]), threshold=threshold,
                                   box_mode=box_mode, sizes=[(item.height, item.width) for _, item in ok])
                probs = pred.probs.cpu() if pred.logits is not None else None
                raw = pred.maps[:, 0].cpu().numpy()
                for j, (i, item) in enumerate(ok):
                    results[i] = FilePrediction(paths[start + i], item.width, item.height, pred.boxes[j],
                                                None if probs is None else probs[j], loc.classes, pred.scoremaps[j],
                                                raw[j].astype(np.float32), item.display)
            for i, item in enumerate(loaded):
                if isinstance(item, DataError):
                    unreadable += 1
                    yield FilePrediction(paths[start + i], error=item.what)
                else:
                    done += 1
                    yield results[i]
            bar.update(len(loaded))
        bar.close(f"{done} images localized, {unreadable} unreadable in {time.perf_counter() - bar.start:.1f} s")
