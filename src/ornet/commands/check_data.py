"""`ornet check-data`: validate a dataset, print per-split statistics and every problem."""

from __future__ import annotations

import json
import sys
from collections import Counter

from ..config.parse import make_data_parser, parse_data
from ..data.records import DatasetIndex
from ..errors import DataError


def _stats(index: DatasetIndex, split: str) -> dict:
    records = index.splits.get(split, [])
    boxes = [len(r.boxes) for r in records]
    out = {"images": len(records), "classes": len({r.label for r in records}), "boxes": sum(boxes)}
    if records and index.has_boxes:
        per_image = Counter(boxes)
        out["boxes_per_image"] = {str(k): v for k, v in sorted(per_image.items())}
        fractions = [
            sum((b[2] - b[0]) * (b[3] - b[1]) for b in r.boxes) / (r.size[0] * r.size[1])
            for r in records if r.boxes and r.size
        ]
        if fractions:
            fractions.sort()
            out["box_area_fraction"] = {
                "min": round(fractions[0], 4),
                "median": round(fractions[len(fractions) // 2], 4),
                "max": round(fractions[-1], 4),
            }
    if index.has_masks:
        out["masks"] = sum(r.mask_path is not None for r in records)
    return out


def _decode_all(index: DatasetIndex, quiet: bool) -> None:
    """Decode every image fully (catches truncated files the header check cannot see)."""
    from ..data.io import load_image

    records = [r for recs in index.splits.values() for r in recs]
    bad: set[str] = set()
    for r in records:
        try:
            load_image(r.path, r.crop_bottom)
        except DataError as e:
            if str(r.path) not in bad:
                bad.add(str(r.path))
                index.problems.append(e)


def main(argv: list[str], prog: str) -> int:
    parser = make_data_parser(prog, "Validate a dataset: per-split counts, classes, box statistics and every problem found. "
                                    "Exit 0 when there is no problem, 2 otherwise.")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--no-decode", action="store_true",
                        help="only read image headers (faster; truncated images go unnoticed)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    ns = parse_data(parser, argv)
    from ..config.schema import DataConfig, from_dict
    from ..data.readers import read_index

    cfg = from_dict(DataConfig, ns.data.as_dict() if hasattr(ns.data, "as_dict") else dict(ns.data))
    index = read_index(cfg)
    if not ns.no_decode:
        _decode_all(index, quiet=ns.quiet or ns.json)
    report = {
        "name": index.name,
        "root": str(index.root),
        "classes": index.num_classes,
        "has_boxes": index.has_boxes,
        "has_masks": index.has_masks,
        "splits": {split: _stats(index, split) for split in index.splits},
        "problems": [str(p) for p in index.problems],
    }
    if ns.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"dataset {index.name} at {index.root}: {index.num_classes} classes, "
              f"boxes: {'yes' if index.has_boxes else 'no'}, masks: {'yes' if index.has_masks else 'no'}")
        for split, s in report["splits"].items():
            line = f"  {split:<8} {s['images']:>7} images  {s['classes']:>5} classes  {s['boxes']:>7} boxes"
            if "box_area_fraction" in s:
                f = s["box_area_fraction"]
                line += f"  box area {f['min']:.1%}..{f['median']:.1%}..{f['max']:.1%} (min..median..max)"
            print(line)
        if report["problems"]:
            print(f"{len(report['problems'])} problem(s):")
            for p in report["problems"]:
                print(f"  {p}")
        else:
            print("no problems found")
    if report["problems"]:
        print(f"{prog}: error: {len(report['problems'])} problem(s) in dataset {index.root}; "
              f"first: {report['problems'][0]}", file=sys.stderr)
        return 2
    return 0
