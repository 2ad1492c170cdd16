"""`ornet import-release`: a run folder from the ORNet authors' released checkpoints.

    ornet import-release --fine cub_fine_best_model/last_epoch.pth --out runs/release_fine
    ornet import-release --coarse cub_coarse_best_model/last_epoch.pth \\
        --evaluator evaluator/best_epoch.pth --out runs/release_coarse

Only parses, calls `ornet.release.importer.import_release` and prints what was written;
docs/reproducing.md shows what to run next.
"""

from __future__ import annotations

import argparse

from .args import UsageParser


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = UsageParser(prog=prog, description=(
        "Import the checkpoints of the ORNet release (github.com/Sierkinhane/ORNet) as an ornet run "
        "folder: config.yaml, model.safetensors + model.json and, for a stage-1 file, the checkpoints "
        "`ornet train --stages [refine]` continues from. Files are read with weights_only=True; width and "
        "number of classes come from the shapes. See docs/reproducing.md."))
    p.add_argument("--fine", metavar="FILE", help="the release's stage-2 model (cub_fine_best_model)")
    p.add_argument("--coarse", metavar="FILE", help="the release's stage-1 model (cub_coarse_best_model); "
                   "needs --evaluator")
    p.add_argument("--evaluator", metavar="FILE", help="the release's evaluator (evaluator/best_epoch.pth); "
                   "with --fine it replaces the copy inside the fine file")
    p.add_argument("--classes", metavar="FILE", help="class names, one per line (or CUB's classes.txt)")
    p.add_argument("--out", required=True, help="run folder to write (must be new or empty unless --force)")
    p.add_argument("--force", action="store_true", help="write into a non-empty OUT (replacing what the import writes)")
    p.add_argument("--quiet", action="store_true", help="no summary")
    return p


def main(argv: list[str], prog: str = "ornet import-release") -> int:
    args = build_parser(prog).parse_args(argv)
    from ..release.importer import import_release

    result = import_release(args.out, fine=args.fine, coarse=args.coarse, evaluator=args.evaluator,
                            classes=args.classes, force=args.force)
    if not args.quiet:
        p = result.plan
        threshold = f"threshold {p.threshold} (the file's best_threshold)" if p.threshold is not None else \
            "no threshold in the files (ornet localize needs --threshold)"
        print(f"imported the release's {p.kind} model: {p.backbone} stem, U-Net width {p.width}, "
              f"{p.evaluator} evaluator, {p.num_classes} classes; {threshold}")
        for note in p.notes:
            print(f"note: {note}")
        print(f"wrote {', '.join(result.written)} to {result.out}")
    return 0
