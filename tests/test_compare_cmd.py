"""`ornet compare RUN... --out DIR` (issue 29): three tiny real runs (a CAM run, a HaS run and an
evaluation of the CAM run with `--eval.maps gradcam`; ResNet-18, 32 px, CPU) on one page and in one
CSV; labels; bad inputs as one line, exit 2, nothing written. The page's drawing: tests/test_compare.py."""

from __future__ import annotations

import csv
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest

from conftest import write_cub_tree
from ornet.cli import main
from ornet.reports.compare_inputs import label_columns
from ornet.reports.compare_table import FIELDS

pytestmark = pytest.mark.slow

TINY = ["--model.backbone", "resnet18", "--data.resize", "40", "--data.crop", "32", "--data.batch_size", "4",
        "--data.eval_batch_size", "8", "--data.num_workers", "0", "--data.val_per_class", "2",
        "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.limit_train_batches", "2",
        "--trainer.snapshot_images", "0", "--quiet"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[Path]:
    base = tmp_path_factory.mktemp("runs")
    data = write_cub_tree(base / "cub", classes=3, per_class=5, size=(48, 40))
    for method in ("cam", "has"):
        assert main(["train", "--wsol_method", method, "--data.root", str(data), "--out", str(base / method),
                     *TINY]) == 0
    gradcam = base / "evaluations" / "cam_gradcam"
    assert main(["evaluate", str(base / "cam"), "--eval.maps", "gradcam", "--out", str(gradcam),
                 "--trainer.accelerator", "cpu", "--quiet"]) == 0
    return [base / "cam", base / "has", gradcam]


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.links += [v for k, v in attrs if k in ("src", "href") and v]


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("ornet compare: error:") and len(err.strip().splitlines()) == 1, err
    return err


def test_three_runs_give_one_row_each_with_their_exact_numbers(runs, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", *map(str, runs), "--out", str(out), "--n", "4", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "cam + gradcam" in printed and f"wrote {out / 'index.html'}" in printed
    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["label"] for r in rows] == ["cam", "has", "cam + gradcam"]  # distinct, method + extractor
    assert list(rows[0]) == ["label", "folder", *(key for key, _ in FIELDS)]
    for row, run in zip(rows, runs):
        m = json.loads((run / "metrics.json").read_text())
        assert row["folder"] == str(run)
        for key, _ in FIELDS:
            value = m.get(key)
            if key == "maps":
                assert row[key] == value and value == ("gradcam" if run.name == "cam_gradcam" else "own")
            elif value is None:
                assert row[key] == "", key
            elif isinstance(value, float):
                assert float(row[key]) == value, key  # exactly metrics.json's number, not a rounding
            else:
                assert row[key] == str(value), key
    assert rows[2]["maps_network"] == "CAM network (resnet18)" and rows[0]["maps_network"] == ""
    assert rows[2]["top1_cls"] == rows[0]["top1_cls"]  # the same classifier, other maps

    page = (out / "index.html").read_text()
    links = _Links()
    links.feed(page)
    assert links.links and all((out / unquote(link)).is_file() for link in links.links), links.links
    assert page.count("<tr><td><figure>") == 4  # --n 4 images, one row each
    images = sorted(p.name for p in (out / "index_images").iterdir())
    assert images == sorted(f"{k:02d}_{s}.png" for k in range(4) for s in ("image", "cam", "has", "cam_gradcam"))
    assert sum(link.endswith(".png") for link in links.links) == 4 * 4
    assert "<th>cam + gradcam</th>" in page and "CAM network (resnet18)" in page
    assert "&minus;" not in page  # a difference row only with two runs

    # --force writes into it again (fewer images: the stale ones go), leaving other files alone
    (out / "notes.txt").write_text("mine")
    assert main(["compare", *map(str, runs[:2]), "--out", str(out), "--n", "2", "--device", "cpu"]) == 2
    assert "is not empty; pass --force" in _one_line_error(capsys)
    assert main(["compare", *map(str, runs[:2]), "--out", str(out), "--n", "2", "--device", "cpu", "--force"]) == 0
    assert len(list((out / "index_images").iterdir())) == 2 * 3 and (out / "notes.txt").read_text() == "mine"
    page = (out / "index.html").read_text()
    assert page.count("<tr><td><figure>") == 2 and "<th>cam &minus; has</th>" in page
    assert len((out / "metrics.csv").read_text().splitlines()) == 3


def test_repeated_labels_get_the_folder_name_and_evaluations_find_their_run(runs, tmp_path):
    cam, _, gradcam = runs
    copy = tmp_path / "again" / "cam"
    shutil.copytree(cam, tmp_path / "again" / "cam", ignore=shutil.ignore_patterns("checkpoints", "logs"))
    other = tmp_path / "cam_b"
    shutil.copytree(cam, other, ignore=shutil.ignore_patterns("checkpoints", "logs"))
    labels = [c.label for c in label_columns([cam, other, copy, gradcam])]
    assert labels == ["cam (" + str(cam) + ")", "cam (cam_b)", "cam (" + str(copy) + ")", "cam + gradcam"]
    # an evaluation in the default place (RUN/evaluate_<split>) whose metrics.json names the model by a
    # path relative to another folder: found beside it
    inside = copy / "evaluate_gradcam"
    shutil.copytree(gradcam, inside)
    m = json.loads((inside / "metrics.json").read_text())
    (inside / "metrics.json").write_text(json.dumps({**m, "model": "somewhere/else/model.json"}))
    (column,) = label_columns([inside])
    assert column.run_dir == copy and column.is_evaluation and column.label == "cam + gradcam"


def test_ornet_columns_that_differ_by_their_class_gate_are_labelled_by_it(runs, tmp_path):
    """A run with its gate and the same run scored without (`--eval.cam_gate '[0]'`): labelled by the
    gate, not by folder names; equal gates fall back to the folder names."""
    cam = runs[0]
    folders = []
    for name, gate in (("gated", 0.25), ("plain", 0.0), ("again", 0.25)):
        dest = tmp_path / name
        shutil.copytree(cam, dest, ignore=shutil.ignore_patterns("checkpoints", "logs"))
        m = json.loads((dest / "metrics.json").read_text())
        (dest / "metrics.json").write_text(json.dumps({**m, "method": "ornet", "cam_gate": gate}))
        folders.append(dest)
    assert [c.label for c in label_columns(folders[:2])] == ["ornet, gate 0.25", "ornet, no gate"]
    assert [c.label for c in label_columns(folders)] == ["ornet (gated)", "ornet (plain)", "ornet (again)"]
    assert [c.label for c in label_columns([folders[1], cam])] == ["ornet", "cam"]  # no repeat: no qualifier


def _write_other_images(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("checkpoints", "logs"))
    text = (dest / "predictions.csv").read_text().replace("img_000", "img_099")
    (dest / "predictions.csv").write_text(text)
    return dest


def test_bad_inputs_are_one_line_exit_2_and_write_nothing(runs, tmp_path, capsys):
    cam, has, gradcam = runs
    out = tmp_path / "out"
    moved = tmp_path / "moved"
    shutil.copytree(gradcam, moved)
    m = json.loads((moved / "metrics.json").read_text())
    (moved / "metrics.json").write_text(json.dumps({**m, "model": str(tmp_path / "gone" / "model.json")}))
    alien = tmp_path / "alien"  # scored on images its run's dataset does not have (--data.root elsewhere)
    shutil.copytree(gradcam, alien)
    (alien / "predictions.csv").write_text((alien / "predictions.csv").read_text().replace("/img_", "/pic_"))
    val = tmp_path / "val"
    shutil.copytree(gradcam, val)
    (val / "metrics.json").write_text(json.dumps({**m, "split": "val"}))
    cases = [
        ([str(cam), str(tmp_path)], f"{tmp_path} has no metrics.json"),  # not a run
        ([str(cam), str(moved)], "gone/model.json, which does not exist"),  # its run is gone
        ([str(cam), str(val)], f"{cam} was evaluated on the test split and {val} on the val split"),
        ([str(cam), str(_write_other_images(has, tmp_path / "other"))], "were evaluated on different images"),
        ([str(cam), str(cam)], "is named twice"),
        ([str(alien)], "evaluated on another dataset (--data.root)?"),
        ([str(cam), "--out", str(cam)], "is the folder of"),
        ([str(val), "--split", "val", "--n", "-1"], "--n must be >= 1, got -1"),
        ([], "the following arguments are required: RUN"),
    ]
    for argv, culprit in cases:
        if "--out" not in argv:
            argv = [*argv, "--out", str(out)]
        assert main(["compare", *argv, "--device", "cpu"]) == 2, argv
        assert culprit in _one_line_error(capsys), argv
        assert not out.exists()
    assert not any(p.name.startswith("index") for p in cam.iterdir())
