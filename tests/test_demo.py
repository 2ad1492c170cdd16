"""`ornet demo`: what can be checked without training (the full run is a benchmark, not a unit test)."""

from __future__ import annotations

from ornet.cli import main
from ornet.commands.demo import FAST, format_table
from ornet.config.presets import preset_names, preset_path


def test_refuses_a_non_empty_out_without_force(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["demo", "--out", str(tmp_path), "--fast"]) == 2
    err = capsys.readouterr().err
    assert "is not empty; pass --force" in err and err.count("\n") == 1
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_table_lists_both_methods_with_every_column():
    table = format_table({"ornet": {"gt_known_loc": 71.25, "top1_loc": 60.0, "max_box_acc_v2": 55.5, "pxap": 66.66,
                                    "top1_cls": 80.0, "seconds": 123.4},
                          "cam": {"gt_known_loc": 40.0, "top1_loc": 30.0, "top1_cls": 81.0, "seconds": 99.0}})
    lines = table.splitlines()
    assert lines[0].split() == ["method", "GT-known", "Top-1", "Loc", "MaxBoxAccV2", "PxAP", "Top-1", "Cls", "seconds"]
    assert lines[2].split() == ["ornet", "71.2", "60.0", "55.5", "66.7", "80.0", "123.4"]
    assert lines[3].split() == ["cam", "40.0", "30.0", "-", "-", "81.0", "99.0"]  # a missing metric shows as '-'


def _flags(argv: list[str]) -> dict[str, str]:
    """`--key value` pairs (every flag of the plans takes a value) as load_config's overrides."""
    assert len(argv) % 2 == 0 and all(k.startswith("--") for k in argv[::2]), argv
    return {k.removeprefix("--"): v for k, v in zip(argv[::2], argv[1::2])}


def test_presets_the_demo_uses_exist_and_fast_plan_is_small():
    """What `ornet demo` relies on: each preset trains the method its folder is named after, the
    plans' flags are valid for `ornet synth` and `ornet train`, the images are trained at their own
    size, the fast plan is the small one-epoch run its help promises, and the full plan is what
    docs/synthetic.md says the demo runs."""
    from pathlib import Path

    import ornet
    from ornet.commands.demo import FULL, TRAININGS
    from ornet.commands.synth import build_parser

    assert set(TRAININGS) == {"ornet", "cam"} and set(TRAININGS.values()) <= set(preset_names())
    synth = {name: build_parser("ornet synth").parse_args(["out", *plan["synth"]]) for name, plan in
             (("fast", FAST), ("full", FULL))}
    cfgs = {}
    for name, plan in (("fast", FAST), ("full", FULL)):
        for method, preset in TRAININGS.items():
            assert preset_path(preset).name == f"{preset}.yaml"
            cfg = ornet.load_config(preset_path(preset), {**_flags(plan["train"]), "data.root": "data"})
            cfgs[name, method] = cfg
            assert cfg.wsol_method == method  # the run folder's name is the method trained
            assert cfg.data.resize == cfg.data.crop == synth[name].size  # the images' own size
    assert cfgs["full", "ornet"].stages == ["evaluator", "coarse", "refine"] and cfgs["full", "cam"].stages == ["cam"]
    # --fast: one epoch per stage, a few small images, a val split that fits the training images
    s = synth["fast"]
    assert (s.classes, s.train, s.test, s.size) == (4, 160, 48, 64)
    for method in TRAININGS:
        cfg = cfgs["fast", method]
        assert [getattr(cfg, stage).epochs for stage in cfg.stages] == [1] * len(cfg.stages)
        assert 0 < cfg.data.val_per_class < s.train // s.classes
    full = synth["full"]
    assert (s.train, s.test, s.size) < (full.train, full.test, full.size)
    for method, preset in TRAININGS.items():  # the full plan overrides no epochs: the preset's own
        cfg, own = cfgs["full", method], ornet.load_config(preset, {"data.root": "data"})
        assert [getattr(cfg, stage).epochs for stage in cfg.stages] == [getattr(own, st).epochs for st in own.stages]
    # the full plan: docs/synthetic.md's flags, and the synth defaults for the rest (10 classes)
    docs = (Path(__file__).resolve().parents[1] / "docs" / "synthetic.md").read_text()
    assert f"(`{' '.join(FULL['synth'])}`)" in docs and f"(`{' '.join(FULL['train'])}`," in docs
    assert (full.size, full.train, full.test, full.body_cue, full.classes) == (128, 400, 200, 0.8, 10)


