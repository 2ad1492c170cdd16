"""benchmarks/bench_demo.py writes results/demo.md from what `ornet demo` printed (issue 27: every
results file is written by the command in its header). A stand-in for `ornet demo` prints what the
demo prints (`results_text`), so no training runs here."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from ornet.commands.demo import results_text

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SUMMARY = {"ornet": {"gt_known_loc": 87.5, "top1_loc": 74.5, "max_box_acc_v2": 84.2, "pxap": 81.83, "top1_cls": 83.5,
                     "seconds": 202.3},
           "cam": {"gt_known_loc": 45.5, "top1_loc": 44.0, "max_box_acc_v2": 49.8, "pxap": 37.6, "top1_cls": 82.5,
                   "seconds": 79.3}}
FAKE_DEMO = """
import json, os, sys
from pathlib import Path
from ornet.commands.demo import results_text
out = Path(sys.argv[sys.argv.index("--out") + 1])
out.mkdir(parents=True, exist_ok=True)
summary = json.loads(os.environ["FAKE_DEMO_SUMMARY"])
(out / "summary.json").write_text(json.dumps(summary))
print("$ ornet synth ...")
print("[ornet] stage 1/3 evaluator: epoch 1/4")
print(results_text(summary, 204.4, out))
print(f"comparison page (both methods on test images): {out / 'index.html'}")
"""


@pytest.fixture
def bench_demo(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import bench_demo

    return bench_demo


def test_it_writes_what_the_demo_printed_with_the_command_and_commit(bench_demo, tmp_path, monkeypatch):
    fake = tmp_path / "fake_demo.py"
    fake.write_text(FAKE_DEMO)
    # `ornet demo --out OUT --force` becomes the stand-in, reporting SUMMARY
    monkeypatch.setattr(bench_demo, "ornet_cmd", lambda: [sys.executable, str(fake)])
    monkeypatch.setenv("FAKE_DEMO_SUMMARY", json.dumps(SUMMARY))
    results, out = tmp_path / "results" / "demo.md", tmp_path / "demo"
    results.parent.mkdir()
    (results.parent / "demo_notes.md").write_text("notes\n")
    monkeypatch.setattr(sys, "argv", ["bench_demo.py", "--out", str(out), "--results", str(results)])
    assert bench_demo.main() == 0
    text = results.read_text()
    printed = results_text(SUMMARY, 204.4, out).splitlines()[1:]  # what the demo printed, blank line first
    block = text.split("```text\n")[1].split("\n```")[0].splitlines()
    assert block == printed and "PxAP" in block[0] and "81.8" in block[2]
    head = text.splitlines()
    assert head[0] == "# `ornet demo`"
    assert f"Written by `benchmarks/bench_demo.py --out {out} --results {results}`" in head[2]
    commit = next(line for line in head if line.startswith("- commit: "))
    assert re.fullmatch(r"- commit: [0-9a-f]{7,}( \+ uncommitted changes \(.+\))?", commit), commit
    assert "[demo_notes.md](demo_notes.md)" in text
    assert (Path(f"{out}.log")).read_text().startswith("$ ornet synth")


def test_a_table_that_is_not_summary_json_is_refused(bench_demo, tmp_path):
    log = "[cam] epoch 1\n" + results_text(SUMMARY, 10, tmp_path) + "\nmore\n"
    printed = bench_demo.printed_table(log)
    assert printed[0].split()[:6] == ["method", "GT-known", "Top-1", "Loc", "MaxBoxAccV2", "PxAP"]
    assert printed[-1].startswith("ORNet - CAM on GT-known: +42.0 points") and printed[-2] == ""
    edited = {**SUMMARY, "cam": {**SUMMARY["cam"], "pxap": 12.0}}
    with pytest.raises(SystemExit, match="differs from summary.json"):
        bench_demo.render(printed, edited, command="c", commit="abc1234", machine="m", date="d", load=(0, 0),
                          seconds=1, fast=False, notes=False)
    with pytest.raises(SystemExit, match="no comparison table"):
        bench_demo.printed_table("[ornet] failed\n")


def test_git_commit_names_the_checkout(bench_demo, tmp_path):
    import subprocess

    from machine import git_commit

    assert git_commit(tmp_path) == "unknown (not a git checkout)"
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    for name in ("a.txt", "b.txt"):
        (tmp_path / name).write_text("1\n")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "c"], check=True)
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    (tmp_path / "new.txt").write_text("untracked files do not count\n")
    assert git_commit(tmp_path) == head
    (tmp_path / "b.txt").write_text("2\n")
    assert git_commit(tmp_path) == f"{head} + uncommitted changes (b.txt)"
    assert re.fullmatch(r"[0-9a-f]{7,}( \+ uncommitted changes \(.+\))?", git_commit(BENCHMARKS.parent))
