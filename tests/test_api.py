"""The public API (docs/api.md), through its public names only: `import ornet` and `ornet.X`.

A tiny run trained with `ornet.train` (conftest `api_run`) is loaded, predicted on, evaluated
and compared with what the commands write for the same model (they are shells over this API).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ornet


def _test_images(run: Path, n: int = 6) -> list[Path]:
    return sorted((run.parent / "data" / "images").rglob("test_*.jpg"))[:n]


# --- the package -------------------------------------------------------------------------------

def test_import_and_torch_free_names_do_not_load_torch():
    code = ("import sys, ornet; ornet.load_config; ornet.read_dataset; ornet.evaluate_scoremaps; ornet.summarize; "
            "ornet.OrnetError; cfg = ornet.load_config('demo', {'data.root': 'x'}); "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_public_names_resolve_are_listed_and_documented():
    public = [n for n in ornet.__all__ if n != "__version__"]
    assert len(public) == len(set(public)) >= 20
    for name in public:
        obj = getattr(ornet, name)
        assert obj.__doc__ and obj.__doc__.strip(), name
        assert name in dir(ornet)
    assert ornet.failure_panel.__name__ == "failures"  # the panel of viz.figures, under a clearer name
    with pytest.raises(AttributeError, match="no attribute 'Localiser'"):
        ornet.Localiser  # noqa: B018
    assert issubclass(ornet.DataError, ornet.OrnetError) and issubclass(ornet.ConfigError, ornet.OrnetError)


# --- configs and data --------------------------------------------------------------------------

def test_load_config_dict_and_list_overrides_agree_and_bad_keys_are_named(tmp_path):
    a = ornet.load_config("demo", {"data.root": tmp_path, "coarse.epochs": 3, "stages": ["cam"],
                                   "trainer.limit_train_batches": 0.5})
    b = ornet.load_config("demo", ["data.root=" + str(tmp_path), "coarse.epochs=3", "stages=[cam]",
                                   "--trainer.limit_train_batches=0.5"])
    assert isinstance(a, ornet.RunConfig) and a == b
    assert (a.data.root, a.coarse.epochs, a.stages, a.model.backbone) == (str(tmp_path), 3, ["cam"], "efficientnet_lite0")
    assert ornet.load_config().stages == ["evaluator", "coarse", "refine"]  # the defaults
    with pytest.raises(ornet.ConfigError, match="'data.rooot' .*did you mean data.root"):
        ornet.load_config("demo", {"data.rooot": "x"})
    with pytest.raises(ornet.ConfigError, match="divisible by 32"):
        ornet.load_config("demo", {"data.crop": 48})
    with pytest.raises(ornet.OrnetError, match="unknown preset 'nosuch'"):
        ornet.load_config("nosuch")


def test_make_synthetic_and_read_dataset(tmp_path):
    summary = ornet.make_synthetic(tmp_path / "synth", classes=3, train=9, test=6, size=48, workers=1)
    assert (summary.train, summary.test, summary.classes) == (9, 6, 3)
    index = ornet.read_dataset("cub", tmp_path / "synth", val_per_class=1)
    assert index.num_classes == 3 and not index.problems
    assert {k: len(v) for k, v in index.splits.items()} == {"train": 6, "val": 3, "test": 6}
    r = index.split("test")[0]
    assert r.size == (48, 48) and len(r.boxes) == 1 and r.mask_path.is_file()
    x0, y0, x1, y1 = r.boxes[0]
    assert 0 <= x0 < x1 <= 48 and 0 <= y0 < y1 <= 48
    with pytest.raises(ornet.OrnetError, match="unknown dataset field 'val_per_klass'"):
        ornet.read_dataset("cub", tmp_path / "synth", val_per_klass=1)
    r.mask_path.unlink()
    assert "is missing" in str(ornet.read_dataset("cub", tmp_path / "synth").problems[0])
    with pytest.raises(ornet.DataError, match="is missing"):
        ornet.read_dataset("cub", tmp_path / "synth", strict=True)


# --- a trained model ---------------------------------------------------------------------------

def test_train_wrote_a_run_and_evaluate_reproduces_its_numbers(api_run, tmp_path):
    saved = json.loads((api_run / "metrics.json").read_text())
    keys = ("gt_known_loc", "top1_loc", "top1_cls", "max_box_acc_v2", "pxap", "threshold", "threshold_index")
    result = ornet.evaluate(api_run, quiet=True)  # the run's data, test split, threshold chosen on val
    assert isinstance(result, ornet.EvalResult)
    assert {k: result.metrics[k] for k in keys} == {k: saved[k] for k in keys}
    assert len(result.rows) == result.metrics["num_images"] == 12
    # the same through a Localizer, and written to a folder like `ornet evaluate --out`
    loc = ornet.load_model(api_run, device="cpu")
    written = ornet.evaluate(loc, {"root": api_run.parent / "data"}, out=tmp_path / "eval", quiet=True)
    assert {k: written.metrics[k] for k in keys} == {k: saved[k] for k in keys}
    assert {p.name for p in (tmp_path / "eval").iterdir()} >= {"metrics.json", "predictions.csv", "curves.json"}
    with pytest.raises(ornet.OrnetError, match="not empty"):
        ornet.evaluate(api_run, out=tmp_path / "eval")
    test_chosen = ornet.evaluate(api_run, split="val", threshold_split="test", quiet=True).metrics
    assert test_chosen["split"] == "val" and test_chosen["threshold_split"] == "test"
    multi = ornet.evaluate(api_run, eval={"box_mode": "multi"}, quiet=True).metrics  # like --eval.box_mode multi
    assert multi["box_mode"] == "multi" and multi["max_box_acc_v2"] == saved["max_box_acc_v2"]
    release = ornet.evaluate(api_run, eval={"protocol": "release"}, quiet=True).metrics
    assert release["protocol"] == "release" and release["threshold_split"] == "test"
    with pytest.raises(ornet.OrnetError, match="unknown eval key 'box_mod'"):
        ornet.evaluate(api_run, eval={"box_mod": "multi"})


def test_the_protocol_that_chose_the_threshold_reuses_it_without_a_val_split(api_run):
    """A wsolevaluation run evaluated on data without val: model.json's threshold, said as `model`."""
    stored = json.loads((api_run / "model.json").read_text())["localization"]
    assert stored["protocol"] == "wsolevaluation" and stored["threshold_index"] is not None
    m = ornet.evaluate(api_run, data={"val_per_class": 0}, quiet=True).metrics
    assert (m["protocol"], m["threshold_split"]) == ("wsolevaluation", "model")
    assert (m["threshold_index"], m["threshold"]) == (stored["threshold_index"], stored["threshold"])


