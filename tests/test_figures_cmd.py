"""`ornet figures`: every kind from a run folder, missing sources, --out, --data.root."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import write_cub_tree
from ornet.cli import main as cli
from ornet.reports.render import sample_indices
from ornet.runs.files import parse_curves, read_predictions

ALL_FILES = ["evolution.png", "failures.png", "grid.png", "histogram.png", "overlay_00.png", "overlay_01.png",
             "overlay_02.png", "overlay_03.png", "threshold_curve.png"]


def make_run(root: Path, data_root: Path, snapshots: bool = True, cam_gate: float | None = None) -> Path:
    """A run folder as `ornet train` leaves it, with an untrained tiny model (speed, not quality);
    with `cam_gate`, an ORNet with an evaluator whose class gate has that exponent."""
    import torch

    from ornet.config.schema import RunConfig, dump_yaml
    from ornet.data.readers import read_index
    from ornet.models.ornet_network import ORNet
    from ornet.runs.export import export_model, model_meta

    cfg = RunConfig()
    cfg.data.root, cfg.data.resize, cfg.data.crop, cfg.data.val_per_class = str(data_root), 64, 64, 1
    cfg.model.backbone, cfg.model.generator_width = "mobilenet_v3_small", 8
    cfg.model.evaluator = "resnet18" if cam_gate else None  # GAP + Linear head: its CAM is defined
    root.mkdir(parents=True)
    (root / "config.yaml").write_text(dump_yaml(cfg))
    index = read_index(cfg.data)
    torch.manual_seed(0)
    model = ORNet(cfg.model.backbone, index.num_classes, evaluator=cfg.model.evaluator, generator_width=8).eval()
    export_model(root, model, model_meta(cfg, "ornet", index.classes, 0.5, 50, cam_gate))
    metrics = {"top1_cls": 40.0, "top1_loc": 20.0, "gt_known_loc": 50.0, "max_box_acc_v2": 45.5, "threshold": 0.5,
               "threshold_split": "val", "box_mode": "largest", "split": "test", "method": "ornet", "num_images": 6}
    if cam_gate:
        metrics["cam_gate"] = cam_gate
    (root / "metrics.json").write_text(json.dumps(metrics))
    rng = np.random.default_rng(1)
    with open(root / "predictions.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image_id", "label", "pred", "score", "x0", "y0", "x1", "y1", "iou", "correct"])
        for r in index.split("test"):
            iou = round(float(rng.random()), 4)
            w.writerow([r.image_id, r.label, 0, 0.5, 5, 6, 40, 50, iou, int(iou >= 0.5)])
    t = np.arange(0, 1, 0.01)
    curves = {"split": "val", "thresholds": t.tolist(), "chosen_index": 50, "chosen_threshold": 0.5,
              "box_mode": "largest", "iou_thresholds": [30, 50, 70], "num_images": 3,
              "accuracy": {str(v): (100 * np.exp(-((t - 0.4) / (1.1 - v / 100)) ** 2)).tolist()
                           for v in (30, 50, 70)}}
    (root / "curves.json").write_text(json.dumps(curves))
    if snapshots:
        snap = root / "snapshots"
        snap.mkdir()
        np.savez_compressed(snap / "images.npz", images=rng.integers(0, 255, (3, 64, 64, 3), dtype=np.uint8),
                            image_ids=np.array(["a", "b", "c"]))
        for e in range(4):
            np.savez_compressed(snap / f"epoch_{e:03d}.npz", maps=rng.integers(0, 255, (3, 16, 16), dtype=np.uint8))
    return root


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("figs")
    return make_run(base / "run", write_cub_tree(base / "cub"))


def test_all_writes_every_figure_and_refreshes_the_report(run_dir, capsys):
    assert cli(["figures", "all", str(run_dir), "--device", "cpu"]) == 0, capsys.readouterr().err
    names = sorted(p.name for p in (run_dir / "figures").iterdir())
    assert names == ALL_FILES
    from PIL import Image

    for name in names:
        with Image.open(run_dir / "figures" / name) as im:
            assert im.mode == "RGB" and min(im.size) >= 32
    report = (run_dir / "report.html").read_text()
    for name in names:
        assert f'src="figures/{name}"' in report


def test_overlay_n_replaces_previous_overlays(run_dir, tmp_path):
    out = tmp_path / "figs"
    assert cli(["figures", "overlay", str(run_dir), "--out", str(out), "--n", "4"]) == 0
    assert cli(["figures", "overlay", str(run_dir), "--out", str(out), "--n", "2"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["overlay_00.png", "overlay_01.png"]
    assert not (tmp_path / "report.html").exists()


def test_failures_shows_the_n_lowest_iou_images(run_dir, tmp_path):
    out = tmp_path / "f"
    assert cli(["figures", "failures", str(run_dir), "--out", str(out), "--n", "3"]) == 0
    from PIL import Image

    with Image.open(out / "failures.png") as im:
        w, h = im.size
    assert (w, h) == (3 * 192 + 4 * 4, 192 + 2 * 18 + 2 * 4)  # three 64 px images fitted to 192, two caption lines
    preds = read_predictions(run_dir / "predictions.csv")
    assert len(preds) == 6 and all(p.box == [5.0, 6.0, 40.0, 50.0] for p in preds.values())


def test_threshold_curve_needs_only_curves_json(run_dir, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(run_dir / "curves.json", bare)
    assert cli(["figures", "threshold-curve", str(bare)]) == 0
    assert (bare / "figures" / "threshold_curve.png").is_file()


def test_missing_source_is_an_error_alone_and_skipped_under_all(run_dir, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    shutil.rmtree(run / "snapshots")
    shutil.rmtree(run / "figures", ignore_errors=True)
    assert cli(["figures", "evolution", str(run)]) == 2
    assert "snapshots" in capsys.readouterr().err
    assert cli(["figures", "all", str(run), "--n", "2"]) == 0
    err = capsys.readouterr().err
    assert "skipped evolution" in err
    assert not (run / "figures" / "evolution.png").exists() and (run / "figures" / "grid.png").exists()


def test_model_figures_without_a_model_exit_2(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    assert cli(["figures", "grid", str(tmp_path / "run")]) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert cli(["figures", "grid", str(tmp_path / "missing")]) == 2


def test_data_root_override_when_the_dataset_moved(run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    import yaml

    cfg = yaml.safe_load((run / "config.yaml").read_text())
    moved = tmp_path / "moved"
    shutil.copytree(cfg["data"]["root"], moved)
    cfg["data"]["root"] = str(tmp_path / "gone")
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert cli(["figures", "grid", str(run), "--n", "2"]) == 2
    assert cli(["figures", "grid", str(run), "--n", "2", "--data.root", str(moved)]) == 0


def test_parse_curves_reads_evaluation_curves_and_other_modes():
    curves = {"thresholds": [0.1, 0.2], "chosen_index": 0, "box_mode": "largest",
              "accuracy": {"30": [50, 40], "50": [20, 10]},
              "accuracy_by_mode": {"multi": {"30": [60, 45], "50": [25, 15]}}}
    t, acc, chosen = parse_curves(curves)
    assert list(acc) == ["IoU >= 0.3", "IoU >= 0.5"] and acc["IoU >= 0.5"].tolist() == [20, 10] and chosen == 0
    _, multi, _ = parse_curves(curves, box_mode="multi", iou_strict=True)
    assert multi["IoU > 0.3"].tolist() == [60, 45]


def test_parse_curves_accepts_percent_or_fraction_levels():
    t, curves, chosen = parse_curves({"thresholds": [0.1, 0.2], "box_accuracy": {"0.5": [1, 2], "70": [0, 1]},
                                      "threshold_index": 1})
    assert list(curves) == ["IoU >= 0.5", "IoU >= 0.7"] and chosen == 1 and t.tolist() == [0.1, 0.2]
    from ornet.errors import OrnetError

    with pytest.raises(OrnetError):
        parse_curves({"thresholds": []})


def test_sample_indices_are_seeded_sorted_and_bounded():
    assert sample_indices(5, 10) == [0, 1, 2, 3, 4]
    a = sample_indices(100, 8)
    assert a == sample_indices(100, 8) and a == sorted(a) and len(set(a)) == 8


def test_parse_curves_reads_sweep_counters():
    hits = np.zeros((3, 4, 2))
    hits[1, :, 0] = [10, 8, 4, 0]  # largest, IoU 30
    hits[1, :, 1] = [5, 4, 2, 0]
    curves = {"thresholds": [0, 0.25, 0.5, 0.75], "iou_thresholds": [30, 50], "hits": hits.tolist(),
              "num_images": 10, "box_mode": "largest", "modes": ["all", "largest", "multi"], "iou_strict": True}
    t, acc, chosen = parse_curves(curves)
    assert list(acc) == ["IoU > 0.3", "IoU > 0.5"] and chosen is None
    assert acc["IoU > 0.3"].tolist() == [100, 80, 40, 0] and acc["IoU > 0.5"].tolist() == [50, 40, 20, 0]
    from ornet.errors import OrnetError

    with pytest.raises(OrnetError, match="do not fit"):
        parse_curves({**curves, "thresholds": [0, 1]})


def test_gate_shows_the_plain_and_the_gated_map(tmp_path, capsys):
    """A run with a class gate: gate.png has a row per image, the plain map p_a beside the gated one; the
    model's gate is back on afterwards. A run without a gate: skipped under `all`, refused alone."""
    from PIL import Image

    from ornet.reports.render import draw_records, fig_gate
    from ornet.reports.run_model import ModelRun

    run = make_run(tmp_path / "gated", write_cub_tree(tmp_path / "cub"), snapshots=False, cam_gate=0.5)
    mr = ModelRun(run, device="cpu")
    model, meta = mr.model()
    assert model.cam_gate == 0.5 and meta["localization"]["cam_gate"] == 0.5
    records = mr.records()
    picked = [records[i] for i in sample_indices(len(records), 2)]  # fig_gate's sample
    gated = np.stack(draw_records(mr, picked).eval_maps)
    model.set_cam_gate(0.0)
    plain = np.stack(draw_records(mr, picked).eval_maps)
    model.set_cam_gate(0.5)
    assert not np.allclose(plain, gated, atol=1e-3)  # the gate changes the map on these images
    image = fig_gate(mr, 2)["gate.png"]
    assert model.cam_gate == 0.5  # restored
    from ornet.viz.figures import evolution_grid

    expected = evolution_grid(draw_records(mr, picked).images, [("plain p_a", plain),
                                                                ("gated 0.5", gated)], tile_size=128)
    assert image.shape == expected.shape and np.array_equal(image, expected)
    assert cli(["figures", "gate", str(run), "--device", "cpu", "--n", "3"]) == 0, capsys.readouterr().err
    with Image.open(run / "figures" / "gate.png") as im:
        assert im.mode == "RGB" and im.size[0] > im.size[1] // 2
    assert "gate.png" in (run / "report.html").read_text()
    plain_run = make_run(tmp_path / "plain", tmp_path / "cub", snapshots=False)
    assert cli(["figures", "gate", str(plain_run), "--device", "cpu"]) == 2
    assert "no class gate chosen" in capsys.readouterr().err
