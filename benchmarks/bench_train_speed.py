"""Training speed side by side: `ornet train` of this checkout against an older checkout (issue 28).

    .venv/bin/python benchmarks/bench_train_speed.py --baseline DIR --data DIR [--work DIR]
        [--cases demo_subset demo_full cam_subset cam_full] [--repeats 3] [--threads T]
        [--subset-classes 20] [--subset-train 20] [--override KEY=VALUE ...]
        [--extra-new KEY=VALUE ...] [--target RATIO] [--results benchmarks/results/train_speed.md]

Both versions run as `python -m ornet train` with this interpreter (`sys.executable`), each from its
own checkout (the working directory, `PYTHONPATH=CHECKOUT/src` and its own `configs/*.yaml`), so
only the code differs. The baseline is a checkout of the old code with its compiled extension built
(`--baseline`, e.g. a clone at a8a58be). Cases (CASES): the ORNet preset (configs/demo.yaml) and the
CAM preset (configs/demo_cam.yaml), each on a subset (the first `--subset-classes` classes, the
first `--subset-train` training images of each plus all their test images, 2 epochs per stage) and
on the whole `--data` set. Every run is a fresh `--out` under `--work`, `--trainer.seed 0`; per case
the versions alternate old, new, new, old, old, new ... so neither always goes first.
`--override` flags go to both versions, `--extra-new` flags to the new one only (to measure a
lever, or a setting's cost: `--target 0.833` for "at most 20 % slower"); both are named in the report. `--threads T` sets OMP_NUM_THREADS, else it is unset (torch's
default, as a user runs it). A run's time is the wall clock of the whole subprocess (imports, data
indexing, training, evaluation, reports), its peak memory the subprocess's peak resident set; its GT-known Loc and seconds per stage come from the run's
metrics.json (a key that version does not write shows as '-'). Each run's checkpoints/ is deleted once
read (`--keep-checkpoints` keeps them); its log is RUNS/CASE/<order>_<version>.log.

The report (every run, the medians, old / new against the issue's target) is rewritten atomically
after each run, marked partial until the last; a failed run stops the benchmark with its log's path.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from machine import cpu_model, git_commit, run_measured  # benchmarks/machine.py

from ornet.runtime.atomic import write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
CASES = {  # name -> (preset, on the subset, flags, the target for old / new)
    "demo_subset": ("demo", True, ["--evaluator.epochs", "2", "--coarse.epochs", "2", "--refine.epochs", "2"], 2.5),
    "demo_full": ("demo", False, [], 2.5),
    "cam_subset": ("demo_cam", True, ["--cam.epochs", "2"], 2.0),
    "cam_full": ("demo_cam", False, [], 2.0),
}
LISTS = ("images.txt", "image_class_labels.txt", "train_test_split.txt", "bounding_boxes.txt", "backgrounds.txt")
"""CUB's per-image list files (``<id> <fields...>``), filtered by id; backgrounds.txt only when present."""


