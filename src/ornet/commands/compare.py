"""`ornet compare RUN [RUN ...] --out DIR`: the comparison page of any number of runs.

    ornet compare runs/cam runs/has runs/cam/evaluate_gradcam --out runs/compare

Each RUN is a run folder (`ornet train --out`) or an evaluation folder (`ornet evaluate RUN --out
DIR`, e.g. with `--eval.maps gradcam`: labelled `cam + gradcam`). Writes DIR/index.html (metrics
table, then per test image the GT box and each run's map and box side by side), DIR/metrics.csv
(the table, one row per run) and DIR/index_images/. The work is `reports.compare.compare_runs`.
"""

from __future__ import annotations

from .args import UsageParser


def build_parser(prog: str):
    from ..reports.compare import DEFAULT_N

    p = UsageParser(prog=prog, description=(
        "Compare runs on the same test images: each RUN is a run folder or an `ornet evaluate --out` folder "
        "(a map extractor's evaluation shows as '<method> + <extractor>'). Writes OUT/index.html (metrics, "
        "then each run's map and box per image), OUT/metrics.csv (one row per run) and OUT/index_images/."))
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folder or evaluation folder")
    p.add_argument("--out", required=True, help="output folder (new or empty unless --force)")
    p.add_argument("--split", default="test",
                   help="the split every RUN must have been evaluated on (default: test)")
    p.add_argument("--n", type=int, default=DEFAULT_N,
                   help=f"test images drawn, spread over the split (default {DEFAULT_N}; all when fewer)")
    p.add_argument("--force", action="store_true",
                   help="write into a non-empty --out (replacing its page, CSV and images)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--batch-size", type=int, default=16, help="images per forward pass (default 16)")
    return p


def main(argv: list[str], prog: str) -> int:
    from pathlib import Path

    from ..errors import OrnetError

    ns = build_parser(prog).parse_args(argv)
    if ns.n < 1:
        raise OrnetError(f"--n must be >= 1, got {ns.n}")
    if ns.batch_size < 1:
        raise OrnetError(f"--batch-size must be >= 1, got {ns.batch_size}")
    from ..reports.compare import compare_runs

    columns = compare_runs(ns.runs, ns.out, split=ns.split, n=ns.n, force=ns.force, device=ns.device,
                           batch_size=ns.batch_size)
    out = Path(ns.out)
    width = max(len(c.label) for c in columns)
    for c in columns:
        m = c.metrics
        gt = m.get("gt_known_loc")
        value = f"GT-known Loc {gt:.1f}" if isinstance(gt, (int, float)) and not isinstance(gt, bool) else "no box metrics"
        print(f"{c.label:<{width}}  {value}  ({c.root})")
    print(f"wrote {out / 'index.html'}, {out / 'metrics.csv'} and {out / 'index_images'}/")
    return 0
