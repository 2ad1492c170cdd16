"""Every script of examples/ runs on a tiny `ornet synth` set and a run trained through the API.

The scripts use public names only; each one's output is checked against what the commands
write for the same model or maps.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_examples_use_public_names_only():
    import ornet

    for script in sorted(EXAMPLES.glob("*.py")):
        text = script.read_text()
        names = set(re.findall(r"\bornet\.([A-Za-z_]\w*)", text))
        assert names, script.name
        assert names <= set(ornet.__all__), f"{script.name}: {sorted(names - set(ornet.__all__))}"
        assert "from ornet" not in text and "import ornet." not in text, script.name


def test_localize_images_gives_the_boxes_of_ornet_localize(api_run, tmp_path):
    images = api_run.parent / "data" / "images"
    folder = sorted(images.iterdir())[0]
    out = _run(EXAMPLES / "localize_images.py", api_run, folder, "--out", tmp_path / "ex", "--box-mode", "multi",
               "--device", "cpu").stdout
    assert "images ->" in out
    _run("-m", "ornet", "localize", api_run, folder, "--out", tmp_path / "cli", "--box-mode", "multi",
         "--device", "cpu", "--quiet")
    example = json.loads((tmp_path / "ex" / "predictions.json").read_text())["images"]
    cli = json.loads((tmp_path / "cli" / "boxes.json").read_text())["images"]
    assert len(example) == len(cli) == len(list(folder.glob("*.jpg")))
    assert [(e["file"], e["class"], e["boxes"]) for e in example] == [(c["file"], c["class"], c["boxes"]) for c in cli]
    assert all((tmp_path / "ex" / f"{Path(e['file']).stem}.png").is_file() for e in example)


def test_score_other_maps_matches_ornet_evaluate_maps(api_run, tmp_path):
    data = api_run.parent / "data"
    out = _run(EXAMPLES / "score_other_maps.py", data, "--out", tmp_path / "scored").stdout
    assert "files and streamed metrics agree" in out  # the script checks files == streamed itself
    scores = json.loads((tmp_path / "scored" / "scores.json").read_text())
    assert set(scores) == {"centre_prior", "colour_contrast"}
    cli = json.loads(_run("-m", "ornet", "evaluate-maps", "--metadata", tmp_path / "scored" / "metadata" / "boxes",
                          "--scoremaps", tmp_path / "scored" / "scoremaps" / "colour_contrast",
                          "--workers", "1").stdout)
    assert cli["num_images"] == 12
    assert cli["max_box_acc"]["50"] == scores["colour_contrast"]["max_box_acc"]
    for row in scores.values():
        assert all(0.0 <= v <= 100.0 for v in row.values())


def test_threshold_study_reports_the_sweep_of_the_run(api_run, tmp_path):
    out = _run(EXAMPLES / "threshold_study.py", api_run, "--out", tmp_path / "study", "--device", "cpu").stdout
    assert "chosen on val" in out and (tmp_path / "study" / "threshold_curve.png").is_file()
    study = json.loads((tmp_path / "study" / "study.json").read_text())
    rows, test = study["rows"], study["test"]
    assert test["num_images"] == 12 and len(study["val"]["thresholds"]) == 100
    oracle, chosen = rows["best on test (oracle)"], rows["chosen on val"]
    assert oracle["gt_known_loc"] >= chosen["gt_known_loc"]
    hits = np.asarray(test["hits"])[test["modes"].index(study["box_mode"]), :, test["iou_thresholds"].index(50)]
    assert oracle["gt_known_loc"] == 100.0 * hits.max() / 12  # the oracle is the curve's maximum
    assert chosen["gt_known_loc"] == 100.0 * hits[chosen["threshold_index"]] / 12
    metrics = json.loads((api_run / "metrics.json").read_text())
    assert rows["stored in model.json"]["threshold"] == metrics["threshold"]
