"""Which split chose each stage's kept epoch: ``checkpoints/kept_epochs.json`` of a run folder.

A stage with ``keep: best_val`` or ``keep: best_test`` (`StageConfig.keep`) keeps the epoch of
best ``val/acc`` on that split instead of its last one. `run_stage` records the choice here as
the stage ends, beside the checkpoint it describes (``{"evaluator": {"keep": "best_test",
"split": "test", "score": 0.83}}``), and drops a stage's entry when a later run of that stage
keeps its last epoch; a run that never keeps a best epoch (the default) writes no file.
`chosen_on_test` turns the record into metrics.json's ``chosen_on_test`` entries, so a choice
made on the test split is never only a log line (docs/training.md, metrics.json keys).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from ..errors import OrnetError

FILE = "kept_epochs.json"


def kept_path(out: Path) -> Path:
    return Path(out) / "checkpoints" / FILE


def read_kept(out: Path) -> dict[str, dict]:
    """The record of a run folder: stage -> {"keep", "split", "score"}; empty without a file."""
    path = kept_path(out)
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise OrnetError(f"{path}: unreadable record of the kept epochs ({e})") from None
    if not isinstance(record, dict) or not all(isinstance(v, dict) for v in record.values()):
        raise OrnetError(f"{path}: not a record of the kept epochs (stage -> object)")
    return record


def record_kept(out: Path, stage: str, keep: str, split: str | None, score: float | None) -> None:
    """Write `stage`'s choice (``split`` None: the stage kept its last epoch, its entry goes)."""
    from ..runtime.atomic import write_json_atomic

    record = read_kept(out)
    if split is None:
        if stage not in record:
            return
        del record[stage]
    else:
        record[stage] = {"keep": keep, "split": split, "score": None if score is None else round(float(score), 6)}
    path = kept_path(out)
    if record:
        write_json_atomic(path, record)
    else:
        path.unlink(missing_ok=True)


def chosen_on_test(metrics: dict, kept: dict[str, dict] | None = None, stages: Iterable[str] = ()) -> list[str]:
    """metrics.json's ``chosen_on_test``: every choice behind `metrics` made on the test split.

    ``"threshold"`` when the map threshold was chosen on the evaluated split and that is test
    (``eval.threshold_split: test``, or the release protocol); ``"class gate (eval.cam_gate)"``
    when ORNet's class gate was scored on test; ``"<stage> epoch (keep: best_test)"`` for each of
    `stages` whose kept epoch was chosen on test (`kept`: `read_kept`). Empty: nothing was.
    """
    out = []
    on_test = metrics.get("split") == "test"
    if on_test and metrics.get("threshold_split") not in (None, "val", "model"):
        out.append("threshold")
    if metrics.get("cam_gate_split") == "test" and metrics.get("cam_gate_scores"):
        out.append("class gate (eval.cam_gate)")
    for stage in stages:
        entry = (kept or {}).get(stage)
        if entry is not None and entry.get("split") == "test":
            out.append(f"{stage} epoch (keep: {entry.get('keep', 'best_test')})")
    return out
