"""A non-empty output folder is not written into without --force (train, evaluate, figures;
figures redraw a folder that holds only figures).

`ornet localize` and `ornet demo` are checked in test_localize.py and test_demo.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import write_cub_tree
from ornet.cli import main


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """An exported (untrained) ORNet with a run config pointing at a tiny dataset."""
    from ornet.config.schema import RunConfig, dump_yaml
    from ornet.models.ornet_network import ORNet
    from ornet.runs.export import export_model, model_meta

    tmp = tmp_path_factory.mktemp("outdirs")
    data = write_cub_tree(tmp / "cub", classes=3, per_class=4, size=(48, 40))
    torch.manual_seed(0)
    cfg = RunConfig()
    cfg.data.root, cfg.data.resize, cfg.data.crop = str(data), 40, 32
    cfg.data.eval_batch_size, cfg.data.num_workers, cfg.data.val_per_class = 4, 0, 1
    cfg.model.backbone = cfg.model.evaluator = "mobilenet_v3_small"
    cfg.model.generator_width = 8
    cfg.trainer.accelerator, cfg.trainer.devices = "cpu", 1
    model = ORNet("mobilenet_v3_small", 3, evaluator="mobilenet_v3_small", generator_width=8)
    out = tmp / "model"
    out.mkdir()
    (out / "config.yaml").write_text(dump_yaml(cfg))
    classes = [f"{c + 1:03d}.class_{c}" for c in range(3)]
    export_model(out, model.eval(), model_meta(cfg, "ornet", classes, threshold=0.5, threshold_index=50))
    return out


def _nonempty(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "keep.txt").write_text("mine\n")
    return folder


def _refused(capsys, folder: Path) -> None:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--out {folder} exists and is not empty; pass --force" in err, err
    assert (folder / "keep.txt").read_text() == "mine\n"


def test_train_refuses_a_non_empty_out(tmp_path, capsys):
    out = _nonempty(tmp_path / "run")
    assert main(["train", "--data.root", str(tmp_path), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not empty; pass --resume" in err and "--force" in err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_evaluate_refuses_a_non_empty_out_unless_forced(tmp_path, model_dir, capsys):
    args = ["evaluate", str(model_dir), "--quiet", "--trainer.accelerator", "cpu", "--trainer.devices", "1"]
    out = _nonempty(tmp_path / "eval")
    assert main([*args, "--out", str(out)]) == 2
    _refused(capsys, out)
    assert not (out / "metrics.json").exists()
    assert main([*args, "--out", str(out), "--force"]) == 0
    assert (out / "metrics.json").is_file() and (out / "keep.txt").is_file()

    default = model_dir / "evaluate_test"  # the default folder: a second evaluation needs --force too
    assert main(args) == 0 and (default / "metrics.json").is_file()
    capsys.readouterr()
    assert main(args) == 2
    assert f"--out {default} exists and is not empty" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0


def test_figures_refuse_a_folder_with_other_files_unless_forced(tmp_path, model_dir, capsys):
    run = tmp_path / "eval"
    assert main(["evaluate", str(model_dir), "--out", str(run), "--quiet", "--trainer.accelerator", "cpu",
                 "--trainer.devices", "1"]) == 0
    out = _nonempty(tmp_path / "pngs")
    capsys.readouterr()
    assert main(["figures", "threshold-curve", str(run), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--out {out} holds files other than figures (keep.txt); pass --force" in err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert main(["figures", "threshold-curve", str(run), "--out", str(out), "--force"]) == 0
    assert (out / "threshold_curve.png").is_file() and (out / "keep.txt").read_text() == "mine\n"
    for folder in (tmp_path / "figs", None):  # a folder of figures only, and RUN/figures: redrawn freely
        for _ in range(2):
            assert main(["figures", "threshold-curve", str(run), *(["--out", str(folder)] if folder else [])]) == 0
    assert (tmp_path / "figs" / "threshold_curve.png").is_file() and (run / "figures" / "threshold_curve.png").is_file()
