"""wsolevaluation files, score-map loading, PxAP and the multi-process evaluator (torch-free core)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ornet.errors import DataError
from ornet.localization.boxes import cam_thresholds
from ornet.localization.pxap import pxap_edges, pxap_from_histograms, score_histograms
from ornet.localization.wsoleval import evaluate_scoremaps
from ornet.localization.wsoleval_io import _read_npy, find_scoremap, load_scoremap, read_metadata


def write_meta(root: Path, ids, sizes=None, loc=None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "image_ids.txt").write_text("".join(f"{i}\n" for i in ids))
    (root / "class_labels.txt").write_text("".join(f"{i},0\n" for i in ids))
    if sizes is not None:
        (root / "image_sizes.txt").write_text("".join(f"{i},{w},{h}\n" for i, (w, h) in sizes.items()))
    if loc is not None:
        (root / "localization.txt").write_text("".join(line + "\n" for line in loc))
    return root


# ---- PxAP ------------------------------------------------------------------------------------

def reference_pxap(maps, masks, ignores, interval):
    """From the definition: numpy.histogram per map, cumulative counts, step-wise AUC."""
    edges = np.append(np.arange(0, 1, interval), [1.0, 2.0, 3.0])
    pos = np.zeros(len(edges) - 1)
    neg = np.zeros(len(edges) - 1)
    for m, fg, ign in zip(maps, masks, ignores):
        pos += np.histogram(m[fg], bins=edges)[0]
        neg += np.histogram(m[~fg & ~ign], bins=edges)[0]
    tp, fp = np.cumsum(pos[::-1]), np.cumsum(neg[::-1])
    precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
    recall = tp / pos.sum()
    return 100 * sum(precision[k] * (recall[k] - recall[k - 1]) for k in range(1, len(tp)) if tp[k] + fp[k] > 0)


def test_pxap_matches_histogram_reference_on_random_maps():
    rng = np.random.default_rng(3)
    for interval in (0.01, 0.05, 0.3):
        maps = [rng.random((20, 30)) ** rng.uniform(0.5, 3) for _ in range(5)]
        maps[0][0, 0], maps[1][3, 3] = 1.0, 0.0  # bin edges included
        masks = [rng.random((20, 30)) > 0.7 for _ in maps]
        ignores = [rng.random((20, 30)) > 0.8 for _ in maps]
        edges = pxap_edges(cam_thresholds(interval))
        pos = neg = 0
        for m, fg, ign in zip(maps, masks, ignores):
            p, n = score_histograms(m, fg, ign, edges)
            assert np.array_equal(p, np.histogram(m[fg], bins=edges)[0])
            pos, neg = pos + p, neg + n
        assert pxap_from_histograms(pos, neg) == pytest.approx(reference_pxap(maps, masks, ignores, interval), rel=1e-12)


@pytest.mark.parametrize("value", [0.0, 0.3, 0.5, 1.0])
def test_constant_map_gives_foreground_fraction_and_perfect_map_100(value):
    fg = np.zeros((50, 40), dtype=bool)
    fg[5:25, 10:30] = True
    edges = pxap_edges(cam_thresholds(0.01))
    pos, neg = score_histograms(np.full(fg.shape, value), fg, None, edges)
    assert pxap_from_histograms(pos, neg) == pytest.approx(100 * fg.mean(), rel=1e-12)
    ignore = np.zeros_like(fg)
    ignore[30:, :] = True
    pos, neg = score_histograms(fg.astype(float), fg, ignore, edges)
    assert pxap_from_histograms(pos, neg) == 100.0


def test_pxap_without_foreground_raises():
    edges = pxap_edges(cam_thresholds(0.1))
    pos, neg = score_histograms(np.zeros((4, 4)), np.zeros((4, 4), bool), None, edges)
    with pytest.raises(ValueError, match="foreground"):
        pxap_from_histograms(pos, neg)


# ---- metadata --------------------------------------------------------------------------------

def test_read_metadata_boxes_and_masks(tmp_path):
    meta = read_metadata(write_meta(tmp_path / "b", ["a/1.jpg", "a/2.jpg"], {"a/1.jpg": (448, 448), "a/2.jpg": (224, 112)},
                                    ["a/1.jpg,20,20,219,219", "a/2.jpg,0,0,49,24", "a/1.jpg,300,300,399,399"]))
    assert meta.boxes["a/1.jpg"] == [(20, 20, 219, 219), (300, 300, 399, 399)]
    assert meta.resized_boxes()["a/2.jpg"].tolist() == [[0, 0, 49, 48]]
    meta = read_metadata(write_meta(tmp_path / "m", ["x.jpg", "y.jpg"], None,
                                    ["x.jpg,x_m1.png,x_ign.png", "x.jpg,x_m2.png,", "y.jpg,y_m.png,"]), masks=True)
    assert meta.mask_paths == {"x.jpg": ["x_m1.png", "x_m2.png"], "y.jpg": ["y_m.png"]}
    assert meta.ignore_paths == {"x.jpg": "x_ign.png", "y.jpg": None}


@pytest.mark.parametrize("ids, sizes, loc, masks, message", [
    (["a"], {"a": (10, 10)}, ["a,0,0,5"], False, "localization.txt:1: expected 5 or 3 fields"),
    (["a"], {"a": (10, 10)}, ["b,0,0,5,5"], False, "localization.txt:1: unknown image id 'b'"),
    (["a"], {"a": (10, 10)}, ["a,0,0,10,5"], False, "outside its 10x10 image"),
    (["a"], {"a": (10, 10)}, ["a,5,0,4,5"], False, "inverted"),
    (["a"], {"a": (10, 10)}, ["a,0,0,x,5"], False, "x1 'x' is not an integer"),
    (["a", "b"], {"a": (10, 10), "b": (5, 5)}, ["a,0,0,1,1"], False, "have no box, first 'b'"),
    (["a", "b"], {"a": (10, 10)}, ["a,0,0,1,1"], False, "image_sizes.txt: 1 image(s) have no size"),
    (["a"], {"a": (0, 10)}, ["a,0,0,1,1"], False, "image_sizes.txt:1: image size must be positive"),
    (["a", "a"], {"a": (10, 10)}, ["a,0,0,1,1"], False, "image_ids.txt:2: image id 'a' repeats line 1"),
    (["../a"], {"../a": (10, 10)}, ["../a,0,0,1,1"], False, "image_ids.txt:1: image id '../a' escapes"),
    (["a"], {"a": (10, 10)}, ["a,m.png,"], False, "but no --mask-root given"),
    (["a"], None, ["a,0,0,1,1"], True, "localization.txt:1: expected 3 fields, got 5"),
    (["a"], None, ["a,m.png,i.png", "a,m2.png,i2.png"], True, "localization.txt:2: image 'a' has a second ignore"),
    (["a"], None, ["a,/etc/m.png,"], True, "mask path '/etc/m.png' must be a relative path"),
])
def test_read_metadata_errors_name_file_and_line(tmp_path, ids, sizes, loc, masks, message):
    root = write_meta(tmp_path / "meta", ids, sizes, loc)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_metadata(root, masks=masks)


def test_missing_metadata_files(tmp_path):
    with pytest.raises(DataError, match="metadata folder not found"):
        read_metadata(tmp_path / "nope")
    root = write_meta(tmp_path / "m", ["a"], None, ["a,0,0,1,1"])
    with pytest.raises(DataError, match="image_sizes.txt: missing file"):
        read_metadata(root)


# ---- score maps ------------------------------------------------------------------------------

def test_fast_npy_reader_equals_numpy_load(tmp_path):
    rng = np.random.default_rng(0)
    arrays = [rng.random((224, 224)), rng.random((7, 5)).astype(np.float32), rng.random((3, 4)) > 0.5,
              rng.integers(0, 2, (4, 4)).astype(np.uint8), rng.random((2, 3, 4)), np.arange(5),
              np.asfortranarray(rng.random((5, 6))), rng.random((6, 6)).astype(">f8")]
    for k, a in enumerate(arrays):
        path = tmp_path / f"{k}.npy"
        np.save(path, a)
        b = _read_npy(path)
        assert b.dtype == a.dtype and b.shape == a.shape and np.array_equal(a, b)


@pytest.mark.parametrize("array, message", [
    (np.full((224, 224), np.nan), "contains NaN or infinite values"),
    (np.full((224, 224), np.inf), "contains NaN or infinite values"),
    (np.full((224, 224), 1.5), r"must lie in \[0, 1\], got min 1.5, max 1.5"),
    (-np.ones((224, 224)), r"must lie in \[0, 1\]"),
    (np.zeros((1, 224, 224)), r"must be 2-D, got shape \(1, 224, 224\)"),
    (np.zeros((100, 224)), "must be 224x224"),
    (np.array(["a"]), "must be a real-valued array"),
    (np.array([{"a": 1}], dtype=object), "is not a readable .npy array"),
])
def test_load_scoremap_rejects_bad_maps(tmp_path, array, message):
    path = tmp_path / "m.npy"
    np.save(path, array, allow_pickle=True)
    with pytest.raises(DataError, match=message):
        load_scoremap(path, "img.jpg")


def test_load_scoremap_garbage_and_valid(tmp_path):
    (tmp_path / "g.npy").write_bytes(b"not an array")
    with pytest.raises(DataError, match="g.npy: score map of 'x' is not a readable .npy array"):
        load_scoremap(tmp_path / "g.npy", "x")
    np.save(tmp_path / "ok.npy", np.full((224, 224), 0.5, dtype=np.float32))
    m = load_scoremap(tmp_path / "ok.npy", "x")
    assert m.dtype == np.float64 and m.shape == (224, 224)


def test_find_scoremap_accepts_both_names(tmp_path):
    (tmp_path / "a").mkdir()
    np.save(tmp_path / "a" / "b.jpg.npy", np.zeros((2, 2)))
    np.save(tmp_path / "a" / "c.npy", np.zeros((2, 2)))
    assert find_scoremap(tmp_path, "a/b.jpg").name == "b.jpg.npy"
    assert find_scoremap(tmp_path, "a/c.jpg").name == "c.npy"
    with pytest.raises(DataError, match="no score map for image id 'a/d.jpg'"):
        find_scoremap(tmp_path, "a/d.jpg")


def test_workers_and_chunks_give_identical_numbers(tmp_path):
    rng = np.random.default_rng(2)
    ids = [f"c{k // 10}/img{k}.jpg" for k in range(37)]
    sizes = {i: (int(rng.integers(100, 500)), int(rng.integers(100, 500))) for i in ids}
    loc = []
    for i in ids:
        w, h = sizes[i]
        for _ in range(rng.integers(1, 3)):
            x0, y0 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
            loc.append(f"{i},{x0},{y0},{int(rng.integers(x0, w))},{int(rng.integers(y0, h))}")
        yy, xx = np.mgrid[0:224, 0:224]
        m = np.exp(-((yy - rng.uniform(0, 224)) ** 2 + (xx - rng.uniform(0, 224)) ** 2) / rng.uniform(200, 3000))
        m += 0.5 * np.exp(-((yy - rng.uniform(0, 224)) ** 2 + (xx - rng.uniform(0, 224)) ** 2) / 300)
        (tmp_path / "maps" / i).parent.mkdir(parents=True, exist_ok=True)
        np.save(tmp_path / "maps" / f"{i}.npy", (m - m.min()) / (m.max() - m.min()))
    meta = write_meta(tmp_path / "meta", ids, sizes, loc)
    for multi in (False, True):
        one = evaluate_scoremaps(meta, tmp_path / "maps", multi_contour=multi, workers=1)
        assert evaluate_scoremaps(meta, tmp_path / "maps", multi_contour=multi, workers=2) == one
        assert evaluate_scoremaps(meta, tmp_path / "maps", multi_contour=multi, workers=2, chunk_size=1) == one
        assert one["num_images"] == 37 and set(one["max_box_acc"]) == {"30", "50", "70"}
