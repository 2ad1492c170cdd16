"""Torch-free description of a dataset on disk: what readers produce.

A reader turns files into a `DatasetIndex`: class names, and per split a list of
`Record`s (where the image is, its label, its boxes in original pixels). It collects every
problem it finds instead of stopping at the first, so `ornet check-data` can report them
all; code that trains or evaluates calls `DatasetIndex.raise_problems()` first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError, OrnetError

Box = tuple[float, float, float, float]
"""x0, y0, x1, y1 in pixels of the original image (continuous: CUB's x, y, x + w, y + h)."""


@dataclass(frozen=True)
class Record:
    """One image of a split, before anything is loaded."""

    image_id: str
    """Identifier relative to the dataset (e.g. ``001.Black_footed_Albatross/x.jpg``)."""
    path: Path
    label: int
    boxes: tuple[Box, ...] = ()
    size: tuple[int, int] | None = None
    """(width, height) of the original image when the metadata gives it."""
    mask_path: Path | None = None
    ignore_path: Path | None = None
    crop_bottom: int = 0
    """Pixels to cut from the bottom of the image on load (FGVC-Aircraft's banner)."""


@dataclass
class DatasetIndex:
    """What a reader found: classes, splits and every problem."""

    name: str
    root: Path
    classes: list[str]
    splits: dict[str, list[Record]] = field(default_factory=dict)
    problems: list[DataError] = field(default_factory=list)
    has_boxes: bool = True
    has_masks: bool = False

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def split(self, name: str) -> list[Record]:
        if name not in self.splits:
            known = ", ".join(self.splits) or "none"
            hint = " (carve one from train with --data.tune_per_class N or --data.tune_list FILE)" if name == "tune" else ""
            raise OrnetError(f"dataset {self.name!r} at {self.root} has no split {name!r}; splits: {known}{hint}")
        records = self.splits[name]
        if not records:
            raise DataError(f"split {name!r} is empty", file=self.root)
        return records

    def raise_problems(self) -> None:
        """Raise the first problem, saying how many more there are (check-data lists them all)."""
        if not self.problems:
            return
        first = self.problems[0]
        more = len(self.problems) - 1
        if more:
            suffix = f" (and {more} more problem{'s' if more > 1 else ''}; run `ornet check-data` to list them)"
            raise DataError(first.what + suffix, file=first.file, line=first.line)
        raise first


def check_image_id(image_id: str, file: str | Path, line: int | None) -> None:
    """Reject ids that would escape the dataset root (``..`` parts or absolute paths)."""
    p = Path(image_id)
    if p.is_absolute() or image_id.startswith(("/", "\\")) or ".." in p.parts or ".." in image_id.split("\\"):
        raise DataError(f"image id {image_id!r} escapes the dataset root", file=str(file), line=line)


def check_box(box: Box, size: tuple[int, int] | None, clip: bool, file: str | Path, line: int | None,
              image_id: str) -> Box:
    """Validate an x0 y0 x1 y1 box against the image size (width, height); clip only when asked."""
    x0, y0, x1, y1 = box
    if not all(v == v and abs(v) != float("inf") for v in box):
        raise DataError(f"box {box} of {image_id} is not finite", file=str(file), line=line)
    if x1 < x0 or y1 < y0:
        raise DataError(f"box {box} of {image_id} has x1 < x0 or y1 < y0", file=str(file), line=line)
    if size is not None:
        w, h = size
        inside = x0 >= 0 and y0 >= 0 and x1 <= w and y1 <= h
        if not inside:
            if not clip:
                raise DataError(
                    f"box {box} of {image_id} lies outside the {w}x{h} image "
                    "(set data.clip_boxes=true to clip)", file=str(file), line=line)
            x0, y0 = max(0.0, x0), max(0.0, y0)
            x1, y1 = min(float(w), x1), min(float(h), y1)
            if x1 <= x0 or y1 <= y0:
                raise DataError(f"box {box} of {image_id} is empty after clipping", file=str(file), line=line)
    return (float(x0), float(y0), float(x1), float(y1))
