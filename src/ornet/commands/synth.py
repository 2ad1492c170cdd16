"""`ornet synth OUT`: write the procedural WSOL benchmark in the CUB-200-2011 layout (torch-free)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import OrnetError
from .args import UsageParser


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = UsageParser(prog=prog, description=(
        "Generate a synthetic WSOL benchmark in the CUB-200-2011 layout (images, masks, boxes): "
        "each class is identified by a small part on a large, weakly informative body. "
        "See docs/synthetic.md."))
    p.add_argument("out", metavar="OUT", help="output folder (must be empty or absent)")
    p.add_argument("--classes", type=int, default=10, help="number of classes (default 10)")
    p.add_argument("--train", type=int, default=1200,
                   help="training images in TOTAL, split evenly over classes (default 1200)")
    p.add_argument("--test", type=int, default=400,
                   help="test images in TOTAL, split evenly over classes (default 400)")
    p.add_argument("--size", type=int, default=96, help="image side in pixels (default 96)")
    p.add_argument("--seed", type=int, default=0, help="seed; the same seed gives the same bytes (default 0)")
    p.add_argument("--second-object", type=float, default=0.0, metavar="P",
                   help="share of TEST images that hold a second object of the class (default 0)")
    p.add_argument("--body-cue", type=float, default=0.0, metavar="P",
                   help="share of objects whose body wears its class's own hue and texture, so that the "
                        "whole object carries class evidence as real objects do (default 0: the part only)")
    p.add_argument("--force", action="store_true",
                   help="replace OUT if an earlier `ornet synth` wrote it")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.add_argument("--contact-sheet", metavar="PNG", default=None,
                   help="also write a preview grid of 24 images with their boxes (and a few masks) to PNG")
    return p


def summary_line(s, size: int, out) -> str:
    """The line `ornet synth` (and `ornet demo`) prints for a `SynthSummary`."""
    return (f"wrote {s.images} images ({s.train} train, {s.test} test, {s.two_objects} with two objects), "
            f"{s.classes} classes, {size} px, to {out} in {s.seconds:.1f} s")


def main(argv: list[str], prog: str = "ornet synth") -> int:
    try:
        args = build_parser(prog).parse_args(argv)
    except SystemExit as e:  # --help
        return int(e.code or 0)
    from ..data.synthetic import SynthConfig, contact_sheet, generate
    from ..runtime.outdir import check_out_dir, check_out_file

    check_out_dir(args.out, "OUT")
    if args.contact_sheet:  # checked now, not after the images are drawn
        check_out_file(args.contact_sheet, "--contact-sheet")
    cfg = SynthConfig(classes=args.classes, train=args.train, test=args.test, size=args.size,
                      seed=args.seed, second_object=args.second_object, body_cue=args.body_cue)
    s = generate(cfg, args.out, workers=args.workers, force=args.force, quiet=args.quiet)
    print(summary_line(s, cfg.size, args.out))
    if args.contact_sheet:
        from PIL import Image

        from ..errors import DiskFull
        from ..runtime.atomic import atomic_path

        sheet = Image.fromarray(contact_sheet(args.out))
        try:
            with atomic_path(args.contact_sheet) as tmp:  # a full disk: one line, no half-written file
                # A 256-colour palette keeps the preview small (docs/images/ holds one).
                fmt = Image.registered_extensions().get(Path(args.contact_sheet).suffix.lower(), "PNG")
                sheet.quantize(256, method=Image.Quantize.MEDIANCUT).save(tmp, format=fmt, optimize=True)
        except DiskFull:
            raise
        except OSError as e:
            raise OrnetError(f"cannot write the contact sheet {args.contact_sheet}: {e}") from None
        print(f"contact sheet: {args.contact_sheet}")
    return 0
