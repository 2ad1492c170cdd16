"""The evaluation protocols registry (`ornet.evaluation.protocols`): every entry gets the same
checks, and nothing outside `ornet.evaluation` branches on a protocol's name."""

from __future__ import annotations

import ast
import typing
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import write_cub_tree
from ornet.config.protocol_settings import PROTOCOL_SETTINGS
from ornet.config.schema import EvalConfig, RunConfig, apply_protocol
from ornet.errors import OrnetError
from ornet.evaluation.protocols import (
    DEFAULT_PROTOCOL,
    PROTOCOLS,
    Protocol,
    protocol_of,
    protocol_of_metrics,
    stored_protocol,
)

PKG = Path(__file__).resolve().parents[1] / "src" / "ornet"
NAMES = ("release", "wsolevaluation")


# --- nothing outside evaluation/ compares a protocol name ----------------------------------------

def _mentions_protocol(node: ast.AST) -> bool:
    """A name or attribute called `protocol`, a `x["protocol"]` or a `x.get("protocol", ...)`."""
    for n in ast.walk(node):
        if isinstance(n, ast.Name) and n.id == "protocol" or isinstance(n, ast.Attribute) and n.attr == "protocol":
            return True
        if isinstance(n, ast.Subscript) and isinstance(n.slice, ast.Constant) and n.slice.value == "protocol":
            return True
        if (isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "get" and n.args
                and isinstance(n.args[0], ast.Constant) and n.args[0].value == "protocol"):
            return True
    return False


def _names_a_protocol(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Constant) and n.value in NAMES for n in ast.walk(node))


def protocol_comparisons(text: str) -> list[int]:
    """Lines where a protocol-valued expression is compared with (or matched against) a protocol name."""
    found = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Compare) and _mentions_protocol(node) and _names_a_protocol(node):
            found.append(node.lineno)
        elif isinstance(node, ast.Match) and _mentions_protocol(node.subject) \
                and any(_names_a_protocol(case.pattern) for case in node.cases):
            found.append(node.lineno)
    return found


def test_the_checker_finds_protocol_comparisons():
    bad = ['cfg.eval.protocol == "release"', 'metrics.get("protocol") != "release"', 'm["protocol"] == "release"',
           'x = protocol in ("wsolevaluation", "release")', 'a != b.get("protocol", "wsolevaluation")',
           'match cfg.protocol:\n    case "release":\n        pass']
    for text in bad:
        assert protocol_comparisons(text) == [1], text
    good = ['m.generator_encoder == "release"', 'scope == "release"', 'loc.box_rule(mode) == "release"',
            'cfg.eval.protocol == other.protocol', 'dataclasses.replace(e, protocol="release")']
    for text in good:
        assert protocol_comparisons(text) == [], text


def test_nothing_outside_evaluation_compares_a_protocol_name():
    wrong = [f"{path.relative_to(PKG)}:{line}" for path in sorted(PKG.rglob("*.py"))
             if path.relative_to(PKG).parts[0] != "evaluation"
             for line in protocol_comparisons(path.read_text())]
    assert not wrong, "ask the protocol's entry (ornet.evaluation.protocols) instead: " + ", ".join(wrong)


# --- the same checks for every registered protocol -----------------------------------------------

def test_the_registry_the_config_rows_and_the_config_type_name_the_same_protocols():
    literal = typing.get_args(typing.get_type_hints(EvalConfig)["protocol"])
    assert set(PROTOCOLS) == set(PROTOCOL_SETTINGS) == set(literal) == set(NAMES)
    assert DEFAULT_PROTOCOL == EvalConfig().protocol == "wsolevaluation"
    with pytest.raises(OrnetError, match="unknown evaluation protocol 'nope'; known: release, wsolevaluation"):
        PROTOCOLS.get("nope")


@pytest.fixture(params=list(PROTOCOLS))
def protocol(request) -> Protocol:
    return PROTOCOLS.get(request.param)


