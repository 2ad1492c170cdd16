"""Reading a run's ``snapshots/`` folder (the evolution figure's source; torch-free).

The writer is `methods.ornet.map_snapshots.MapSnapshots` (stage 2, after every epoch): ``images.npz`` holds
``images`` (N x H x W x 3 uint8 RGB) and optionally ``image_ids``; ``epoch_NNN.npz`` holds
``maps`` (N x h x w uint8, map x 255) after NNN epochs (000: before refinement);
``refine_epoch_NNN.npz`` (float maps in [0, 1]) is read too. Nothing is unpickled.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

EPOCH_FILE = re.compile(r"^(?:refine_)?epoch_(\d+)\.npz$")
"""epoch_NNN.npz (`MapSnapshots`); refine_epoch_NNN.npz (float maps) is read too."""


@dataclass
class Snapshots:
    """What a snapshots folder holds."""

    images: np.ndarray
    """N x H x W x 3 uint8 RGB."""
    epochs: list[tuple[int, np.ndarray]]
    """(epochs done, maps N x h x w: uint8 0..255 or float in [0, 1]) sorted by epoch; 0 = before refinement."""
    image_ids: list[str] | None = None


def load_snapshots(folder: str | os.PathLike) -> Snapshots:
    """Read a snapshots folder (for `figures.evolution_grid`).

    Raises FileNotFoundError when the folder has no images.npz or no epoch file.
    """
    folder = Path(folder)
    images_file = folder / "images.npz"
    if not images_file.is_file():
        raise FileNotFoundError(f"{images_file} not found")
    arrays = _read_npz(images_file, "images", "image_ids")
    images = arrays["images"]
    ids = [str(i) for i in arrays["image_ids"]] if "image_ids" in arrays else None
    epochs: dict[int, np.ndarray] = {}
    for path in sorted(folder.iterdir()):
        match = EPOCH_FILE.match(path.name)
        if match:
            epochs[int(match.group(1))] = _read_npz(path, "maps")["maps"]
    if not epochs:
        raise FileNotFoundError(f"no epoch_NNN.npz snapshot in {folder}")
    return Snapshots(images=images, epochs=sorted(epochs.items()), image_ids=ids)


def _read_npz(path: Path, key: str, *optional: str) -> dict[str, np.ndarray]:
    """Arrays of an .npz without pickles; OrnetError naming the file (object arrays are refused)."""
    import zipfile

    from ..errors import OrnetError

    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in (key, *optional) if k == key or k in z.files}
    except (ValueError, OSError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise OrnetError(f"{path}: unreadable snapshot, refused ({' '.join(str(e).split())})") from None
