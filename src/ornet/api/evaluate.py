"""Evaluate a trained model on a dataset split (what `ornet evaluate` does after parsing).

The model is a run folder, its model.json / model.safetensors, or a `Localizer`. Its
preprocessing (resize, crop, mean, std) comes from model.json; the map-to-box settings from the
run's config.yaml eval section (model.json's without one), then `eval`; the dataset from the
run's config.yaml unless `data` says otherwise. The threshold is chosen on val, unless the run
says test (``eval.threshold_split``, or ``eval.protocol: release``) or ``threshold_split`` says
otherwise (``model``: the threshold stored in model.json). Error messages name the command's
flags (--data.*, --eval.*, --out, --save-scoremaps), which are `evaluate`'s arguments of the
same names.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from pathlib import Path

from ..config.schema import (
    DataConfig,
    EvalConfig,
    RunConfig,
    TrainerConfig,
    apply_protocol,
    from_dict,
)
from ..errors import OrnetError
from ..evaluation.protocols import DEFAULT_PROTOCOL, protocol_of, stored_protocol
from ..extractors import DEFAULT_MAPS
from ..runtime.outdir import check_out_dir, make_out_dir, nonempty, removed_if_failed
from .quiet import lightning_banners


def evaluate(model, data: dict | DataConfig | None = None, split: str = "test", *,
             eval: dict | EvalConfig | None = None, threshold_split: str | None = None,
             trainer: dict | TrainerConfig | None = None,
             out: str | os.PathLike | None = None, force: bool = False,
             save_scoremaps: str | os.PathLike | None = None, quiet: bool = False, command: str | None = None):
    """Evaluate `model` on `split`; returns an `EvalResult` (metrics, per-image rows, curves).

    model: a run folder, model.json, model.safetensors or a `Localizer` (`ornet.load_model`).
    split: test, val, train or tune (carved from train with ``data.tune_per_class``, docs/datasets.md).
    data: a dict of `DataConfig` fields applied on top of the run's config.yaml data section
    (e.g. ``{"root": "data/cub"}``), or a whole `DataConfig`; resize and crop always come from
    the model. eval: `EvalConfig` fields on top of the run's (e.g. ``{"box_mode": "multi"}``,
    ``{"protocol": "release"}``: another protocol starts from its own defaults; ``{"maps": "gradcam"}``:
    a map extractor's maps, docs/maps.md; default: a Localizer's `maps`), or a whole `EvalConfig`.
    threshold_split: val, test or model (default: the run's eval settings).
    trainer: `TrainerConfig` fields (accelerator, devices, precision, limit_test_batches, ...).
    out: also write metrics.json, predictions.csv, curves.json, figures and report.html there
    (new or empty unless ``force``). save_scoremaps: write each map as DIR/<image_id>.npy.
    quiet: no progress bar and no Lightning banners.
    command: what the lock of the folder written (`out`, or the run folder when `out` is inside
    it; `ornet.runtime.runlock`) says its holder runs; default: this process's command line.
    Returns None on processes of rank > 0 (only rank 0 writes).
    """
    from ..config.parse import validate
    from ..runs.export import read_meta
    from ..runs.files import read_config
    from ..training.pipeline import global_rank

    info, run_dir, loaded = _source(model)
    meta = read_meta(info) if loaded is None else loaded.meta
    # The dataset: the run's config.yaml data section, then `data` on top.
    saved = run_dir / "config.yaml" if run_dir is not None else None
    saved_cfg = read_config(saved) if saved is not None and saved.is_file() else {}
    if isinstance(data, DataConfig):
        fields = dict(vars(data))
    else:
        fields = dict(saved_cfg.get("data") or {})
        fields.update(data or {})
    pre = meta["preprocessing"]
    fields.update(resize=int(pre["resize"]), crop=int(pre["crop"]))
    data_cfg = from_dict(DataConfig, fields)
    if data_cfg.root is None:
        raise OrnetError("no dataset: pass --data.root DIR (and --data.name) or a run folder with config.yaml")
    loc = meta["localization"]
    eval_cfg = _eval_config(saved_cfg.get("eval"), loc, eval)
    if loaded is not None and not _names_maps(eval):  # a Localizer's maps (`Localizer.use_maps`) unless eval says
        eval_cfg.maps = loaded.maps
    threshold_split = threshold_split or eval_cfg.threshold_split
    if threshold_split not in ("val", "test", "model"):
        raise OrnetError(f"threshold_split must be val, test or model, got {threshold_split!r}")
    if threshold_split == "model":  # only under the protocol that chose it, on the maps it was chosen on
        protocol_of(eval_cfg).check_model_threshold(loc, info if info is not None else loaded.source)
        if eval_cfg.maps != DEFAULT_MAPS:
            raise OrnetError(f"--threshold-split model reuses model.json's threshold, chosen on the run's own maps; "
                             f"with --eval.maps {eval_cfg.maps} choose it with --threshold-split val or test")
    eval_cfg.threshold_split = "test" if threshold_split == "test" else "val"
    trainer_cfg = trainer if isinstance(trainer, TrainerConfig) else from_dict(TrainerConfig, dict(trainer or {}))
    cfg = apply_protocol(RunConfig(data=data_cfg, eval=eval_cfg, trainer=trainer_cfg))
    validate(cfg)
    if cfg.trainer.keep_freed_memory:
        from ..runtime.heap import keep_freed_memory

        keep_freed_memory()
    cfg.data.batch_size = cfg.data.eval_batch_size
    if out is not None:
        out = Path(out)
        check_out_dir(out, "--out")  # before any work: a writable folder (or one that can be created)
    if save_scoremaps:
        check_out_dir(save_scoremaps, "--save-scoremaps")
    if out is None:
        lock = contextlib.nullcontext()
    else:  # one writer per folder: the run when OUT is inside it (the default RUN/evaluate_<split>), else OUT
        from ..runtime.runlock import folder_to_lock, run_lock

        lock = run_lock(folder_to_lock(out, run_dir), command=command, rank=global_rank())
    from ..training.kept_epochs import read_kept

    # the run's epochs kept on test (checkpoints/kept_epochs.json), for metrics.json's chosen_on_test
    kept = (read_kept(run_dir), list(saved_cfg.get("stages") or [])) if saved_cfg else ({}, [])
    with lock:
        if out is not None and nonempty(out) and not force:
            raise OrnetError(f"--out {out} exists and is not empty; pass --force to write into it")
        return _evaluate(cfg, meta, info, loaded, pre, loc, data_cfg, threshold_split, split, out,
                         save_scoremaps, quiet, kept)


def _evaluate(cfg, meta, info, loaded, pre, loc, data_cfg, threshold_split, split, out, save_scoremaps, quiet,
              kept):
    """The pass itself, once the inputs are checked (and the output folder locked)."""
    from ..data.datamodule import WSOLDataModule
    from ..evaluation.outputs import write_outputs
    from ..evaluation.protocols import evaluate_split

    start = time.perf_counter()
    from ..models.normalization import Normalization

    # images normalised as the run normalised them (model.json: the backbone's mean / std)
    datamodule = WSOLDataModule(cfg.data, normalization=Normalization(tuple(pre["mean"]), tuple(pre["std"])))
    if datamodule.num_classes != meta["num_classes"]:
        raise OrnetError(f"the model has {meta['num_classes']} classes but dataset {data_cfg.root} has "
                         f"{datamodule.num_classes}")
    datamodule.index.split(split)  # an unknown or empty split fails before any pass (tune: names the option)
    network = _network(info, loaded)
    if threshold_split == "model":
        if loc.get("threshold_index") is None:
            raise OrnetError(f"{info or 'the model'} stores no threshold; use --threshold-split val or test")
        datamodule.index.splits["val"] = []  # use the stored threshold, never re-choose it
    from ..training.pipeline import global_rank

    with lightning_banners(quiet):
        result = evaluate_split(network, datamodule, cfg, split=split, quiet=quiet, scoremap_dir=save_scoremaps,
                                stored=loc)  # its threshold: reused by the protocol that chose it, without val
    if global_rank() != 0:
        return None
    from ..training.kept_epochs import chosen_on_test

    result.metrics.update(method=meta["method"], model=str(info if info is not None else loaded.source),
                          seconds=round(time.perf_counter() - start, 2),
                          chosen_on_test=chosen_on_test(result.metrics, *kept))
    if out is not None:
        from ..reports.publish import publish

        with removed_if_failed(out):  # a full disk: no empty output folder left behind
            make_out_dir(out, "--out")
            write_outputs(out, result)
            publish(out)
    return result


def _eval_config(saved: dict | None, loc: dict, overrides: dict | EvalConfig | None) -> EvalConfig:
    """The run's eval section (config.yaml; model.json's localization without one), then `overrides`.

    An overridden protocol other than the run's starts from that protocol's defaults (EvalConfig's)."""
    if isinstance(overrides, EvalConfig):
        return dataclasses.replace(overrides)
    if saved:
        base = {k: v for k, v in saved.items() if k in EvalConfig.__dataclass_fields__}
    else:
        base = {"box_mode": loc["box_mode"], "cam_curve_interval": float(loc["cam_curve_interval"]),
                "normalize": loc["normalize"], "iou_strict": bool(loc["iou_strict"]),
                "threshold_split": loc.get("threshold_split") or "val",
                "protocol": stored_protocol(loc).name}
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(EvalConfig.__dataclass_fields__))
    if unknown:
        raise OrnetError(f"unknown eval key {unknown[0]!r}; keys: {', '.join(EvalConfig.__dataclass_fields__)}")
    if "protocol" in overrides and overrides["protocol"] != base.get("protocol", DEFAULT_PROTOCOL):
        base = {}  # another protocol: its own defaults (EvalConfig), not the run's settings for the other one
    base.update(overrides)
    if base.get("threshold_split") not in ("val", "test"):
        base["threshold_split"] = "val"
    return from_dict(EvalConfig, base)


def _names_maps(overrides) -> bool:
    """Whether `evaluate`'s eval argument sets the maps (a dict with ``maps``, or a whole EvalConfig)."""
    return isinstance(overrides, EvalConfig) or "maps" in (overrides or {})


def _source(model):
    """(model.json or None, the run folder or None, Localizer or None) of what `evaluate` was given."""
    from ..inference.localizer import Localizer
    from ..runs.export import resolve

    if isinstance(model, Localizer):
        return model.info, model.run_dir, model
    if isinstance(model, (str, os.PathLike)):
        info = resolve(model)[0]
        return info, info.parent, None
    raise TypeError(f"model must be a run folder, model.json / model.safetensors or a Localizer, "
                    f"got {type(model).__name__}")


def _network(info: Path | None, loaded):
    """The network to evaluate: the Localizer's, else loaded from the model files now."""
    if loaded is not None:
        return loaded.model
    from ..runs.export import load_exported

    return load_exported(info)[0]
