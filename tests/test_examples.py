"""Every script of examples/ runs on a tiny `ornet synth` set and a run trained through the API.

The scripts use public names only; each one's output is checked against what the commands
write for the same model or maps. The work runs in this process (the script's `main(argv)`, and
`ornet.cli.main` for the commands: a subprocess would spend seconds importing torch and Lightning
each time); each script also runs as a script, `--help` in its own interpreter.
"""

from __future__ import annotations

import json
import re
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _example(capsys, script: str, *args) -> str:
    """examples/<script>'s `main(argv)` run here; what it printed."""
    capsys.readouterr()
    runpy.run_path(str(EXAMPLES / script))["main"]([str(a) for a in args])
    return capsys.readouterr().out


def _ornet(capsys, *args) -> str:
    """`ornet ARGS...` run here (exit code 0 asserted); what it printed."""
    from ornet.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    assert code == 0, out.err[-3000:]
    return out.out


@pytest.mark.parametrize("script", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_each_example_runs_as_a_script(script):
    proc = subprocess.run([sys.executable, str(EXAMPLES / script), "--help"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("usage:"), proc.stderr[-3000:]


def test_examples_use_public_names_only():
    import ornet

    for script in sorted(EXAMPLES.glob("*.py")):
        text = script.read_text()
        names = set(re.findall(r"\bornet\.([A-Za-z_]\w*)", text))
        assert names, script.name
        assert names <= set(ornet.__all__), f"{script.name}: {sorted(names - set(ornet.__all__))}"
        assert "from ornet" not in text and "import ornet." not in text, script.name


def test_localize_images_gives_the_boxes_of_ornet_localize(api_run, tmp_path, capsys):
    images = api_run.parent / "data" / "images"
    folder = sorted(images.iterdir())[0]
    out = _example(capsys, "localize_images.py", api_run, folder, "--out", tmp_path / "ex", "--box-mode", "multi",
                   "--device", "cpu")
    assert "images ->" in out
    _ornet(capsys, "localize", api_run, folder, "--out", tmp_path / "cli", "--box-mode", "multi", "--device", "cpu",
           "--quiet")
    example = json.loads((tmp_path / "ex" / "predictions.json").read_text())["images"]
    cli = json.loads((tmp_path / "cli" / "boxes.json").read_text())["images"]
    assert len(example) == len(cli) == len(list(folder.glob("*.jpg")))
    assert [(e["file"], e["class"], e["boxes"]) for e in example] == [(c["file"], c["class"], c["boxes"]) for c in cli]
    assert all((tmp_path / "ex" / f"{Path(e['file']).stem}.png").is_file() for e in example)


def test_score_other_maps_matches_ornet_evaluate_maps(api_run, tmp_path, capsys):
    data = api_run.parent / "data"
    out = _example(capsys, "score_other_maps.py", data, "--out", tmp_path / "scored")
    assert "files and streamed metrics agree" in out  # the script checks files == streamed itself
    scores = json.loads((tmp_path / "scored" / "scores.json").read_text())
    assert set(scores) == {"centre_prior", "colour_contrast"}
    cli = json.loads(_ornet(capsys, "evaluate-maps", "--metadata", tmp_path / "scored" / "metadata" / "boxes",
                            "--scoremaps", tmp_path / "scored" / "scoremaps" / "colour_contrast", "--workers", "1"))
    assert cli["num_images"] == 12
    assert cli["max_box_acc"]["50"] == scores["colour_contrast"]["max_box_acc"]
    for row in scores.values():
        assert all(0.0 <= v <= 100.0 for v in row.values())


def test_threshold_study_reports_the_sweep_of_the_run(api_run, tmp_path, capsys):
    out = _example(capsys, "threshold_study.py", api_run, "--out", tmp_path / "study", "--device", "cpu")
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
