"""A run folder from the release's checkpoints (`ornet import-release`).

``import_release(out, fine=...)`` or ``import_release(out, coarse=..., evaluator=...)`` reads and
checks every file first (`convert.plan_import`); only then is OUT created and filled:

- ``config.yaml``: ``configs/cub_release.yaml`` (the release's settings) with the architecture
  read from the files (backbone, evaluator, generator width; ``*_weights: none``, the weights
  being the imported ones), except two evaluation settings:
  ``data.val_per_class: 5`` and ``eval.protocol: wsolevaluation``, so that ``ornet evaluate RUN``
  gives the wsolevaluation numbers (threshold on a held-out split) and
  ``ornet evaluate RUN --eval.protocol release`` the release's (threshold on test);
- ``model.safetensors`` + ``model.json`` (`runs.export`): method ``ornet`` (fine; the network has no
  stage-1 head, ``stage1_head: false``) or ``ornet-coarse``; preprocessing 256 -> 224, ImageNet
  mean / std; localization: the release's rule (protocol ``release``) with the fine file's
  ``best_threshold`` when it holds one, which ``ornet localize`` uses;
- ``checkpoints/coarse.ckpt`` + ``checkpoints/evaluator.ckpt`` (coarse import only): what
  ``ornet train --out RUN --stages [refine]`` starts stage 2 from;
- ``checkpoints/kept_epochs.json``: each file saved with ``best_epoch`` / ``best_acc`` (the release
  keeps the epoch of best TEST accuracy) as its stage kept with ``keep: best_test``, so that
  metrics.json's ``chosen_on_test`` names it (`record_test_choices`);
- ``release.json``: where each tensor came from (paths, SHA-256, the numbers saved beside the
  weights, notes).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import OrnetError
from .convert import ImportPlan, build_model, plan_import

IMPORT_FORMAT = "ornet-release-import"
RELEASE_PRESET = "cub_release"
VAL_PER_CLASS = 5  # ornet's CUB default: the held-out split the wsolevaluation protocol chooses on


@dataclass
class ImportResult:
    out: Path
    plan: ImportPlan
    written: list[str] = field(default_factory=list)


def import_release(out: str | Path, fine: str | Path | None = None, coarse: str | Path | None = None,
                   evaluator: str | Path | None = None, classes: str | Path | None = None,
                   force: bool = False) -> ImportResult:
    """Check the release files, then write the run folder `out` (module docstring)."""
    from ..runtime.outdir import check_out_dir, nonempty
    from ..runtime.runlock import run_lock

    out = Path(out)
    check_out_dir(out, "--out")
    with run_lock(out):  # one writer per run folder (runlock)
        if nonempty(out) and not force:
            raise OrnetError(f"--out {out} exists and is not empty; pass --force to write the imported run into it")
        plan = plan_import(fine=fine, coarse=coarse, evaluator=evaluator)
        names = (read_classes(classes, plan.num_classes) if classes is not None
                 else [str(i) for i in range(plan.num_classes)])
        cfg = run_config(plan)
        model = build_model(plan)
        return _write(out, plan, cfg, model, names)


def read_classes(path: str | Path, num_classes: int) -> list[str]:
    """Class names, one per line (``name`` or CUB's ``index name``); their count must be K."""
    p = Path(path)
    try:
        lines = [line.strip() for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise OrnetError(f"--classes {p}: cannot read it ({getattr(e, 'strerror', None) or e})") from None
    if lines and all(re.match(r"^\d+\s+\S", line) for line in lines):
        lines = [line.split(None, 1)[1] for line in lines]
    if len(lines) != num_classes:
        raise OrnetError(f"--classes {p}: {len(lines)} class names, but the checkpoints have {num_classes} classes")
    return lines


def run_config(plan: ImportPlan):
    """The release preset with the files' architecture; the evaluation defaults of ornet (module docstring)."""
    from ..config.parse import make_parser, parse, to_run_config
    from ..config.presets import preset_path
    from ..methods import check_config

    parser = make_parser("ornet import-release", "")
    cfg = check_config(to_run_config(parser, parse(parser, ["--config", str(preset_path(RELEASE_PRESET))])))
    # The weights come from the files (model.safetensors, checkpoints/), not from torchvision.
    cfg.model = dataclasses.replace(cfg.model, backbone=plan.backbone, evaluator=plan.evaluator,
                                    generator_width=plan.width, backbone_weights="none", evaluator_weights="none")
    cfg.data = dataclasses.replace(cfg.data, val_per_class=VAL_PER_CLASS)
    cfg.eval = dataclasses.replace(cfg.eval, protocol="wsolevaluation", threshold_split="val", iou_strict=False)
    return cfg


def model_json(plan: ImportPlan, cfg, classes: list[str]) -> dict:
    """model.json: the release's map-to-box rule and threshold (for `ornet localize`)."""
    from ..evaluation.protocols import protocol_of
    from ..runs.export import model_meta

    release_cfg = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, protocol="release", threshold_split="test"))
    threshold = plan.threshold
    index = None
    if threshold is not None:
        grid = protocol_of(release_cfg.eval).thresholds(release_cfg.eval)  # the release's 0.05 .. 0.95
        close = [i for i, t in enumerate(grid) if abs(t - threshold) < 1e-9]
        index = close[0] if close else None
    meta = model_meta(release_cfg, _ornet().release_export(refined=plan.kind == "fine"), classes, threshold, index)
    if plan.kind == "fine":
        meta["architecture"]["stage1_head"] = False
    meta["imported_from"] = "ORNet release (release.json)"
    return meta


