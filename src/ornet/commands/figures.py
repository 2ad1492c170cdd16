"""`ornet figures KIND RUN_DIR`: draw a run's figures as PNG files (docs/figures.md).

    ornet figures all runs/ornet                       # every figure the run's files allow
    ornet figures failures runs/ornet --n 12
    ornet figures grid runs/ornet --data.name dogs --data.root /data/dogs --out dogs_maps

KIND: overlay, evolution, histogram, failures, threshold-curve, grid, gate or all; which files each
reads, and the images it draws on, are in `ornet.reports.render` (and docs/figures.md). PNGs go to
RUN_DIR/figures (or --out); writing there also refreshes RUN_DIR/report.html. With KIND=all a
figure whose source is missing (no snapshots in a CAM run, say) is skipped with a note; naming
that KIND alone is an error (exit 2). The drawing is `reports.render.render()`.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from ..errors import OrnetError
from ..reports.render import DEFAULT_N, FIGURE_FILE, KINDS, render
from .args import UsageParser


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = UsageParser(prog=prog, description=(
        "Draw a run's figures as PNG files (default: RUN_DIR/figures, which also refreshes "
        "RUN_DIR/report.html). See docs/figures.md for what each figure shows."))
    p.add_argument("kind", metavar="KIND", choices=(*KINDS, "all"), help=f"one of: {', '.join(KINDS)}, all")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by `ornet train` / `ornet evaluate`")
    p.add_argument("--out", default=None, help="folder for the PNGs (default: RUN_DIR/figures, refreshed)")
    p.add_argument("--force", action="store_true",
                   help="write into an --out folder that holds files other than ornet's figures")
    p.add_argument("--n", type=int, default=None,
                   help="images per figure (defaults: " + ", ".join(f"{k} {v}" for k, v in DEFAULT_N.items()) + ")")
    p.add_argument("--split", default=None, help="dataset split to draw (default: the evaluated one, else test)")
    p.add_argument("--data.root", dest="data_root", default=None, help="dataset root (default: config.yaml's)")
    p.add_argument("--data.name", dest="data_name", default=None,
                   help="dataset reader (default: config.yaml's); with --data.root, maps on another dataset")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda when available")
    p.add_argument("--batch-size", type=int, default=16, help="images per forward pass (default 16)")
    return p


def main(argv: list[str], prog: str) -> int:
    ns = build_parser(prog).parse_args(argv)
    if ns.batch_size < 1:
        raise OrnetError(f"--batch-size must be >= 1, got {ns.batch_size}")
    kinds = KINDS if ns.kind == "all" else (ns.kind,)
    out = Path(ns.out) if ns.out is not None else None
    run_dir = Path(ns.run_dir)
    if not run_dir.is_dir():
        raise OrnetError(f"{run_dir}: run folder does not exist")
    from ..runtime.outdir import check_out_dir
    from ..runtime.runlock import LOCK_NAME, folder_to_lock, run_lock

    target = out if out is not None else run_dir / "figures"
    check_out_dir(target, "--out")
    # One writer per folder: the run when the figures go inside it (RUN/figures), else --out.
    with run_lock(folder_to_lock(target, run_dir), command=f"{prog} {shlex.join(argv)}"):
        if out is not None and out.is_dir() and not ns.force:  # RUN_DIR/figures is always redrawn
            others = sorted(p.name for p in out.iterdir() if not FIGURE_FILE.match(p.name) and p.name != LOCK_NAME)
            if others:
                raise OrnetError(f"--out {out} holds files other than figures ({others[0]}"
                                 f"{f' and {len(others) - 1} more' if len(others) > 1 else ''}); "
                                 "pass --force to write into it")
        return _draw(ns, kinds, prog)


def _draw(ns, kinds, prog: str) -> int:
    written, skipped = render(ns.run_dir, kinds, ns.out, ns.n, strict=ns.kind != "all", data_root=ns.data_root,
                              data_name=ns.data_name, split=ns.split, device=ns.device, batch_size=ns.batch_size)
    for path in written:
        print(f"wrote {path}")
    for kind, why in skipped.items():
        print(f"{prog}: skipped {kind}: {why}", file=sys.stderr)
    if ns.out is None and written:
        from ..reports.run_report import write_report

        print(f"wrote {write_report(ns.run_dir)}")
    if not written:
        raise OrnetError("no figure could be drawn: " + "; ".join(f"{k}: {w}" for k, w in skipped.items()))
    return 0
