"""Inference export: `model.safetensors` (weights) + `model.json` (everything else, plain JSON).

`model.json` names the architecture (method, backbone, evaluator, generator width, and the mean /
std each network's weights expect: ``backbone_mean`` ... ``evaluator_std``; ``stage1_head: false``
for a network without the stage-1 head, as imported from the release's stage-2 file), the
classes, the preprocessing (resize, crop, and the mean / std that images are normalised with:
the run's input normalisation, the backbone's) and how a map becomes a box (chosen threshold,
normalisation, box mode, the class gate's exponent ``cam_gate`` for ORNet (0 or absent:
none; `ORNet.set_cam_gate`), and ``protocol``: an entry of `ornet.evaluation.protocols.PROTOCOLS`,
which writes these settings; absent means wsolevaluation). `load_exported` rebuilds the network
from these names (the method that wrote it builds it: `Method.build_network`) and loads the
tensors with safetensors: nothing is unpickled.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import OrnetError
from ..methods import EXPORTS
from ..runtime.atomic import atomic_path, write_json_atomic

FORMAT = "ornet-model"
FORMAT_VERSION = 2
"""2: per-network mean / std in `architecture` (1: ImageNet's everywhere; still read)."""


def model_meta(cfg, method: str, classes: list[str], threshold: float | None,
               threshold_index: int | None = None, cam_gate: float | None = None) -> dict:
    """The model.json content for a run config (`RunConfig`) and an evaluation's threshold and
    class gate (ORNet's `cam_gate` exponent, chosen with the threshold; 0: none)."""
    from ..models.weights_spec import model_normalizations

    if method not in EXPORTS:
        raise ValueError(f"unknown method {method!r}; known: {', '.join(EXPORTS.names())}")
    entry = EXPORTS.get(method)
    m, e = cfg.model, cfg.eval
    backbone_norm, evaluator_norm = model_normalizations(m)
    arch: dict[str, Any] = {"backbone": m.backbone, "backbone_mean": list(backbone_norm.mean),
                            "backbone_std": list(backbone_norm.std)}
    arch.update(entry.architecture(m, backbone_norm, evaluator_norm))
    arch.update(entry.settings_architecture(cfg))
    from ..evaluation.protocols import protocol_of

    loc = protocol_of(e).model_localization(e)  # how the protocol makes boxes (e.g. the release's rule)
    if entry.class_gate:
        loc["cam_gate"] = float(cam_gate or 0.0)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "method": method,
        "architecture": arch,
        "num_classes": len(classes),
        "classes": list(classes),
        "preprocessing": {"resize": int(cfg.data.resize), "crop": int(cfg.data.crop),
                          "mean": list(backbone_norm.mean), "std": list(backbone_norm.std)},
        "localization": {"threshold": None if threshold is None else float(threshold),
                         "threshold_index": threshold_index, **loc},
    }


def export_model(out: str | Path, model: nn.Module, meta: dict) -> tuple[Path, Path]:
    """Write OUT/model.safetensors and OUT/model.json (each atomically)."""
    from safetensors.torch import save_model

    out = Path(out)
    weights, info = out / "model.safetensors", out / "model.json"
    with atomic_path(weights) as tmp:
        save_model(model, str(tmp), metadata={"format": FORMAT, "method": meta["method"]})
    write_json_atomic(info, meta)
    return weights, info


def resolve(path: str | Path) -> tuple[Path, Path]:
    """(model.json, model.safetensors) from a run folder, either file, or a run's config."""
    p = Path(path)
    if p.is_dir():
        info, weights = p / "model.json", p / "model.safetensors"
    elif p.suffix == ".json":
        info, weights = p, p.with_suffix(".safetensors")
    elif p.suffix == ".safetensors":
        info, weights = p.with_suffix(".json"), p
    else:
        raise OrnetError(f"{p}: expected a run folder, model.json or model.safetensors")
    for f in (info, weights):
        if not f.is_file():
            raise OrnetError(f"{f} does not exist (train with `ornet train --out DIR` to create it)")
    return info, weights


def read_meta(info: str | Path) -> dict:
    try:
        meta = json.loads(Path(info).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise OrnetError(f"{info}: cannot read model description ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise OrnetError(f"{info}: not an ornet model description (format != {FORMAT!r})")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise OrnetError(f"{info}: format version {meta['format_version']} is newer than this ornet supports")
    for key in ("method", "architecture", "num_classes", "classes", "preprocessing", "localization"):
        if key not in meta:
            raise OrnetError(f"{info}: missing key {key!r}")
    if meta["method"] not in EXPORTS:
        raise OrnetError(f"{info}: unknown method {meta['method']!r}; known: {', '.join(EXPORTS.names())}")
    gate = meta["localization"].get("cam_gate") if isinstance(meta["localization"], dict) else None
    if gate is not None and (isinstance(gate, bool) or not isinstance(gate, (int, float))
                             or not math.isfinite(gate) or gate < 0):
        raise OrnetError(f"{info}: localization.cam_gate must be a number >= 0 (the class gate's exponent), "
                         f"got {gate!r}")
    return meta


def build_model(meta: dict) -> nn.Module:
    """An untrained network of the architecture `meta` names (built by the method that wrote it)."""
    return EXPORTS.get(meta["method"]).build_network(meta)


def load_exported(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """(model in eval mode, model.json dict) from a run folder or its model files; no pickle."""
    from safetensors.torch import load_model as st_load

    from ..models.weights import check_safetensors

    info, weights = resolve(path)
    meta = read_meta(info)
    check_safetensors(weights)  # a pickle renamed .safetensors is refused, naming the file
    model = build_model(meta)
    try:
        missing, unexpected = st_load(model, str(weights), strict=False, device=str(device))
    except Exception as e:  # header or shape problems: a file that does not fit this description
        raise OrnetError(f"{weights}: weights do not fit {info} ({type(e).__name__}: {e})") from None
    if missing or unexpected:
        raise OrnetError(f"{weights}: weights do not fit {info}: missing {sorted(missing)[:5]}, "
                         f"unexpected {sorted(unexpected)[:5]}")
    return model.to(device).eval(), meta
