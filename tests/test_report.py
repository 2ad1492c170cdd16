"""The HTML run report: content, links, escaping, atomic write."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest

from ornet.errors import OrnetError
from ornet.reports.run_report import render_report, write_report

METRICS = {
    "top1_cls": 81.25, "top5_cls": 95.5, "top1_loc": 61.0, "top5_loc": 70.125, "gt_known_loc": 77.75,
    "max_box_acc_v2": 66.4, "threshold": 0.23, "threshold_split": "val", "box_mode": "largest",
    "num_images": 48, "method": "ornet", "seconds": 3.5,
}


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.links.append(value)


def _run(tmp_path: Path) -> Path:
    from PIL import Image

    run = tmp_path / "run <1>"
    (run / "figures").mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps(METRICS))
    (run / "config.yaml").write_text("data:\n  root: /data/<cub>&co\neval:\n  iou_strict: false\n  normalize: minmax\n")
    for name in ("threshold_curve.png", "evolution.png", "overlay_00.png", "my figure.png"):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(run / "figures" / name)
    return run


def test_report_has_metrics_settings_figures_config_and_working_links(tmp_path):
    run = _run(tmp_path)
    path = write_report(run)
    assert path == run / "report.html"
    text = path.read_text(encoding="utf-8")
    parser = _Links()
    parser.feed(text)
    assert "script" not in parser.tags and "<script" not in text.lower()
    assert not re.search(r"\bon\w+\s*=", text)  # no inline event handlers either
    assert all(not link.startswith(("http:", "https:", "//")) for link in parser.links)
    for link in parser.links:
        assert (run / unquote(link)).is_file(), link
    imgs = [link for link in parser.links if link.startswith("figures/")]
    assert len(imgs) == 4
    assert imgs.index("figures/threshold_curve.png") < imgs.index("figures/evolution.png")
    for value in ("81.25", "77.75", "66.40", "70.12", "0.23"):
        assert value in text
    assert "largest" in text and "val" in text
    assert "IoU &gt;= 0.5 (wsolevaluation)" in text  # strictness from config.yaml
    assert "per-image min-max" in text
    assert "/data/&lt;cub&gt;&amp;co" in text  # the config, escaped
    assert "run &lt;1&gt;" in text  # the title, escaped
    assert not list(run.glob(".report.html.*"))  # no temporary file left


def test_report_escapes_hostile_metric_values():
    text = render_report({"method": "<script>alert(1)</script>", "gt_known_loc": 50.0})
    assert "<script>" not in text and "&lt;script&gt;" in text


def test_report_without_figures_or_metrics_still_written(tmp_path):
    path = write_report(tmp_path)
    text = path.read_text()
    assert "No figures yet" in text and "No metrics recorded" in text


def test_report_names_a_broken_metrics_file(tmp_path):
    (tmp_path / "metrics.json").write_text("{not json")
    with pytest.raises(OrnetError, match="metrics.json"):
        write_report(tmp_path)
    with pytest.raises(OrnetError, match="does not exist"):
        write_report(tmp_path / "missing")
