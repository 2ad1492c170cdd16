"""BAS (issue 29): parity with its authors' code, the settings, a tiny run.

Parity: the reference values below are BAS's own (github.com/wpy1999/BAS at 54c395e, a checkout
outside this repository: CUB/Model/resnet.py and CUB/Model/vgg.py), printed by

    OMP_NUM_THREADS=1 python benchmarks/zoo_oracle_bas.py --bas /work/oracles/BAS

on fixed seeded weights (copied by name into the oracle's networks) and images (K = 200, 224 px):
the logits, the normalised foreground maps of the label and of every class (eval mode), the loss
terms (cross entropies of score_1 and score_2, bas_loss and its background and area parts, the
total as train.py weighs it; train mode) and four parameters' gradients after one backward of the
total. Both sides run in float64 (`zoo_oracle_acol_spg.DTYPE`; in float32 the values move by a few
1e-6 between CPUs' kernels). On the machine that produced them (one thread, as the tests run)
ornet's values equal the oracle's exactly for ResNet-50 and within 3e-14 for VGG-16. Here values
agree within 1e-6: absolute, relative for sums of many elements, and for a gradient's sum relative
to the sum of its absolute values.
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
    "resnet50": {
        "logits_sum": 99.35191611438671,
        "logits_first": [
            0.021678608894292687, 0.0019734184621246964, 0.9638834831596262, 0.9776882871959334,
            0.01144674395746432, 0.003621071953262226, 0.01964218846173404,
            0.0030216048323370255, 0.975792100607436, 0.9758612692079799, 0.010796981239490045,
            0.003845675095080841
        ],
        "label_map_sum": 954.3922968584029,
        "label_map_corners": [
            0.7149721390728563, 0.5417356816127926, 0.530565297001181, 0.0
        ],
        "all_map_sum": 986.7086937385257,
        "all_map_corners": [
            0.4317384667198223, 0.3161260433026678, 0.46023300223117414, 0.39125540976729684
        ],
        "losses": {
            "loss": 9.409691240934443,
            "loss_cls": 5.202977237687161,
            "loss_fg": 5.166599699616252,
            "loss_bas": 1.6234141534391542,
            "background": 0.8053599714618863,
            "area": 0.6817118183143899,
        },
        "grad_sum": {
            "classifier_loc.0.weight": 453.1710802250917,
            "classifier_cls.0.weight": -3511.949375366756,
            "layer3.0.conv1.weight": -218.74938339313366,
            "layer4.0.conv1.weight": -12.51614820778034,
        },
        "grad_abs_sum": {
            "classifier_loc.0.weight": 4320.602445567606,
            "classifier_cls.0.weight": 84386.0189866989,
            "layer3.0.conv1.weight": 14438.503661593435,
            "layer4.0.conv1.weight": 1073.5185419776433,
        },
    },
    "vgg16": {
        "logits_sum": 2.882937440815086,
        "logits_first": [
            3.158563078833617e-05, 0.003412430209584297, 0.02748883535437622,
            0.002014784834826675, 0.0, 0.0, 2.4341132460925854e-05, 0.0033058346021351956,
            0.027380425227676645, 0.001972059619843551, 0.0, 0.0
        ],
        "label_map_sum": 771.2519201081423,
        "label_map_corners": [
            0.13361002207748673, 0.4137656444571553, 0.9142828126089667, 0.7524096715015844
        ],
        "all_map_sum": 623.1687369913061,
        "all_map_corners": [
            0.5882067608538957, 0.112441260960427, 0.6795401105962879, 0.26059933066061286
        ],
        "losses": {
            "loss": 5.83783678342993,
            "loss_cls": 5.302889764419694,
            "loss_fg": 5.30054033261285,
            "loss_bas": 0.5349470190102356,
            "background": 0.18881961228174146,
            "area": 0.49446772389784877,
        },
        "grad_sum": {
            "classifier_loc.0.weight": -16.820242598067427,
            "classifier_cls.0.weight": -1.3673559392912527,
            "conv4_1.weight": 15.168895797642296,
            "conv5_1.weight": 1.486488350736347,
        },
        "grad_abs_sum": {
            "classifier_loc.0.weight": 18.481967272121196,
            "classifier_cls.0.weight": 193.2600317071757,
            "conv4_1.weight": 129.96952540167672,
            "conv5_1.weight": 119.6834339910952,
        },
    },
}

TINY = ["--model.backbone", "resnet18", "--data.resize", "40", "--data.crop", "32", "--data.batch_size", "4",
        "--data.eval_batch_size", "8", "--data.num_workers", "0", "--data.val_per_class", "2",
        "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.limit_train_batches", "2",
        "--trainer.snapshot_images", "0", "--bas.head_width", "16", "--quiet"]


@pytest.fixture(scope="module")
def oracle_script():
    import sys

    sys.path.insert(0, str(BENCHMARKS))
    try:
        import zoo_oracle_bas
    finally:
        sys.path.remove(str(BENCHMARKS))
    return zoo_oracle_bas


def close(ours, ref, key: str = "") -> None:
    """Within 1e-6 (absolute; relative for sums of many elements), recursively."""
    if isinstance(ref, dict):
        assert set(ours) == set(ref), key
        for k in ref:
            close(ours[k], ref[k], f"{key}.{k}")
    elif isinstance(ref, list):
        assert len(ours) == len(ref), key
        for i, (a, b) in enumerate(zip(ours, ref)):
            close(a, b, f"{key}[{i}]")
    else:
        relative = key.endswith("_sum") or key.startswith(".grad_abs_sum")
        tol = 1e-6 * max(1.0, abs(ref)) if relative else 1e-6
        assert math.isclose(ours, ref, rel_tol=0.0, abs_tol=tol), f"{key}: {ours} vs the oracle's {ref}"


@pytest.mark.slow
@pytest.mark.parametrize("backbone", list(ORACLE))
def test_maps_logits_losses_and_gradients_equal_bas(oracle_script, backbone):
    s = oracle_script
    torch.manual_seed(0)
    model = s.ours(backbone)
    area_weight, fg_weight = s.CASES[backbone]
    values = json.loads(json.dumps(s.values(model, s.fixed_images(s.SIZE), torch.tensor(s.LABELS), area_weight,
                                            fg_weight)))
    ref = ORACLE[backbone]
    for name, total in ref["grad_sum"].items():  # signed sums cancel: relative to the absolute sum
        assert math.isclose(values["grad_sum"][name], total, abs_tol=1e-6 * ref["grad_abs_sum"][name]), name
    close({k: v for k, v in values.items() if k != "grad_sum"}, {k: v for k, v in ref.items() if k != "grad_sum"})


def test_the_background_pass_leaves_weights_and_statistics_alone():
    from ornet.models.bas_network import BasModel

    torch.manual_seed(0)
    model = BasModel("resnet18", 3, head_width=8).train()
    images, labels = torch.randn(2, 3, 32, 32), torch.tensor([0, 2])
    out = model(images, labels)
    before = model.rest.high.layer4[0].bn1.running_mean.clone()
    model.zero_grad()
    out.logits_erased.sum().backward()  # the background term alone
    assert model.classifier_loc[0].weight.grad.abs().sum() > 0  # it trains the foreground generator
    assert all(p.grad is None or not p.grad.any() for p in model.classifier_cls.parameters())
    assert all(p.grad is None or not p.grad.any() for p in model.rest.high.parameters())  # copies, as BAS's
    assert torch.equal(model.rest.high.layer4[0].bn1.running_mean, before)


def test_the_step_schedule_is_bas_poly_lr_scheduler():
    from ornet.methods.bas.bas_stage import decay_factor

    lr, seen = 1.0, []
    for epoch in range(100):  # utils/lr.py, called before each epoch with decay_epoch=80
        if epoch != 0 and epoch % 80 == 0:
            lr *= 0.1
        seen.append(lr)
    assert all(math.isclose(decay_factor(e, 80), seen[e], rel_tol=1e-12) for e in range(100))


def test_the_optimiser_is_bas_nesterov_sgd_with_its_groups():
    from ornet.config.schema import RunConfig
    from ornet.methods import METHODS

    cfg = RunConfig(wsol_method="bas", stages=["bas"])
    cfg.model.backbone, cfg.bas.head_width = "resnet18", 8
    task = METHODS.get("bas").build_task(cfg, "bas", 3, ["a", "b", "c"])
    opt = task.configure_optimizers()["optimizer"]
    assert all(g["nesterov"] and g["momentum"] == 0.9 and g["weight_decay"] == 5e-4 for g in opt.param_groups)
    lrs = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    m = task.model
    assert lrs[id(m.stem.conv1.weight)] == pytest.approx(1e-3) and lrs[id(m.stem.bn1.bias)] == pytest.approx(2e-3)
    assert lrs[id(m.classifier_loc[0].weight)] == pytest.approx(1e-2)
    assert lrs[id(m.classifier_cls[0].bias)] == pytest.approx(2e-2)
    assert len(lrs) == len(list(m.parameters()))


def test_settings_are_config_keys_with_bas_defaults():
    from ornet.config.parse import make_parser, parse, to_run_config
    from ornet.methods import check_config

    parser = make_parser("ornet train", "")
    cfg = check_config(to_run_config(parser, parse(parser, ["--wsol_method", "bas", "--bas.area_weight", "0.7"])))
    s = cfg.bas
    assert (cfg.wsol_method, cfg.stages, s.area_weight) == ("bas", ["bas"], 0.7)
    assert (s.lr, s.weight_decay, s.head_lr_mult, s.bias_lr_mult, s.lr_decay_frequency) == (1e-3, 5e-4, 10.0, 2.0, 80)
    assert (s.fg_weight, s.top_k, s.head_width, s.nesterov, s.scheduler) == (0.5, 200, 1024, True, "step")


@pytest.mark.parametrize("flags,message", [
    (["--bas.area_weight", "-1"], "bas.area_weight must be >= 0"),
    (["--bas.top_k", "0"], "bas.top_k must be a positive number of classes"),
    (["--bas.bias_lr_mult", "0"], "bas.bias_lr_mult must be positive"),
])
def test_bad_settings_are_one_line(flags, message):
    from ornet.config.parse import make_parser, parse, to_run_config
    from ornet.errors import ConfigError
    from ornet.methods import check_config

    parser = make_parser("ornet train", "")
    with pytest.raises(ConfigError, match=message) as err:
        check_config(to_run_config(parser, parse(parser, ["--wsol_method", "bas", *flags])))
    assert "\n" not in str(err.value)


def test_the_test_map_is_the_mean_of_the_top_k_classes_maps():
    from ornet.models.bas_network import BasModel, foreground

    torch.manual_seed(0)
    model = BasModel("resnet18", 4, head_width=8, top_k=2).eval()
    images, labels = torch.randn(2, 3, 32, 32), torch.tensor([0, 3])
    with torch.no_grad():
        maps, logits = model.predict(images, labels)
        loc = model.classifier_loc(model.low(images))
    top = logits.topk(2, dim=1).indices
    assert torch.allclose(foreground(loc, top), loc[torch.arange(2)[:, None], top].mean(1, keepdim=True))
    assert maps.shape == (2, 1, 4, 4) and float(maps.amin()) == 0.0 and float(maps.amax()) == 1.0


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_cub_tree(tmp_path_factory.mktemp("data") / "cub", classes=3, per_class=6, size=(48, 40))


@pytest.mark.slow
def test_train_and_evaluate_end_to_end(data, tmp_path):
    out = tmp_path / "bas"
    assert main(["train", "--wsol_method", "bas", "--data.root", str(data), "--out", str(out), *TINY]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == "bas" and metrics["stages_run"] == ["bas"]
    assert 0.0 <= metrics["gt_known_loc"] <= 100.0 and 0.0 <= metrics["max_box_acc_v2"] <= 100.0
    meta = json.loads((out / "model.json").read_text())
    assert meta["method"] == "bas" and meta["architecture"]["backbone"] == "resnet18"
    assert (meta["architecture"]["head_width"], meta["architecture"]["top_k"]) == (16, 200)
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["wsol_method"] == "bas" and cfg["stages"] == ["bas"]
    again = tmp_path / "eval"
    assert main(["evaluate", str(out), "--out", str(again), "--quiet", "--trainer.accelerator", "cpu",
                 "--trainer.devices", "1"]) == 0
    evaluated = json.loads((again / "metrics.json").read_text())
    for key in ("gt_known_loc", "max_box_acc_v2", "top1_cls", "threshold"):
        assert evaluated[key] == metrics[key], key


def test_a_refused_backbone_is_one_line_and_exit_2(data, tmp_path, capsys):
    out = tmp_path / "refused"
    assert main(["train", "--wsol_method", "bas", "--model.backbone", "mobilenet_v2", "--data.root", str(data),
                 "--out", str(out), *TINY[2:]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "BAS cannot use mobilenet_v2: it is neither a ResNet, a VGG nor a timm CNN" in err[0]
    assert not out.exists()


@pytest.mark.parametrize("name", ["demo_bas", "cub_bas_resnet50"])
def test_presets_load_and_name_their_method(name):
    import ornet

    cfg = ornet.load_config(name)
    assert cfg.wsol_method == "bas" and cfg.stages == ["bas"]
    assert f"docs/presets.md#{name}" in (CONFIGS / f"{name}.yaml").read_text().splitlines()[0]


def test_map_extractors_explain_the_classification_path():
    from ornet.errors import OrnetError
    from ornet.extractors import with_maps
    from ornet.models.bas_network import BasModel

    torch.manual_seed(0)
    model = BasModel("resnet18", 3, head_width=8).eval()
    images, labels = torch.randn(2, 3, 64, 64), torch.tensor([0, 2])
    with torch.no_grad():
        own = model.predict(images, labels)[1]
        maps, logits = with_maps(model, "gradcam").predict(images, labels)
    assert maps.shape == (2, 1, 64, 64) and torch.allclose(logits, own, atol=1e-5)
    with pytest.raises(OrnetError, match="eval.maps cam needs a classifier whose head is GAP \\+ Linear"):
        with_maps(model, "cam")
