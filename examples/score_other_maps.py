"""Score maps from another method with wsolevaluation's protocol: files, or streamed in memory.

    ornet synth data/synth
    python examples/score_other_maps.py data/synth --out scored/

Two training-free "methods" stand in for yours: a centre prior and a colour-contrast saliency
map. Their maps are saved as wsolevaluation expects them (``<image_id>.npy``, 224 x 224, float
in [0, 1]) next to a wsolevaluation metadata folder written from the dataset, and scored with
``ornet.evaluate_scoremaps`` (MaxBoxAcc, MaxBoxAccV2, PxAP). The same maps are then scored in
memory with the streaming metrics ``ornet.BoxAccuracySweep`` and ``ornet.PxAP``, which give the
same numbers (the script checks it). Swap `centre_prior` for your method's maps.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import torch

import ornet

SIZE = 224  # wsolevaluation's resized image


def centre_prior(image: np.ndarray) -> np.ndarray:
    """A Gaussian bump in the middle of the image, whatever it shows."""
    y, x = np.mgrid[0:SIZE, 0:SIZE] / (SIZE - 1) - 0.5
    return np.exp(-(x ** 2 + y ** 2) / (2 * 0.2 ** 2))


def colour_contrast(image: np.ndarray) -> np.ndarray:
    """Distance of each pixel's Lab colour from the image border's median colour, smoothed."""
    lab = cv2.cvtColor(cv2.resize(image, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR), cv2.COLOR_RGB2LAB)
    lab = lab.astype(np.float32)
    border = np.concatenate([lab[:8].reshape(-1, 3), lab[-8:].reshape(-1, 3),
                             lab[:, :8].reshape(-1, 3), lab[:, -8:].reshape(-1, 3)])
    distance = np.linalg.norm(lab - np.median(border, axis=0), axis=2)
    return cv2.GaussianBlur(distance, (0, 0), 6)


METHODS = {"centre_prior": centre_prior, "colour_contrast": colour_contrast}


def minmax(m: np.ndarray) -> np.ndarray:
    lo, hi = float(m.min()), float(m.max())
    return np.zeros_like(m, dtype=np.float32) if hi == lo else ((m - lo) / (hi - lo)).astype(np.float32)


def write_metadata(records, root: Path, out: Path) -> tuple[Path, Path]:
    """wsolevaluation metadata of `records`: a box folder and a mask folder (masks relative to `root`)."""
    boxes_dir, masks_dir = out / "boxes", out / "masks"
    for d in (boxes_dir, masks_dir):
        d.mkdir(parents=True, exist_ok=True)
        (d / "image_ids.txt").write_text("".join(f"{r.image_id}\n" for r in records))
        (d / "image_sizes.txt").write_text("".join(f"{r.image_id},{r.size[0]},{r.size[1]}\n" for r in records))
    lines = []
    for r in records:
        w, h = r.size
        for x0, y0, x1, y1 in r.boxes:  # inclusive pixels inside the image, as wsolevaluation's files
            lines.append(f"{r.image_id},{int(x0)},{int(y0)},{min(int(x1), w - 1)},{min(int(y1), h - 1)}\n")
    (boxes_dir / "localization.txt").write_text("".join(lines))
    (masks_dir / "localization.txt").write_text(
        "".join(f"{r.image_id},{r.mask_path.relative_to(root).as_posix()},\n" for r in records))
    return boxes_dir, masks_dir


def gt_boxes_224(record) -> torch.Tensor:
    """The record's boxes as in the metadata, scaled to 224 x 224 (the metric truncates them)."""
    w, h = record.size
    b = np.array([[x0, y0, min(x1, w - 1), min(y1, h - 1)] for x0, y0, x1, y1 in record.boxes], dtype=np.float64)
    b = np.floor(b)
    return torch.from_numpy(b * SIZE / np.array([w, h, w, h], dtype=np.float64))


def gt_mask_224(record) -> torch.Tensor:
    grey = cv2.imread(str(record.mask_path), cv2.IMREAD_GRAYSCALE)
    return torch.from_numpy(cv2.resize(np.float32(grey), (SIZE, SIZE), interpolation=cv2.INTER_NEAREST) > 0.5)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", type=Path, help="a dataset in the CUB layout with masks (e.g. `ornet synth` output)")
    p.add_argument("--out", type=Path, default=Path("scored"))
    p.add_argument("--split", default="test")
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args(argv)

    records = ornet.read_dataset("cub", args.data, val_per_class=0, strict=True).split(args.split)
    boxes_meta, masks_meta = write_metadata(records, args.data, args.out / "metadata")
    table = {}
    for name, method in METHODS.items():
        maps_dir = args.out / "scoremaps" / name
        sweep = ornet.BoxAccuracySweep(iou_thresholds=(30, 50, 70))
        pxap = ornet.PxAP()
        for r in records:
            image = cv2.cvtColor(cv2.imread(str(r.path)), cv2.COLOR_BGR2RGB)
            scoremap = minmax(method(image))
            path = maps_dir / f"{r.image_id}.npy"  # wsolevaluation's name: <image_id>.npy
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, scoremap)
            m = torch.from_numpy(scoremap)[None, None]
            sweep.update(m, [gt_boxes_224(r)])
            pxap.update(m, gt_mask_224(r)[None, None].float())
        files_v1 = ornet.evaluate_scoremaps(boxes_meta, maps_dir, workers=args.workers)
        files_v2 = ornet.evaluate_scoremaps(boxes_meta, maps_dir, multi_contour=True, workers=args.workers)
        files_px = ornet.evaluate_scoremaps(masks_meta, maps_dir, mask_root=args.data, workers=args.workers)
        streamed = ornet.summarize(sweep.compute())
        row = {"max_box_acc": files_v1["max_box_acc"]["50"], "max_box_acc_v2": files_v2["max_box_acc_mean"],
               "pxap": files_px["pxap"], "streamed_max_box_acc": streamed["max_box_acc"],
               "streamed_max_box_acc_v2": streamed["max_box_acc_v2"], "streamed_pxap": float(pxap.compute())}
        for key in ("max_box_acc", "max_box_acc_v2", "pxap"):
            if not np.isclose(row[key], row[f"streamed_{key}"]):
                raise SystemExit(f"{name}: {key} from files {row[key]} != streamed {row['streamed_' + key]}")
        table[name] = row
    print(f"{'method':<16} {'MaxBoxAcc':>9} {'MaxBoxAccV2':>11} {'PxAP':>6}   ({len(records)} {args.split} images)")
    for name, row in table.items():
        print(f"{name:<16} {row['max_box_acc']:9.2f} {row['max_box_acc_v2']:11.2f} {row['pxap']:6.2f}")
    (args.out / "scores.json").write_text(json.dumps(table, indent=1) + "\n")
    print("files and streamed metrics agree; wrote", args.out / "scores.json")


if __name__ == "__main__":
    main()