def _eval_cfg(protocol: Protocol) -> EvalConfig:
    cfg = RunConfig()
    cfg.eval.protocol = protocol.name
    return apply_protocol(cfg).eval


def test_each_protocol_has_its_thresholds_split_and_iou(protocol):
    e = _eval_cfg(protocol)
    assert protocol_of(e) is protocol and protocol.name in PROTOCOLS and protocol.summary
    t = protocol.thresholds(e)
    assert t.dtype == np.float64 and t.ndim == 1 and len(t) > 1 and np.all(np.diff(t) > 0) and 0 <= t[0] and t[-1] < 1
    assert protocol.threshold_split(e) == e.threshold_split in ("val", "test")
    assert protocol.chooses_on_evaluated_split(e) == (e.threshold_split == "test")
    assert isinstance(protocol.iou_strict(e), bool) and isinstance(protocol.iou_plus_one, bool)
    assert protocol.metric_keys >= {"protocol", "gt_known_loc", "threshold", "threshold_index", "threshold_split",
                                    "split", "box_mode", "iou_strict", "num_images"}
    assert not protocol.metric_keys & protocol.optional_metric_keys


def test_the_protocols_as_they_are():
    wsol, release = PROTOCOLS.get("wsolevaluation"), PROTOCOLS.get("release")
    e = EvalConfig()
    assert len(wsol.thresholds(e)) == 100 and wsol.thresholds(e)[45] == pytest.approx(0.45)
    assert wsol.threshold_split(e) == "val" and wsol.iou_plus_one and not wsol.iou_strict(e)
    assert release.thresholds(e).tolist() == pytest.approx([(i + 1) / 20 for i in range(19)])
    assert release.threshold_split(e) == "test" and not release.iou_plus_one and release.iou_strict(e)
    assert release.chooses_on_evaluated_split(e) and not release.reuses_stored_threshold
    assert [wsol.box_rule(m) for m in ("all", "largest", "multi")] == ["evaluation"] * 3
    assert [release.box_rule(m) for m in ("all", "largest", "multi")] == ["release", "evaluation", "evaluation"]


def test_each_protocol_writes_its_model_json_part(protocol):
    e = _eval_cfg(protocol)
    loc = protocol.model_localization(e)
    assert list(loc) == ["protocol", "threshold_split", "box_mode", "normalize", "cam_curve_interval", "iou_strict"]
    assert stored_protocol(loc) is protocol and loc["threshold_split"] == protocol.threshold_split(e)
    assert loc["iou_strict"] == protocol.iou_strict(e)
    assert loc["cam_curve_interval"] == pytest.approx(float(np.diff(protocol.thresholds(e))[0]))
    assert stored_protocol({}) is PROTOCOLS.get(DEFAULT_PROTOCOL)  # model.json naming none: wsolevaluation


def test_each_protocol_boxes_a_map_for_the_localizer(protocol):
    raw = torch.zeros(8, 8)
    raw[2:4, 3:6] = 0.9
    scoremap = np.kron(raw.numpy(), np.ones((4, 4)))  # the 32 x 32 input's map
    for mode in ("all", "largest"):
        boxes = protocol.map_boxes(raw, scoremap, 0.5, mode, (32, 32), relative=False)
        # release: where the first and last cells start, x the stride 4; evaluation: wsolevaluation's
        # contour box (x + w, y + h of pixels 12..23 x 8..15)
        want = [[12, 8, 20, 12]] if protocol.box_rule(mode) == "release" else [[12, 8, 24, 16]]
        assert boxes == want, (protocol.name, mode)
        assert protocol.map_boxes(raw, scoremap, 0.95, mode, (32, 32), relative=False) == []