def test_replaces_only_its_own_earlier_output(tmp_path, monkeypatch):
    import ornet.commands.demo as demo

    calls = []
    monkeypatch.setattr(demo, "_run", lambda command, argv: calls.append(command) or (_ for _ in ()).throw(
        demo.OrnetError("stop here")))
    out = tmp_path / "d"
    out.mkdir()
    (out / demo.MARKER).write_text("")
    (out / "old.txt").write_text("old demo output")
    assert main(["demo", "--out", str(out)]) == 2  # stopped by the fake _run, after replacing
    assert not (out / "old.txt").exists() and (out / demo.MARKER).is_file() and calls == ["synth"]


def test_fast_demo_runs_end_to_end(tmp_path, capsys):
    """`ornet demo --fast`: both methods train, every promised file exists, the table matches summary.json."""
    import json

    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--fast", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert (out / "data" / "images.txt").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == {"ornet", "cam"}
    for method in ("ornet", "cam"):
        run = out / method
        metrics = json.loads((run / "metrics.json").read_text())
        for key in ("gt_known_loc", "top1_loc", "max_box_acc_v2", "top1_cls"):
            assert 0 <= metrics[key] <= 100 and summary[method][key] == metrics[key]
        assert summary[method]["seconds"] > 0
        for name in ("report.html", "model.safetensors", "model.json", "config.yaml",
                     "figures/threshold_curve.png", "figures/failures.png"):
            assert (run / name).is_file() and (run / name).stat().st_size > 0, run / name
        html = (run / "report.html").read_text()
        assert "figures/threshold_curve.png" in html
    assert (out / "ornet" / "figures" / "evolution.png").is_file()  # stage 2's snapshots
    for method in ("ornet", "cam"):  # --jobs 2 (the default on 2+ cores) keeps each training's output
        assert (out / f"{method}.log").is_file()  # empty here: --quiet reaches the trainings
    row = next(line for line in printed.splitlines() if line.startswith("ornet "))
    assert row.split()[1] == f"{summary['ornet']['gt_known_loc']:.1f}"
    assert "ORNet - CAM on GT-known" in printed
    page = (out / "index.html").read_text()  # the comparison page (tests/test_compare.py checks it in detail)
    assert f"{out / 'index.html'}" in printed and page.count("<tr><td><figure>") == 12
    assert (out / "index_images" / "11_cam.png").is_file() and 'href="ornet/report.html"' in page
    table = (out / "metrics.csv").read_text().splitlines()  # the page's table, as `ornet compare` writes it
    assert [line.split(",")[0] for line in table] == ["label", "ORNet", "CAM"]


def test_a_failing_parallel_training_names_the_method_and_its_error(tmp_path):
    import pytest

    from ornet.commands.demo import OrnetError, _train_in_parallel

    trainings = {"ornet": ["--config", "demo", "--data.root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")],
                 "cam": ["--config", "demo_cam", "--no_such_key", "1", "--out", str(tmp_path / "c")]}
    with pytest.raises(OrnetError, match=r"`ornet train` of (ornet|cam) failed with exit code 2: .*(nowhere|no_such_key)"):
        _train_in_parallel(trainings, tmp_path, threads=1, quiet=True)
    assert not (tmp_path / "o").exists() and not (tmp_path / "c").exists()
