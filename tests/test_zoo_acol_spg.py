"""ACoL and SPG (issue 29): parity with wsolevaluation, the settings, a tiny run of each.

Parity: the reference values below are wsolevaluation's own (github.com/clovaai/wsolevaluation at
96f4b88, a checkout outside this repository), printed by

    python benchmarks/zoo_oracle_acol_spg.py --wsolevaluation /work/oracles/wsolevaluation2

on fixed seeded weights (copied by name into wsolevaluation's networks) and images: ACoL's two
heads' logits, its erased features and combined maps; SPG's logits, branch maps, attentions, three
self-produced guidance masks (pixels at 1 / 0 / ignored, per image), its four losses and its CAM.
Both sides run in float64 (the script's `DTYPE`): in float32 they agree exactly on one machine but
move by a few 1e-6 between CPUs (AVX-512 against AVX2 kernels). On the machine that produced them
ornet's values equal the oracle's exactly (the script prints the largest difference: 0); here values
agree within 1e-6 (sums of many elements within 1e-6 relative) and mask counts exactly.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml

from conftest import write_cub_tree
from ornet.cli import main

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
CONFIGS = Path(__file__).resolve().parents[1] / "configs"

ORACLE = {
    ("acol", "resnet50"): {
        "logits": [
            -0.8402873967708169, -0.1693916057134605, 0.4127643589879571, -0.6970351994699778,
            -0.7142474692064082, -0.8448377150389107, -0.17570380075699216, 0.4171498186138455,
            -0.7010159129857788, -0.694654994256932
        ],
        "logits_b": [
            0.18408366153415445, 0.21778120058466058, -0.4682909514284995, -0.13090400196444055,
            0.18233000750414285, 0.14351021411840728, 0.19310579317670284, -0.42341378168741556,
            -0.11109902528057168, 0.14923901178292584
        ],
        "erased_positions": [7, 8],
        "erased_sum": 134561.2850238179,
        "erased_abs_sum": 134561.2850238179,
        "features_sum": 154445.6028128065,
        "cams_sum": 58.65726274215991,
        "cams_corners": [
            1.0, 0.7247595403562701, 0.7401848381945163, 0.9782795058406335
        ],
    },
    ("acol", "vgg16"): {
        "logits": [
            0.02643820179971397, 0.0008088898807730303, -0.010130076283704208,
            -0.026675713625274107, -0.015586840437863708, 0.026030093509741187,
            0.0006662691782470129, -0.00924549846927712, -0.02678143264476107,
            -0.015440528430244313
        ],
        "logits_b": [
            -0.017097793765906, 0.004216476852470394, -0.004383782802296861,
            0.0031615374767953613, 0.010393906841943048, -0.01943797429298231,
            0.004265798845381359, -0.0029514323002243588, 0.002912559858970027,
            0.012150082637182733
        ],
        "erased_positions": [13, 8],
        "erased_sum": 1174.522460367159,
        "erased_abs_sum": 1174.522460367159,
        "features_sum": 1405.6905938251398,
        "cams_sum": 62.71871959294484,
        "cams_corners": [
            0.8640630097902451, 0.7126271448280723, 0.5861250089836223, 0.7177609107069862
        ],
    },
    ("spg", "resnet50"): {
        "logits": [
            0.36829030839714944, -1.6649612145497843, -1.2616126831455419, -0.16731997724764272,
            1.5706217689913546, 0.355705525400155, -1.6609550133488324, -1.2620309800711087,
            -0.17179964195560835, 1.5685065492003702
        ],
        "b1_sum": 55.223283247810066,
        "b2_sum": 500.6437812227116,
        "c_sum": 198.3906360180014,
        "attention_sum": 35243.50270776736,
        "fused_sum": 65937.89540849913,
        "mask_counts": {
            "mask_b2": [[3489, 4, 46683], [5538, 7, 44631]],
            "mask_b1": [[50176, 0, 0], [50176, 0, 0]],
            "mask_c": [[351, 0, 49825], [1359, 0, 48817]],
        },
        "losses": {
            "loss": 4.252274591527476,
            "loss_cls": 2.940923305724154,
            "loss_b2": 0.2718250738244753,
            "loss_b1": 0.6278056930229511,
            "loss_c": 0.4117205189558953,
        },
        "cams_sum": 140.9127266758023,
        "cams_corners": [
            0.6727303791863483, 0.24501814146080844, 0.7204824651535512, 0.897742323669633
        ],
    },
    ("spg", "vgg16"): {
        "logits": [
            -0.0025155890688506083, -0.030373622952239165, -0.014852566420724184,
            -0.018741621650918767, -0.00845101634096262, -0.0023072182783539378,
            -0.030264814613023612, -0.014684277733650573, -0.018626596657483487,
            -0.008475315330419819
        ],
        "b1_sum": -11.521581754801947,
        "b2_sum": -11.656578559722643,
        "c_sum": 0.4490644274720908,
        "attention_sum": 45397.06965158735,
        "fused_sum": 49434.37356557868,
        "mask_counts": {
            "mask_b2": [[9623, 4, 40549], [5886, 6, 44284]],
            "mask_b1": [[396, 0, 49780], [395, 0, 49781]],
            "mask_c": [[50176, 0, 0], [50176, 0, 0]],
        },
        "losses": {
            "loss": 3.7201050363663635,
            "loss_cls": 1.619053658190654,
            "loss_b2": 0.7003300935603775,
            "loss_b1": 0.7081440265324855,
            "loss_c": 0.6925772580828464,
        },
        "cams_sum": 178.80225193458867,
        "cams_corners": [
            0.5338226284617158, 0.926801913363322, 0.8160301671038167, 0.6539496166608185
        ],
    },
}
ORACLE_FALLBACK = [[333, 45920, 3923], [57, 531, 49588]]

TINY = ["--model.backbone", "resnet18", "--data.resize", "40", "--data.crop", "32", "--data.batch_size", "4",
        "--data.eval_batch_size", "8", "--data.num_workers", "0", "--data.val_per_class", "2",
        "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.limit_train_batches", "2",
        "--trainer.snapshot_images", "0", "--acol.head_width", "16", "--spg.branch_width", "16",
        "--spg.c_width", "16", "--quiet"]


@pytest.fixture(scope="module")
def oracle_script():
    import sys

    sys.path.insert(0, str(BENCHMARKS))
    try:
        import zoo_oracle_acol_spg
    finally:
        sys.path.remove(str(BENCHMARKS))
    return zoo_oracle_acol_spg


def close(ours, ref, key: str = "") -> None:
    """Within 1e-6 (absolute; relative for sums), recursively; integers exactly."""
    if isinstance(ref, dict):
        assert set(ours) == set(ref), key
        for k in ref:
            close(ours[k], ref[k], f"{key}.{k}")
    elif isinstance(ref, list):
        assert len(ours) == len(ref), key
        for i, (a, b) in enumerate(zip(ours, ref)):
            close(a, b, f"{key}[{i}]")
    elif isinstance(ref, int):
        assert ours == ref, key
    else:
        tol = 1e-6 * max(1.0, abs(ref)) if key.endswith("_sum") else 1e-6
        assert math.isclose(ours, ref, rel_tol=0.0, abs_tol=tol), f"{key}: {ours} vs the oracle's {ref}"


@pytest.mark.slow
@pytest.mark.parametrize("method,backbone", list(ORACLE))
def test_the_deterministic_parts_equal_wsolevaluations(oracle_script, method, backbone):
    s = oracle_script
    torch.manual_seed(0)
    model = s.ours(method, backbone)
    labels = torch.tensor(s.LABELS)
    values = (s.acol_values if method == "acol" else s.spg_values)(model, s.fixed_images(s.SIZES[method]), labels)
    close(json.loads(json.dumps(values)), ORACLE[method, backbone])


def test_the_guidance_mask_falls_back_to_its_maximum_as_wsolevaluations(oracle_script):
    from ornet.methods.spg.spg_losses import guidance_mask

    mask = guidance_mask(oracle_script.fallback_attention(), 0.999, 0.01)
    assert [[int((m == v).sum()) for v in (1.0, 0.0, 255.0)] for m in mask] == ORACLE_FALLBACK


def test_a_mask_that_ignores_every_pixel_gives_no_loss_not_nan():
    from ornet.methods.spg.spg_losses import IGNORE, masked_bce

    logits = torch.randn(2, 1, 4, 4, requires_grad=True)
    loss = masked_bce(logits, torch.full((2, 1, 4, 4), IGNORE))
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_acol_erases_where_the_normalised_map_reaches_the_threshold():
    from ornet.models.acol_network import class_attention, erase

    maps = torch.tensor([[[[0.0, 1.0], [2.0, 4.0]]], [[[3.0, 3.0], [3.0, 3.0]]]])  # image 2: flat
    att = class_attention(maps, torch.tensor([0, 0]))
    assert att[0, 0].tolist() == [[0.0, 0.25], [0.5, 1.0]] and att[1].eq(0).all()
    erased = erase(torch.ones(2, 3, 2, 2), att, 0.5)
    assert erased[0, :, 0].eq(1).all() and erased[0, :, 1].eq(0).all() and erased[1].eq(1).all()


def test_the_step_schedule_is_wsolevaluations_adjust_learning_rate():
    from ornet.methods.wsoleval_stage import decay_factor

    lr, seen = 1.0, []
    for epoch in range(50):  # main.py: adjust_learning_rate(epoch + 1), then train epoch `epoch`
        if (epoch + 1) != 0 and (epoch + 1) % 15 == 0:
            lr *= 0.1
        seen.append(lr)
    assert all(math.isclose(decay_factor(e, 15), seen[e], rel_tol=1e-12) for e in range(50))
    assert decay_factor(0, 1) == pytest.approx(0.1)  # every epoch: already before the first


def test_the_optimiser_is_nesterov_sgd_with_wsolevaluations_groups():
    from ornet.config.schema import RunConfig
    from ornet.methods import METHODS

    cfg = RunConfig(wsol_method="acol", stages=["acol"])
    cfg.model.backbone, cfg.acol.head_width = "resnet18", 8
    task = METHODS.get("acol").build_task(cfg, "acol", 3, ["a", "b", "c"])
    opt = task.configure_optimizers()["optimizer"]
    assert all(g["nesterov"] and g["momentum"] == 0.9 and g["weight_decay"] == 1e-4 for g in opt.param_groups)
    fast = {id(p) for g in opt.param_groups if g["lr"] == pytest.approx(0.1) for p in g["params"]}
    assert fast == {id(p) for p in task.model.rest.layer4.parameters()}  # ResNet: layer4 x10, the heads x1
    cfg.model.backbone = "vgg16"
    task = METHODS.get("acol").build_task(cfg, "acol", 3, ["a", "b", "c"])
    fast = {id(p) for params, mult in task.param_groups() if mult == 10.0 for p in params}
    assert fast == {id(p) for h in (task.model.head_a, task.model.head_b) for p in h.parameters()}


def test_settings_are_config_keys_with_wsolevaluations_defaults():
    from ornet.config.parse import make_parser, parse, to_run_config
    from ornet.methods import check_config

    parser = make_parser("ornet train", "")
    cfg = check_config(to_run_config(parser, parse(parser, ["--wsol_method", "acol", "--acol.epochs", "2",
                                                            "--acol.erase_threshold", "0.6"])))
    assert (cfg.wsol_method, cfg.stages, cfg.acol.epochs, cfg.acol.erase_threshold) == ("acol", ["acol"], 2, 0.6)
    s = check_config(to_run_config(parser, parse(parser, ["--wsol_method", "spg"]))).spg
    assert s.thresholds() == ((0.7, 0.01), (0.5, 0.05), (0.7, 0.1))  # config.py's defaults
    assert (s.lr, s.weight_decay, s.head_lr_mult, s.nesterov, s.scheduler) == (0.01, 1e-4, 10.0, True, "step")


@pytest.mark.parametrize("flags,message", [
    (["--wsol_method", "acol", "--acol.erase_threshold", "1.5"], "acol.erase_threshold must be in [0, 1]"),
    (["--wsol_method", "spg", "--spg.threshold_2l", "-0.1"], "spg.threshold_2l must be in [0, 1]"),
    (["--wsol_method", "spg", "--spg.lr_decay_frequency", "0"], "spg.lr_decay_frequency must be a positive"),
    (["--wsol_method", "acol", "--acol.momentum", "0"], "acol.nesterov needs acol.momentum > 0"),
])
def test_bad_settings_are_one_line(flags, message):
    from ornet.config.parse import make_parser, parse, to_run_config
    from ornet.errors import ConfigError
    from ornet.methods import check_config

    parser = make_parser("ornet train", "")
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")) as err:
        check_config(to_run_config(parser, parse(parser, flags)))
    assert "\n" not in str(err.value)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_cub_tree(tmp_path_factory.mktemp("data") / "cub", classes=3, per_class=6, size=(48, 40))


@pytest.mark.slow
@pytest.mark.parametrize("method", ["acol", "spg"])
def test_train_and_evaluate_end_to_end(method, data, tmp_path):
    out = tmp_path / method
    assert main(["train", "--wsol_method", method, "--data.root", str(data), "--out", str(out), *TINY]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == method and metrics["stages_run"] == [method]
    assert 0.0 <= metrics["gt_known_loc"] <= 100.0 and 0.0 <= metrics["max_box_acc_v2"] <= 100.0
    meta = json.loads((out / "model.json").read_text())
    assert meta["method"] == method and meta["architecture"]["backbone"] == "resnet18"
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["wsol_method"] == method and cfg["stages"] == [method]
    again = tmp_path / "eval"
    assert main(["evaluate", str(out), "--out", str(again), "--quiet", "--trainer.accelerator", "cpu",
                 "--trainer.devices", "1"]) == 0
    evaluated = json.loads((again / "metrics.json").read_text())
    for key in ("gt_known_loc", "max_box_acc_v2", "top1_cls", "threshold"):
        assert evaluated[key] == metrics[key], key


@pytest.mark.parametrize("backbone,why", [
    ("mobilenet_v2", "it is neither a ResNet, a VGG nor a timm CNN"),
    ("timm/convnext_nano", "its stride-16 stage stages.2 is a ConvNeXtStage, not a sequence of blocks"),
])
def test_spg_refuses_a_backbone_without_branch_points_in_one_line(backbone, why, data, tmp_path, capsys):
    out = tmp_path / "refused"
    assert main(["train", "--wsol_method", "spg", "--model.backbone", backbone, "--data.root", str(data),
                 "--out", str(out), *TINY[2:]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"SPG cannot use {backbone}: {why}" in err[0]
    assert not out.exists()


@pytest.mark.parametrize("name", ["demo_acol", "demo_spg", "cub_acol_resnet50", "cub_spg_resnet50"])
def test_presets_load_and_name_their_method(name):
    import ornet

    cfg = ornet.load_config(name)
    method = name.split("_")[1]
    assert cfg.wsol_method == method and cfg.stages == [method]
    text = (CONFIGS / f"{name}.yaml").read_text()
    assert f"docs/presets.md#{name}" in text.splitlines()[0]


@pytest.mark.parametrize("method", ["acol", "spg"])
def test_map_extractors_explain_the_classification_path(method):
    from ornet.errors import OrnetError
    from ornet.extractors import with_maps
    from ornet.models.acol_network import AcolModel
    from ornet.models.spg_network import SpgModel

    torch.manual_seed(0)
    model = (AcolModel("resnet18", 3, head_width=8) if method == "acol"
             else SpgModel("resnet18", 3, branch_width=8, c_width=8)).eval()
    images, labels = torch.randn(2, 3, 64, 64), torch.tensor([0, 2])
    with torch.no_grad():
        own = model.predict(images, labels)[1]
        maps, logits = with_maps(model, "gradcam").predict(images, labels)
    assert maps.shape == (2, 1, 64, 64) and torch.allclose(logits, own, atol=1e-5)
    with pytest.raises(OrnetError, match="eval.maps cam needs a classifier whose head is GAP \\+ Linear"):
        with_maps(model, "cam")
