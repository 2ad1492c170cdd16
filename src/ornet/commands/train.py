"""`ornet train`: run the stages a config lists, then evaluate and export the model.

    ornet train --config configs/demo.yaml --data.root DIR --out OUT [overrides]
    ornet train --config configs/demo.yaml --out OUT --stages [refine]   # rerun stage 2 only
    ornet train --out OUT --resume                                      # continue an interrupted run

OUT receives config.yaml, checkpoints/, logs/, snapshots/, metrics.json, predictions.csv,
curves.json, model.safetensors and model.json (docs/training.md, "The run folder").
"""

from __future__ import annotations

import shlex
from pathlib import Path

from ..config.parse import make_parser, parse, to_run_config
from .console import setup_logging

DESCRIPTION = ("Train the stages of a config's method (wsol_method; `ornet methods` lists them and their "
               "stages), then evaluate on the test split (threshold chosen on val) and export the model. "
               "Any config key can be overridden with a dotted flag, e.g. --coarse.epochs 3.")


def build_parser(prog: str):
    parser = make_parser(prog, DESCRIPTION)
    parser.add_argument("--out", type=str, required=True, help="run folder (must be new or empty unless "
                        "--resume, --force or --stages is given)")
    parser.add_argument("--resume", action="store_true",
                        help="continue OUT: skip completed stages, resume an interrupted one from its last checkpoint")
    parser.add_argument("--force", action="store_true",
                        help="train into a non-empty OUT, replacing the checkpoints of the listed stages")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or model summaries")
    return parser


def _given(argv: list[str], flag: str) -> bool:
    return any(a == flag or a.startswith(flag + "=") for a in argv)


def _flag_value(argv: list[str], flag: str) -> str | None:
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def main(argv: list[str], prog: str) -> int:
    from ..api.train import train

    argv = list(argv)
    argv_given = list(argv)  # as typed: the run folder's lock names the command
    out_arg = _flag_value(argv, "--out")
    resume, rerun = _given(argv, "--resume"), _given(argv, "--stages")
    # Continuing a run without --config: start from the run's own resolved config.
    if out_arg and not _given(argv, "--config") and (resume or rerun) and (Path(out_arg) / "config.yaml").is_file():
        argv = ["--config", str(Path(out_arg) / "config.yaml"), *argv]
    parser = build_parser(prog)
    ns = parse(parser, argv)
    cfg = to_run_config(parser, ns)
    out = Path(ns.out)
    quiet = bool(ns.quiet)
    setup_logging(quiet)
    metrics = train(cfg, out, resume=resume, force=bool(ns.force), stages=cfg.stages if rerun else None, quiet=quiet,
                    command=f"{prog} {shlex.join(argv_given)}")
    if metrics is not None and not quiet:
        _print_summary(metrics, out)
    return 0


def _print_summary(metrics: dict, out: Path) -> None:
    keys = ("top1_cls", "top1_loc", "gt_known_loc", "max_box_acc_v2", "pxap")
    parts = [f"{k} {metrics[k]:.2f}" for k in keys if isinstance(metrics.get(k), (int, float))]
    from ..evaluation.protocols import protocol_of_metrics

    protocol = protocol_of_metrics(metrics).train_note(metrics)
    from ..evaluation.class_gate import gate_note
    from ..runtime.disk_use import describe

    print(f"{metrics.get('method')}: " + ", ".join(parts) +
          f" (threshold {metrics.get('threshold')} chosen on {metrics.get('threshold_split')}{protocol}"
          f"{gate_note(metrics)}); wrote {out}: "
          + describe(metrics))
