"""The comparison page (`reports.compare.compare_page`): metrics side by side, one row per test image,
every link resolving; bad input named; a real-browser check when Chromium is installed."""

from __future__ import annotations

import csv
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from PIL import Image

from conftest import write_cub_tree
from ornet.errors import OrnetError
from ornet.reports.compare import compare_page, render_compare
from test_figures_cmd import make_run


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.links += [v for k, v in attrs if k in ("src", "href") and v]


def make_cam_run(root: Path, data_root: Path) -> Path:
    """A CAM run folder with an untrained tiny CAM model, other metrics and its own boxes."""
    import torch

    from ornet.config.schema import RunConfig, dump_yaml
    from ornet.data.readers import read_index
    from ornet.models.cam_network import CAMModel
    from ornet.runs.export import export_model, model_meta

    cfg = RunConfig()
    cfg.stages = ["cam"]
    cfg.data.root, cfg.data.resize, cfg.data.crop, cfg.data.val_per_class = str(data_root), 64, 64, 1
    cfg.model.backbone = "mobilenet_v3_small"
    root.mkdir(parents=True)
    (root / "config.yaml").write_text(dump_yaml(cfg))
    index = read_index(cfg.data)
    torch.manual_seed(1)
    export_model(root, CAMModel("mobilenet_v3_small", index.num_classes, "none").eval(),
                 model_meta(cfg, "cam", index.classes, 0.3, 30))
    (root / "metrics.json").write_text(json.dumps({"top1_cls": 61.5, "gt_known_loc": 12.25, "top1_loc": 8.0,
                                                   "threshold": 0.3, "split": "test", "method": "cam"}))
    with open(root / "predictions.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image_id", "label", "pred", "score", "x0", "y0", "x1", "y1", "iou", "correct"])
        for r in index.split("test"):
            w.writerow([r.image_id, r.label, r.label, 0.9, 1, 2, 60, 50, 0.75, 1])
    return root


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("compare")
    data = write_cub_tree(base / "cub")
    ornet = make_run(base / "ornet", data, snapshots=False)
    (ornet / "report.html").write_text("<html></html>")
    return {"ORNet": ornet, "CAM": make_cam_run(base / "cam", data)}


def test_page_has_both_metrics_every_test_image_and_working_links(runs, tmp_path):
    out = tmp_path / "site" / "index.html"
    out.parent.mkdir()
    assert compare_page(runs, out, n=50) == out
    text = out.read_text(encoding="utf-8")
    page = _Page()
    page.feed(text)
    assert "script" not in page.tags and not re.search(r"\bon\w+\s*=", text)
    for link in page.links:
        assert not link.startswith(("http:", "https:", "//")) and (out.parent / unquote(link)).is_file(), link
    # the metrics table: both runs' values and, with two runs, their difference
    for value in ("50.0", "12.2", "40.0", "61.5", "+37.8", "-21.5", "0.50", "0.30"):
        assert f">{value}<" in text, value
    # every test image of the tiny set (6: 3 classes x 2), one PNG each for the image and each run
    n_test = 6
    imgs = [link for link in page.links if link.endswith(".png")]
    assert len(imgs) == 3 * n_test
    assert sorted(p.name for p in (out.parent / "index_images").iterdir()) == sorted(
        f"{k:02d}_{s}.png" for k in range(n_test) for s in ("image", "ornet", "cam"))
    tile = np.asarray(Image.open(out.parent / "index_images" / "00_cam.png"))
    assert tile.shape[0] >= 224 and tile.shape[2] == 3  # 64 px images are upscaled before drawing
    assert "IoU 0.75, predicted 001.class_0 <span class=\"ok\">" in text  # CAM's predictions.csv
    assert 'href="../../ornet/report.html"' not in text  # relative to the page:
    assert any(link.endswith("ornet/report.html") for link in page.links)
    assert not any(link.endswith("cam/report.html") for link in page.links)  # it has none


def test_n_limits_the_images_and_a_rerun_removes_stale_ones(runs, tmp_path):
    out = tmp_path / "index.html"
    compare_page(runs, out, n=6)
    compare_page(runs, out, n=2)
    assert sorted(p.name for p in (tmp_path / "index_images").iterdir()) == [
        "00_cam.png", "00_image.png", "00_ornet.png", "01_cam.png", "01_image.png", "01_ornet.png"]
    assert out.read_text().count("<tr><td><figure>") == 2


def test_bad_runs_are_named_before_anything_is_written(runs, tmp_path):
    out = tmp_path / "index.html"
    broken = tmp_path / "broken"
    shutil.copytree(runs["CAM"], broken)
    (broken / "predictions.csv").unlink()
    with pytest.raises(OrnetError, match=r"broken/predictions.csv does not exist"):
        compare_page({"ORNet": runs["ORNet"], "CAM": broken}, out)
    with pytest.raises(OrnetError, match="at least one run"):
        compare_page({}, out)
    with pytest.raises(OrnetError, match=">= 1"):
        compare_page(runs, out, n=0)
    with pytest.raises(OrnetError, match=r"nowhere is not a folder"):
        compare_page({"ORNet": runs["ORNet"], "CAM": tmp_path / "nowhere"}, out)
    other = tmp_path / "other"  # evaluated on other images: refused, naming both folders
    shutil.copytree(runs["CAM"], other)
    (other / "predictions.csv").write_text((other / "predictions.csv").read_text().replace("img_000", "img_999"))
    with pytest.raises(OrnetError, match=r"cam and .*other were evaluated on different images"):
        compare_page({"CAM": runs["CAM"], "other": other}, out)
    assert not out.exists() and not (tmp_path / "index_images").exists()


def test_labels_that_would_share_a_file_name_get_distinct_files():
    from ornet.reports.compare import file_slugs

    # the page's files used to refuse such labels; they now get a suffix (the GT picture keeps 'image')
    assert file_slugs(["a b", "a-b", "Image", "+++", "cam + gradcam"]) == {
        "a b": "a_b", "a-b": "a_b_2", "Image": "image_2", "+++": "run", "cam + gradcam": "cam_gradcam"}


def test_render_escapes_names_and_values():
    from ornet.reports.compare import Cell

    text = render_compare("<t>", {"<x>": {"gt_known_loc": 1.0, "method": "<m>"}},
                          [("a&b", Cell("i/00_image.png", "<c>"), [Cell("i/00_x.png", "IoU 0.10", False)])], {})
    assert "<t>" not in text and "&lt;t&gt;" in text and "&lt;x&gt;" in text and "a&amp;b" in text
    assert 'class="bad"' in text


@pytest.mark.slow
def test_page_renders_in_headless_chromium(runs, tmp_path):
    """The page as a browser draws it (skipped without Chromium; benchmarks/screenshot_page.py)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from screenshot_page import find_chromium, screenshot

    if find_chromium() is None:
        pytest.skip("no chromium / google-chrome on PATH")
    out = tmp_path / "index.html"
    compare_page(runs, out, n=2)
    png = screenshot(out, tmp_path / "shot.png", width=1000, height=900)
    shot = np.asarray(Image.open(png).convert("RGB"))
    assert shot.shape[:2] == (900, 1000)
    # the page drew its images: the map overlays bring saturated colours onto the white page
    sat = shot.max(axis=2).astype(int) - shot.min(axis=2)
    assert (sat > 100).mean() > 0.01
