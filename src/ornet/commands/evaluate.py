"""`ornet evaluate`: evaluate a trained model (a run folder or model.json/.safetensors) on a split.

    ornet evaluate runs/demo                       # the run's data (config.yaml), test split
    ornet evaluate runs/demo/model.json --data.root DIR --data.name cub --out eval/ --save-scoremaps maps/

    ornet evaluate runs/imported --eval.protocol release --data.root CUB   # the ORNet release's scoring

The model is rebuilt from model.json and model.safetensors (no pickle). Preprocessing (resize,
crop, mean, std) comes from model.json; the map-to-box settings from the run's config.yaml (its
eval section; model.json's when there is no config.yaml), then any --eval.* flag; the dataset from
the run's config.yaml unless --data.* flags say otherwise. Writes metrics.json,
predictions.csv and curves.json to --out (default: evaluate_<split>/ beside the model files).
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path

from ..cli_config import _build, make_parser, parse, validate
from ..config import DataConfig, EvalConfig, RunConfig, TrainerConfig, apply_protocol
from ..errors import OrnetError
from ..outdir import check_out_dir, make_out_dir, nonempty, removed_if_failed

DESCRIPTION = ("Evaluate a trained model on a dataset split: GT-known / Top-k Loc, MaxBoxAccV2, PxAP "
               "(threshold chosen on val unless the model's config says test; --eval.protocol release "
               "scores as the ORNet release does). Writes metrics.json, predictions.csv and curves.json.")


def build_parser(prog: str):
    parser = make_parser(prog, DESCRIPTION, with_config=False, run_config=False)
    parser.add_argument("model", type=str, help="run folder, model.json or model.safetensors")
    parser.add_class_arguments(DataConfig, "data", fail_untyped=True)
    parser.add_class_arguments(TrainerConfig, "trainer", fail_untyped=True)
    parser.add_class_arguments(EvalConfig, "eval", fail_untyped=True)
    parser.add_argument("--split", type=str, default="test", help="split to evaluate (default: test)")
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


def _read_run_config(path: Path) -> dict:
    """A run's config.yaml as a dict; OrnetError naming the file when it is not one."""
    import yaml

    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise OrnetError(f"{path}: cannot read the run's config ({' '.join(str(e).split())})") from None
    if not isinstance(loaded, dict) or not isinstance(loaded.get("data") or {}, dict) \
            or not isinstance(loaded.get("eval") or {}, dict):
        raise OrnetError(f"{path}: not a run config (expected a mapping with data and eval sections)")
    return loaded


def _eval_config(saved: dict | None, loc: dict, ns, argv: list[str]) -> EvalConfig:
    """The run's eval section (config.yaml; model.json's localization without one), then --eval.* flags.

    An --eval.protocol other than the run's starts from that protocol's defaults (EvalConfig's)."""
    if saved:
        base = {k: v for k, v in saved.items() if k in EvalConfig.__dataclass_fields__}
    else:
        base = {"box_mode": loc["box_mode"], "cam_curve_interval": float(loc["cam_curve_interval"]),
                "normalize": loc["normalize"], "iou_strict": bool(loc["iou_strict"]),
                "threshold_split": loc.get("threshold_split") or "val",
                "protocol": loc.get("protocol", "wsolevaluation")}
    flags = ns.eval.as_dict() if hasattr(ns.eval, "as_dict") else dict(vars(ns.eval))
    given = _given(argv, "eval")
    if "eval.protocol" in given and flags["protocol"] != base.get("protocol", "wsolevaluation"):
        base = {}  # another protocol: its own defaults (EvalConfig), not the run's settings for the other one
    for key in given:
        base[key.split(".", 1)[1]] = flags[key.split(".", 1)[1]]
    if base.get("threshold_split") not in ("val", "test"):
        base["threshold_split"] = "val"
    return _build(EvalConfig, base)


def _check_model_threshold(eval_cfg: EvalConfig, loc: dict, info: Path) -> None:
    """--threshold-split model reuses model.json's threshold: only under the protocol that chose it."""
    stored = loc.get("protocol", "wsolevaluation")
    if eval_cfg.protocol == "release":
        raise OrnetError("eval.protocol release chooses the threshold on the evaluated split itself; "
                         "--threshold-split model is for the wsolevaluation protocol")
    if stored != eval_cfg.protocol:
        raise OrnetError(f"{info}: its threshold was chosen under eval.protocol {stored}, not "
                         f"{eval_cfg.protocol}; use --threshold-split val or test")


