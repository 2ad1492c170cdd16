"""The methods registry (`ornet.methods`): every registered method gets the same checks, and a
config names its method with `wsol_method` (or, as before the key, by its stages)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from ornet.config.schema import RunConfig, from_dict, stage_sections
from ornet.errors import ConfigError, OrnetError
from ornet.methods import EXPORTS, METHODS, STAGES, Method, check_config, method_of, resolve

NAMES = METHODS.names()


def tiny(method: Method) -> RunConfig:
    cfg = RunConfig(wsol_method=method.name, stages=method.stage_names())
    cfg.model.backbone, cfg.model.evaluator, cfg.model.generator_width = "resnet18", "resnet18", 8
    return cfg


def test_the_registry_holds_the_methods_and_fails_loudly():
    assert {"cam", "ornet", "has", "cutmix", "adl", "acol", "spg"} <= set(NAMES) and NAMES == sorted(NAMES)
    with pytest.raises(OrnetError, match=f"unknown method 'nope'; known: {', '.join(NAMES)}$"):
        METHODS.get("nope")
    with pytest.raises(KeyError, match="already registered"):
        METHODS.register("cam")(METHODS.get("cam"))


@pytest.mark.parametrize("name", NAMES)
def test_each_method_names_its_stages_sections_and_exports(name):
    method = METHODS.get(name)
    assert method.name == name and method.description and "\n" not in method.description
    assert method.stage_names() and set(method.stage_names()) <= set(stage_sections())
    for stage in method.stage_names():
        assert STAGES.get(stage) is method
    assert method.export_names(), "a method exports at least one map model"
    for export in method.export_names():
        assert EXPORTS.get(export) is method


def test_the_model_json_names_are_those_of_before():
    assert {n: METHODS.get(n).export_names() for n in ("cam", "ornet", "acol", "spg")} == {
        "cam": ["cam"], "ornet": ["ornet-coarse", "ornet"], "acol": ["acol"], "spg": ["spg"]}
    assert METHODS.get("ornet").stage_names() == ["evaluator", "coarse", "refine"]
    assert METHODS.get("cam").stage_names() == ["cam"]


@pytest.mark.parametrize("name", NAMES)
def test_each_stage_builds_its_task_on_a_tiny_config(name):
    pytest.importorskip("lightning")
    import torch

    from ornet.methods.base import StageTask

    method = METHODS.get(name)
    cfg = tiny(method)
    torch.manual_seed(0)
    for stage in method.stage_names():
        task = method.build_task(cfg, stage, 3, ["a", "b", "c"])
        assert isinstance(task, StageTask) and task.stage == stage
        assert task.hparams["stage"] == stage and task.hparams["cfg"]["wsol_method"] == name
        assert any(p.requires_grad for params, _ in task.param_groups() for p in params)


@pytest.mark.parametrize("name", NAMES)
def test_each_method_writes_its_model_json_and_rebuilds_the_network(name, tmp_path):
    pytest.importorskip("lightning")
    import torch

    from ornet.runs.export import build_model, export_model, load_exported, model_meta

    method = METHODS.get(name)
    cfg = tiny(method)
    for export in method.export_names():
        meta = model_meta(cfg, export, ["a", "b", "c"], 0.5, 50)
        assert meta["method"] == export and meta["format_version"] == 2
        assert ("cam_gate" in meta["localization"]) == method.class_gate
        torch.manual_seed(0)
        model = build_model(meta)
        export_model(tmp_path, model, meta)
        loaded, again = load_exported(tmp_path)
        assert again == meta
        for k, v in model.state_dict().items():
            assert torch.equal(v, loaded.state_dict()[k]), k


def test_old_configs_without_the_key_keep_their_method():
    """A config.yaml written before `wsol_method` existed: the method of its stages."""
    for stages, name in ((["evaluator", "coarse", "refine"], "ornet"), (["refine"], "ornet"), (["cam"], "cam")):
        cfg = from_dict(RunConfig, {"stages": stages})
        assert cfg.wsol_method is None and method_of(cfg).name == name
        assert check_config(cfg).wsol_method == name and check_config(cfg).stages == stages


def test_the_key_names_the_method_and_stages_default_to_all_of_its_stages():
    cfg = check_config(RunConfig(wsol_method="cam"))
    assert (cfg.wsol_method, cfg.stages) == ("cam", ["cam"])
    assert check_config(RunConfig(wsol_method="ornet")).stages == ["evaluator", "coarse", "refine"]
    assert check_config(RunConfig(wsol_method="ornet", stages=["coarse", "refine"])).stages == ["coarse", "refine"]


def test_stages_of_another_method_are_one_line_naming_the_methods_stages():
    with pytest.raises(ConfigError, match=r"^stage 'cam' is not a stage of method ornet; its stages, in order: "
                                          r"evaluator, coarse, refine$"):
        resolve(RunConfig(wsol_method="ornet", stages=["coarse", "cam"]))
    with pytest.raises(ConfigError, match="stage 'coarse' is not a stage of method cam; its stages, in order: cam"):
        check_config(RunConfig(stages=["cam", "coarse"]))
    with pytest.raises(ConfigError, match="in method ornet's order: evaluator, coarse, refine"):
        check_config(RunConfig(stages=["refine", "coarse"]))
    with pytest.raises(ConfigError, match=f"wsol_method: unknown method 'nope'; known: {', '.join(NAMES)}$"):
        check_config(RunConfig(wsol_method="nope"))


def test_the_command_line_takes_the_key(tmp_path):
    from ornet.config.parse import make_parser, parse, to_run_config

    parser = make_parser("ornet train", "")
    cfg = check_config(to_run_config(parser, parse(parser, ["--wsol_method", "cam", "--trainer.max_epochs", "2"])))
    assert (cfg.wsol_method, cfg.stages, cfg.cam.epochs) == ("cam", ["cam"], 2)
    old = tmp_path / "config.yaml"  # an old run's config.yaml: no wsol_method
    old.write_text("stages: [cam]\n")
    cfg = check_config(to_run_config(parser, parse(parser, ["--config", str(old)])))
    assert (cfg.wsol_method, cfg.stages) == ("cam", ["cam"])


def test_settings_a_method_does_not_read_are_named():
    import ornet
    from ornet.methods import unused_settings

    for preset in ("demo", "demo_cam", "demo_has", "demo_bas", "cub_cam_resnet50", "cub_resnet50"):
        assert unused_settings(ornet.load_config(preset)) == [], preset  # the presets set only what they use
    cam = ornet.load_config("demo_cam", {"model.generator_objectness": 0.5, "method.gate_distill_weight": 4.0,
                                         "model.backbone": "resnet18", "model.backbone_weights": "none"})
    assert unused_settings(cam) == ["model.generator_objectness=0.5", "method.gate_distill_weight=4.0"]
    ornet_cfg = ornet.load_config("demo", {"model.generator_objectness": 0.5, "method.objectness_weight": 1.0})
    assert unused_settings(ornet_cfg) == []
    # the ORNet preset trained as CAM: every ORNet setting it makes is named
    as_cam = unused_settings(check_config(ornet.load_config("demo", {"wsol_method": "cam", "stages": ["cam"]})))
    assert "model.evaluator='efficientnet_lite0'" in as_cam and "model.generator_width=16" in as_cam
    assert "method.entropy_weight=0.15" in as_cam and not any(k.startswith("model.backbone") for k in as_cam)
    # the means / stds every run records in config.yaml (weights_spec.resolve_model) are not settings
    from ornet.models.weights_spec import resolve_model

    resolved = dataclasses.replace(cam, model=resolve_model(dataclasses.replace(cam.model, generator_objectness=0.0)))
    assert resolved.model.evaluator_mean is not None and resolved.model.evaluator_std is not None
    assert unused_settings(resolved) == ["method.gate_distill_weight=4.0"]


def test_ornet_train_warns_of_them(tmp_path, caplog):
    import logging

    import ornet
    from conftest import write_cub_tree

    data = write_cub_tree(tmp_path / "cub", classes=2, per_class=3, size=(40, 40))
    cfg = ornet.load_config(None, {"stages": ["cam"], "model.backbone": "resnet18", "data.root": data,
                                   "data.resize": 32, "data.crop": 32, "data.batch_size": 2, "data.num_workers": 0,
                                   "data.val_per_class": 1, "trainer.accelerator": "cpu", "trainer.max_epochs": 1,
                                   "trainer.limit_train_batches": 1, "model.generator_stem_skip": "none"})
    with caplog.at_level(logging.WARNING, logger="ornet"):
        ornet.train(cfg, tmp_path / "run", quiet=True)
    said = [r.getMessage() for r in caplog.records if "does not read" in r.getMessage()]
    assert said == ["method cam does not read model.generator_stem_skip='none': it has no effect on this run"]


def test_ornet_methods_lists_the_registry_without_importing_torch():
    code = ("import sys; from ornet.cli import main; rc = main(['methods']); "
            "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    methods, maps = out.stdout.strip().split("\n\n")
    lines = methods.splitlines()
    assert [line.split()[0] for line in lines] == NAMES
    for line, name in zip(lines, NAMES):
        assert METHODS.get(name).description in line
    from ornet.extractors import EXTRACTORS

    heading, *lines = maps.splitlines()  # then the map extractors (--eval.maps), one line each
    assert heading.startswith("map extractors (--eval.maps NAME")
    assert [line.split()[0] for line in lines] == EXTRACTORS.names()
    for line in lines:
        assert EXTRACTORS.get(line.split()[0]).description in line
