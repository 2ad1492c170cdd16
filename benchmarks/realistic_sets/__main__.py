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

from .common import (  # noqa: E402
    HELDOUT_TEST_PHOTOS,
    HELDOUT_TRAIN_PHOTOS,
    TEMPLATES,
    TEST_PHOTOS,
    TRAIN_PHOTOS,
    load_photos,
    plan,
    write_contact_sheet,
    write_set,
)
from .digits import DigitRenderer  # noqa: E402
from .objects import HELDOUT_CLASSES, OBJECT_CLASSES, ObjectRenderer  # noqa: E402

KINDS = ("objects", "digits", "objects_heldout", "digits_heldout")
HELDOUT_GENERATOR = "benchmarks/realistic_sets"
"""realistic.json's ``generator`` for the held-out kinds (the tuning kinds keep the old name, common.GENERATOR)."""


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="realistic_sets", description=realistic_sets.__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=KINDS, help="objects, digits: the tuning sets; objects_heldout, digits_heldout: "
                   "the held-out sets (other classes / digit split, other photos, own random stream)")
    p.add_argument("out", metavar="OUT", help="output folder (absent or empty; --force replaces an earlier set)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=None, help="image side in pixels (objects 128, digits 96)")
    p.add_argument("--train-per-class", type=int, default=None, help="objects 30, digits 120")
    p.add_argument("--test-per-class", type=int, default=None, help="objects 10, digits 40")
    p.add_argument("--thicken", type=float, default=0.0,
                   help="digits: extra stroke width, in pixels of the 8 x 8 original (0: as written)")
    p.add_argument("--stamps", default="/usr/share/tuxpaint/stamps", help="objects: tuxpaint stamps folder")
    p.add_argument("--templates", default=str(TEMPLATES), help="held-out kinds: tuxpaint's template photos folder")
    p.add_argument("--contact-sheet", default=None, help="also write a preview PNG here")
    p.add_argument("--force", action="store_true")
    ns = p.parse_args(argv)
    base, heldout = ns.kind.removesuffix("_heldout"), ns.kind.endswith("_heldout")
    defaults = {"objects": (128, 30, 10), "digits": (96, 120, 40)}[base]
    size, train, test = (v if v is not None else d for v, d in
                         zip((ns.size, ns.train_per_class, ns.test_per_class), defaults))
    if not 32 <= size <= 1024 or train < 1 or test < 1 or ns.seed < 0 or ns.thicken < 0:
        p.error("need 32 <= --size <= 1024, at least one train and one test image per class, --seed >= 0, "
                "--thicken >= 0")
    names = (HELDOUT_TRAIN_PHOTOS, HELDOUT_TEST_PHOTOS) if heldout else (TRAIN_PHOTOS, TEST_PHOTOS)
    photos = load_photos(*names, templates=Path(ns.templates))
    if base == "objects":
        renderer = ObjectRenderer(Path(ns.stamps), photos, size, HELDOUT_CLASSES if heldout else OBJECT_CLASSES)
    else:
        renderer = DigitRenderer(photos, size, train, test, ns.thicken, heldout=heldout)
    jobs = plan(len(renderer.class_names), train, test)
    meta = {"size": size, "train_per_class": train, "test_per_class": test, **renderer.meta()}
    extra = {}
    if heldout:  # what makes it held out, recorded beside the arguments (tuning sets: unchanged bytes)
        meta["heldout"] = {"role": "held out: no setting was chosen on this set",
                           "classes_from": "objects.HELDOUT_CLASSES" if base == "objects"
                           else "digits: load_digits split turned round (digits.HELDOUT_TEST_END)",
                           "photos_from": str(Path(ns.templates)),
                           "command": f"python benchmarks/realistic_sets {ns.kind} OUT --seed {ns.seed} --size {size} "
                                      f"--train-per-class {train} --test-per-class {test}"
                                      + (f" --thicken {ns.thicken:g}" if base == "digits" else "")}
        extra = {"photos": names, "generator": HELDOUT_GENERATOR}
    summary = write_set(Path(ns.out), ns.kind, renderer.class_names, jobs, renderer, ns.seed, meta, ns.force,
                        **extra)
    print(f"wrote {ns.out}: {summary['images']} images ({summary['train']} train, {summary['test']} test), "
          f"{len(summary['classes'])} classes, {size} px, in {summary['seconds']} s")
    if ns.contact_sheet:
        write_contact_sheet(Path(ns.out), Path(ns.contact_sheet))
        print(f"wrote {ns.contact_sheet}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
