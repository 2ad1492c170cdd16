"""Shared fixtures: tiny datasets built on the fly (never committed binaries)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

STUDIES = Path(__file__).resolve().parents[1] / "benchmarks" / "studies"


def load_study(name: str):
    """benchmarks/studies/NAME.py as a module (the folder is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"study_{name}", STUDIES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_cub_tree(root: Path, classes: int = 3, per_class: int = 6, size: tuple[int, int] = (80, 64),
                   test_every: int = 3, masks: bool = True, seed: int = 0) -> Path:
    """A CUB-200-2011 layout tree: a bright rectangle (the object) on noise, mask = the rectangle.

    size is (width, height). Every `test_every`-th image of a class goes to test.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "images").mkdir(exist_ok=True)
    if masks:
        (root / "segmentations").mkdir(exist_ok=True)
    w, h = size
    images, labels, split, boxes = [], [], [], []
    with open(root / "classes.txt", "w") as f:
        for c in range(classes):
            f.write(f"{c + 1} {c + 1:03d}.class_{c}\n")
    iid = 0
    for c in range(classes):
        folder = f"{c + 1:03d}.class_{c}"
        (root / "images" / folder).mkdir(exist_ok=True)
        if masks:
            (root / "segmentations" / folder).mkdir(exist_ok=True)
        for k in range(per_class):
            iid += 1
            rel = f"{folder}/img_{k:03d}.jpg"
            arr = rng.integers(0, 80, size=(h, w, 3), dtype=np.uint8)
            bw, bh = int(rng.integers(w // 4, w // 2)), int(rng.integers(h // 4, h // 2))
            x0, y0 = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
            colour = np.array([255 * (c == 0), 255 * (c == 1), 255 * (c >= 2)], dtype=np.uint8)
            arr[y0:y0 + bh, x0:x0 + bw] = np.maximum(colour, 120)
            Image.fromarray(arr).save(root / "images" / rel, quality=95)
            if masks:
                m = np.zeros((h, w), dtype=np.uint8)
                m[y0:y0 + bh, x0:x0 + bw] = 255
                Image.fromarray(m).save(root / "segmentations" / rel.replace(".jpg", ".png"))
            images.append(f"{iid} {rel}")
            labels.append(f"{iid} {c + 1}")
            split.append(f"{iid} {0 if k % test_every == 0 else 1}")
            boxes.append(f"{iid} {x0}.0 {y0}.0 {bw}.0 {bh}.0")
    return write_cub_lists(root, images, labels, split, boxes)


def write_cub_lists(root: Path, images: list[str], labels: list[str], split: list[str], boxes: list[str]) -> Path:
    """CUB's four list files (images, image_class_labels, train_test_split, bounding_boxes), one line each."""
    for name, lines in (("images.txt", images), ("image_class_labels.txt", labels),
                        ("train_test_split.txt", split), ("bounding_boxes.txt", boxes)):
        (root / name).write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def cub_tree(tmp_path: Path) -> Path:
    return write_cub_tree(tmp_path / "cub")


TINY_RUN = {"trainer.max_epochs": 1, "trainer.limit_train_batches": 2, "trainer.progress": False,
            "trainer.snapshot_images": 3, "model.generator_width": 8, "data.val_per_class": 2,
            "data.num_workers": 0, "data.resize": 64, "data.crop": 64}
"""Overrides of the demo preset for a run trained in seconds (public API tests and examples)."""


@pytest.fixture(scope="session")
def api_run(tmp_path_factory) -> Path:
    """A tiny ORNet run trained through the public API on `ornet synth` data (data/ beside it)."""
    import ornet

    root = tmp_path_factory.mktemp("api")
    ornet.make_synthetic(root / "data", classes=3, train=24, test=12, size=64, workers=1)
    cfg = ornet.load_config("demo", {**TINY_RUN, "data.root": root / "data"})
    ornet.train(cfg, root / "run", quiet=True)
    return root / "run"


class SmallDisk:
    """Real small file systems (tmpfs) for full-disk tests; unmounted at the end of the test."""

    def __init__(self, base: Path):
        self.base, self.mounted = base, []

    def make(self, size: int, name: str = "small") -> Path:
        """A fresh tmpfs of `size` bytes (rounded up to pages by the kernel); skips the test where
        mounting is not allowed (not root, or a container without CAP_SYS_ADMIN)."""
        import subprocess

        path = self.base / name
        path.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={int(size)}", "tmpfs", str(path)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({(proc.stderr or proc.stdout).strip() or proc.returncode}): "
                        "the full-disk test needs root with mount permission, as on CI")
        self.mounted.append(path)
        return path

    def resize(self, path: Path, size: int) -> None:
        import subprocess

        subprocess.run(["mount", "-o", f"remount,size={int(size)}", str(path)], check=True)

    def close(self) -> None:
        import subprocess

        for path in reversed(self.mounted):
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def small_disk(tmp_path: Path):
    disk = SmallDisk(tmp_path / "mnt")
    yield disk
    disk.close()
