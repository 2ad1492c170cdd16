"""`ornet evaluate-maps`: hand-computed results on tiny wsolevaluation folders, bad input, no torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from ornet.cli import main

# Three images, thresholds 0, .25, .5, .75 (uint8 levels 0, 63, 127, 191 for maps reaching 1):
# a/1.jpg 448x448, two GT boxes -> (10,10,109,109) and (150,150,199,199); map: a 100x100 square of
#   1.0 at rows/cols 10..109 -> box (10,10,110,110), IoU 10000/10201 = .98 with the first box:
#   correct at 30/50/70 at every threshold, in both modes.
# a/2.jpg 224x112 (y scaled by 2), GT (0,0,49,48) and (150,100,199,198); map: 0.6 (uint8 153) at
#   rows/cols 0..49, 1.0 at rows/cols 100..199. Levels 0-127 keep both squares: the largest is the
#   1.0 square, box (100,100,200,200), IoU 4950/10201 = .485 with the second GT box -> correct at
#   30 only; every contour (multi): the small square's box (0,0,50,50) has IoU 2450/2601 = .94
#   with the first GT box -> correct at 30/50/70. Level 191 keeps the 1.0 square only: 30 only.
# b/3.jpg 224x224, GT (50,50,149,149); map: 0.4 (uint8 102) at rows/cols 30..169 with 1.0 at
#   70..129. Levels 0, 63: box (30,30,170,170), IoU 10000/19881 = .503 -> 30, 50; levels 127, 191:
#   box (70,70,130,130), IoU 3721/10000 = .372 -> 30 only.
# Correct images per threshold (IoU 30, 50, 70):
#   largest: t0 (3,2,1) t1 (3,2,1) t2 (3,1,1) t3 (3,1,1) -> MaxBoxAcc 3/3, 2/3, 1/3
#   multi:   t0 (3,3,2) t1 (3,3,2) t2 (3,2,2) t3 (3,1,1) -> 3/3, 3/3, 2/3
IDS = ["a/1.jpg", "a/2.jpg", "b/3.jpg"]
SIZES = {"a/1.jpg": (448, 448), "a/2.jpg": (224, 112), "b/3.jpg": (224, 224)}
BOXES = ["a/1.jpg,20,20,219,219", "a/1.jpg,300,300,399,399", "a/2.jpg,0,0,49,24",
         "a/2.jpg,150,50,199,99", "b/3.jpg,50,50,149,149"]


def write_box_case(root: Path, suffixless: bool = False) -> tuple[Path, Path]:
    meta, maps = root / "meta", root / "maps"
    meta.mkdir(parents=True)
    (meta / "image_ids.txt").write_text("\n".join(IDS) + "\n")
    (meta / "class_labels.txt").write_text("\n".join(f"{i},{k}" for k, i in enumerate(IDS)) + "\n")
    (meta / "image_sizes.txt").write_text("\n".join(f"{i},{w},{h}" for i, (w, h) in SIZES.items()) + "\n")
    (meta / "localization.txt").write_text("\n".join(BOXES) + "\n")
    m1 = np.zeros((224, 224))
    m1[10:110, 10:110] = 1.0
    m2 = np.zeros((224, 224))
    m2[0:50, 0:50] = 0.6
    m2[100:200, 100:200] = 1.0
    m3 = np.zeros((224, 224))
    m3[30:170, 30:170] = 0.4
    m3[70:130, 70:130] = 1.0
    for image_id, m in zip(IDS, (m1, m2, m3)):
        name = image_id.rsplit(".", 1)[0] if suffixless else image_id
        (maps / name).parent.mkdir(parents=True, exist_ok=True)
        np.save(maps / f"{name}.npy", m)
    return meta, maps


def run(capsys, *argv):
    code = main(["evaluate-maps", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def expected(counts):
    acc = [c * 100.0 / 3.0 for c in counts]
    return {"30": acc[0], "50": acc[1], "70": acc[2]}, float(np.average(acc))


@pytest.mark.parametrize("multi, counts", [(False, (3, 2, 1)), (True, (3, 3, 2))])
def test_hand_computed_box_case(tmp_path, capsys, multi, counts):
    meta, maps = write_box_case(tmp_path)
    argv = ["--metadata", meta, "--scoremaps", maps, "--cam-curve-interval", "0.25", "--workers", "1"]
    code, out, err = run(capsys, *argv, *(["--multi-contour"] if multi else []))
    assert code == 0, err
    result = json.loads(out)
    per_iou, mean = expected(counts)
    assert result["max_box_acc"] == per_iou and result["max_box_acc_mean"] == mean
    assert result["num_images"] == 3 and result["multi_contour"] is multi and result["cam_curve_interval"] == 0.25
    assert "pxap" not in result
    code, out2, _ = run(capsys, *argv, "--workers", "2", *(["--multi-contour"] if multi else []))
    assert json.loads(out2) == result


def test_suffixless_map_names_and_out_file(tmp_path, capsys):
    meta, maps = write_box_case(tmp_path, suffixless=True)
    out = tmp_path / "result.json"
    code, printed, err = run(capsys, "--metadata", meta, "--scoremaps", maps, "--cam-curve-interval", "0.25",
                             "--out", out)
    assert code == 0, err
    assert json.loads(out.read_text()) == json.loads(printed)
    assert json.loads(printed)["max_box_acc"] == expected((3, 2, 1))[0]
    code, _, err = run(capsys, "--metadata", meta, "--scoremaps", maps, "--out", out)
    assert code == 2 and "exists; pass --force" in err and err.count("\n") == 1
    code, _, err = run(capsys, "--metadata", meta, "--scoremaps", maps, "--out", out, "--force",
                       "--iou-thresholds", "50")
    assert code == 0 and list(json.loads(out.read_text())["max_box_acc"]) == ["50"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".result.json")]  # no temp file left


# Masks (112x112 PNGs, resized to 224 by nearest neighbour, i.e. doubled), thresholds .25 apart:
# m1: foreground = top-left quadrant (12544 px at 224), perfect map (1 on it, 0 elsewhere).
# m2: foreground = top half (25088 px), ignore = bottom-left quadrant (12544 px), map 0.5 everywhere.
# Positives: 12544 at 1.0, 25088 at 0.5; negatives: 37632 at 0.0 and, at 0.5, 12544 (ignore) or
# 25088 (no ignore). From the top: precision 1 up to recall 1/3, then 37632 / (37632 + negatives
# at 0.5 ... + 0) over the last 2/3 of recall: with ignore 0.75 -> PxAP 100 (1/3 + .75 * 2/3) = 83.33;
# without 0.6 -> 73.33.
@pytest.mark.parametrize("with_ignore, pxap", [(True, 100 * (1 / 3 + 0.75 * 2 / 3)), (False, 100 * (1 / 3 + 0.6 * 2 / 3))])
def test_hand_computed_mask_case(tmp_path, capsys, with_ignore, pxap):
    meta, maps, masks = tmp_path / "meta", tmp_path / "maps", tmp_path / "masks"
    for d in (meta, maps, masks / "v"):
        d.mkdir(parents=True)
    q = np.zeros((112, 112), np.uint8)
    q[:56, :56] = 255
    half = np.zeros((112, 112), np.uint8)
    half[:56] = 255
    ignore = np.zeros((112, 112), np.uint8)
    ignore[56:, :56] = 255
    for name, img in (("m1.png", q), ("m2.png", half), ("i2.png", ignore)):
        cv2.imwrite(str(masks / "v" / name), img)
    (meta / "image_ids.txt").write_text("v/1.jpg\nv/2.jpg\n")
    (meta / "localization.txt").write_text(f"v/1.jpg,v/m1.png,\nv/2.jpg,v/m2.png,{'v/i2.png' if with_ignore else ''}\n")
    (maps / "v").mkdir()
    perfect = np.zeros((224, 224))
    perfect[:112, :112] = 1.0
    np.save(maps / "v" / "1.jpg.npy", perfect)
    np.save(maps / "v" / "2.jpg.npy", np.full((224, 224), 0.5))
    code, out, err = run(capsys, "--metadata", meta, "--scoremaps", maps, "--mask-root", masks,
                         "--cam-curve-interval", "0.25")
    assert code == 0, err
    result = json.loads(out)
    assert result["pxap"] == pytest.approx(pxap, rel=1e-12) and result["num_images"] == 2
    assert "max_box_acc" not in result


def _bad_map(maps: Path, array) -> None:
    np.save(maps / "a" / "2.jpg.npy", array, allow_pickle=True)


@pytest.mark.parametrize("damage, message", [
    (lambda meta, maps: (meta / "image_sizes.txt").unlink(), "image_sizes.txt: missing file"),
    (lambda meta, maps: (meta / "image_ids.txt").unlink(), "image_ids.txt: missing file"),
    (lambda meta, maps: (meta / "localization.txt").write_text("a/1.jpg,1,2,3\n"), "localization.txt:1: expected 5 or 3 fields"),
    (lambda meta, maps: (meta / "localization.txt").write_text("\n".join(BOXES) + "\nz.jpg,0,0,1,1\n"),
     "localization.txt:6: unknown image id 'z.jpg'"),
    (lambda meta, maps: (meta / "localization.txt").write_text("\n".join(BOXES) + "\nb/3.jpg,0,0,224,10\n"),
     "localization.txt:6: box (0, 0, 224, 10) of 'b/3.jpg' is inverted or outside"),
    (lambda meta, maps: (maps / "a" / "2.jpg.npy").unlink(), "no score map for image id 'a/2.jpg'"),
    (lambda meta, maps: _bad_map(maps, np.full((224, 224), np.nan)), "score map of 'a/2.jpg' contains NaN"),
    (lambda meta, maps: _bad_map(maps, np.full((224, 224), 2.0)), "score map of 'a/2.jpg' must lie in [0, 1]"),
    (lambda meta, maps: _bad_map(maps, np.zeros((2, 224, 224))), "score map of 'a/2.jpg' must be 2-D"),
    (lambda meta, maps: _bad_map(maps, np.zeros((56, 56))), "score map of 'a/2.jpg' must be 224x224"),
    (lambda meta, maps: _bad_map(maps, np.array([None])), "score map of 'a/2.jpg' is not a readable .npy"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, damage, message):
    meta, maps = write_box_case(tmp_path)
    damage(meta, maps)
    code, out, err = run(capsys, "--metadata", meta, "--scoremaps", maps, "--workers", "2")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("ornet evaluate-maps: error: ")
    assert message in err, err


@pytest.mark.parametrize("argv, message", [
    ([], "the following arguments are required: --metadata, --scoremaps"),
    (["--cam-curve-interval", "0"], "must be in (0, 1), got 0"),
    (["--cam-curve-interval", "abc"], "'abc' is not a number"),
    (["--iou-thresholds", "150"], "must be in [0, 100], got 150"),
    (["--workers", "0"], "must be in [1, 1024], got 0"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_usage_errors_exit_2_with_one_line(tmp_path, capsys, argv, message):
    meta, maps = write_box_case(tmp_path)
    base = ["--metadata", meta, "--scoremaps", maps] if argv else []
    code, _, err = run(capsys, *base, *argv)
    assert code == 2 and message in err and err.count("\n") == 1, err


def test_missing_folders_and_masks(tmp_path, capsys):
    meta, maps = write_box_case(tmp_path)
    code, _, err = run(capsys, "--metadata", tmp_path / "nope", "--scoremaps", maps)
    assert code == 2 and "metadata folder not found" in err
    code, _, err = run(capsys, "--metadata", meta, "--scoremaps", tmp_path / "nope")
    assert code == 2 and "score-map folder not found" in err
    code, _, err = run(capsys, "--metadata", meta, "--scoremaps", maps, "--mask-root", tmp_path / "nope")
    assert code == 2 and "mask root not found" in err
    (meta / "localization.txt").write_text("a/1.jpg,m.png,\na/2.jpg,m.png,\nb/3.jpg,m.png,\n")
    code, _, err = run(capsys, "--metadata", meta, "--scoremaps", maps, "--mask-root", tmp_path)
    assert code == 2 and "m.png: mask file is missing or unreadable" in err and err.count("\n") == 1
    (tmp_path / "m.png").write_bytes(b"not a png")
    code, _, err = run(capsys, "--metadata", meta, "--scoremaps", maps, "--mask-root", tmp_path)
    assert code == 2 and "m.png: mask file is not a readable image" in err and err.count("\n") == 1


def test_bad_mask_prints_one_line_from_a_real_process(tmp_path):
    """OpenCV's own warnings go to file descriptor 2, which capsys does not see: check a process."""
    meta, maps = write_box_case(tmp_path)
    (meta / "localization.txt").write_text("a/1.jpg,m.png,\na/2.jpg,m.png,\nb/3.jpg,m.png,\n")
    proc = subprocess.run([sys.executable, "-m", "ornet", "evaluate-maps", "--metadata", str(meta),
                           "--scoremaps", str(maps), "--mask-root", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr


def test_evaluate_maps_never_imports_torch(tmp_path):
    meta, maps = write_box_case(tmp_path)
    code = ("import sys; from ornet.cli import main; "
            f"rc = main(['evaluate-maps', '--metadata', {str(meta)!r}, '--scoremaps', {str(maps)!r}]); "
            "sys.exit(3 if 'torch' in sys.modules else rc)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["num_images"] == 3