def read_rows(path: Path) -> list[list[str]]:
    """The whitespace-separated fields of each non-blank line (the CUB reader's own split)."""
    return [line.split() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def build_subset(src: Path, dst: Path, classes: int, train_per_class: int) -> dict[str, int]:
    """Write a CUB tree at `dst` (replaced) with the classes of ids 1..`classes` of `src`, the first
    `train_per_class` training images of each (train_test_split flag 1, in images.txt order) and all
    their test images. Image ids are kept; images/ and segmentations/ are symlinks to `src`'s.
    Returns the counts: classes, train, test."""
    label = {iid: int(c) for iid, c in read_rows(src / "image_class_labels.txt")}
    train = {iid: flag == "1" for iid, flag in read_rows(src / "train_test_split.txt")}
    taken: dict[int, int] = {}
    keep: set[str] = set()
    for iid, _ in read_rows(src / "images.txt"):
        cls = label[iid]
        if cls > classes or (train[iid] and taken.get(cls, 0) >= train_per_class):
            continue
        taken[cls] = taken.get(cls, 0) + train[iid]
        keep.add(iid)
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for name in LISTS:
        if (src / name).is_file():
            rows = [r for r in read_rows(src / name) if r[0] in keep]
            (dst / name).write_text("".join(" ".join(r) + "\n" for r in rows))
    names = [r for r in read_rows(src / "classes.txt") if int(r[0]) <= classes]
    (dst / "classes.txt").write_text("".join(" ".join(r) + "\n" for r in names))
    for folder in ("images", "segmentations"):
        if (src / folder).is_dir():
            (dst / folder).symlink_to((src / folder).resolve(), target_is_directory=True)
    n_train = sum(train[i] for i in keep)
    return {"classes": len(names), "train": n_train, "test": len(keep) - n_train}


def run_order(repeats: int) -> list[str]:
    """old, new, new, old, old, new, ...: `repeats` runs of each, neither version always first."""
    return [v for i in range(repeats) for v in (("old", "new") if i % 2 == 0 else ("new", "old"))]


def pairs(items: list[str]) -> list[str]:
    """KEY=VALUE items as train flags: ``--KEY VALUE``."""
    flags = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"{item!r}: expected KEY=VALUE (e.g. data.resize=64)")
        flags += [f"--{key}", value]
    return flags


def train_cmd(checkout: Path, case: str, data: Path, out: Path, extra: list[str]) -> list[str]:
    preset, _, flags, _ = CASES[case]
    return [sys.executable, "-m", "ornet", "train", "--config", str(checkout / "configs" / f"{preset}.yaml"),
            "--data.root", str(data), "--out", str(out), "--trainer.seed", "0", "--trainer.progress", "false",
            "--force", *flags, *extra]


def version_env(checkout: Path, threads: int | None) -> dict[str, str]:
    """The environment of a version's runs: its src/ on PYTHONPATH, OMP_NUM_THREADS or none."""
    env = {**os.environ, "PYTHONPATH": str(checkout / "src")}
    env.pop("OMP_NUM_THREADS", None)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def check_import(checkout: Path, env: dict[str, str]) -> None:
    """Refuse to time a version whose `import ornet` would not come from `checkout`."""
    code = "import ornet, sys; sys.stdout.write(ornet.__file__)"
    found = subprocess.run([sys.executable, "-c", code], env=env, cwd=checkout, capture_output=True, text=True)
    if found.returncode != 0 or not Path(found.stdout).resolve().is_relative_to((checkout / "src").resolve()):
        raise SystemExit(f"`import ornet` with PYTHONPATH={env['PYTHONPATH']} gives {found.stdout or found.stderr!r}")