def test_predict_gives_the_boxes_and_classes_of_ornet_localize(api_run, tmp_path):
    from ornet.cli import main

    paths = _test_images(api_run)  # the command runs in this process: a subprocess spends seconds on imports
    assert main(["localize", str(api_run), *map(str, paths), "--out", str(tmp_path / "loc"), "--quiet",
                 "--device", "cpu", "--box-mode", "multi"]) == 0
    cli = json.loads((tmp_path / "loc" / "boxes.json").read_text())["images"]
    loc = ornet.load_model(api_run, device="cpu")
    pred = loc.predict(paths, box_mode="multi")
    assert isinstance(pred, ornet.Prediction) and len(pred) == len(paths)
    assert [b.tolist() for b in pred.boxes] == [e["boxes"] for e in cli]
    assert pred.class_names == [e["class"] for e in cli]
    assert np.allclose(pred.probs.max(dim=1).values.numpy(), [e["probability"] for e in cli], atol=1e-6)
    assert pred.maps.shape[:2] == (6, 1) and pred.scoremaps.shape == (6, loc.crop, loc.crop)
    assert [m.shape for m in pred.image_maps] == [(64, 64)] * 6 and pred.sizes == [(64, 64)] * 6


def test_paths_pil_images_and_tensors_give_the_same_prediction(api_run, tmp_path):
    loc = ornet.load_model(api_run, device="cpu")
    paths = _test_images(api_run, 3)
    big = tmp_path / "big.png"  # another size: boxes are scaled to the original pixels
    Image.open(paths[0]).resize((128, 96)).save(big)
    paths.append(big)
    images = [Image.open(p) for p in paths]
    by_path, by_pil = loc.predict(paths), loc.predict(images)
    batch = torch.stack([loc.transform(im) for im in images])
    by_tensor = loc.predict(batch, sizes=[(im.height, im.width) for im in images])
    for other in (by_pil, by_tensor):
        assert torch.equal(other.maps, by_path.maps)
        assert [b.tolist() for b in other.boxes] == [b.tolist() for b in by_path.boxes]
    assert by_path.sizes[-1] == (96, 128) and by_path.image_maps[-1].shape == (96, 128)
    assert all(b[:, 2].max() <= 127 and b[:, 3].max() <= 95 for b in by_path.boxes[-1:] if len(b))
    in_input = loc.predict(batch)  # a tensor without sizes: boxes in the tensor's own pixels
    assert in_input.sizes == [(loc.crop, loc.crop)] * 4
    assert all((b >= 0).all() and (b < loc.crop).all() for b in in_input.boxes)
    one = loc.predict(batch[0])  # one image, 3 x H x W (batch size 1: float sums may differ in the last bit)
    assert one.maps.shape == (1, *by_path.maps.shape[1:]) and torch.allclose(one.maps, by_path.maps[:1], atol=1e-5)