def _write(out: Path, plan: ImportPlan, cfg, model, classes: list[str]) -> ImportResult:
    from ..config.schema import dump_yaml
    from ..runs.export import export_model
    from ..runtime.atomic import write_json_atomic, write_text_atomic
    from ..runtime.outdir import make_out_dir
    from ..runtime.resume import AtomicCheckpointIO
    from ..runtime.stage_checkpoints import checkpoint_path

    result = ImportResult(out, plan)
    make_out_dir(out, "--out")
    write_text_atomic(out / "config.yaml", dump_yaml(cfg))
    export_model(out, model, model_json(plan, cfg, classes))
    result.written += ["config.yaml", "model.safetensors", "model.json"]
    # a coarse import: stage 2 starts from these (methods.load_state, prefix "model.")
    for stage, net in _ornet().release_checkpoints(model, refined=plan.kind == "fine"):
        path = checkpoint_path(out, stage)
        AtomicCheckpointIO().save_checkpoint(  # atomic; a full disk is one line (DiskFull)
            {"state_dict": {f"model.{k}": v.contiguous() for k, v in net.state_dict().items()},
             "imported_from": "ORNet release (release.json)"}, path)
        result.written.append(str(path.relative_to(out)))
    if record_test_choices(out, plan):
        result.written.append("checkpoints/kept_epochs.json")
    write_json_atomic(out / "release.json", provenance(plan))
    result.written.append("release.json")
    return result


STAGE_OF_FILE = {"fine": "refine", "coarse": "coarse", "evaluator": "evaluator"}


def record_test_choices(out: Path, plan: ImportPlan) -> bool:
    """The release saved each network at its epoch of best TEST accuracy (``best_epoch`` /
    ``best_acc`` beside the weights): recorded in ``checkpoints/kept_epochs.json`` as a stage kept
    with ``keep: best_test``, so that metrics.json's ``chosen_on_test`` names it whenever the run
    is evaluated. True when something was recorded."""
    from ..training.kept_epochs import record_kept

    recorded = False
    for flag, rf in plan.files.items():
        if flag in STAGE_OF_FILE and ("best_epoch" in rf.numbers or "best_acc" in rf.numbers):
            record_kept(out, STAGE_OF_FILE[flag], "best_test", "test", rf.numbers.get("best_acc"))
            recorded = True
    return recorded


def _ornet():
    """ORNet's registry entry: it names the imported model and the stage checkpoints written."""
    from ..methods import METHODS

    return METHODS.get("ornet")


def provenance(plan: ImportPlan) -> dict:
    """release.json: the files read, their hashes and numbers, and what was made of them."""
    files = {}
    for flag, rf in plan.files.items():
        files[flag] = {"path": str(rf.path.resolve()), "sha256": _sha256(rf.path), "kind": rf.kind,
                       "tensors": len(rf.state), "numbers": rf.numbers, "other_entries": rf.other}
    return {"format": IMPORT_FORMAT, "format_version": 1, "kind": plan.kind,
            "architecture": {"backbone": plan.backbone, "evaluator": plan.evaluator,
                             "generator_width": plan.width, "num_classes": plan.num_classes},
            "threshold": plan.threshold, "files": files, "notes": plan.notes}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
