"""`ornet evaluate-maps`: score saved maps against wsolevaluation metadata (MaxBoxAcc, PxAP).

Interoperable with wsolevaluation's files and numbers (see docs/metrics.md): the JSON it prints
(and writes with --out) holds MaxBoxAcc per IoU level and their mean, or PxAP with --mask-root.
Torch-free: numpy, OpenCV and the standard library only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import OrnetError
from ..runtime.atomic import write_text_atomic
from .args import UsageParser


def _number(kind: type, lo: float, hi: float, closed: bool = True):
    """An argparse type: ``kind`` in [lo, hi] (closed) or (lo, hi) (open)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if not (lo <= value <= hi if closed else lo < value < hi):
            where = f"[{lo:g}, {hi:g}]" if closed else f"({lo:g}, {hi:g})"
            raise argparse.ArgumentTypeError(f"must be in {where}, got {text}")
        return value
    return parse


def make_parser(prog: str) -> argparse.ArgumentParser:
    p = UsageParser(prog=prog, description=(
        "Score saved score maps (<image_id>.npy, 224x224, values in [0, 1]) against a wsolevaluation "
        "metadata folder, with wsolevaluation's exact numbers: MaxBoxAcc per IoU level (largest contour, "
        "or every contour with --multi-contour) or PxAP with --mask-root."))
    p.add_argument("--metadata", required=True, type=Path, metavar="DIR",
                   help="folder with image_ids.txt, image_sizes.txt, localization.txt")
    p.add_argument("--scoremaps", required=True, type=Path, metavar="DIR", help="folder of <image_id>.npy maps")
    p.add_argument("--mask-root", type=Path, metavar="DIR",
                   help="root of the mask paths in localization.txt (mask metadata); computes PxAP")
    p.add_argument("--cam-curve-interval", type=_number(float, 0, 1, closed=False), default=0.01, metavar="STEP",
                   help="threshold step: thresholds are numpy.arange(0, 1, STEP) (default 0.01)")
    p.add_argument("--iou-thresholds", type=_number(int, 0, 100), nargs="+", default=[30, 50, 70], metavar="PCT",
                   help="IoU levels in percent (default 30 50 70)")
    p.add_argument("--multi-contour", action="store_true",
                   help="best match over every contour's box (MaxBoxAccV2) instead of the largest contour")
    p.add_argument("--out", type=Path, metavar="FILE", help="also write the JSON here (atomically)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    p.add_argument("--workers", type=_number(int, 1, 1024), default=2, metavar="N", help="processes (default 2)")
    return p


def main(argv: list[str], prog: str = "ornet evaluate-maps") -> int:
    args = make_parser(prog).parse_args(argv)
    if args.out is not None:
        if args.out.exists() and not args.force:
            raise OrnetError(f"{args.out} exists; pass --force to overwrite it")
        if not args.out.parent.is_dir():
            raise OrnetError(f"{args.out.parent} is not a folder (for --out {args.out})")
    if not args.scoremaps.is_dir():
        raise OrnetError(f"score-map folder not found: {args.scoremaps}")
    if args.mask_root is not None and not args.mask_root.is_dir():
        raise OrnetError(f"mask root not found: {args.mask_root}")

    from ..localization.wsoleval import evaluate_scoremaps

    result = evaluate_scoremaps(args.metadata, args.scoremaps, mask_root=args.mask_root,
                                cam_curve_interval=args.cam_curve_interval,
                                iou_thresholds=args.iou_thresholds, multi_contour=args.multi_contour,
                                workers=args.workers)
    text = json.dumps(result, indent=2) + "\n"
    if args.out is not None:
        write_text_atomic(args.out, text)
    print(text, end="")
    return 0
