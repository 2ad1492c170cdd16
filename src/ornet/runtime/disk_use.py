"""Disk use of a run: checkpoint sizes known before training, `-last` files that do not pile up.

- **Expected sizes** (`training/stage_sizes.py`, `expected_sizes`): each stage's network is
  built on the `meta` device and its tensors counted into a `StageSize`: `<stage>.ckpt` holds
  the state dict, `<stage>-last.ckpt` also the optimiser state. `tests/test_disk.py` checks the
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

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .diskspace import free_bytes, human, tree_bytes
from .stage_checkpoints import best_checkpoint_path, checkpoint_path

log = logging.getLogger("ornet")


@dataclass(frozen=True)
class StageSize:
    final: int
    """`<stage>.ckpt`: the state dict."""
    last: int
    """`<stage>-last.ckpt`: the state dict and the optimiser state."""
    best: int = 0
    """`<stage>-best.ckpt` while the stage runs (`<stage>.keep` other than `last`): the state dict."""


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


def check_space(cfg, out: Path, stages: list[str], present: dict[str, bool],
                estimate: Callable[[list[str]], dict[str, StageSize]]) -> str | None:
    """Warn (and return the warning) when the checkpoints of `stages` will not fit in OUT's free space.

    `estimate(stages)`: their expected sizes (`training.stage_sizes.expected_sizes`)."""
    if not stages:
        return None
    try:
        sizes = estimate(stages)
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


def tidy_and_check_space(cfg, out: Path, plans: list, resume: bool,
                         estimate: Callable[[list[str]], dict[str, StageSize]]) -> None:
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
    check_space(cfg, out, [p.stage for p in plans if not p.skip],
                {p.stage: p.ckpt_path is not None for p in plans}, estimate)


def drop_last(out: Path, stage: str, keep: bool) -> None:
    """Delete `<stage>-last.ckpt` of a finished stage, and `<stage>-best.ckpt` (the best epoch's
    weights, already in `<stage>.ckpt`, when `<stage>.keep` picks the best epoch), unless `keep`."""
    if not keep:
        checkpoint_path(out, stage, last=True).unlink(missing_ok=True)
        best_checkpoint_path(out, stage).unlink(missing_ok=True)


def usage(out: Path) -> dict[str, int]:
    """{"run_folder_bytes": ..., "checkpoint_bytes": ...} of a run folder."""
    from .runlock import LOCK_NAME

    ckpts = Path(out) / "checkpoints"
    return {"run_folder_bytes": tree_bytes(out, skip=frozenset({LOCK_NAME})),
            "checkpoint_bytes": tree_bytes(ckpts) if ckpts.is_dir() else 0}


def describe(sizes: dict[str, int]) -> str:
    """'run folder 12.3 MB (checkpoints 11.9 MB)'."""
    return f"run folder {human(sizes['run_folder_bytes'])} (checkpoints {human(sizes['checkpoint_bytes'])})"

