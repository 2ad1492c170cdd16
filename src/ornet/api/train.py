"""Train a config into a run folder: checks first, then the stages, evaluation and export.

`train(cfg, out)` is what `ornet train` does after parsing (docs/training.md): OUT receives
config.yaml, checkpoints/, logs/, snapshots/, metrics.json, predictions.csv, curves.json,
model.safetensors + model.json, figures/ and report.html. Everything a run reads (the dataset's
index and image headers, every weights file and checkpoint) is checked before anything is
written. Error messages name the command's flags (--out, --resume, --force, --stages), which
are `train`'s arguments of the same names.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path

from ..config.schema import RunConfig, dump_yaml
from ..errors import OrnetError
from ..runtime.outdir import check_out_dir, make_out_dir
from .quiet import lightning_banners


def train(cfg: RunConfig | None, out: str | os.PathLike, *, resume: bool = False, force: bool = False,
          stages: list[str] | None = None, quiet: bool = False, command: str | None = None) -> dict | None:
    """Train `cfg` into the run folder `out`, evaluate the final model on the test split, export it.

    cfg: a `RunConfig` (`ornet.load_config`); None continues `out` with its own config.yaml
    (with ``resume`` or ``stages``). out: a new or empty folder, unless ``resume`` (skip the
    completed stages, continue an interrupted one from its last checkpoint), ``force`` (train
    into it again, replacing the listed stages' checkpoints) or ``stages`` (run only these
    stages, e.g. ``["refine"]``, from the earlier stages' checkpoints in `out`).
    quiet: no progress bars, model summaries or Lightning banners.
    command: what the run folder's lock (`ornet.runtime.runlock`) says its holder runs; default: this
    process's command line. A second writer of `out` gets `RunLocked` naming it.
    Returns metrics.json's dict (None on processes of rank > 0, or when no stage makes maps).
    """
    from ..methods import check_config
    from ..training.pipeline import global_rank

    out = Path(out)
    if cfg is None:
        cfg = _saved_config(out, resume or stages is not None)
    if stages is not None:
        cfg = dataclasses.replace(cfg, stages=list(stages))
    cfg = check_config(cfg)  # the method's checks; wsol_method resolved (written to config.yaml)
    _warn_unused(cfg)
    rerun = stages is not None
    if resume and force:
        raise OrnetError("--resume and --force contradict each other: choose one")
    if out.exists() and not out.is_dir():
        raise OrnetError(f"--out {out} exists and is not a folder")
    rank = global_rank()  # ranks > 0 are re-executions of this command by a DDP launcher
    check_out_dir(out, "--out")
    if cfg.trainer.keep_freed_memory:
        from ..runtime.heap import keep_freed_memory

        keep_freed_memory()
    from ..runtime.runlock import run_lock

    with run_lock(out, command=command, rank=rank):  # one writer per run folder
        if rank == 0 and _nonempty(out) and not (resume or force or rerun):
            raise OrnetError(f"--out {out} exists and is not empty; pass --resume to continue it, --stages to "
                             "rerun some stages from its checkpoints, or --force to train into it again")
        from ..data.datamodule import WSOLDataModule
        from ..models.weights_spec import input_normalization, resolve_model
        from ..runtime.stage_checkpoints import checkpoint_path
        from ..training import pipeline

        # Everything a run reads is checked before anything is written: the dataset (index and
        # image headers) and every weights file and checkpoint it will load.
        check_weight_files(cfg, out, force=bool(force), resume=resume)
        cfg = dataclasses.replace(cfg, model=resolve_model(cfg.model))  # each network's mean / std, recorded
        datamodule = WSOLDataModule(cfg.data, normalization=input_normalization(cfg.model))
        pipeline.plan(cfg, out, resume)  # a stage's missing dependency (a checkpoint it starts from) fails here
        if rank == 0:
            make_out_dir(out, "--out")
            if force:
                for stage in cfg.stages:
                    for p in (checkpoint_path(out, stage), checkpoint_path(out, stage, last=True)):
                        p.unlink(missing_ok=True)
            write_config(cfg, out)
        with lightning_banners(quiet):
            return run(cfg, out, resume=resume, quiet=quiet, datamodule=datamodule)


def _saved_config(out: Path, continuing: bool) -> RunConfig:
    """The run's own config.yaml, to continue it (train(None, out, resume=True))."""
    from ..config.schema import from_dict
    from ..runs.files import read_config

    if not continuing:
        raise OrnetError("train needs a config (ornet.load_config) unless it continues a run (resume or stages)")
    return from_dict(RunConfig, read_config(out / "config.yaml"))  # checked by `train`


def _nonempty(path: Path) -> bool:
    from ..runtime.runlock import LOCK_NAME

    return path.exists() and (not path.is_dir() or any(p.name != LOCK_NAME for p in path.iterdir()))


def _warn_unused(cfg) -> None:
    """A warning naming the settings the run's method does not read (`methods.unused_settings`)."""
    from ..methods import unused_settings

    unused = unused_settings(cfg)
    if unused:
        shown = ", ".join(unused[:6]) + (f" and {len(unused) - 6} more" if len(unused) > 6 else "")
        logging.getLogger("ornet").warning("method %s does not read %s: %s no effect on this run", cfg.wsol_method,
                                           shown, "it has" if len(unused) == 1 else "they have")


def check_weight_files(cfg, out: Path, force: bool = False, resume: bool = False) -> None:
    """Read every weights file and checkpoint the run may load (OrnetError naming a bad one).

    model.backbone_weights / model.evaluator_weights when they name files, and OUT/checkpoints/
    *.ckpt (a resume, a partial rerun and the final evaluation read them), except those that
    --force is about to delete and, on --resume, the `-last` file of a complete stage (it is
    not read: the stage is skipped, and the file deleted). A pickled object in any of them is
    refused here, before a run folder is touched or a minute is spent training.
    """
    from ..methods import check_networks
    from ..models.backbones import check_network
    from ..models.weights import check_weights, safe_torch_load
    from ..models.weights_spec import weights_spec
    from ..runtime.stage_checkpoints import checkpoint_path

    m = cfg.model
    for key, arch in (("backbone", m.backbone), ("evaluator", m.evaluator)):
        if arch is not None:
            check_network(arch, f"model.{key}")
    check_networks(cfg)  # e.g. ORNet's class gate needs a GAP + Linear evaluator
    if m.reinit:
        from ..models.reinit import check_reinit

        check_reinit(m.backbone, m.reinit)
    for net in ("backbone", "evaluator"):
        if getattr(m, net):
            check_weights(weights_spec(m, net))  # nothing for none / evaluator (the pipeline's checkpoint)
    replaced = {checkpoint_path(out, s, last=last) for s in cfg.stages for last in (False, True)} if force else set()
    if resume:
        replaced |= {checkpoint_path(out, s, last=True) for s in cfg.stages if checkpoint_path(out, s).is_file()}
    folder = out / "checkpoints"
    for path in sorted(folder.glob("*.ckpt")) if folder.is_dir() else []:
        if path not in replaced:
            safe_torch_load(path)


def write_config(cfg, out: Path) -> None:
    """config.yaml: the resolved config; a partial rerun keeps the run's full list of stages."""
    import yaml

    from ..runtime.atomic import write_text_atomic

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


def run(cfg, out: Path, resume: bool = False, quiet: bool = False, datamodule=None) -> dict | None:
    """Stages, evaluation, export and output files (rank 0 writes); metrics.json's dict on rank 0,
    None on other ranks or when no stage produces maps."""
    import yaml

    from ..data.datamodule import WSOLDataModule
    from ..evaluation.outputs import write_outputs
    from ..evaluation.protocols import evaluate_split
    from ..methods import method_of
    from ..runs.export import export_model, model_meta
    from ..training import pipeline

    start = time.perf_counter()
    from ..models.weights_spec import input_normalization

    datamodule = datamodule if datamodule is not None else WSOLDataModule(
        cfg.data, normalization=input_normalization(cfg.model))
    seconds = pipeline.run_stages(cfg, datamodule, out, resume=resume, quiet=quiet)
    stages = cfg.stages
    saved = out / "config.yaml"
    if saved.is_file():  # a partial rerun evaluates the run's full pipeline
        stages = (yaml.safe_load(saved.read_text()) or {}).get("stages") or stages
    entry = method_of(cfg)
    stage = entry.final_stage(stages, out)
    if stage is None:
        logging.getLogger("ornet").info("no map-producing stage in %s: nothing to evaluate or export", stages)
        return None
    from ..errors import DiskFull, PeerLost
    from ..runtime import peers
    from ..runtime.disk_use import usage

    hint = f"continue with: ornet train --out {out} --resume (the stages are complete: it evaluates and exports)"
    model = entry.final_model(cfg, stage, out, datamodule.num_classes)
    method = entry.stage(stage).export
    t0 = time.perf_counter()
    try:
        result = evaluate_split(model, datamodule, cfg, split="test", quiet=quiet)
    except PeerLost as e:
        raise peers.with_hint(e, hint) from None
    if pipeline.global_rank() != 0:
        return None
    seconds["evaluation"] = round(time.perf_counter() - t0, 2)
    seconds["total"] = round(time.perf_counter() - start, 2)
    from ..training.kept_epochs import chosen_on_test, read_kept

    result.metrics.update(method=method, stages_run=[s for s in seconds if s not in ("evaluation", "total")],
                          seconds=seconds["total"], seconds_per_stage=seconds,
                          chosen_on_test=chosen_on_test(result.metrics, read_kept(out), stages))
    meta = model_meta(cfg, method, datamodule.classes, result.metrics.get("threshold"),
                      result.metrics.get("threshold_index"), result.metrics.get("cam_gate"))
    from ..reports.publish import publish
    from ..runtime.atomic import write_json_atomic

    try:
        export_model(out, model, meta)
        write_outputs(out, result)
        publish(out)
        result.metrics.update(usage(out))  # the run folder's disk use, in the summary and metrics.json
        write_json_atomic(out / "metrics.json", result.metrics)
    except DiskFull as e:
        raise DiskFull(f"{e}; free space, then {hint}", e.path, e.needed, e.free) from None
    return result.metrics