def timed_run(cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> tuple[float, float]:
    """Wall seconds of the whole subprocess and its peak resident memory in MiB (`machine.run_measured`: this
    script imports no torch); a failure stops the benchmark naming its log."""
    with log.open("w") as f:
        code, seconds, usage = run_measured(cmd, f, env=env, cwd=cwd)
    if code != 0:
        raise SystemExit(f"failed ({code}): {shlex.join(cmd)}; see {log}")
    return seconds, usage.ru_maxrss / 1024  # Linux: KiB


def run_metrics(out: Path) -> tuple[float | None, str]:
    """GT-known Loc of a finished run and its seconds per stage, as its metrics.json gives them
    (None / '-' for a key that version does not write)."""
    metrics = json.loads((out / "metrics.json").read_text())
    value = metrics.get("gt_known_loc")
    stages = metrics.get("seconds_per_stage") or {}
    shown = ", ".join(f"{k} {v:.0f}" for k, v in stages.items() if k != "total") or "-"
    return (float(value) if value is not None else None), shown


def shown(cmd: list[str], checkout: Path, env: dict[str, str]) -> str:
    """A run's command as a user would type it from `checkout` (the data and out folders as given)."""
    omp = f"OMP_NUM_THREADS={env['OMP_NUM_THREADS']} " if "OMP_NUM_THREADS" in env else ""
    return f"cd {checkout} && {omp}PYTHONPATH={env['PYTHONPATH']} {shlex.join(cmd)}"


def median(runs: list[dict], version: str) -> float | None:
    seconds = [r["seconds"] for r in runs if r["version"] == version]
    return statistics.median(seconds) if seconds else None


def case_table(case: str, runs: list[dict], target: float | None = None) -> list[str]:
    """A case's runs in the order they ran, then the medians and old / new against the target (the
    issue's for the case, or `target`, the --target given)."""
    fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    if not runs:
        return [f"### {case}", "", "Not run yet.", ""]
    lines = [f"### {case}", "", "| order | version | seconds | GT-known Loc | peak memory (MiB) "
             "| seconds per stage (metrics.json) |", "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {i} | {r['version']} | {r['seconds']:.1f} | {fmt(r['gt_known'])} | {r['peak_mib']:.0f} "
              f"| {r['stages']} |" for i, r in enumerate(runs, 1)]
    old, new = median(runs, "old"), median(runs, "new")
    which = "the issue's target" if target is None else "the target (--target)"
    target = CASES[case][3] if target is None else target
    ratio = f"**{old / new:.2f}x**" if old and new else "-"
    met = "" if not (old and new) else (" (met)" if old / new >= target else " (not met)")
    lines += ["", f"Median seconds: old {fmt(old)}, new {fmt(new)}; old / new {ratio}; {which} "
              f">= {target:g}x{met}.", ""]
    return lines


def render(meta: dict, results: dict[str, list[dict]], done: int, total: int) -> str:
    partial = done < total
    lines = [
        "# Training speed, side by side: this checkout against an older one (issue 28)", "",
        f"Written by `{meta['command']}`; do not edit by hand.", "",
        *([f"**PARTIAL: {done} of {total} runs done** (the benchmark stopped or is still running).", ""]
          if partial else []),
        f"- date: {meta['date']}",
        f"- machine: {meta['machine']}",
        f"- load average (1 min) at the start / now: {meta['load']:.2f} / {os.getloadavg()[0]:.2f}",
        f"- new: commit {meta['new_commit']} ({ROOT}); old: commit {meta['old_commit']} ({meta['baseline']})",
        f"- both run with {sys.executable} as `python -m ornet train`, each from its own checkout with its own "
        f"presets; OMP_NUM_THREADS: {meta['threads']}",
        f"- data: {meta['data']}; subset: {meta['subset']}",
        f"- flags given to both versions (`--override`): {meta['override'] or 'none'}",
        f"- flags given to the new version only (`--extra-new`): {meta['extra_new'] or 'none'}",
        "- seconds: wall clock of the whole `ornet train` subprocess; GT-known Loc (test split) and seconds per "
        "stage (the run's own clock, evaluation included): its metrics.json; peak memory: the subprocess's "
        "peak resident set (`ru_maxrss`)",
        "- the versions alternate (old, new, new, old, ...); the ratio is old / new of the medians", "",
        "## Results", "",
    ]
    for case, runs in results.items():
        lines += case_table(case, runs, meta.get("target"))
    lines += ["## Commands of each case", "", "The first run of each version; later runs differ only in `--out` "
              "(`RUNS/CASE/<order>_<version>`, the log beside it).", ""]
    for case, (old_cmd, new_cmd) in meta["commands"].items():
        lines += [f"{case}:", "", "```bash", f"# old\n{old_cmd}", f"# new\n{new_cmd}", "```", ""]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline", required=True, help="checkout of the old code (its extension built)")
    p.add_argument("--data", required=True, help="a CUB-format set (e.g. realistic_sets objects)")
    p.add_argument("--work", default="/tmp/ornet-train-speed", help="subset and run folders")
    p.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    p.add_argument("--repeats", type=int, default=3, help="runs of each version per case")
    p.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS (default: unset)")
    p.add_argument("--subset-classes", type=int, default=20)
    p.add_argument("--subset-train", type=int, default=20, help="training images per class of the subset")
    p.add_argument("--override", nargs="*", default=[], help="flags for both versions, KEY=VALUE")
    p.add_argument("--extra-new", nargs="*", default=[], help="flags for the new version only, KEY=VALUE")
    p.add_argument("--target", type=float, default=None,
                   help="old / new to reach instead of the issue's (e.g. 0.833: the new version at most 20 %% slower)")
    p.add_argument("--keep-checkpoints", action="store_true", help="keep each run's checkpoints/ (about 100 MB)")
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "train_speed.md"))
    args = p.parse_args()

    baseline, data, work = Path(args.baseline).resolve(), Path(args.data).resolve(), Path(args.work).resolve()
    override, extra_new = pairs(args.override), pairs(args.extra_new)
    checkouts = {"old": baseline, "new": ROOT}
    envs = {v: version_env(c, args.threads) for v, c in checkouts.items()}
    for v in checkouts:
        check_import(checkouts[v], envs[v])
    subset = work / f"subset_{args.subset_classes}x{args.subset_train}"
    counts = {}
    if any(CASES[c][1] for c in args.cases):
        counts = build_subset(data, subset, args.subset_classes, args.subset_train)
    case_data = {c: subset if CASES[c][1] else data for c in args.cases}
    flags = {"old": override, "new": override + extra_new}
    meta = {
        "command": shlex.join([".venv/bin/python", "benchmarks/bench_train_speed.py", *sys.argv[1:]]),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{cpu_model()}, {os.cpu_count()} cores visible; "
                   f"torch {importlib.metadata.version('torch')}, Python {platform.python_version()}",
        "load": os.getloadavg()[0], "baseline": baseline, "data": data,
        "new_commit": git_commit(ROOT), "old_commit": git_commit(baseline),
        "threads": args.threads if args.threads is not None else "unset",
        "subset": (f"{subset}: the first {counts['classes']} classes, the first {args.subset_train} training images "
                   f"of each ({counts['train']} in all, val carved from them) and their {counts['test']} test images"
                   if counts else "not used"),
        "override": " ".join(args.override), "extra_new": " ".join(args.extra_new), "target": args.target,
        "commands": {c: tuple(shown(train_cmd(checkouts[v], c, case_data[c], work / "runs" / c / f"{k}_{v}",
                                              flags[v]), checkouts[v], envs[v]) for k, v in ((1, "old"), (2, "new")))
                     for c in args.cases},
    }
    results: dict[str, list[dict]] = {c: [] for c in args.cases}
    total, done = len(args.cases) * 2 * args.repeats, 0
    out_file = Path(args.results)
    for case in args.cases:
        for k, version in enumerate(run_order(args.repeats), 1):
            out = work / "runs" / case / f"{k}_{version}"
            if out.exists():
                shutil.rmtree(out)
            out.parent.mkdir(parents=True, exist_ok=True)
            cmd = train_cmd(checkouts[version], case, case_data[case], out, flags[version])
            seconds, peak = timed_run(cmd, envs[version], checkouts[version], out.with_suffix(".log"))
            score, stages = run_metrics(out)
            if not args.keep_checkpoints:
                shutil.rmtree(out / "checkpoints", ignore_errors=True)
            results[case].append({"version": version, "seconds": seconds, "gt_known": score,
                                  "stages": stages, "peak_mib": peak})
            done += 1
            print(f"[{done}/{total}] {case} {version}: {seconds:.1f} s, GT-known "
                  f"{'-' if score is None else f'{score:.1f}'}  ({out})", flush=True)
            write_text_atomic(out_file, render(meta, results, done, total))
    print(f"wrote {out_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