class StripeMaps(torch.nn.Module):
    """predict(): a map bright on a centre stripe at input / 4, logits favouring class 0."""

    def predict(self, images, labels=None):
        b, _, h, w = images.shape
        maps = torch.full((b, 1, h // 4, w // 4), 0.2)
        maps[:, :, h // 16: 3 * h // 16, w // 16: 3 * w // 16] = 0.8
        logits = torch.zeros(b, 3)
        logits[:, 0] = 1.0
        return maps, logits


def test_each_protocol_writes_the_metrics_keys_it_says(protocol, tmp_path):
    from ornet.data.datamodule import WSOLDataModule
    from ornet.evaluation.protocols import evaluate_split

    root = write_cub_tree(tmp_path / "cub", classes=3, per_class=3, size=(80, 64), masks=False)
    cfg = RunConfig()
    cfg.data.root, cfg.data.resize, cfg.data.crop, cfg.data.num_workers = str(root), 64, 32, 0
    cfg.eval.protocol = protocol.name
    cfg.trainer.accelerator, cfg.trainer.progress = "cpu", False
    apply_protocol(cfg)
    result = evaluate_split(StripeMaps(), WSOLDataModule(cfg.data), cfg, split="test", quiet=True)
    m = result.metrics
    assert protocol.metric_keys <= set(m) <= protocol.metric_keys | protocol.optional_metric_keys
    assert protocol_of_metrics(m) is protocol and m["protocol"] == protocol.name
    assert m["threshold"] == pytest.approx(protocol.thresholds(cfg.eval)[m["threshold_index"]])
    assert m["threshold_split"] == protocol.threshold_split(cfg.eval)
    assert result.curves["chosen_index"] == m["threshold_index"]
    if m["threshold_split"] == "val":  # the val figure the threshold was chosen on, read from its curve
        curve = result.curves
        assert curve["split"] == "val" and m["val_gt_known_loc"] == curve["accuracy"]["50"][curve["chosen_index"]]
    else:
        assert "val_gt_known_loc" not in m


def test_notes_come_from_the_metrics_protocol():
    release = {"protocol": "release", "top1_loc_error": 40.0}
    assert protocol_of_metrics(release).command_note(release).startswith(", ORNet release protocol")
    assert protocol_of_metrics(release).train_note(release) == " under the ORNet release's protocol"
    assert protocol_of_metrics(release).report_lines(release)
    for other in ({"protocol": "wsolevaluation"}, {}, {"protocol": "someone-elses"}):
        p = protocol_of_metrics(other)
        assert (p.command_note(other), p.train_note(other), p.report_lines(other)) == ("", "", [])


# --- a stored threshold is reused only by the protocol that chose it -----------------------------

def test_a_stored_threshold_is_reused_only_by_its_protocol_on_its_list():
    wsol, release = PROTOCOLS.get("wsolevaluation"), PROTOCOLS.get("release")
    e = EvalConfig()
    assert wsol.stored_threshold_index({"protocol": "wsolevaluation", "threshold": 0.45, "threshold_index": 45}, e) == 45
    assert wsol.stored_threshold_index({"threshold": 0.45, "threshold_index": 45}, e) == 45  # no protocol: wsol
    imported = {"protocol": "release", "threshold_split": "test", "threshold": 0.45, "threshold_index": 8}
    with pytest.raises(OrnetError, match="chosen under eval.protocol release .* --eval.threshold_split test") as err:
        wsol.stored_threshold_index(imported, e)
    assert "\n" not in str(err.value)
    with pytest.raises(OrnetError, match="--eval.threshold_split test"):
        release.stored_threshold_index(imported, e)  # the release chooses on the evaluated split, always
    coarse = EvalConfig(cam_curve_interval=0.05)
    with pytest.raises(OrnetError, match="not on this evaluation's threshold list"):
        wsol.stored_threshold_index({"protocol": "wsolevaluation", "threshold": 0.45, "threshold_index": 45}, coarse)
    with pytest.raises(OrnetError, match="--threshold-split model is for the wsolevaluation protocol"):
        release.check_model_threshold(imported, "run/model.json")
    with pytest.raises(OrnetError, match="run/model.json: its threshold was chosen under eval.protocol release"):
        wsol.check_model_threshold(imported, "run/model.json")
