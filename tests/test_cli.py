"""The CLI frame: help, exit codes, lazy imports, configuration parsing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ornet.cli import COMMANDS, main
from ornet.config.parse import make_parser, parse, to_run_config
from ornet.errors import ConfigError


def test_top_level_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("synth", "check-data", "train", "evaluate", "evaluate-maps", "localize", "figures", "demo"):
        assert name in out and name in COMMANDS


def test_no_command_and_unknown_command_exit_2(capsys):
    assert main([]) == 2
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'frobnicate'" in err and "check-data" in err


def test_help_does_not_import_torch():
    code = ("import sys; from ornet.cli import main; main(['--help']); "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_python_dash_m_and_version():
    out = subprocess.run([sys.executable, "-m", "ornet", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("ornet ")


def _cfg(*argv):
    p = make_parser("ornet train", "test")
    return to_run_config(p, parse(p, list(argv)))


def test_dotted_overrides_and_yaml(tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text("stages: [cam]\ndata:\n  root: /data\n  crop: 96\ncam:\n  epochs: 4\n")
    cfg = _cfg("--config", str(preset), "--cam.epochs", "7", "--data.batch_size", "8")
    assert cfg.stages == ["cam"] and cfg.data.root == "/data" and cfg.data.crop == 96
    assert cfg.cam.epochs == 7 and cfg.data.batch_size == 8
    cfg = _cfg("--config", str(preset), "--trainer.max_epochs", "2")
    assert cfg.cam.epochs == 2  # applied to every listed stage, visible in the resolved config


@pytest.mark.parametrize("argv, message", [
    (["--data.rooot", "x"], "unknown key 'data.rooot' (did you mean data.root?); valid keys of data:"),
    (["--coarse.epochs", "abc"], "coarse.epochs"),
    (["--coarse.epochs", "0"], "coarse.epochs must be positive, got 0"),
    (["--data.crop", "100"], "divisible by 32"),
    (["--stages", "[coarse, polish]"], "unknown stage 'polish'"),
    (["--method.erase_p", "1.5"], "method.erase_p must be in [0, 1], got 1.5"),
    (["--eval.box_mode", "biggest"], "eval.box_mode"),
])
def test_bad_values_raise_config_error(argv, message):
    with pytest.raises(ConfigError) as e:
        _cfg(*argv)
    assert message in str(e.value)


def test_unknown_key_in_yaml_and_malformed_yaml(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  root: x\n  rooot: 3\n")
    with pytest.raises(ConfigError, match="unknown key 'data.rooot'"):
        _cfg("--config", str(bad))
    broken = tmp_path / "broken.yaml"
    broken.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.yaml"):
        _cfg("--config", str(broken))
