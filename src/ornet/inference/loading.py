"""`load_model`: a `Localizer` from a run folder, its model files, or a stage checkpoint.

Nothing is unpickled: model.safetensors goes through `runs.export.load_exported` (safetensors,
header checked first) and a checkpoint through `models.weights.safe_torch_load`
(``weights_only=True``). A checkpoint carries its run config and class names (the stage's
hyper-parameters), so it needs no other file; its threshold comes from the run's metrics.json
when that file describes this checkpoint's model (``checkpoints/<stage>.ckpt`` of the run's
final stage), and is None otherwise (pass ``threshold=``).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import OrnetError
from .localizer import Localizer


def pick_device(device: str | torch.device | None = None, what: str = "device") -> torch.device:
    """`device`, or cuda when available else cpu; asking for cuda without CUDA is an OrnetError."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise OrnetError(f"{what} cuda was asked for but CUDA is not available")
    return device


def load_model(path: str | os.PathLike, device: str | torch.device | None = None,
               threshold: float | None = None) -> Localizer:
    """A `Localizer` in eval mode on `device` (default: cuda when available, else cpu).

    path: a run folder or its model.json / model.safetensors (`ornet train` exports them), or a
    stage checkpoint ``checkpoints/<stage>.ckpt`` of refine, coarse or cam (``-last`` too).
    threshold: replaces the stored one (model.json's: chosen on val at the end of training).
    """
    device = pick_device(device)
    p = Path(path)
    if p.suffix == ".ckpt":
        return _from_checkpoint(p, device, threshold)
    from ..runs.export import load_exported, resolve

    info, _ = resolve(p)
    model, meta = load_exported(info, device=device)
    return Localizer(model, meta, source=info, info=info, run_dir=info.parent, threshold=threshold)


def _from_checkpoint(path: Path, device: torch.device, threshold: float | None) -> Localizer:
    from ..config.schema import RunConfig, from_dict
    from ..methods import STAGES
    from ..models.weights import safe_torch_load
    from ..runs.export import build_model, model_meta
    from ..runtime.stage_checkpoints import checkpoint_path

    if not path.is_file():
        raise OrnetError(f"checkpoint {path} does not exist")
    ckpt = safe_torch_load(path)  # weights_only=True; a pickled object is refused, naming the file
    hp = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not isinstance(hp, dict) or not isinstance(hp.get("cfg"), dict) or "state_dict" not in ckpt:
        raise OrnetError(f"{path}: not a checkpoint written by `ornet train` (no state_dict and hyper-parameters)")
    stage = hp.get("stage")
    entry = STAGES.get(stage) if isinstance(stage, str) and stage in STAGES else None
    if entry is None or not entry.stage(stage).export:
        maps = [s for s in STAGES if STAGES.get(s).stage(s).export]
        raise OrnetError(f"{path}: a checkpoint of stage {stage!r} makes no maps; load one of stage "
                         f"{', '.join(maps)}")
    cfg = from_dict(RunConfig, hp["cfg"])
    method = entry.stage(stage).export
    classes = [str(c) for c in hp.get("classes") or range(int(hp["num_classes"]))]
    run_dir = path.parent.parent
    stored = _stored_threshold(run_dir, method) if path == checkpoint_path(run_dir, stage) else {}
    meta = model_meta(cfg, method, classes, stored.get("threshold"), stored.get("threshold_index"),
                      stored.get("cam_gate"))
    for key in ("box_mode", "normalize", "threshold_split"):
        if stored.get(key) is not None:
            meta["localization"][key] = stored[key]
    model = build_model(meta)
    state = {k[len("model."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise OrnetError(f"{path}: weights do not fit the checkpoint's own config ({' '.join(str(e).split())[:300]})") from None
    entry.complete(model, stage, run_dir)  # as the run evaluates it (`Method.final_model`)
    return Localizer(model.to(device).eval(), meta, source=path, info=None, run_dir=run_dir, threshold=threshold)


def _stored_threshold(run_dir: Path, method: str) -> dict:
    """metrics.json's threshold settings when they belong to `method`'s model, else {}."""
    from ..runs.files import read_json_object

    path = run_dir / "metrics.json"
    if not path.is_file():
        return {}
    metrics = read_json_object(path)
    return metrics if metrics.get("method") == method else {}
