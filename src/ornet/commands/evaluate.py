"""`ornet evaluate`: evaluate a trained model (a run folder or model.json/.safetensors) on a split.

    ornet evaluate runs/demo                       # the run's data (config.yaml), test split
    ornet evaluate runs/demo/model.json --data.root DIR --data.name cub --out eval/ --save-scoremaps maps/

    ornet evaluate runs/imported --eval.protocol release --data.root CUB   # the ORNet release's scoring
    ornet evaluate runs/cam --eval.maps gradcam    # another map of the run's classifier (docs/maps.md)

The model is rebuilt from model.json and model.safetensors (no pickle). Preprocessing (resize,
crop, mean, std) comes from model.json; the map-to-box settings from the run's config.yaml (its
eval section; model.json's when there is no config.yaml), then any --eval.* flag; the dataset from
the run's config.yaml unless --data.* flags say otherwise. Writes metrics.json,
predictions.csv and curves.json to --out (default: evaluate_<split>/ beside the model files). The
work is `api.evaluate.evaluate`.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from ..config.parse import make_parser, parse
from ..config.schema import DataConfig, EvalConfig, TrainerConfig

DESCRIPTION = ("Evaluate a trained model on a dataset split: GT-known / Top-k Loc, MaxBoxAccV2, PxAP "
               "(threshold chosen on val unless the model's config says test; --eval.protocol release "
               "scores as the ORNet release does). Writes metrics.json, predictions.csv and curves.json.")


def build_parser(prog: str):
    parser = make_parser(prog, DESCRIPTION, with_config=False, run_config=False)
    parser.add_argument("model", type=str, help="run folder, model.json or model.safetensors")
    parser.add_class_arguments(DataConfig, "data", fail_untyped=True)
    parser.add_class_arguments(TrainerConfig, "trainer", fail_untyped=True)
    parser.add_class_arguments(EvalConfig, "eval", fail_untyped=True)
    parser.add_argument("--split", type=str, default="test", help="split to evaluate: test (default), val, train, or tune (the run's data.tune_per_class > 0 or data.tune_list)")
    parser.add_argument("--threshold-split", type=str, default=None, choices=["val", "test", "model"],
                        help="where the threshold comes from: val (default for models trained that way), test, "
                             "or model (the threshold stored in model.json)")
    parser.add_argument("--out", type=str, default=None, help="output folder (default: evaluate_<split>/ next to the model)")
    parser.add_argument("--force", action="store_true", help="write into a non-empty --out (replacing its results)")
    parser.add_argument("--save-scoremaps", type=str, default=None,
                        help="also write each map as DIR/<image_id>.npy (wsolevaluation's layout)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _given(argv: list[str], prefix: str) -> list[str]:
    """Dotted keys given on the command line under `prefix` (e.g. data.root)."""
    keys = []
    for a in argv:
        if a.startswith(f"--{prefix}."):
            keys.append(a[2:].split("=", 1)[0])
    return keys


def main(argv: list[str], prog: str) -> int:
    from ..api.evaluate import evaluate
    from ..runs.export import resolve
    from .console import setup_logging

    parser = build_parser(prog)
    ns = parse(parser, argv)
    setup_logging(ns.quiet)  # --quiet also silences Lightning's banners
    info, _ = resolve(ns.model)
    # The dataset: the run's config.yaml data section, then any --data.* flag on top.
    flags = ns.data.as_dict() if hasattr(ns.data, "as_dict") else dict(vars(ns.data))
    data = {key.split(".", 1)[1]: flags[key.split(".", 1)[1]] for key in _given(argv, "data")}
    trainer = ns.trainer.as_dict() if hasattr(ns.trainer, "as_dict") else dict(vars(ns.trainer))
    evals = ns.eval.as_dict() if hasattr(ns.eval, "as_dict") else dict(vars(ns.eval))
    overrides = {key.split(".", 1)[1]: evals[key.split(".", 1)[1]] for key in _given(argv, "eval")}
    out = Path(ns.out) if ns.out else info.parent / f"evaluate_{ns.split}"
    result = evaluate(info, data=data, split=ns.split, eval=overrides, threshold_split=ns.threshold_split,
                      trainer=trainer, out=out, force=bool(ns.force), save_scoremaps=ns.save_scoremaps,
                      quiet=ns.quiet, command=f"{prog} {shlex.join(argv)}")
    if result is None:  # processes of rank > 0
        return 0
    if not ns.quiet:
        from ..evaluation.class_gate import gate_note

        m = result.metrics
        keys = ("top1_cls", "top1_loc", "gt_known_loc", "max_box_acc_v2", "pxap")
        print(f"{m['method']} on {ns.split}: " + ", ".join(
            f"{k} {m[k]:.2f}" for k in keys if isinstance(m.get(k), (int, float)))
            + f" (threshold {m['threshold']:.2f} from {m['threshold_split']}{_protocol_note(m)}{gate_note(m)}"
            f"{_maps_note(m)});"
            f" wrote {out}")
    return 0


def _protocol_note(metrics: dict) -> str:
    from ..evaluation.protocols import protocol_of_metrics

    return protocol_of_metrics(metrics).command_note(metrics)


def _maps_note(metrics: dict) -> str:
    """``; maps gradcam of the CAM network (resnet18)`` for an extractor's maps; ``""`` for the run's own."""
    network = metrics.get("maps_network")
    return f"; maps {metrics.get('maps')} of the {network}" if network else ""
