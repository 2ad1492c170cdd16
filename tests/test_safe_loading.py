"""Malicious pickles: every place a command reads weights refuses them, naming the file.

Each poisoned file would create a canary file when unpickled (its object's `__reduce__` is
`open(canary, "w")`). For every command and flag that reads a checkpoint or model file we
assert: the canary never appears, the exit code is 2, stderr is one line that names the
file, and there is no traceback. TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 is set throughout: it
turns torch.load's weights_only default off, so the tests prove that every load passes
weights_only=True explicitly instead of relying on torch's default.
"""

from __future__ import annotations

import builtins
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import write_cub_tree
from ornet.cli import main as cli
from test_figures_cmd import make_run

TINY = ["--model.backbone", "resnet18", "--model.evaluator", "resnet18", "--model.generator_width", "8",
        "--data.resize", "64", "--data.crop", "32", "--data.batch_size", "4", "--data.num_workers", "0",
        "--data.val_per_class", "1", "--trainer.accelerator", "cpu", "--quiet"]


class Evil:
    """Unpickling this opens (creates) `path` for writing: a stand-in for arbitrary code."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (builtins.open, (self.path, "w"))


def poison(path: Path, canary: Path, kind: str = "torch") -> Path:
    """Write a malicious file: `torch` (torch.save zip), `legacy` (old torch format), `pickle` (raw)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"state_dict": {"model.weight": Evil(canary)}}
    if kind == "torch":
        torch.save(payload, path)
    elif kind == "legacy":
        torch.save(payload, path, _use_new_zipfile_serialization=False)
    else:
        with open(path, "wb") as f:
            pickle.dump(Evil(canary), f)
    return path


def test_the_poison_works(tmp_path):
    """Guard: the files really run code when loaded without weights_only (else the tests prove nothing)."""
    canary = tmp_path / "canary"
    for kind in ("torch", "legacy", "pickle"):
        p = poison(tmp_path / f"{kind}.pt", canary, kind)
        if kind == "pickle":
            with open(p, "rb") as f:
                pickle.load(f).close()
        else:
            torch.load(p, weights_only=False)["state_dict"]["model.weight"].close()
        assert canary.exists(), kind
        canary.unlink()


@pytest.fixture(autouse=True)
def _no_torch_default(monkeypatch):
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_cub_tree(tmp_path_factory.mktemp("data") / "cub", classes=3, per_class=4, size=(48, 40))


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory, data) -> Path:
    """A run folder with an untrained tiny exported model (test_figures_cmd.make_run)."""
    return make_run(tmp_path_factory.mktemp("runs") / "run", data)


def check_refused(capsys, argv: list[str], culprit: Path, canary: Path) -> str:
    code = cli(argv)
    err = capsys.readouterr().err
    assert not canary.exists(), "the pickle was executed"
    assert code == 2, err
    assert "Traceback" not in err
    assert err.strip().count("\n") == 0, err
    assert str(culprit) in err, err
    return err


REFUSED = "contains objects other than tensors"


@pytest.mark.parametrize("kind", ["torch", "legacy", "pickle"])
@pytest.mark.parametrize("key", ["backbone_weights", "evaluator_weights"])
def test_train_refuses_pickled_weight_flags(tmp_path, capsys, data, key, kind):
    canary, evil = tmp_path / "canary", poison(tmp_path / "EVIL.pt", tmp_path / "canary", kind)
    out = tmp_path / "run"
    err = check_refused(capsys, ["train", "--data.root", str(data), "--out", str(out), *TINY,
                                 f"--model.{key}", str(evil)], evil, canary)
    assert REFUSED in err and "is refused" in err
    assert not out.exists()  # checked before the run folder is created


def test_train_refuses_a_pickle_named_safetensors(tmp_path, capsys, data):
    canary = tmp_path / "canary"
    evil = poison(tmp_path / "EVIL.safetensors", canary)
    err = check_refused(capsys, ["train", "--data.root", str(data), "--out", str(tmp_path / "run"), *TINY,
                                 "--model.backbone_weights", str(evil)], evil, canary)
    assert "not a safetensors file" in err and not (tmp_path / "run").exists()


@pytest.mark.parametrize("key", ["backbone_weights", "evaluator_weights"])
def test_a_poisoned_torchvision_cache_is_refused(tmp_path, capsys, monkeypatch, data, key):
    """A weights NAME reads $TORCH_HOME/hub/checkpoints/<file> (torch.hub: weights_only=False)."""
    from ornet.models.weights import torchvision_cache_file, torchvision_weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    canary = tmp_path / "canary"
    evil = poison(torchvision_cache_file(torchvision_weights("IMAGENET1K_V1", "resnet18")), canary)
    out = tmp_path / "run"
    err = check_refused(capsys, ["train", "--data.root", str(data), "--out", str(out), *TINY,
                                 f"--model.{key}", "IMAGENET1K_V1"], evil, canary)
    assert REFUSED in err and not out.exists()


