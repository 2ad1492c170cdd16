"""Every registered dataset reader: builds its tiny tree, reads it cleanly, serves Batches, passes check-data."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from ornet.data.datamodule import WSOLDataModule
from ornet.data.readers import READERS, _load_readers, read_index
from ornet.errors import ConfigError
from readers_util import BUILDERS

_load_readers()
NAMES = READERS.names()


def test_every_reader_has_a_tiny_tree():
    assert set(NAMES) == set(BUILDERS), "add a builder to tests/readers_util.py for each new reader"


@pytest.mark.parametrize("name", NAMES)
def test_reader_serves_batches(tmp_path, name):
    cfg = dataclasses.replace(BUILDERS[name](tmp_path), resize=64, crop=64, batch_size=2, eval_batch_size=3,
                              num_workers=0)
    index = read_index(cfg)
    assert index.problems == [] and index.name == name
    assert {"train", "val", "test"} <= set(index.splits)
    dm = WSOLDataModule(cfg, index=index)
    batch = next(iter(dm.train_dataloader()))
    assert batch.images.shape == (2, 3, 64, 64) and batch.images.dtype == torch.float32
    assert batch.labels.shape == (2,) and all(0 <= y < dm.num_classes for y in batch.labels.tolist())
    for split in ("test", "val"):
        if not index.splits[split]:
            continue
        batch = next(iter(dm.loader(split)))
        n = min(3, len(index.splits[split]))
        assert batch.images.shape == (n, 3, 64, 64) and batch.orig_sizes.shape == (n, 2)
        assert len(batch.boxes) == n
        for boxes in batch.boxes:
            assert boxes.ndim == 2 and boxes.shape[1] == 4
            if index.has_boxes:
                assert len(boxes) >= 1 and (boxes[:, 2:] <= 64).all() and (boxes[:, :2] >= 0).all()
            else:
                assert len(boxes) == 0
        if index.has_masks:
            assert batch.masks.shape == (n, 1, 64, 64)


@pytest.mark.parametrize("name", [n for n in NAMES if n != "cub"])
def test_unknown_option_lists_the_valid_ones(tmp_path, name):
    cfg = dataclasses.replace(BUILDERS[name](tmp_path), options={"no_such_option": 1})
    with pytest.raises(ConfigError, match=f"no_such_option for dataset '{name}'; valid: "):
        read_index(cfg)


@pytest.mark.parametrize("name", NAMES)
def test_check_data_reports_every_split(tmp_path, name, capsys):
    from ornet.commands.check_data import main

    cfg = BUILDERS[name](tmp_path)
    argv = ["--data.name", name, "--data.root", cfg.root, "--data.val_per_class", str(cfg.val_per_class), "--json"]
    if cfg.metadata:
        argv += ["--data.metadata", cfg.metadata]
    if cfg.options:
        argv += ["--data.options", json.dumps(cfg.options)]
    assert main(argv, "ornet check-data") == 0
    report = json.loads(capsys.readouterr().out)
    index = read_index(cfg)
    assert report["problems"] == []
    assert {s: v["images"] for s, v in report["splits"].items()} == {s: len(r) for s, r in index.splits.items()}


PRESETS = {"dogs": "dogs_resnet50", "aircraft": "aircraft_resnet50", "market1501": "market1501_resnet50",
           "dukemtmc": "dukemtmc_resnet50", "msmt17": "msmt17_resnet50", "wsol": "wsol_cub_resnet50",
           "folder": "folder_resnet50"}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_options_are_valid_for_its_reader(tmp_path, name):
    from pathlib import Path

    from ornet.config.parse import make_parser, parse, to_run_config

    preset = Path(__file__).resolve().parents[1] / "configs" / f"{PRESETS[name]}.yaml"
    parser = make_parser("ornet train", "")
    run = to_run_config(parser, parse(parser, ["--config", str(preset)]))
    assert run.data.name == name and run.model.backbone == "resnet50" and run.model.evaluator == "vgg16"
    cfg = BUILDERS[name](tmp_path)
    options = {k: v for k, v in run.data.options.items() if v is not None} | cfg.options
    index = read_index(dataclasses.replace(cfg, options=options))
    assert index.problems == []


# one CAM stage: each reader's samples go through training and the run's evaluation (ORNet's three stages on a
# tiny tree: tests/test_pipeline.py; the reader is the same for every method)
TRAIN = ["--stages", "[cam]", "--model.backbone", "mobilenet_v3_small",
         "--data.resize", "40", "--data.crop", "32", "--data.batch_size", "2", "--data.eval_batch_size", "4",
         "--data.num_workers", "0", "--trainer.accelerator", "cpu", "--trainer.devices", "1",
         "--trainer.limit_train_batches", "1", "--trainer.limit_val_batches", "1",
         "--trainer.snapshot_images", "0", "--quiet"]
NO_BOXES = ("market1501", "dukemtmc", "msmt17")


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in NAMES if n != "cub"])  # cub: tests/test_pipeline.py
def test_train_runs_a_few_steps_on_every_tiny_tree(tmp_path, name):
    from ornet.cli import main

    (tmp_path / "data").mkdir()
    cfg = BUILDERS[name](tmp_path / "data")
    argv = ["train", "--data.name", name, "--data.root", cfg.root, "--data.val_per_class", str(cfg.val_per_class),
            "--out", str(tmp_path / "run"), *TRAIN]
    if cfg.metadata:
        argv += ["--data.metadata", cfg.metadata]
    if cfg.options:
        argv += ["--data.options", json.dumps(cfg.options)]
    assert main(argv) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics and (tmp_path / "run" / "model.safetensors").is_file()
    assert 0 <= metrics["top1_cls"] <= 100
    if name in NO_BOXES:  # identity labels only: box metrics are skipped, and the output says so
        assert metrics["box_metrics"] == "skipped: the dataset has no boxes" and "gt_known_loc" not in metrics
    else:
        assert 0 <= metrics["gt_known_loc"] <= 100
