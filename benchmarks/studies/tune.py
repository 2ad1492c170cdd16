"""Tuning sweep: many `ornet train` runs in parallel processes, each scored on the TUNE split.

    python benchmarks/studies/tune.py VARIANTS.json --work DIR [--jobs 12] [--deadline 270]
        [--accelerator cpu|gpu] [--results FILE.jsonl] [--data NAME=DIR ...] [--tune-per-class 5]
        [--tune-list NAME=FILE ...] [--tune-photos NAME=PHOTO,PHOTO ...] [--seeds 0 1 2]

VARIANTS.json is a list of runs, in priority order:

    [{"name": "objects_base", "config": "configs/demo.yaml", "data": "objects",
      "overrides": {"refine.epochs": 6, "method.entropy_weight": 1.5}}, ...]

`data` names a folder given with `--data NAME=DIR` (or is a folder itself). Each run is
`python -m ornet train --config CONFIG --data.root DIR --data.tune_per_class N --out WORK/NAME
--trainer.progress false --quiet --force` plus the overrides, then
`python -m ornet evaluate WORK/NAME --split tune --out WORK/NAME/tune --quiet --force`, with
OMP_NUM_THREADS=1 (`--threads`), on `--accelerator`. The tune split is `--tune-per-class` training
images per class that the run does not train on (`data.tune_per_class`, docs/datasets.md; never
the threshold's val images, never test). At most `--jobs` runs at once; no run starts after
`--deadline` seconds (runs under way finish and are scored).

Whole groups instead of images per class: `--tune-list NAME=FILE` gives the runs on NAME the tune split
FILE lists (`data.tune_list`: one image id per line), and `--tune-photos NAME=A,B` writes that file
(WORK/tune_list_NAME.txt) for a realistic set (benchmarks/realistic_sets) from its backgrounds.txt: every
training image whose background crops photo A or B. Its test images crop other photos than its training
images, so a tune split of images on training photos rewards a map that learned those photos' texture;
one of held-out photos measures what the test split measures, texture never trained on.

`--seeds S ...` runs every variant once per training seed (NAME_sS, ``trainer.seed: S``; a variant that sets
trainer.seed itself is refused) and ranks the variants by their mean tune GT-known over the seeds, with the
lowest seed beside it: one tune seed moves a run by 2-3 points (benchmarks/results/plain_map_notes.md), so a
single-seed sweep cannot rank variants a few points apart.

Each finished run appends one line to `--results`: name, data, overrides, the metrics of
WORK/NAME/tune/metrics.json (the tune split's: ``"split": "tune"``), the seconds per stage and the
exit code (a failed run's last log line). The file is written as runs finish, so a sweep cut short
still leaves every finished run's line; at the end the runs are ranked by their tune GT-known Loc.

Settings are chosen on the tune split only: the test split's metrics (the metrics.json that
`ornet train` writes into the run folder) are never read, `--split` accepts only `tune`, and a
variant that would choose anything on test (``keep: best_test``) or set ``data.tune_per_class``
itself is refused before any run starts, in one line, exit 2. Read test once, for the final table,
with the settings this sweep chose. Used for the tuning log in benchmarks/results/quality_presets.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

KEEP = ("gt_known_loc", "top1_loc", "max_box_acc_v2", "pxap", "top1_cls", "threshold", "threshold_split")
SPLIT = "tune"


class Refused(Exception):
    """A sweep that would choose on test (or cannot score on tune): one line, exit 2."""


def flag_value(value) -> str:
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def check_variant(run: dict, root: str, tune_per_class: int, tune_list: str | None = None) -> None:
    """Refuse a variant that sets the tune split itself or picks anything on the test split."""
    import ornet

    overrides = run.get("overrides", {})
    for key in ("data.tune_per_class", "data.tune_list"):
        if key in overrides:
            raise Refused(f"variant {run['name']!r} sets {key}; the sweep sets it (--tune-per-class, --tune-list)")
    tune = f"data.tune_list={tune_list}" if tune_list else f"data.tune_per_class={tune_per_class}"
    try:
        cfg = ornet.load_config(run["config"], [f"data.root={root}", tune,
                                                *(f"{k}={flag_value(v)}" for k, v in overrides.items())])
    except ornet.OrnetError as e:
        raise Refused(f"variant {run['name']!r}: {e}") from None
    on_test = [s for s in cfg.stages if getattr(cfg, s).keep == "best_test"]
    if on_test:
        raise Refused(f"variant {run['name']!r} keeps {on_test[0]}'s best epoch on the test split "
                      f"({on_test[0]}.keep: best_test); a tuning sweep chooses nothing on test: add "
                      f"\"{on_test[0]}.keep\": \"last\" (or \"best_val\") to its overrides")


def commands(run: dict, data: dict[str, str], work: Path, accelerator: str, tune_per_class: int,
             tune_lists: dict[str, str] | None = None) -> list[list[str]]:
    """`ornet train` of the variant, then `ornet evaluate` of its run on the tune split."""
    root = data.get(run["data"], run["data"])
    out = work / run["name"]
    device = ["--trainer.accelerator", accelerator, "--trainer.devices", "1"]
    tune_list = (tune_lists or {}).get(run["data"])
    tune = ["--data.tune_list", tune_list] if tune_list else ["--data.tune_per_class", str(tune_per_class)]
    train = [sys.executable, "-m", "ornet", "train", "--config", run["config"], "--data.root", root,
             *tune, "--out", str(out), "--trainer.progress", "false",
             "--quiet", "--force", *device]
    for key, value in run.get("overrides", {}).items():
        train += [f"--{key}", flag_value(value)]
    evaluate = [sys.executable, "-m", "ornet", "evaluate", str(out), "--split", SPLIT, "--out", str(out / SPLIT),
                "--quiet", "--force", *device]
    return [train, evaluate]


def finished(run: dict, rc: int, work: Path, log: Path, seconds: float, tune_per_class: int,
             tune_lists: dict[str, str] | None = None) -> dict:
    tune_list = (tune_lists or {}).get(run["data"])
    tune = {"tune_list": tune_list} if tune_list else {"tune_per_class": tune_per_class}
    out = {"name": run["name"], **({"variant": run["variant"]} if "variant" in run else {}),
           "data": run["data"], "config": run["config"], "overrides": run.get("overrides", {}),
           "split": SPLIT, **tune, "rc": rc, "wall": round(seconds, 1)}
    scored = work / run["name"] / SPLIT / "metrics.json"
    if rc == 0 and scored.is_file():
        metrics = json.loads(scored.read_text())
        if metrics.get("split") != SPLIT:  # never record another split's numbers as the tune split's
            raise RuntimeError(f"{scored} holds the {metrics.get('split')!r} split, not {SPLIT!r}")
        out.update({k: metrics.get(k) for k in KEEP})
        # timings only: the training run's own metrics.json holds TEST metrics, which are not read
        timings = json.loads((work / run["name"] / "metrics.json").read_text()).get("seconds_per_stage")
        out["seconds_per_stage"] = timings
    else:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        out["error"] = lines[-1][-300:] if lines else "no output"
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("variants", type=Path)
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--results", type=Path, default=None, help="default: WORK/results.jsonl")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--deadline", type=float, default=float("inf"), help="seconds after which no run starts")
    p.add_argument("--accelerator", default="cpu")
    p.add_argument("--data", nargs="+", action="extend", default=[], help="NAME=DIR pairs (repeatable)")
    p.add_argument("--only", nargs="*", default=None, help="run only these names")
    p.add_argument("--tune-per-class", type=int, default=5,
                   help="training images per class carved into the tune split the runs are scored on (default 5)")
    p.add_argument("--tune-list", nargs="+", action="extend", default=[],
                   help="NAME=FILE: the runs on data NAME are scored on the images FILE lists (data.tune_list)")
    p.add_argument("--tune-photos", nargs="+", action="extend", default=[],
                   help="NAME=PHOTO,PHOTO: write NAME's tune list of every training image on these background photos")
    p.add_argument("--seeds", nargs="+", type=int, default=None,
                   help="train every variant once per seed (NAME_sS) and rank variants by the mean over seeds")
    p.add_argument("--split", default=SPLIT,
                   help="the split runs are ranked on: tune only (test is for the final table, never for choosing)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.split != SPLIT:
            raise Refused(f"--split {args.split}: the sweep ranks on the tune split only (carved from train, "
                          f"--tune-per-class); read test once, for the final table, never to choose")
        if args.tune_per_class < 1:
            raise Refused(f"--tune-per-class must be >= 1, got {args.tune_per_class}: runs are ranked on the tune split")
        runs = json.loads(args.variants.read_text())
        if args.only is not None:
            runs = [r for r in runs if r["name"] in set(args.only)]
        if args.seeds is not None:
            runs = per_seed(runs, args.seeds)
        data = dict(item.split("=", 1) for item in args.data)
        args.tune_lists = {k: str(Path(v).resolve()) for k, v in (pair(item, "--tune-list") for item in args.tune_list)}
        photo_lists = {}
        for item in args.tune_photos:
            name, photos = pair(item, "--tune-photos")
            photo_lists[name] = photos.split(","), photo_tune_ids(Path(data.get(name, name)), photos.split(","))
            args.tune_lists[name] = str((args.work / f"tune_list_{name}.txt").resolve())
        for run in runs:
            check_variant(run, data.get(run["data"], run["data"]), args.tune_per_class, args.tune_lists.get(run["data"]))
    except Refused as e:
        print(f"tune.py: error: {e}", file=sys.stderr)
        return 2
    for name, (photos, ids) in photo_lists.items():  # written once nothing was refused
        write_tune_list(Path(args.tune_lists[name]), ids, f"training images of {data.get(name, name)} on the "
                        f"background photos {', '.join(photos)}")
    return sweep(args, runs, data)


def per_seed(runs: list[dict], seeds: list[int]) -> list[dict]:
    """Each variant once per seed, seed by seed (every variant's first seed before any second one)."""
    if len(set(seeds)) != len(seeds) or any(s < 0 for s in seeds):
        raise Refused(f"--seeds must be distinct seeds >= 0, got {' '.join(map(str, seeds))}")
    for run in runs:
        if "trainer.seed" in run.get("overrides", {}):
            raise Refused(f"variant {run['name']!r} sets trainer.seed; with --seeds the sweep sets it")
    return [{**run, "name": f"{run['name']}_s{seed}", "variant": run["name"],
             "overrides": {**run.get("overrides", {}), "trainer.seed": seed}} for seed in seeds for run in runs]


def by_variant(rows: list[dict]) -> list[tuple[str, float, float, list[float]]]:
    """(variant, mean, min, each seed's) tune GT-known of the scored rows of a `--seeds` sweep, best mean first."""
    scores: dict[str, list[float]] = {}
    for row in rows:
        if row.get("gt_known_loc") is not None:
            scores.setdefault(row.get("variant", row["name"]), []).append(row["gt_known_loc"])
    return sorted(((v, sum(g) / len(g), min(g), g) for v, g in scores.items()), key=lambda t: -t[1])


def pair(item: str, flag: str) -> tuple[str, str]:
    if "=" not in item:
        raise Refused(f"{flag} {item}: expected NAME=VALUE")
    name, value = item.split("=", 1)
    return name, value


def photo_tune_ids(root: Path, photos: list[str]) -> list[str]:
    """The image ids (images.txt paths) of root's training images whose background is one of `photos`
    (backgrounds.txt, as benchmarks/realistic_sets writes it)."""
    def table(name: str) -> dict[str, str]:
        path = root / name
        if not path.is_file():
            raise Refused(f"{path}: not found (--tune-photos needs a realistic set: backgrounds.txt, images.txt, "
                          f"train_test_split.txt)")
        rows = {}
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            fields = line.split(maxsplit=1)
            if not fields:
                continue
            if len(fields) != 2:
                raise Refused(f"{path}:{lineno}: expected an image id and a value, got {line.strip()!r}")
            rows[fields[0]] = fields[1].strip()
        return rows

    background, images, is_train = table("backgrounds.txt"), table("images.txt"), table("train_test_split.txt")
    train_photos = {background[i] for i in background if is_train.get(i) == "1"}
    unknown = [p for p in photos if p not in train_photos]
    if unknown or not photos:
        raise Refused(f"--tune-photos: {unknown[0] if unknown else '(none)'} is not a background of a training image in "
                      f"{root}; they are: {', '.join(sorted(train_photos))}")
    return [images[i] for i in images if is_train.get(i) == "1" and background.get(i) in photos]


def write_tune_list(path: Path, ids: list[str], comment: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# {comment}\n" + "".join(f"{i}\n" for i in ids))
    return path


def sweep(args: argparse.Namespace, runs: list[dict], data: dict[str, str]) -> int:
    args.work.mkdir(parents=True, exist_ok=True)
    results = args.results or args.work / "results.jsonl"
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
           "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    pending = list(runs)
    rows: list[dict] = []
    # name -> (run, the running process, the commands still to run, log, start time)
    active: dict[str, tuple[dict, subprocess.Popen, list[list[str]], Path, float]] = {}

    def launch(cmd: list[str], log: Path, mode: str) -> subprocess.Popen:
        with log.open(mode) as f:
            return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)

    while pending or active:
        while pending and len(active) < args.jobs and time.perf_counter() - start < args.deadline:
            run = pending.pop(0)
            log = args.work / f"{run['name']}.log"
            first, *rest = commands(run, data, args.work, args.accelerator, args.tune_per_class, args.tune_lists)
            active[run["name"]] = (run, launch(first, log, "w"), rest, log, time.perf_counter())
            print(f"[{time.perf_counter() - start:6.0f} s] start {run['name']}", flush=True)
        for name, (run, proc, rest, log, t0) in list(active.items()):
            if proc.poll() is None:
                continue
            if proc.returncode == 0 and rest:  # trained: now score it on the tune split
                active[name] = (run, launch(rest[0], log, "a"), rest[1:], log, t0)
                continue
            row = finished(run, proc.returncode, args.work, log, time.perf_counter() - t0, args.tune_per_class,
                           args.tune_lists)
            rows.append(row)
            with results.open("a") as f:
                f.write(json.dumps(row) + "\n")
            del active[name]
            gt = row.get("gt_known_loc")
            print(f"[{time.perf_counter() - start:6.0f} s] done {name}: rc {row['rc']}, tune GT-known "
                  f"{gt if gt is None else round(gt, 1)}, tune top-1 cls {row.get('top1_cls')}, "
                  f"{row['wall']} s", flush=True)
        if pending and time.perf_counter() - start >= args.deadline:
            pending.clear()
            print("deadline: no further runs start", flush=True)
        time.sleep(0.5)
    scored = sorted((r for r in rows if r.get("gt_known_loc") is not None), key=lambda r: -r["gt_known_loc"])
    if scored:
        how = f"lists {', '.join(args.tune_lists)}" if args.tune_lists else f"{args.tune_per_class} per class"
        print(f"ranked by GT-known Loc on the tune split ({how}):")
        for i, r in enumerate(scored, 1):
            print(f"  {i:2d}. {r['name']}: {r['gt_known_loc']:.1f}")
        if args.seeds is not None:
            print(f"variants by mean tune GT-known over seeds {' '.join(map(str, args.seeds))} (lowest seed; each):")
            for i, (name, mean, low, each) in enumerate(by_variant(rows), 1):
                missing = "" if len(each) == len(args.seeds) else f", {len(args.seeds) - len(each)} seed(s) not scored"
                print(f"  {i:2d}. {name}: {mean:.1f} (lowest {low:.1f}; {' / '.join(f'{g:.1f}' for g in each)}{missing})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