def test_load_weights_refuses_a_poisoned_torchvision_cache(tmp_path, monkeypatch):
    """The same through the library call the model builders make (no command-line check first)."""
    from ornet.errors import OrnetError
    from ornet.models.backbones import build_classifier
    from ornet.models.weights import torchvision_cache_file, torchvision_weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    canary = tmp_path / "canary"
    evil = poison(torchvision_cache_file(torchvision_weights("IMAGENET1K_V1", "resnet18")), canary)
    with pytest.raises(OrnetError, match=REFUSED) as e:
        build_classifier("resnet18", 3, weights="IMAGENET1K_V1")
    assert str(evil) in str(e.value) and not canary.exists()


def _run_folder(tmp_path: Path, data: Path, stages: str) -> Path:
    """A run folder whose config.yaml lists `stages` (what `--resume` / `--stages` continue)."""
    from ornet.config.parse import make_parser, parse, to_run_config
    from ornet.config.schema import dump_yaml

    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    parser = make_parser("t", "t")
    parser.add_argument("--quiet", action="store_true")
    cfg = to_run_config(parser, parse(parser, ["--data.root", str(data), *TINY, "--stages", stages]))
    (out / "config.yaml").write_text(dump_yaml(cfg))
    return out


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name, argv", [
    ("coarse-last.ckpt", ["--resume"]),
    ("evaluator-last.ckpt", ["--resume"]),
    ("coarse.ckpt", ["--resume"]),
    ("coarse.ckpt", ["--stages", "[refine]"]),
    ("evaluator.ckpt", ["--stages", "[refine]"]),
    ("refine.ckpt", ["--stages", "[evaluator]"]),  # a partial rerun evaluates the run's final stage
])
def test_train_refuses_poisoned_run_checkpoints(tmp_path, capsys, data, name, argv):
    out = _run_folder(tmp_path, data, "[evaluator,coarse,refine]")
    canary = tmp_path / "canary"
    for other in ("evaluator", "coarse"):  # harmless checkpoints beside the poisoned one
        if name != f"{other}-last.ckpt":  # a -last file is read only for a stage not complete
            torch.save({"state_dict": {}}, out / "checkpoints" / f"{other}.ckpt")
    evil = poison(out / "checkpoints" / name, canary)
    before = _snapshot(out)
    err = check_refused(capsys, ["train", "--out", str(out), *argv], evil, canary)
    assert REFUSED in err
    assert _snapshot(out) == before  # refused before anything was written


def test_resume_never_reads_the_last_file_of_a_complete_stage(tmp_path, data):
    """A stage with its final checkpoint is skipped: a `-last` file left beside it (a run stopped
    between the two writes) is neither loaded nor checked, and is deleted (tasks/disk_use.py)."""
    from ornet.api.train import check_weight_files
    from ornet.config.parse import make_parser, parse, to_run_config
    from ornet.data.datamodule import WSOLDataModule
    from ornet.training import pipeline

    out = _run_folder(tmp_path, data, "[evaluator,coarse]")
    canary = tmp_path / "canary"
    for stage in ("evaluator", "coarse"):
        torch.save({"state_dict": {}}, out / "checkpoints" / f"{stage}.ckpt")
    evil = poison(out / "checkpoints" / "coarse-last.ckpt", canary)
    parser = make_parser("t", "t")
    parser.add_argument("--quiet", action="store_true")
    cfg = to_run_config(parser, parse(parser, ["--data.root", str(data), *TINY, "--stages", "[evaluator,coarse]"]))
    check_weight_files(cfg, out, resume=True)  # would refuse the file if it read it
    assert pipeline.run_stages(cfg, WSOLDataModule(cfg.data), out, resume=True, quiet=True) == {}
    assert not canary.exists() and not evil.exists()


