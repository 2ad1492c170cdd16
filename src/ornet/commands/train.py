"""`ornet train`: run the stages a config lists, then evaluate and export the model.

    ornet train --config configs/demo.yaml --data.root DIR --out OUT [overrides]
    ornet train --config configs/demo.yaml --out OUT --stages [refine]   # rerun stage 2 only
    ornet train --out OUT --resume                                      # continue an interrupted run

OUT receives config.yaml, checkpoints/, logs/, snapshots/, metrics.json, predictions.csv,
curves.json, model.safetensors and model.json (docs/training.md, "The run folder").
"""

from __future__ import annotations

import dataclasses
import logging
import shlex
import time
from pathlib import Path

from ..cli_config import dump_yaml, make_parser, parse, to_run_config
from ..errors import OrnetError
from ..outdir import check_out_dir, make_out_dir

DESCRIPTION = ("Train the stages of a config (ORNet: evaluator, coarse, refine; or the CAM baseline), "
               "then evaluate on the test split (threshold chosen on val) and export the model. "
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


def _nonempty(path: Path) -> bool:
    from ..runlock import LOCK_NAME

    return path.exists() and (not path.is_dir() or any(p.name != LOCK_NAME for p in path.iterdir()))


def main(argv: list[str], prog: str) -> int:
    from ..tasks.pipeline import global_rank

    argv = list(argv)
    argv_given = list(argv)
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
    if resume and ns.force:
        raise OrnetError("--resume and --force contradict each other: choose one")
    if out.exists() and not out.is_dir():
        raise OrnetError(f"--out {out} exists and is not a folder")
    rank = global_rank()  # ranks > 0 are re-executions of this command by a DDP launcher
    check_out_dir(out, "--out")
    from ..runlock import run_lock

    with run_lock(out, command=f"{prog} {shlex.join(argv_given)}", rank=rank):  # one writer per run folder
        if rank == 0 and _nonempty(out) and not (resume or ns.force or rerun):
            raise OrnetError(f"--out {out} exists and is not empty; pass --resume to continue it, --stages to "
                             "rerun some stages from its checkpoints, or --force to train into it again")
        _setup_logging(quiet)

        from ..data.datamodule import WSOLDataModule
        from ..normalization import input_normalization, resolve_model
        from ..tasks import pipeline

        # Everything a run reads is checked before anything is written: the dataset (index and
        # image headers) and every weights file and checkpoint it will load.
        check_weight_files(cfg, out, force=bool(ns.force), resume=resume)
        cfg = dataclasses.replace(cfg, model=resolve_model(cfg.model))  # each network's mean / std, recorded
        datamodule = WSOLDataModule(cfg.data, normalization=input_normalization(cfg.model))
        pipeline.plan(cfg, out, resume)  # a stage's missing dependency (refine without coarse.ckpt) fails here
        if rank == 0:
            make_out_dir(out, "--out")
            if ns.force:
                for stage in cfg.stages:
                    for p in (pipeline.checkpoint_path(out, stage), pipeline.checkpoint_path(out, stage, last=True)):
                        p.unlink(missing_ok=True)
            _write_config(cfg, out)
        return run(cfg, out, resume=resume, quiet=quiet, datamodule=datamodule)


def check_weight_files(cfg, out: Path, force: bool = False, resume: bool = False) -> None:
    """Read every weights file and checkpoint the run may load (OrnetError naming a bad one).

    model.backbone_weights / model.evaluator_weights when they name files, and OUT/checkpoints/
    *.ckpt (a resume, a partial rerun and the final evaluation read them), except those that
    --force is about to delete and, on --resume, the `-last` file of a complete stage (it is
    not read: the stage is skipped, and the file deleted). A pickled object in any of them is
    refused here, before a run folder is touched or a minute is spent training.
    """
    from ..models.backbones import check_network
    from ..models.weights import check_weights_spec, safe_torch_load
    from ..tasks.pipeline import checkpoint_path

    m = cfg.model
    for key, arch in (("backbone", m.backbone), ("evaluator", m.evaluator)):
        if arch is not None:
            check_network(arch, f"model.{key}")
    if m.reinit:
        from ..models.reinit import check_reinit

        check_reinit(m.backbone, m.reinit)
    for key, arch in (("backbone_weights", m.backbone), ("evaluator_weights", m.evaluator)):
        spec = (getattr(m, key) or "none").strip()
        if arch and not (key == "backbone_weights" and spec == "evaluator"):
            check_weights_spec(spec, arch, f"model.{key}")
    replaced = {checkpoint_path(out, s, last=last) for s in cfg.stages for last in (False, True)} if force else set()
    if resume:
        replaced |= {checkpoint_path(out, s, last=True) for s in cfg.stages if checkpoint_path(out, s).is_file()}
    folder = out / "checkpoints"
    for path in sorted(folder.glob("*.ckpt")) if folder.is_dir() else []:
        if path not in replaced:
            safe_torch_load(path)


def _write_config(cfg, out: Path) -> None:
    """config.yaml: the resolved config; a partial rerun keeps the run's full list of stages."""
    import yaml

    from ..fsutil import write_text_atomic

    saved = cfg
    old = out / "config.yaml"
    if old.is_file():
        try:
            previous = (yaml.safe_load(old.read_text()) or {}).get("stages") or []
        except yaml.YAMLError:
            previous = []
        if set(cfg.stages) < set(previous):
            saved = dataclasses.replace(cfg, stages=list(previous))
    write_text_atomic(out / "config.yaml", dump_yaml(saved))


class _StderrHandler(logging.StreamHandler):
    """Writes to `sys.stderr` as it is at each message (not the stream of the first run in this process)."""

    @property
    def stream(self):
        import sys

        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _setup_logging(quiet: bool) -> None:
    logging.getLogger("ornet").setLevel(logging.WARNING if quiet else logging.INFO)
    if not logging.getLogger("ornet").handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logging.getLogger("ornet").addHandler(handler)
    if quiet:
        for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
            logging.getLogger(name).setLevel(logging.WARNING)


def run(cfg, out: Path, resume: bool = False, quiet: bool = False, datamodule=None) -> int:
    """Stages, evaluation, export and output files (rank 0 writes)."""
    import yaml

    from ..data.datamodule import WSOLDataModule
    from ..evaluation import evaluate, write_outputs
    from ..tasks import pipeline
    from ..tasks.export import export_model, model_meta

    start = time.perf_counter()
    from ..normalization import input_normalization

    datamodule = datamodule if datamodule is not None else WSOLDataModule(
        cfg.data, normalization=input_normalization(cfg.model))
    seconds = pipeline.run_stages(cfg, datamodule, out, resume=resume, quiet=quiet)
    stages = cfg.stages
    saved = out / "config.yaml"
    if saved.is_file():  # a partial rerun evaluates the run's full pipeline
        stages = (yaml.safe_load(saved.read_text()) or {}).get("stages") or stages
    stage = pipeline.final_stage(stages, out)
    if stage is None:
        logging.getLogger("ornet").info("no map-producing stage in %s: nothing to evaluate or export", stages)
        return 0
    from ..errors import DiskFull, PeerLost
    from ..tasks import peers
    from ..tasks.disk_use import usage

    hint = f"continue with: ornet train --out {out} --resume (the stages are complete: it evaluates and exports)"
    model = pipeline.final_model(cfg, stage, out, datamodule.num_classes)
    method = pipeline.METHOD_OF_STAGE[stage]
    t0 = time.perf_counter()
    try:
        result = evaluate(model, datamodule, cfg, split="test", quiet=quiet)
    except PeerLost as e:
        raise peers.with_hint(e, hint) from None
    if pipeline.global_rank() != 0:
        return 0
    seconds["evaluation"] = round(time.perf_counter() - t0, 2)
    seconds["total"] = round(time.perf_counter() - start, 2)
    result.metrics.update(method=method, stages_run=[s for s in seconds if s not in ("evaluation", "total")],
                          seconds=seconds["total"], seconds_per_stage=seconds)
    meta = model_meta(cfg, method, datamodule.classes, result.metrics.get("threshold"),
                      result.metrics.get("threshold_index"))
    from ..fsutil import write_json_atomic
    from ..viz.publish import publish

    try:
        export_model(out, model, meta)
        write_outputs(out, result)
        publish(out)
        result.metrics.update(usage(out))  # the run folder's disk use, in the summary and metrics.json
        write_json_atomic(out / "metrics.json", result.metrics)
    except DiskFull as e:
        raise DiskFull(f"{e}; free space, then {hint}", e.path, e.needed, e.free) from None
    if not quiet:
        _print_summary(result.metrics, out)
    return 0


def _print_summary(metrics: dict, out: Path) -> None:
    keys = ("top1_cls", "top1_loc", "gt_known_loc", "max_box_acc_v2", "pxap")
    parts = [f"{k} {metrics[k]:.2f}" for k in keys if isinstance(metrics.get(k), (int, float))]
    protocol = " under the ORNet release's protocol" if metrics.get("protocol") == "release" else ""
    from ..tasks.disk_use import describe

    print(f"{metrics.get('method')}: " + ", ".join(parts) +
          f" (threshold {metrics.get('threshold')} chosen on {metrics.get('threshold_split')}{protocol}); wrote {out}: "
          + describe(metrics))