def test_predict_in_a_users_loop_no_grad_inference_mode_and_autocast(api_run):
    loc = ornet.load_model(api_run, device="cpu")
    batch = torch.stack([loc.transform(p) for p in _test_images(api_run, 4)])
    plain = loc.predict(batch)
    assert not plain.maps.requires_grad and plain.maps.dtype == torch.float32
    with torch.no_grad():
        assert torch.equal(loc.predict(batch).maps, plain.maps)
    with torch.inference_mode():
        assert torch.equal(loc.predict(batch).maps, plain.maps)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = loc.predict(batch)
    assert mixed.maps.dtype == torch.float32 and mixed.scoremaps.shape == plain.scoremaps.shape
    diff = (mixed.maps - plain.maps).abs()  # bfloat16 convolutions: close on average, a few pixels further
    assert diff.mean() < 0.02 and diff.max() < 0.15, (diff.mean(), diff.max())


def test_threshold_and_box_mode_per_call_and_on_the_localizer(api_run):
    loc = ornet.load_model(api_run, device="cpu", threshold=0.5)
    assert loc.threshold == 0.5
    batch = torch.stack([loc.transform(p) for p in _test_images(api_run, 4)])
    largest = loc.predict(batch, box_mode="largest")
    multi = loc.predict(batch, box_mode="multi")
    everything = loc.predict(batch, box_mode="all")
    for lg, mu, al in zip(largest.boxes, multi.boxes, everything.boxes):
        assert len(lg) == 1 and len(mu) >= 1 and len(al) == 1
        assert lg.tolist()[0] in mu.tolist()  # the largest region is one of the regions
        # `all`: one box around every surviving pixel, i.e. around every region's box
        assert al.tolist()[0] == [*mu[:, :2].min(0).tolist(), *mu[:, 2:].max(0).tolist()]
    assert multi.threshold == 0.5 and multi.box_mode == "multi"
    loc.threshold = 0.8
    assert loc.predict(batch).threshold == 0.8
    with pytest.raises(ornet.OrnetError, match="threshold must be in"):
        loc.predict(batch, threshold=1.5)
    with pytest.raises(ornet.OrnetError, match="unknown box mode 'huge'"):
        loc.predict(batch, box_mode="huge")


