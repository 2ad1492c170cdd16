"""Disk use of a run: checkpoint sizes known before training, `-last` files that do not pile up.

- **Expected sizes** (`expected_sizes`): each stage's network is built on the `meta` device
  (no memory, no weights read; on the CPU for a builder that needs real tensors, as timm's
  split check does) and its tensors counted: `<stage>.ckpt` holds the state dict
  (parameters and buffers), `<stage>-last.ckpt` also the optimiser state (SGD with momentum:
  one tensor per trainable parameter; Adam / AdamW: two). `tests/test_disk.py` checks the
  estimate against the files a tiny run writes.
- **The space check** (`check_space`, at the start of `ornet train`): the most the run folder
  will hold at once, from now on, is compared with the space free on its file system; when
  it will not fit, one warning says so (the run still starts: the estimate is not exact, and
  space may be freed meanwhile). The peak comes while a stage rewrites its `-last` file:
  the old file and the new temporary one exist together, beside the final checkpoints of the
  earlier stages.
- **Hygiene** (`drop_last`): once `<stage>.ckpt` is written (atomically, and every process
  has passed the barrier after it), `<stage>-last.ckpt` is deleted (and `<stage>-best.ckpt`,
  whose weights `<stage>.keep: best` put in `<stage>.ckpt`): a finished stage is never
  resumed, and `--resume` skips it (it never reads a stale `-last` file).
  `trainer.keep_last_checkpoints: true` keeps them (to continue a finished stage for more
  epochs by hand, say).
- **The summary** (`usage`): bytes the run folder takes, and of that its checkpoints; printed
  at the end of `ornet train` and saved in `metrics.json` (`run_folder_bytes`,
  `checkpoint_bytes`).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config.schema import RunConfig
from .diskspace import free_bytes, human, tree_bytes

log = logging.getLogger("ornet")

OPTIMIZER_STATE = {"sgd": 1, "adam": 2, "adamw": 2}
"""Tensors of optimiser state per trainable parameter (SGD: the momentum buffer, if momentum > 0)."""


@dataclass(frozen=True)
class StageSize:
    final: int
    """`<stage>.ckpt`: the state dict."""
    last: int
    """`<stage>-last.ckpt`: the state dict and the optimiser state."""
    best: int = 0
    """`<stage>-best.ckpt` while the stage runs (`<stage>.keep` other than `last`): the state dict."""


def _nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _build(build_task, cfg: RunConfig, stage: str, num_classes: int):
    """The stage's task on the `meta` device; on the CPU where a builder needs real tensors (a timm
    backbone checks its split with a forward pass)."""
    names = [str(i) for i in range(num_classes)]
    try:
        with torch.device("meta"):
            return build_task(cfg, stage, num_classes, names)
    except (RuntimeError, NotImplementedError, ValueError):
        return build_task(cfg, stage, num_classes, names)


def expected_sizes(cfg: RunConfig, stages: list[str], num_classes: int) -> dict[str, StageSize]:
    """Expected checkpoint bytes per stage (module docstring); tensors only, no file overhead."""
    from ..training.pipeline import build_task

    blank = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, backbone_weights="none",
                                                               evaluator_weights="none"))
    sizes = {}
    for stage in stages:
        task = _build(build_task, blank, stage, num_classes)
        weights = _nbytes(task.state_dict().values())
        stage_cfg = getattr(cfg, stage)
        per_param = OPTIMIZER_STATE.get(stage_cfg.optimizer, 2)
        if stage_cfg.optimizer == "sgd" and not stage_cfg.momentum:
            per_param = 0
        trainable = {id(p): p for params, _ in task.param_groups() for p in params if p.requires_grad}
        best = weights if getattr(stage_cfg, "keep", "last") != "last" else 0
        sizes[stage] = StageSize(final=weights, last=weights + per_param * _nbytes(trainable.values()), best=best)
    return sizes


def peak_bytes(sizes: dict[str, StageSize], keep_last: bool, present: dict[str, bool] | None = None) -> int:
    """The most the stages' checkpoints add to the folder at one moment, in the order given.

    `present[stage]`: its `-last` file exists already (a resumed stage rewrites it in place, so
    only one more copy is needed at a time).
    """
    present = present or {}
    kept, peak = 0, 0
    for stage, size in sizes.items():
        copies = 1 if present.get(stage) else 2
        peak = max(peak, kept + copies * size.last + size.best, kept + size.last + size.best + size.final)
        kept += size.final + (size.last + size.best if keep_last else 0)
    return max(peak, kept)


def check_space(cfg: RunConfig, out: Path, stages: list[str], num_classes: int, present: dict[str, bool]) -> str | None:
    """Warn (and return the warning) when the checkpoints of `stages` will not fit in OUT's free space."""
    if not stages:
        return None
    try:
        sizes = expected_sizes(cfg, stages, num_classes)
    except Exception as e:  # only a warning depends on it: never stop a run for it
        log.debug("no checkpoint size estimate: %s", e)
        return None
    need = peak_bytes(sizes, cfg.trainer.keep_last_checkpoints, present)
    free = free_bytes(out)
    if free is None or need <= free:
        return None
    each = ", ".join(f"{s} {human(z.final)} + {human(z.last)} for -last" for s, z in sizes.items())
    message = (f"warning: the checkpoints of this run need about {human(need)} at their peak ({each}) and the "
               f"file system of {out} has {human(free)} free: the run will stop when the disk is full")
    log.warning(message)
    return message


def tidy_and_check_space(cfg: RunConfig, out: Path, plans: list, num_classes: int, resume: bool) -> None:
    """Before the stages run (rank 0): remove what a stopped run left that no one will read, then
    warn if the checkpoints to come will not fit (`check_space`).

    `plans`: `pipeline.StagePlan`s. On `resume`, the hidden temporaries of a run killed while
    writing a checkpoint go; a complete stage's `-last` file (a run stopped between its final
    checkpoint and the deletion) goes too.
    """
    from .atomic import stale_temporaries

    if resume:
        for tmp in stale_temporaries(Path(out) / "checkpoints"):
            tmp.unlink(missing_ok=True)
    for p in plans:
        if p.skip:
            drop_last(out, p.stage, keep=cfg.trainer.keep_last_checkpoints)
    check_space(cfg, out, [p.stage for p in plans if not p.skip], num_classes,
                {p.stage: p.ckpt_path is not None for p in plans})


def drop_last(out: Path, stage: str, keep: bool) -> None:
    """Delete `<stage>-last.ckpt` of a finished stage, and `<stage>-best.ckpt` (the best epoch's
    weights, already in `<stage>.ckpt`, when `<stage>.keep` picks the best epoch), unless `keep`."""
    from ..training.pipeline import checkpoint_path

    if not keep:
        checkpoint_path(out, stage, last=True).unlink(missing_ok=True)
        (Path(out) / "checkpoints" / f"{stage}-best.ckpt").unlink(missing_ok=True)


def usage(out: Path) -> dict[str, int]:
    """{"run_folder_bytes": ..., "checkpoint_bytes": ...} of a run folder."""
    from .runlock import LOCK_NAME

    ckpts = Path(out) / "checkpoints"
    return {"run_folder_bytes": tree_bytes(out, skip=frozenset({LOCK_NAME})),
            "checkpoint_bytes": tree_bytes(ckpts) if ckpts.is_dir() else 0}


def describe(sizes: dict[str, int]) -> str:
    """'run folder 12.3 MB (checkpoints 11.9 MB)'."""
    return f"run folder {human(sizes['run_folder_bytes'])} (checkpoints {human(sizes['checkpoint_bytes'])})"

