"""Is a `<stage>-last.ckpt` a training checkpoint the stage can resume from? (before Lightning reads it)."""

from __future__ import annotations

from pathlib import Path

from ..errors import OrnetError
from ..models.weights import safe_torch_load


def check_resume_checkpoint(path: Path, stage: str) -> None:
    """Raise a one-line OrnetError if `path` is not a readable training checkpoint of `stage`."""
    hint = f"delete it to restart stage {stage} from its beginning"
    try:
        ckpt = safe_torch_load(path)  # weights_only=True; truncated or pickled files are refused
    except OrnetError as e:
        raise OrnetError(f"cannot resume: {e}; {hint}") from None
    saved = ckpt.get("hyper_parameters", {}).get("stage") if isinstance(ckpt, dict) else None
    if saved != stage or "state_dict" not in ckpt or "optimizer_states" not in ckpt:
        raise OrnetError(f"cannot resume from {path}: not a stage-{stage} training checkpoint "
                         f"(stage {saved!r}); {hint}")
