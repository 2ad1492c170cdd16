"""`ornet check-data`: counts, JSON output, and every bad input with a named error and exit 2."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import write_cub_tree
from ornet.cli import main


def run(capsys, *args):
    code = main(["check-data", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_report(cub_tree, capsys):
    code, out, err = run(capsys, "--data.root", str(cub_tree), "--json", "--data.val_per_class", "1")
    assert code == 0, err
    report = json.loads(out)
    assert report["name"] == "cub" and report["problems"] == []
    assert report["splits"]["train"] == {**report["splits"]["train"], "images": 9, "classes": 3, "boxes": 9}
    assert report["splits"]["test"]["images"] == 6 and report["splits"]["val"]["images"] == 3


def _edit(path: Path, lineno: int, new: str | None) -> None:
    lines = path.read_text().splitlines()
    if new is None:
        del lines[lineno - 1]
    else:
        lines[lineno - 1] = new
    path.write_text("\n".join(lines) + "\n")


def _truncate(root: Path) -> None:
    p = root / "images" / "001.class_0" / "img_001.jpg"
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])  # header intact: only a full decode sees it


BAD = {
    "missing listed file": (lambda r: (r / "train_test_split.txt").unlink(), "train_test_split.txt: missing file"),
    "malformed line": (lambda r: _edit(r / "bounding_boxes.txt", 2, "2 1.0 2.0 3.0"), "bounding_boxes.txt:2: expected 5 fields"),
    "label out of range": (lambda r: _edit(r / "image_class_labels.txt", 3, "3 9"), "image_class_labels.txt:3: label 9 of image 3 is out of range"),
    "inverted box": (lambda r: _edit(r / "bounding_boxes.txt", 4, "4 30.0 10.0 -5.0 4.0"), "bounding_boxes.txt:4: box"),
    "box outside": (lambda r: _edit(r / "bounding_boxes.txt", 5, "5 70.0 10.0 40.0 4.0"), "lies outside the 80x64 image"),
    "missing image": (lambda r: (r / "images" / "002.class_1" / "img_002.jpg").unlink(), "img_002.jpg: image file is missing"),
    "unreadable image": (lambda r: (r / "images" / "002.class_1" / "img_003.jpg").write_bytes(b"not an image"), "img_003.jpg: unreadable image"),
    "truncated image": (_truncate, "img_001.jpg: unreadable or truncated image"),
    "id escapes root": (lambda r: _edit(r / "images.txt", 1, "1 ../../etc/passwd"), "images.txt:1: image id '../../etc/passwd' escapes the dataset root"),
    "absolute id": (lambda r: _edit(r / "images.txt", 1, "1 /etc/passwd"), "escapes the dataset root"),
    "empty split": (lambda r: (r / "train_test_split.txt").write_text(
        "".join(f"{i} 1\n" for i in range(1, 19))), "split 'test' is empty"),
    "bad split flag": (lambda r: _edit(r / "train_test_split.txt", 2, "2 yes"), "train_test_split.txt:2: split flag"),
    "non-numeric box": (lambda r: _edit(r / "bounding_boxes.txt", 6, "6 a 1 2 3"), "bounding_boxes.txt:6: box value 'a' is not a number"),
    "no classes": (lambda r: (r / "classes.txt").write_text(""), "classes.txt: no classes"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_named_and_exits_2(tmp_path, capsys, case):
    root = write_cub_tree(tmp_path / "cub")
    breaker, expected = BAD[case]
    breaker(root)
    before = sorted(os.listdir(tmp_path))
    code, out, err = run(capsys, "--data.root", str(root))
    assert code == 2
    assert expected in out + err, out + err
    assert "Traceback" not in err
    assert err.strip().count("\n") == 0, err  # one line on stderr
    assert sorted(os.listdir(tmp_path)) == before  # nothing written


def test_every_problem_is_reported_not_only_the_first(tmp_path, capsys):
    root = write_cub_tree(tmp_path / "cub")
    _edit(root / "image_class_labels.txt", 3, "3 9")
    _edit(root / "bounding_boxes.txt", 5, "5 70.0 10.0 40.0 4.0")
    code, out, _ = run(capsys, "--data.root", str(root), "--json")
    problems = json.loads(out)["problems"]
    assert code == 2 and len(problems) == 2


def test_clip_boxes_option_accepts_a_box_outside(tmp_path, capsys):
    root = write_cub_tree(tmp_path / "cub")
    _edit(root / "bounding_boxes.txt", 5, "5 70.0 10.0 40.0 4.0")
    code, out, err = run(capsys, "--data.root", str(root), "--data.clip_boxes", "true")
    assert code == 0, out + err


def test_missing_root_and_unknown_names(tmp_path, capsys):
    code, _, err = run(capsys, "--data.root", str(tmp_path / "nope"))
    assert code == 2 and "nope: dataset root does not exist" in err
    code, _, err = run(capsys, "--data.root", str(tmp_path), "--data.name", "nosuch")
    assert code == 2 and "unknown dataset 'nosuch'; known: " in err and "cub" in err
    code, _, err = run(capsys, "--data.roots", str(tmp_path))
    assert code == 2 and "did you mean data.root?" in err
