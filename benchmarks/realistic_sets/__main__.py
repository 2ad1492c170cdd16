"""The command line of the realistic sets (the package's docstring is its help):
`python benchmarks/realistic_sets KIND OUT ...`, or `python -m realistic_sets KIND OUT ...` from
benchmarks/."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

if not __package__:  # run as a folder (`python benchmarks/realistic_sets`): import the package by name
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    __package__ = "realistic_sets"

import realistic_sets  # noqa: E402

from .common import load_photos, plan, write_contact_sheet, write_set  # noqa: E402
from .digits import DigitRenderer  # noqa: E402
from .objects import ObjectRenderer  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="realistic_sets", description=realistic_sets.__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=("objects", "digits"))
    p.add_argument("out", metavar="OUT", help="output folder (absent or empty; --force replaces an earlier set)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=None, help="image side in pixels (objects 128, digits 96)")
    p.add_argument("--train-per-class", type=int, default=None, help="objects 30, digits 120")
    p.add_argument("--test-per-class", type=int, default=None, help="objects 10, digits 40")
    p.add_argument("--thicken", type=float, default=0.0,
                   help="digits: extra stroke width, in pixels of the 8 x 8 original (0: as written)")
    p.add_argument("--stamps", default="/usr/share/tuxpaint/stamps", help="objects: tuxpaint stamps folder")
    p.add_argument("--contact-sheet", default=None, help="also write a preview PNG here")
    p.add_argument("--force", action="store_true")
    ns = p.parse_args(argv)
    defaults = {"objects": (128, 30, 10), "digits": (96, 120, 40)}[ns.kind]
    size, train, test = (v if v is not None else d for v, d in
                         zip((ns.size, ns.train_per_class, ns.test_per_class), defaults))
    if not 32 <= size <= 1024 or train < 1 or test < 1 or ns.seed < 0 or ns.thicken < 0:
        p.error("need 32 <= --size <= 1024, at least one train and one test image per class, --seed >= 0, "
                "--thicken >= 0")
    photos = load_photos()
    if ns.kind == "objects":
        renderer = ObjectRenderer(Path(ns.stamps), photos, size)
    else:
        renderer = DigitRenderer(photos, size, train, test, ns.thicken)
    jobs = plan(len(renderer.class_names), train, test)
    meta = {"size": size, "train_per_class": train, "test_per_class": test, **renderer.meta()}
    summary = write_set(Path(ns.out), ns.kind, renderer.class_names, jobs, renderer, ns.seed, meta, ns.force)
    print(f"wrote {ns.out}: {summary['images']} images ({summary['train']} train, {summary['test']} test), "
          f"{len(summary['classes'])} classes, {size} px, in {summary['seconds']} s")
    if ns.contact_sheet:
        write_contact_sheet(Path(ns.out), Path(ns.contact_sheet))
        print(f"wrote {ns.contact_sheet}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