def test_a_release_protocol_model_boxes_the_raw_cells_above_the_threshold(api_run):
    """model.json protocol release, box mode all: one box around the raw map's cells above the
    threshold, corners at cell index x stride (the ORNet release's rule); otherwise evaluation's."""
    loc = ornet.load_model(api_run, device="cpu")
    assert loc.protocol == "wsolevaluation" and loc.box_rule("all") == "evaluation"
    loc.protocol = "release"  # as `ornet import-release` or a run trained with eval.protocol release says
    assert loc.box_rule("all") == "release" and loc.box_rule("largest") == "evaluation"
    batch = torch.stack([loc.transform(p) for p in _test_images(api_run, 4)])
    t = 0.5
    pred = loc.predict(batch, threshold=t, box_mode="all")
    for raw, boxes in zip(pred.maps[:, 0].numpy(), pred.boxes):
        ys, xs = np.nonzero(raw > t)
        stride_y, stride_x = loc.crop / raw.shape[0], loc.crop / raw.shape[1]
        expected = [] if len(xs) == 0 else [[round(xs.min() * stride_x), round(ys.min() * stride_y),
                                             round(xs.max() * stride_x), round(ys.max() * stride_y)]]
        assert boxes.tolist() == expected
    assert any(len(b) for b in pred.boxes)
    assert not any(len(b) for b in loc.predict(batch, threshold=1.0, box_mode="all").boxes)  # nothing above


def test_load_model_from_a_stage_checkpoint(api_run):
    exported = ornet.load_model(api_run, device="cpu")
    ckpt = ornet.load_model(api_run / "checkpoints" / "refine.ckpt", device="cpu")
    assert ckpt.threshold == exported.threshold and ckpt.classes == exported.classes  # metrics.json's
    paths = _test_images(api_run, 4)
    a, b = exported.predict(paths), ckpt.predict(paths)
    assert torch.equal(a.maps, b.maps) and torch.equal(a.logits, b.logits)
    evaluated = ornet.evaluate(ckpt, quiet=True).metrics  # the run's data, found beside the checkpoint
    saved = json.loads((api_run / "metrics.json").read_text())
    assert evaluated["gt_known_loc"] == saved["gt_known_loc"] and evaluated["model"].endswith("refine.ckpt")
    # A finished run keeps no -last file (checkpoint hygiene): stand one in for an interrupted stage's.
    last_file = api_run / "checkpoints" / "refine-last.ckpt"
    shutil.copyfile(api_run / "checkpoints" / "refine.ckpt", last_file)
    try:
        last = ornet.load_model(last_file, device="cpu")
    finally:
        last_file.unlink()
    assert last.threshold is None  # not the evaluated model: no threshold is assumed
    with pytest.raises(ornet.OrnetError, match="no chosen threshold"):
        last.predict(paths)
    assert len(last.predict(paths, threshold=0.5)) == 4
    with pytest.raises(ornet.OrnetError, match="stage 'evaluator' makes no maps"):
        ornet.load_model(api_run / "checkpoints" / "evaluator.ckpt", device="cpu")
    with pytest.raises(ornet.OrnetError, match="nosuch"):
        ornet.load_model(api_run / "nosuch", device="cpu")


# --- metrics on your own maps ------------------------------------------------------------------

def _wsol_metadata(folder: Path, boxes: dict[str, tuple[int, int, int, int]], size=(224, 224)) -> Path:
    folder.mkdir(parents=True)
    (folder / "image_ids.txt").write_text("".join(f"{i}\n" for i in boxes))
    (folder / "image_sizes.txt").write_text("".join(f"{i},{size[0]},{size[1]}\n" for i in boxes))
    (folder / "localization.txt").write_text("".join(f"{i},{','.join(map(str, b))}\n" for i, b in boxes.items()))
    return folder


