"""What an evaluation produces (`EvalResult`) and the files written from it.

`metrics.json` (flat keys, percentages 0-100, plus the settings that produced them; each protocol
says which keys it writes: `ornet.evaluation.protocols`), `predictions.csv` (one row per image,
`ROW_FIELDS`) and `curves.json` (accuracy at every threshold of the split that chose it).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

ROW_FIELDS = ("image_id", "label", "pred", "score", "x0", "y0", "x1", "y1", "iou", "correct")
"""predictions.csv columns: true and top-1 predicted class index, the predicted class's softmax
score, the box at the chosen threshold (inclusive pixels of the evaluated crop), its best IoU
with a ground-truth box and whether that IoU passes the GT-known level."""


@dataclass
class EvalResult:
    """What an evaluation produced; `write_outputs` turns it into files."""

    metrics: dict
    rows: list[dict] = field(default_factory=list)
    curves: dict = field(default_factory=dict)


def write_outputs(out: str | Path, result: EvalResult) -> None:
    """metrics.json, predictions.csv and curves.json in `out`, each written atomically."""
    from ..runtime.atomic import write_json_atomic, write_text_atomic

    out = Path(out)
    write_json_atomic(out / "metrics.json", result.metrics)
    if result.curves:  # none without boxes
        write_json_atomic(out / "curves.json", result.curves)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(ROW_FIELDS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(result.rows)
    write_text_atomic(out / "predictions.csv", buf.getvalue())
