"""Localize your own images with a trained model: classes, boxes in original pixels, overlays.

    ornet synth data/synth && ornet train --config demo --data.root data/synth --out runs/demo
    python examples/localize_images.py runs/demo data/synth/images/001.*/ --out localized/

For every image it prints the predicted class, its probability and the boxes (x0, y0, x1, y1,
inclusive pixels of the image as stored, after EXIF rotation), writes OUT/<name>.png (the map
and the boxes over the image) and OUT/predictions.json. What `ornet localize` does, from Python:
the model comes with its own preprocessing and the threshold chosen on the validation split.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

import ornet

SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def find_images(inputs: list[str]) -> list[Path]:
    """Files as given; folders searched recursively for images."""
    paths = []
    for item in map(Path, inputs):
        paths += sorted(p for p in item.rglob("*") if p.suffix.lower() in SUFFIXES) if item.is_dir() else [item]
    return paths


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="run folder, model.json or a checkpoint (checkpoints/refine.ckpt)")
    p.add_argument("images", nargs="+", help="image files or folders")
    p.add_argument("--out", type=Path, default=Path("localized"))
    p.add_argument("--threshold", type=float, default=None, help="default: the model's")
    p.add_argument("--box-mode", choices=("all", "largest", "multi"), default=None, help="default: the model's")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    args = p.parse_args(argv)

    loc = ornet.load_model(args.model, device=args.device)
    print(loc)
    paths = find_images(args.images)
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for start in range(0, len(paths), args.batch_size):
        batch = paths[start:start + args.batch_size]
        pred = loc.predict(batch, threshold=args.threshold, box_mode=args.box_mode)
        probs = pred.probs.max(dim=1).values.tolist()
        for path, boxes, name, prob, full_map in zip(batch, pred.boxes, pred.class_names, probs, pred.image_maps):
            print(f"{path}: {name} ({prob:.2f}), boxes {boxes.tolist()}")
            with Image.open(path) as im:
                image = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
            panel = ornet.overlay(image, full_map, pred_boxes=boxes, title=f"{name} {prob:.2f}")
            Image.fromarray(panel).save(args.out / f"{path.stem}.png")
            results.append({"file": str(path), "class": name, "probability": prob, "boxes": boxes.tolist(),
                            "height": full_map.shape[0], "width": full_map.shape[1]})
    threshold = loc.threshold if args.threshold is None else args.threshold
    (args.out / "predictions.json").write_text(json.dumps(
        {"threshold": threshold, "box_mode": args.box_mode or loc.box_mode, "images": results}, indent=1) + "\n")
    print(f"{len(results)} images -> {args.out}")


if __name__ == "__main__":
    main()