def test_evaluate_scoremaps_and_the_streaming_sweep_agree_on_hand_made_maps(tmp_path):
    """Four images, each map a filled rectangle: the right box on two, a box of IoU 0.25 on two."""
    gt = {"a.jpg": (20, 20, 119, 119), "b.jpg": (50, 60, 149, 199), "c.jpg": (0, 0, 99, 99),
          "d.jpg": (100, 100, 199, 199)}
    drawn = {"a.jpg": gt["a.jpg"], "b.jpg": gt["b.jpg"], "c.jpg": (0, 0, 49, 49), "d.jpg": (100, 100, 149, 149)}
    meta = _wsol_metadata(tmp_path / "meta", gt)
    sweep = ornet.BoxAccuracySweep(iou_thresholds=(30, 50, 70))
    for image_id, (x0, y0, x1, y1) in drawn.items():
        m = np.zeros((224, 224), np.float32)
        m[y0:y1 + 1, x0:x1 + 1] = 1.0
        np.save(tmp_path / f"{image_id}.npy", m)
        sweep.update(torch.from_numpy(m)[None, None], [torch.tensor([gt[image_id]], dtype=torch.float64)])
    files = ornet.evaluate_scoremaps(meta, tmp_path, workers=1)
    assert files["max_box_acc"] == {"30": 50.0, "50": 50.0, "70": 50.0}  # IoU 0.25 misses every level
    streamed = ornet.summarize(sweep.compute())
    assert streamed["max_box_acc"] == files["max_box_acc"]["50"] == streamed["gt_known_loc"]
    assert ornet.choose_threshold(sweep.compute()) == 0
    pxap = ornet.PxAP()
    mask = torch.zeros(1, 1, 224, 224)
    mask[..., 20:120, 20:120] = 1
    pxap.update(mask.clone(), mask)  # the mask as its own map: perfect precision at every recall
    assert float(pxap.compute()) == pytest.approx(100.0)


def test_boxes_from_map_matches_the_hand_drawn_regions():
    """wsolevaluation's boxes: x0, y0 of the region and x0 + width, y0 + height (one past its
    last pixel), clipped to the image; the threshold is a fraction of the map's maximum."""
    m = np.zeros((32, 48), np.float32)
    m[4:10, 6:20] = 1.0  # columns 6..19, rows 4..9
    m[20:30, 30:44] = 0.6  # columns 30..43, rows 20..29: the larger region
    m[0:3, 45:48] = 0.6  # at the right border: x0 + width = 48 is clipped to 47
    assert ornet.boxes_from_map(m, 0.5, "largest").tolist() == [[30, 20, 44, 30]]
    assert sorted(ornet.boxes_from_map(m, 0.5, "multi").tolist()) == [[6, 4, 20, 10], [30, 20, 44, 30],
                                                                      [45, 0, 47, 3]]
    assert ornet.boxes_from_map(m, 0.5, "all").tolist() == [[6, 0, 47, 30]]
    assert ornet.boxes_from_map(m, 0.7, "all").tolist() == [[6, 4, 20, 10]]
    assert ornet.boxes_from_map(m * 0.5, 0.7, "all").tolist() == [[6, 4, 20, 10]]  # relative to the maximum


# --- figures -------------------------------------------------------------------------------------

JET_AT_0, JET_AT_1 = (0, 0, 128), (128, 0, 0)  # OpenCV's COLORMAP_JET at its ends: dark blue, dark red
C0 = (31, 119, 180)  # matplotlib's first line colour


def _blend(pixels: np.ndarray, colour, alpha: float = 0.5) -> np.ndarray:
    """What `ornet.overlay` documents: (1 - alpha) * image + alpha * colour(map), rounded."""
    return ((1 - alpha) * pixels.astype(np.float64) + alpha * np.asarray(colour, np.float64) + 0.5).astype(np.uint8)


def _near(pixel, colour, tolerance: int = 3) -> bool:
    return bool(np.abs(pixel.astype(int) - np.asarray(colour)).max() <= tolerance)


