"""`ornet localize`: boxes in original pixels, overlays, unreadable images, errors, progress."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from ornet.cli import main as cli
from ornet.commands.localize import output_names
from ornet.inference.inputs import expand_inputs
from ornet.localization.boxes import scale_boxes
from ornet.runtime.progress_lines import Progress

SIZES = [(120, 80), (64, 200), (97, 97)]  # (width, height)


def export_tiny_model(out: Path, threshold: float | None = 0.5, classes=("cat", "dog", "bird")) -> Path:
    """An untrained tiny ORNet exported as a run folder would hold it (model.json + safetensors)."""
    import torch

    from ornet.config.schema import RunConfig
    from ornet.models.ornet_network import ORNet
    from ornet.runs.export import export_model, model_meta

    torch.manual_seed(0)
    cfg = RunConfig()
    cfg.model.backbone, cfg.model.evaluator, cfg.model.generator_width = "mobilenet_v3_small", None, 8
    cfg.data.resize = cfg.data.crop = 64
    model = ORNet(cfg.model.backbone, len(classes), evaluator=None, generator_width=8).eval()
    export_model(out, model, model_meta(cfg, "ornet", list(classes), threshold))
    return out


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return export_tiny_model(tmp_path_factory.mktemp("run"))


def _images(folder: Path, broken: bool = False) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    (folder / "sub").mkdir(parents=True)
    for i, (w, h) in enumerate(SIZES):
        arr = rng.integers(0, 60, size=(h, w, 3), dtype=np.uint8)
        arr[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = (230, 200, 40)
        Image.fromarray(arr).save(folder / ("sub" if i == 2 else ".") / f"img{i}.png")
    if broken:
        (folder / "broken.jpg").write_bytes(b"this is not a jpeg")
    return folder


def test_scale_box_maps_crop_pixels_to_original_pixels():
    def scale_box(box, crop, width, height):
        return scale_boxes(box, (crop, crop), (width, height), "cover").tolist()[0]

    assert scale_box((0, 0, 63, 63), 64, 120, 80) == [0, 0, 119, 79]
    assert scale_box((16, 16, 31, 47), 64, 128, 32) == [32, 8, 63, 23]
    assert scale_box((0, 0, 0, 0), 64, 640, 64) == [0, 0, 9, 0]


def test_localize_files_gives_boxes_in_the_photos_pixels(tmp_path):
    """A stub network with a known 8 x 8 map: the box, found on the input, in each photo's pixels."""
    import torch
    from PIL import Image

    from ornet.inference.localizer import Localizer

    class Stub(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def predict(self, x, labels=None):
            maps = torch.zeros(len(x), 1, 8, 8)
            maps[:, :, 2:4, 4:6] = 1.0  # rows 2-3, columns 4-5 of the 8 x 8 input
            return maps, torch.tensor([[0.0, 2.0, 1.0]]).repeat(len(x), 1)

    meta = {"preprocessing": {"crop": 8, "mean": [0.5] * 3, "std": [0.5] * 3}, "classes": ["a", "b", "c"],
            "localization": {"threshold": 0.5, "box_mode": "all"}}
    loc = Localizer(Stub(), meta)
    (tmp_path / "in").mkdir()
    Image.new("RGB", (16, 24)).save(tmp_path / "in" / "tall.png")   # width 16, height 24: x2, y3
    Image.new("RGB", (4, 4)).save(tmp_path / "in" / "small.png")    # x1/2, y1/2
    (tmp_path / "in" / "zz.jpg").write_bytes(b"not an image")
    results = list(loc.localize_files(tmp_path / "in", batch_size=2))
    assert [r.path.name for r in results] == ["small.png", "tall.png", "zz.jpg"]
    small, tall, bad = results
    # On the input, mode `all`: columns 4-5, rows 2-3, written x1 = 5 + 1, y1 = 3 + 1 (boundingRect).
    # tall: floor(4 * 2) = 8, floor(2 * 3) = 6, ceil(7 * 2) - 1 = 13, ceil(5 * 3) - 1 = 14
    assert tall.boxes.tolist() == [[8, 6, 13, 14]] and (tall.width, tall.height) == (16, 24)
    # small: floor(4 / 2) = 2, floor(2 / 2) = 1, ceil(7 / 2) - 1 = 3, ceil(5 / 2) - 1 = 2
    assert small.boxes.tolist() == [[2, 1, 3, 2]]
    assert tall.class_name == "b" and tall.class_index == 1 and tall.error is None
    assert tall.image_map.shape == (24, 16) and tall.scoremap.shape == (8, 8) and tall.raw_map.shape == (8, 8)
    assert tall.display.shape == (24, 16, 3)
    assert bad.error and bad.boxes is None
    assert [r.boxes.tolist() for r in loc.localize_files([str(tmp_path / "in" / "tall.png")])] == [[[8, 6, 13, 14]]]


def test_expand_inputs_files_folders_globs_dedup_and_errors(tmp_path):
    folder = _images(tmp_path / "in")
    (folder / "notes.txt").write_text("x")
    found = expand_inputs([str(folder), str(folder / "img0.png"), str(folder / "*.png")])
    assert [p.name for p in found] == ["img0.png", "img1.png", "img2.png"]
    assert [p.name for p in expand_inputs([str(folder)], exclude=folder / "sub")] == ["img0.png", "img1.png"]
    from ornet.errors import OrnetError

    with pytest.raises(OrnetError, match="no such file"):
        expand_inputs([str(tmp_path / "nope.jpg")])
    with pytest.raises(OrnetError, match="matches no file"):
        expand_inputs([str(tmp_path / "*.jpeg")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(OrnetError, match="no image"):
        expand_inputs([str(tmp_path / "empty")])


def test_output_names_are_unique():
    assert output_names([Path("a/x.jpg"), Path("b/x.png"), Path("c/X.jpg"), Path("we ird!.jpg")]) == \
        ["x", "x_2", "X_3", "we_ird_"]


def test_localize_folder_writes_one_entry_and_overlay_per_image(model_dir, tmp_path, capsys):
    folder = _images(tmp_path / "in")
    out = tmp_path / "out"
    code = cli(["localize", str(model_dir), str(folder), "--out", str(out), "--save-maps",
                "--batch-size", "2", "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    result = json.loads((out / "boxes.json").read_text())
    assert result["threshold"] == 0.5 and result["threshold_source"] == "model.json"
    assert result["box_mode"] == "largest" and result["input_size"] == [64, 64] and result["map_size"] == [16, 16]
    assert result["errors"] == []
    entries = {Path(e["file"]).name: e for e in result["images"]}
    assert sorted(entries) == ["img0.png", "img1.png", "img2.png"]
    for i, (w, h) in enumerate(SIZES):
        e = entries[f"img{i}.png"]
        assert (e["width"], e["height"]) == (w, h)
        assert e["class"] in ("cat", "dog", "bird") and 0 <= e["probability"] <= 1 and len(e["top5"]) == 3
        assert e["boxes"], "a min-max normalised map always has a pixel above 0.5"
        for x0, y0, x1, y1 in e["boxes"]:
            assert 0 <= x0 <= x1 <= w - 1 and 0 <= y0 <= y1 <= h - 1
        from PIL import Image

        with Image.open(out / e["overlay"]) as im:
            assert im.size == (w, h)
        with Image.open(out / e["map_png"]) as im:
            assert im.size == (w, h) and im.mode == "L"
        assert np.load(out / e["map_npy"]).shape == (16, 16)
    assert len(list((out / "overlays").glob("*.png"))) == 3


def test_overlay_draws_the_box_in_green_at_original_coordinates(model_dir, tmp_path):
    folder = _images(tmp_path / "in")
    out = tmp_path / "out"
    assert cli(["localize", str(model_dir), str(folder / "img0.png"), "--out", str(out), "--quiet",
                "--box-mode", "all", "--threshold", "0.2"]) == 0
    e = json.loads((out / "boxes.json").read_text())["images"][0]
    assert e["threshold"] == 0.2 and e["box_mode"] == "all"
    from PIL import Image

    arr = np.asarray(Image.open(out / e["overlay"]).convert("RGB"))
    x0, y0, x1, y1 = e["boxes"][0]
    assert (arr[y0, x0:x1 + 1] == (0, 255, 0)).all() and (arr[y0:y1 + 1, x1] == (0, 255, 0)).all()


def test_unreadable_image_is_reported_by_name_and_the_rest_processed(model_dir, tmp_path, capsys):
    folder = _images(tmp_path / "in", broken=True)
    out = tmp_path / "out"
    code = cli(["localize", str(model_dir), str(folder), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert "broken.jpg" in err
    result = json.loads((out / "boxes.json").read_text())
    assert len(result["images"]) == 3
    assert [Path(e["file"]).name for e in result["errors"]] == ["broken.jpg"]


def test_run_dir_without_model_is_a_clear_error(tmp_path, capsys):
    folder = _images(tmp_path / "in")
    (tmp_path / "run").mkdir()
    code = cli(["localize", str(tmp_path / "run"), str(folder), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "model.json does not exist" in err
    assert "Traceback" not in err


def test_refuses_non_empty_out_without_force(model_dir, tmp_path, capsys):
    folder = _images(tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert cli(["localize", str(model_dir), str(folder), "--out", str(out), "--quiet"]) == 2
    assert "--force" in capsys.readouterr().err
    assert cli(["localize", str(model_dir), str(folder), "--out", str(out), "--quiet", "--force"]) == 0
    assert (out / "keep.txt").read_text() == "mine" and (out / "boxes.json").is_file()


def test_model_without_threshold_needs_one(tmp_path, capsys):
    model = export_tiny_model(tmp_path / "run", threshold=None)
    folder = _images(tmp_path / "in")
    assert cli(["localize", str(model), str(folder), "--out", str(tmp_path / "o1"), "--quiet"]) == 2
    assert "--threshold" in capsys.readouterr().err
    assert cli(["localize", str(model / "model.safetensors"), str(folder), "--out", str(tmp_path / "o2"),
                "--quiet", "--threshold", "0.4"]) == 0


def test_bad_options_exit_2(model_dir, tmp_path):
    folder = _images(tmp_path / "in")
    assert cli(["localize", str(model_dir), str(folder), "--threshold", "1.5"]) == 2
    assert cli(["localize", str(model_dir), str(folder), "--batch-size", "0"]) == 2


class _Stream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def test_progress_plain_lines_every_tenth_when_not_a_tty():
    s = _Stream(False)
    with Progress(100, "job", stream=s) as p:
        for _ in range(100):
            p.update()
    lines = s.getvalue().splitlines()
    assert len(lines) == 11 and lines[0] == "job: 10/100 images (10%)" and lines[-1].startswith("job: 100 images in")


def test_progress_tty_rewrites_one_line_and_quiet_prints_nothing():
    s = _Stream(True)
    with Progress(5, "job", stream=s, min_interval=0) as p:
        for _ in range(5):
            p.update()
    text = s.getvalue()
    assert text.count("\n") == 1 and text.count("\r") >= 5
    q = _Stream(False)
    with Progress(5, "job", stream=q, quiet=True) as p:
        p.update(5)
        p.write("hello")
    assert q.getvalue() == ""