def main(argv: list[str], prog: str) -> int:
    from ..tasks.export import load_model, read_meta, resolve
    from ..tasks.pipeline import global_rank
    from .train import _setup_logging

    parser = build_parser(prog)
    ns = parse(parser, argv)
    _setup_logging(ns.quiet)  # --quiet also silences Lightning's banners
    info, _ = resolve(ns.model)
    meta = read_meta(info)
    run_dir = info.parent
    # The dataset: the run's config.yaml data section, then any --data.* flag on top.
    data = {}
    saved = run_dir / "config.yaml"
    saved_cfg = _read_run_config(saved) if saved.is_file() else {}
    if saved_cfg:
        data = dict(saved_cfg.get("data") or {})
    flags = ns.data.as_dict() if hasattr(ns.data, "as_dict") else dict(vars(ns.data))
    for key in _given(argv, "data"):
        data[key.split(".", 1)[1]] = flags[key.split(".", 1)[1]]
    if not data:
        data = flags
    pre = meta["preprocessing"]
    data.update(resize=int(pre["resize"]), crop=int(pre["crop"]))
    data_cfg = _build(DataConfig, data)
    if data_cfg.root is None:
        raise OrnetError("no dataset: pass --data.root DIR (and --data.name) or a run folder with config.yaml")
    loc = meta["localization"]
    eval_cfg = _eval_config(saved_cfg.get("eval"), loc, ns, argv)
    threshold_split = ns.threshold_split or eval_cfg.threshold_split
    if threshold_split == "model":
        _check_model_threshold(eval_cfg, loc, info)
    eval_cfg.threshold_split = "test" if threshold_split == "test" else "val"
    trainer = ns.trainer.as_dict() if hasattr(ns.trainer, "as_dict") else dict(vars(ns.trainer))
    cfg = apply_protocol(RunConfig(data=data_cfg, eval=eval_cfg, trainer=_build(TrainerConfig, trainer)))
    validate(cfg)
    cfg.data.batch_size = cfg.data.eval_batch_size
    out = Path(ns.out) if ns.out else run_dir / f"evaluate_{ns.split}"
    check_out_dir(out, "--out")  # before any work: a writable folder (or one that can be created)
    if ns.save_scoremaps:
        check_out_dir(ns.save_scoremaps, "--save-scoremaps")
    from ..runlock import folder_to_lock, run_lock

    # One writer per folder: the run when OUT is inside it (the default RUN/evaluate_<split>), else OUT.
    with run_lock(folder_to_lock(out, run_dir), command=f"{prog} {shlex.join(argv)}", rank=global_rank()):
        if nonempty(out) and not ns.force:
            raise OrnetError(f"--out {out} exists and is not empty; pass --force to write into it")

        from ..data.datamodule import WSOLDataModule
        from ..evaluation import evaluate, write_outputs

        start = time.perf_counter()
        from ..normalization import Normalization

        # images normalised as the run normalised them (model.json: the backbone's mean / std)
        datamodule = WSOLDataModule(cfg.data, normalization=Normalization(tuple(pre["mean"]), tuple(pre["std"])))
        if datamodule.num_classes != meta["num_classes"]:
            raise OrnetError(f"the model has {meta['num_classes']} classes but dataset {data_cfg.root} has "
                             f"{datamodule.num_classes}")
        model, _ = load_model(info)
        fallback = loc.get("threshold_index")
        if threshold_split == "model":
            if fallback is None:
                raise OrnetError(f"{info} stores no threshold; use --threshold-split val or test")
            datamodule.index.splits["val"] = []  # use the stored threshold, never re-choose it
        result = evaluate(model, datamodule, cfg, split=ns.split, quiet=ns.quiet, scoremap_dir=ns.save_scoremaps,
                          fallback_threshold_index=fallback)
        if global_rank() != 0:
            return 0
        result.metrics.update(method=meta["method"], model=str(info), seconds=round(time.perf_counter() - start, 2))
        from ..viz.publish import publish

        with removed_if_failed(out):  # a full disk: no empty output folder left behind
            make_out_dir(out, "--out")
            write_outputs(out, result)
            publish(out)
        if not ns.quiet:
            m = result.metrics
            keys = ("top1_cls", "top1_loc", "gt_known_loc", "max_box_acc_v2", "pxap")
            print(f"{meta['method']} on {ns.split}: " + ", ".join(
                f"{k} {m[k]:.2f}" for k in keys if isinstance(m.get(k), (int, float)))
                + f" (threshold {m['threshold']:.2f} from {m['threshold_split']}{_protocol_note(m)}); wrote {out}")
        return 0


def _protocol_note(metrics: dict) -> str:
    if metrics.get("protocol") != "release":
        return ""
    return (f", ORNet release protocol; the release prints Top-1 Loc error {metrics['top1_loc_error']:.2f}"
            f" as 'Top1 Loc'")
