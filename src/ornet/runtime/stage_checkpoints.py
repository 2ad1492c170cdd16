"""Where a stage's checkpoints lie in a run folder (`OUT/checkpoints/`).

`<stage>.ckpt` is written once the stage has finished (it marks the stage complete);
`<stage>-last.ckpt` after every epoch (with the optimiser state, to resume an interrupted
stage); `<stage>-best.ckpt` while a stage that keeps its best epoch runs.
"""

from __future__ import annotations

from pathlib import Path


def checkpoint_path(out: Path, stage: str, last: bool = False) -> Path:
    """OUT/checkpoints/<stage>.ckpt, or <stage>-last.ckpt with `last`."""
    return Path(out) / "checkpoints" / (f"{stage}-last.ckpt" if last else f"{stage}.ckpt")


def best_checkpoint_path(out: Path, stage: str) -> Path:
    """OUT/checkpoints/<stage>-best.ckpt (the best epoch's weights, while the stage runs)."""
    return Path(out) / "checkpoints" / f"{stage}-best.ckpt"