def _plot_frame(fig: np.ndarray) -> tuple[int, int, int, int]:
    """Left, right, top, bottom pixel of a single-axes plot: its black spines."""
    dark = fig.max(axis=2) < 60
    cols, rows = dark.sum(axis=0), dark.sum(axis=1)
    left, right = np.flatnonzero(cols > 0.9 * cols.max())[[0, -1]]
    top, bottom = np.flatnonzero(rows > 0.9 * rows.max())[[0, -1]]
    return int(left), int(right), int(top), int(bottom)


def test_figure_functions_on_arrays_and_a_runs_snapshots(api_run):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)
    amap = np.zeros((10, 15), np.float32)
    amap[2:5, 3:8] = 1.0  # x4 in the image: rows 8..19, columns 12..31 (bilinear: 1 exactly in 10..17 x 14..29)
    plain = ornet.overlay(image, amap)
    assert plain.shape == image.shape and plain.dtype == np.uint8
    assert np.array_equal(plain[10:18, 14:30], _blend(image[10:18, 14:30], JET_AT_1))  # the map's 1: red
    assert np.array_equal(plain[24:], _blend(image[24:], JET_AT_0))  # the map's 0 (rows 24.. only see it): blue
    assert np.array_equal(ornet.overlay(image, amap, alpha=0.0), image)  # alpha 0 gives the image back
    assert np.array_equal(ornet.overlay(image, None), image)
    # boxes: edges on the box's own pixels, 2 pixels inwards; GT blue, prediction green drawn over it
    panel = ornet.overlay(image, amap, pred_boxes=[[5, 5, 30, 20]], gt_boxes=[[4, 4, 31, 22]], title="x")
    band = panel.shape[0] - image.shape[0]
    assert band > 0 and panel.shape[1:] == image.shape[1:] and (panel[:band] == 0).all(axis=2).mean() > 0.5  # black
    body = panel[band:]
    green, blue = (0, 255, 0), (0, 0, 255)
    for edge in (body[5:7, 5:31], body[19:21, 5:31], body[5:21, 5:7], body[5:21, 29:31]):
        assert (edge == green).all()
    for edge in (body[4, 4:32], body[21:23, 4:32], body[4:23, 4], body[4:23, 31]):
        assert (edge == blue).all()
    outside = np.ones(image.shape[:2], bool)
    outside[4:23, 4:32] = False
    outside[7:19, 7:29] = True  # inside both boxes, past their edges
    assert np.array_equal(body[outside], plain[outside])
    # failures: lowest IoU first, each cell a caption band over the overlay (fitted: 60 px is the image's size)
    a, b = np.full((40, 60, 3), (200, 40, 40), np.uint8), np.full((40, 60, 3), (40, 200, 40), np.uint8)
    zero, none = np.zeros((10, 15), np.float32), np.zeros((0, 4))
    panel = ornet.failure_panel([a, b], [zero, zero], [none, none], [none, none], [0.2, 0.1], tile_size=60)
    pad, cell_h = 4, (panel.shape[0] - 8)
    assert panel.shape == (cell_h + 2 * pad, 2 * 60 + 3 * pad, 3) and cell_h > 40
    cells = [panel[pad + cell_h - 40:pad + cell_h, x:x + 60] for x in (pad, 2 * pad + 60)]
    assert np.array_equal(cells[0], _blend(b, JET_AT_0)) and np.array_equal(cells[1], _blend(a, JET_AT_0))
    one = ornet.failure_panel([a, b], [zero, zero], [none, none], [none, none], [0.2, 0.1], n=1, tile_size=60)
    assert one.shape == (cell_h + 2 * pad, 60 + 2 * pad, 3) and np.array_equal(one[pad + cell_h - 40:-pad, pad:-pad],
                                                                                  _blend(b, JET_AT_0))
    # evolution grid: a header band, then per image: the image, then its map at each epoch
    maps = [("start", np.zeros((2, 10, 15), np.uint8)), ("epoch 1", np.full((2, 10, 15), 255, np.uint8))]
    strip = ornet.evolution_grid([a, b], maps, tile_size=60)
    top = strip.shape[0] - 2 * (40 + pad) - pad
    assert strip.shape[1] == 3 * 60 + 4 * pad and top > 0
    for r, img in enumerate((a, b)):
        y = top + pad + r * (40 + pad)
        row = [strip[y:y + 40, pad + c * (60 + pad):pad + c * (60 + pad) + 60] for c in range(3)]
        assert np.array_equal(row[0], img) and np.array_equal(row[1], _blend(img, JET_AT_0))
        assert np.array_equal(row[2], _blend(img, JET_AT_1))
    # threshold curve: the chosen threshold is a dashed black line at its x, the chosen point a marker on the curve
    thresholds, values = np.linspace(0, 1, 11), np.full(11, 20.0)
    values[1] = 90.0  # the curve's maximum (marked with a triangle) elsewhere than the chosen point
    for chosen in (6, 3):
        curve = ornet.threshold_curve(thresholds, {"IoU >= 0.5": values}, chosen)
        left, right, top, bottom = _plot_frame(curve)
        x = left + thresholds[chosen] * (right - left)
        y = round(bottom - values[chosen] / 100 * (bottom - top))
        dark = (curve[top + 2:bottom - 1].max(axis=2) < 60).sum(axis=0)
        lines = [c for c in np.flatnonzero(dark > 0.4 * (bottom - top)) if left + 2 < c < right - 2]
        assert lines and all(abs(c - x) <= 1.5 for c in lines), (lines, x)
        xi = lines[0]  # the marker is centred on the line (anti-aliased: within 3 of the colour)
        assert all(_near(curve[y + dy, xi + dx], C0) for dy, dx in ((-3, -2), (-3, 2), (3, -2), (3, 2)))
        far = round(left + 0.85 * (right - left))  # the same curve, no marker: nothing 3 px above the line
        assert not _near(curve[y - 3, far], C0) and _near(curve[y, far], C0)
    unmarked = ornet.threshold_curve(thresholds, {"IoU >= 0.5": values})  # no choice: no dashed line
    left, right, top, bottom = _plot_frame(unmarked)
    dark = (unmarked[top + 2:bottom - 1, left + 3:right - 2].max(axis=2) < 60).sum(axis=0)
    assert dark.max() < 0.4 * (bottom - top)
    # a run's snapshots: what MapSnapshots wrote, read back as it is
    folder = api_run / "snapshots"
    snap = ornet.load_snapshots(folder)
    with np.load(folder / "images.npz") as z:
        assert np.array_equal(snap.images, z["images"]) and snap.images.dtype == np.uint8
    assert snap.images.shape[0] == 3 and [e for e, _ in snap.epochs] == [0, 1]
    for epoch, m in snap.epochs:
        with np.load(folder / f"epoch_{epoch:03d}.npz") as z:
            assert int(z["epoch"]) == epoch and np.array_equal(m, z["maps"])
        assert m.dtype == np.uint8 and m.shape[0] == 3
    size = snap.images.shape[2]
    strip = ornet.evolution_grid(list(snap.images), [(f"epoch {e}", m) for e, m in snap.epochs], tile_size=size)
    top = strip.shape[0] - 3 * (snap.images.shape[1] + pad) - pad
    assert strip.shape[1] == 3 * size + 4 * pad
    assert np.array_equal(strip[top + pad:top + pad + snap.images.shape[1], pad:pad + size], snap.images[0])


def test_train_continues_a_run_and_refuses_a_used_folder(api_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(api_run, run)
    cfg = ornet.load_config(run / "config.yaml")
    with pytest.raises(ornet.OrnetError, match="not empty; pass --resume"):
        ornet.train(cfg, run, quiet=True)
    with pytest.raises(ornet.OrnetError, match="--resume and --force"):
        ornet.train(cfg, run, resume=True, force=True)
    metrics = ornet.train(None, run, resume=True, quiet=True)  # every stage complete: evaluation only
    saved = json.loads((api_run / "metrics.json").read_text())
    assert metrics["stages_run"] == [] and metrics["gt_known_loc"] == saved["gt_known_loc"]
