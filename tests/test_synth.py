"""`ornet synth`: layout, determinism, boxes vs masks, scale range, second objects, errors, and
the property the benchmark exists for (the part identifies the class, the body does not)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ornet.cli import main
from ornet.config.schema import DataConfig
from ornet.data import synthetic
from ornet.data.readers import read_index
from ornet.data.synthetic import (
    AREA_RANGE,
    AREA_RANGE_TWO,
    SynthConfig,
    class_specs,
    plan,
    render_image,
)

TINY = ["--classes", "3", "--train", "12", "--test", "6", "--size", "64", "--second-object", "0.5"]


def synth(out: Path, *extra: str) -> int:
    return main(["synth", str(out), *TINY, *extra])


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def read(root: Path):
    return read_index(DataConfig(name="cub", root=str(root), val_per_class=0))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "data"
    assert synth(out, "--workers", "1") == 0
    return out


def test_readable_by_cub_reader_with_counts_per_split_and_class(tiny, capsys):
    index = read(tiny)
    assert index.problems == []
    assert index.has_masks and len(index.classes) == 3
    for split, per_class in (("train", 4), ("test", 2)):
        labels = [r.label for r in index.splits[split]]
        assert sorted(labels) == sorted(list(range(3)) * per_class)
    assert (tiny / "synth.json").is_file() and (tiny / "parts.txt").is_file()


def test_totals_split_evenly_over_classes():
    _, jobs = plan(SynthConfig(classes=3, train=13, test=4))
    count = {(j.label, j.train): 0 for j in jobs}
    for j in jobs:
        count[j.label, j.train] += 1
    assert [count[c, True] for c in range(3)] == [5, 4, 4]
    assert [count[c, False] for c in range(3)] == [2, 1, 1]


def test_same_seed_same_bytes_whatever_the_workers(tiny, tmp_path):
    assert synth(tmp_path / "again", "--workers", "2") == 0
    assert files(tiny) == files(tmp_path / "again")
    assert synth(tmp_path / "other", "--seed", "1") == 0
    assert files(tiny)["train_test_split.txt"] == files(tmp_path / "other")["train_test_split.txt"]
    assert files(tiny)["bounding_boxes.txt"] != files(tmp_path / "other")["bounding_boxes.txt"]


def test_boxes_are_the_tight_boxes_of_the_mask_and_inside_the_image(tiny):
    index = read(tiny)
    for r in index.splits["train"] + index.splits["test"]:
        mask = np.asarray(Image.open(r.mask_path)) > 127
        assert set(np.unique(np.asarray(Image.open(r.mask_path)))) <= {0, 255}
        covered = np.zeros_like(mask)
        for x0, y0, x1, y1 in r.boxes:
            assert 0 <= x0 < x1 <= r.size[0] and 0 <= y0 < y1 <= r.size[1]
            xi0, yi0, xi1, yi1 = (int(round(v)) for v in (x0, y0, x1, y1))
            ys, xs = np.nonzero(mask[yi0:yi1, xi0:xi1])
            tight = (xi0 + xs.min(), yi0 + ys.min(), xi0 + xs.max() + 1, yi0 + ys.max() + 1)
            assert np.allclose(tight, (x0, y0, x1, y1), atol=1)
            covered[yi0:yi1, xi0:xi1] = True
        assert not (mask & ~covered).any(), f"{r.image_id}: mask pixels outside every box"


def test_object_area_fraction_within_documented_range():
    spec = class_specs(3, 0)[1]
    for objects, (lo, hi) in ((1, AREA_RANGE), (2, AREA_RANGE_TWO)):
        fractions = []
        for i in range(80):
            r = render_image(spec, 64, np.random.default_rng((7, i)), objects)
            assert len(r.boxes) == objects
            fractions += [w * h / 64 ** 2 for _, _, w, h in r.boxes]
            part_area = sum(w * h for _, _, w, h in r.parts)
            assert part_area < 0.3 * sum(w * h for _, _, w, h in r.boxes)  # the part is small
        assert lo <= min(fractions) and max(fractions) <= hi, (objects, min(fractions), max(fractions))
        assert max(fractions) - min(fractions) > 0.4 * (hi - lo)  # scale really varies


def test_second_object_only_in_test(tiny):
    index = read(tiny)
    assert all(len(r.boxes) == 1 for r in index.splits["train"])
    assert sum(len(r.boxes) == 2 for r in index.splits["test"]) == 3  # round(0.5 * 6)
    assert all(len(r.boxes) <= 2 for r in index.splits["test"])


def test_refuses_non_empty_out_and_force_replaces_only_its_own_output(tiny, tmp_path, capsys):
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    for extra in ((), ("--force",)):
        capsys.readouterr()
        assert synth(other, *extra) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("ornet synth: error:") and "\n" not in err
        assert (other / "notes.txt").read_text() == "keep me"
    out = tmp_path / "data"
    assert synth(out) == 0
    assert synth(out) == 2
    assert "--force" in capsys.readouterr().err
    assert synth(out, "--force", "--seed", "3") == 0
    assert '"seed": 3' in (out / "synth.json").read_text()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_failed_run_leaves_nothing_behind(tmp_path, monkeypatch):
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) > 5:
            raise RuntimeError("killed")
        return real(*args, **kwargs)

    real = synthetic.render_image
    monkeypatch.setattr(synthetic, "render_image", failing)
    with pytest.raises(RuntimeError):
        synthetic.generate(SynthConfig(classes=3, train=12, test=6, size=64), tmp_path / "data", workers=1)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad", [
    ["--classes", "0"], ["--train", "-1"], ["--test", "-4"], ["--train", "2"], ["--size", "16"],
    ["--size", "big"], ["--second-object", "1.5"], ["--body-cue", "-0.1"], ["--body-cue", "2"], ["--seed", "-1"], ["--workers", "0"], ["--colour", "red"],
])
def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys, bad):
    assert main(["synth", str(tmp_path / "out"), "--classes", "3", "--train", "6", "--test", "3", *bad]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ornet synth: error:") and "\n" not in err
    assert not (tmp_path / "out").exists()


def _colour_hist(pixels: np.ndarray) -> np.ndarray:
    h, _ = np.histogramdd(pixels // 64, bins=4, range=[(0, 4)] * 3)
    return h.ravel() / max(len(pixels), 1)


def _part_and_body(k: int, n: int, size: int, body_cue: float = 0.0):
    """Colour histograms of the part's pixels, the body's pixels (lists), and the labels."""
    specs = class_specs(k, 0)
    part, body, labels = [], [], []
    for c, spec in enumerate(specs):
        for i in range(n):
            r = render_image(spec, size, np.random.default_rng((11, c, i)), body_cue=body_cue)
            m = r.mask > 0
            near_part = np.zeros_like(m)
            x, y, w, h = r.parts[0]
            near_part[max(y - 1, 0):y + h + 1, max(x - 1, 0):x + w + 1] = True
            part.append(_colour_hist(r.image[m & near_part].astype(int)))
            body.append(r.image[m & ~near_part].astype(int))
            labels.append(c)
    return part, body, np.array(labels)


def _nearest_centroid(feat: np.ndarray, labels: np.ndarray) -> float:
    """Accuracy on the odd items of the nearest class centroid of the even items."""
    train = np.arange(len(labels)) % 2 == 0
    k = int(labels.max()) + 1
    cent = np.stack([feat[train & (labels == c)].mean(0) for c in range(k)])
    pred = np.argmin(((feat[~train, None] - cent[None]) ** 2).sum(-1), 1)
    return float(np.mean(pred == labels[~train]))


def test_part_identifies_the_class_the_body_does_not():
    """Nearest class centroid of colour histograms: near perfect on the part's pixels, near
    chance on the body's; the body's mean colours of different classes overlap."""
    k = 4
    part, body, labels = _part_and_body(k, 40, 64)

    def nearest_centroid(feat: np.ndarray) -> float:
        return _nearest_centroid(feat, labels)

    assert nearest_centroid(np.array(part)) >= 0.9
    assert nearest_centroid(np.array([_colour_hist(b) for b in body])) <= 1 / k + 0.2
    means = np.array([b.mean(0) for b in body])
    spread = np.array([means[labels == c].std(0) for c in range(k)]).mean(0)
    centres = np.array([means[labels == c].mean(0) for c in range(k)])
    assert (centres.std(0) < spread).all()  # classes' body colours overlap


def test_body_cue_puts_class_evidence_in_the_body():
    """--body-cue 0.8: the body's colours alone name the class far above chance (the part still
    does too); the class styles differ in hue and texture."""
    k = 6
    part, body, labels = _part_and_body(k, 30, 64, body_cue=0.8)
    body_acc = _nearest_centroid(np.array([_colour_hist(b) for b in body]), labels)
    assert body_acc >= 0.6, body_acc
    assert _nearest_centroid(np.array(part), labels) >= 0.9
    styles = [s.style for s in class_specs(k, 0)]
    assert len({round(s.hue, 3) for s in styles}) == k and {s.texture for s in styles} == {1, 2, 3}


def test_body_cue_zero_draws_the_same_images_and_is_recorded(tmp_path):
    spec = class_specs(3, 0)[1]
    a = render_image(spec, 48, np.random.default_rng(5))
    b = render_image(spec, 48, np.random.default_rng(5), body_cue=0.0)
    assert np.array_equal(a.image, b.image)
    assert not np.array_equal(a.image, render_image(spec, 48, np.random.default_rng(5), body_cue=1.0).image)
    assert synth(tmp_path / "bc", "--body-cue", "0.5") == 0
    import json

    assert json.loads((tmp_path / "bc" / "synth.json").read_text())["body_cue"] == 0.5


def test_contact_sheet(tiny):
    sheet = synthetic.contact_sheet(tiny, n=8, cols=4, zoom=1)
    assert sheet.dtype == np.uint8 and sheet.ndim == 3 and sheet.shape[2] == 3
    assert sheet.shape[0] == 2 * (64 + 4) + 4 and sheet.shape[1] == 4 * (64 + 4) + 4


def test_synth_path_stays_torch_free(tmp_path):
    code = ("import sys; from ornet.cli import main; "
            f"rc = main(['synth', {str(tmp_path / 'd')!r}, '--classes', '2', '--train', '2', '--test', '2', "
            f"'--size', '48', '--contact-sheet', {str(tmp_path / 's.png')!r}]); "
            "assert rc == 0; assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_help_exits_0(capsys):
    assert main(["synth", "--help"]) == 0
    assert "in TOTAL" in capsys.readouterr().out


def test_workers_do_not_hang_after_opencv_threads_went_idle(tmp_path):
    """A forked worker used to hang in cv2.setNumThreads when the calling process had used
    OpenCV's thread pool and left it idle for a few seconds (seen in `make test`)."""
    import os
    import signal
    import subprocess
    import sys

    code = (
        "import time, cv2, numpy as np\n"
        "from ornet.data.synthetic import SynthConfig, generate\n"
        "cv2.setNumThreads(2)\n"
        "for _ in range(3): cv2.GaussianBlur(np.random.rand(1500, 1500, 3).astype(np.float32), (0, 0), 3)\n"
        "time.sleep(6)\n"
        f"generate(SynthConfig(classes=2, train=70, test=2, size=32), {str(tmp_path / 's')!r}, workers=2)\n"
        "assert cv2.getNumThreads() == 2\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the hung workers too
        proc.communicate()
        raise AssertionError("generate(workers=2) hung after OpenCV's thread pool went idle") from None
    assert proc.returncode == 0, err[-2000:]
    assert len((tmp_path / "s" / "images.txt").read_text().splitlines()) == 72
