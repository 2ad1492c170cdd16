"""benchmarks/studies/miss_kinds.py: the miss kinds and the share of misses on background,
against hand-computed boxes."""

import numpy as np
import pytest

from conftest import load_study


@pytest.fixture(scope="module")
def mk():
    return load_study("miss_kinds")


def test_background_share_hand_computed(mk):
    gt = [(0, 0, 9, 9)]  # 10 x 10 pixels
    assert mk.background_share((0, 0, 9, 9), gt) == 0.0
    assert mk.background_share((0, 0, 19, 9), gt) == pytest.approx(0.5)  # 200 px, 100 inside
    assert mk.background_share((20, 20, 29, 29), gt) == 1.0
    assert mk.background_share((5, 5, 14, 14), gt) == pytest.approx(0.75)  # 25 of 100 inside
    # overlapping GT boxes count their union once
    assert mk.background_share((0, 0, 9, 9), [(0, 0, 9, 4), (0, 0, 9, 9)]) == 0.0
    assert mk.background_share((0, 0, 19, 9), [(0, 0, 4, 9), (10, 0, 14, 9)]) == pytest.approx(0.5)


def test_miss_kinds_shares(mk):
    gt = np.array([[0, 0, 9, 9]])
    boxes = {k: gt for k in "abcd"}
    rows = {
        "a": {"x0": 0, "y0": 0, "x1": 9, "y1": 9, "iou": 1.0},    # localised
        "b": {"x0": 0, "y0": 0, "x1": 39, "y1": 39, "iou": 0.06},  # too big, 15/16 background
        "c": {"x0": 2, "y0": 2, "x1": 5, "y1": 5, "iou": 0.16},    # too small, inside the object
        "d": {"x0": 30, "y0": 30, "x1": 39, "y1": 39, "iou": 0.0},  # elsewhere, all background
    }
    k = mk.miss_kinds(rows, boxes, strict=False)
    assert k["localised"] == 25.0 and k["too big"] == 25.0 and k["too small"] == 25.0 and k["elsewhere"] == 25.0
    assert k["on background"] == pytest.approx(100 * 2 / 3)
    only_hit = mk.miss_kinds({"a": rows["a"]}, boxes, strict=False)
    assert only_hit["on background"] == 0.0


def test_a_data_root_without_the_set_is_one_line_and_exit_2(mk, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("data:\n  name: cub\n")
    (run / "predictions.csv").write_text("image_id,iou\n")
    (run / "metrics.json").write_text("{}")
    assert mk.main([str(run), "--data-root", str(tmp_path / "nowhere")]) == 2
    out, err = capsys.readouterr()
    err = err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"miss_kinds.py: {run}: ") and "nowhere" in err[0], err
    assert out == ""  # no table header without a row