def test_lightning_resume_itself_loads_weights_only(tmp_path, data, monkeypatch):
    """Defence in depth: the pipeline hands weights_only=True to Lightning's own resume load
    (the pipeline's own check of the checkpoint is switched off here to reach it)."""
    from ornet.config.parse import make_parser, parse, to_run_config
    from ornet.data.datamodule import WSOLDataModule
    from ornet.errors import OrnetError
    from ornet.runtime import resume
    from ornet.training import pipeline

    monkeypatch.setattr(resume, "check_resume_checkpoint", lambda *a, **k: None, raising=False)

    canary = tmp_path / "canary"
    out = tmp_path / "run"
    evil = poison(out / "checkpoints" / "coarse-last.ckpt", canary)
    parser = make_parser("t", "t")
    parser.add_argument("--quiet", action="store_true")
    cfg = to_run_config(parser, parse(parser, ["--data.root", str(data), *TINY, "--stages", "[coarse]"]))
    with pytest.raises((pickle.UnpicklingError, OrnetError)):
        pipeline.run_stage(cfg, "coarse", WSOLDataModule(cfg.data), out, ckpt_path=evil, quiet=True)
    assert not canary.exists()  # with TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 set, only weights_only=True prevents it


@pytest.mark.parametrize("kind", ["torch", "pickle"])
@pytest.mark.parametrize("command", ["evaluate", "evaluate-file", "localize", "figures-overlay", "figures-all"])
def test_model_readers_refuse_a_poisoned_model_safetensors(tmp_path, capsys, clean_run, data, command, kind):
    run = tmp_path / "run"
    shutil.copytree(clean_run, run)
    canary = tmp_path / "canary"
    weights = poison(run / "model.safetensors", canary, kind)
    image = tmp_path / "photo.png"
    Image.fromarray(np.zeros((20, 30, 3), dtype=np.uint8)).save(image)
    argv = {
        "evaluate": ["evaluate", str(run), "--quiet", "--data.num_workers", "0"],
        "evaluate-file": ["evaluate", str(weights), "--quiet", "--data.num_workers", "0"],
        "localize": ["localize", str(run), str(image), "--out", str(tmp_path / "boxes"), "--device", "cpu"],
        "figures-overlay": ["figures", "overlay", str(run), "--device", "cpu"],
        "figures-all": ["figures", "all", str(run), "--device", "cpu", "--out", str(tmp_path / "figs")],
    }[command]
    err = check_refused(capsys, argv, weights, canary)
    assert "not a safetensors file" in err and "never unpickles" in err
    assert not (tmp_path / "boxes").exists() and not (run / "evaluate_test").exists()


def test_localize_refuses_a_pickle_given_as_the_model(tmp_path, capsys):
    canary = tmp_path / "canary"
    evil = poison(tmp_path / "model.pt", canary)
    image = tmp_path / "photo.png"
    Image.fromarray(np.zeros((20, 30, 3), dtype=np.uint8)).save(image)
    err = check_refused(capsys, ["localize", str(evil), str(image), "--out", str(tmp_path / "o")], evil, canary)
    assert "expected a run folder, model.json or model.safetensors" in err


def test_evaluate_maps_refuses_pickled_score_maps(tmp_path, capsys):
    """Score maps are .npy files: an object array (a pickle) is refused, never loaded."""
    from test_evaluate_maps import write_box_case

    canary = tmp_path / "canary"
    meta, maps = write_box_case(tmp_path)
    evil = maps / "a" / "2.jpg.npy"
    np.save(evil, np.array([Evil(canary)], dtype=object), allow_pickle=True)
    err = check_refused(capsys, ["evaluate-maps", "--metadata", str(meta), "--scoremaps", str(maps)], evil, canary)
    assert "not a readable .npy array" in err


def test_figures_refuses_pickled_snapshots(tmp_path, capsys, clean_run):
    run = tmp_path / "run"
    shutil.copytree(clean_run, run)
    canary = tmp_path / "canary"
    evil = run / "snapshots" / "epoch_001.npz"
    np.savez(evil, maps=np.array([Evil(canary)], dtype=object))
    err = check_refused(capsys, ["figures", "evolution", str(run), "--out", str(tmp_path / "figs")], evil, canary)
    assert "refused" in err or "unreadable" in err
    assert not (tmp_path / "figs").exists()


@pytest.mark.parametrize("kind", ["torch", "legacy", "pickle"])
@pytest.mark.parametrize("flag", ["--fine", "--coarse", "--evaluator"])
def test_import_release_refuses_poisoned_files(tmp_path, capsys, flag, kind):
    """The release's files are read with numpy's scalar constructors allowed, and nothing else."""
    canary = tmp_path / "canary"
    bad = poison(tmp_path / "release.pth", canary, kind)
    argv = {"--fine": ["--fine", str(bad)],
            "--coarse": ["--coarse", str(bad), "--evaluator", str(bad)],
            "--evaluator": ["--fine", str(bad), "--evaluator", str(bad)]}[flag]
    code = cli(["import-release", *argv, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and not canary.exists() and not (tmp_path / "out").exists()
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and "release.pth" in err
