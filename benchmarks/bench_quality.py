"""Quality benchmark: ORNet (configs/demo.yaml) against the CAM baseline (configs/demo_cam.yaml),
the method zoo (HaS, CutMix, ADL, ACoL, SPG, BAS: configs/demo_<method>.yaml), the map extractors on
the CAM runs (cam+gradcam, ..., cam+pc1: `ornet evaluate --eval.maps`), Grad-CAM (the grad-cam
package on ORNet's trained evaluator) and a pretrained-CAM reference, on the demo's synthetic set
and the realistic sets, over several training seeds; one protocol for all.

    cd benchmarks && ../.venv/bin/python bench_quality.py [--sets synth objects digits]
        [--seeds 0 1 2] [--set-seeds digits=0] [--methods ornet cam gradcam cam_160 | all] [--jobs 2]
        [--method-seeds [SET:]METHOD=S1,S2 ...] [--work DIR] [--data-root DIR] [--override KEY=VALUE ...] [--reuse] [--no-train]
        [--notes results/quality_notes.md] [--results results/quality.md]

Sets (built under --data-root when absent; seeded, byte-reproducible):
- synth: `ornet synth` with the demo's arguments (`ornet.commands.demo.FULL`), the data `make demo` trains on,
  trained as the demo trains it (FULL's train flags: 128 px, the images' own size);
- objects, digits: `realistic_sets objects|digits DIR --seed 0` (the package benchmarks/realistic_sets/:
  tuxpaint photo cut-outs, cluttered handwritten digits on real photos; needs `apt-get install tuxpaint-stamps-default` and the bench extra);
- objects_heldout, digits_heldout: `realistic_sets objects_heldout|digits_heldout DIR --seed 1` (28 other
  stamp classes / the digit split turned round, on tuxpaint-data's template photos; realistic_sets/__init__.py).
synth, objects and digits are TUNING sets (the presets' settings were chosen on their test figures, issue 27);
objects_heldout and digits_heldout are HELD OUT (no setting chosen on them): quote claims from those. The
report marks each set's role and names the command that built it.

Methods: ornet, cam, has, cutmix, adl, acol, spg, bas train their preset; cam+<extractor> (gradcam,
gradcam++, xgradcam, layercam, scorecam, pc1) train nothing: `ornet evaluate WORK/<set>/cam_seed<S>
--eval.maps <extractor> --out WORK/<set>/cam+<extractor>_seed<S>`, once that cam run finished (the run's
own data and eval settings; metrics.json's `maps` names the extractor); likewise ornet+plain scores the
ornet run's own map without the class gate (`ornet evaluate WORK/<set>/ornet_seed<S> --eval.cam_gate '[0]'`).
`--methods all` is those 14; cam_160, gradcam, ornet+plain and the ornet_* ablations run only when named
(the default: ornet cam gradcam cam_160).

Each (set, method, seed) is one subprocess (timed, OMP_NUM_THREADS=--threads), `--jobs` at a time: an
`ornet train`, or an evaluation of a finished run of the same set and seed (cam+<extractor>: the cam
run's; ornet+plain: the ornet run's; gradcam: the stage-0 evaluator of the ornet run, gradcam_eval.py),
which waits for that run.
Runs land in WORK/<set>/<method>_seed<S>; `--reuse` takes finished ones as they are. The report gives,
per set, a row per method (its maps beside it): mean, sample standard deviation and min-max over seeds,
every run, the ORNet - CAM gap per seed, ORNet against the best other row per seed, and the issue's
targets (objects: ORNet GT-known >= 80 and >= CAM + 5 on every seed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

from machine import cpu_model, git_commit  # benchmarks/machine.py (scripts run from benchmarks/)

from ornet.commands.demo import FULL  # the demo's synth arguments and train flags
from ornet.runtime.atomic import write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
METHODS = {  # name -> (preset, extra flags, what it is)
    "ornet": ("configs/demo.yaml", [], "ORNet, `configs/demo.yaml`"),
    "cam": ("configs/demo_cam.yaml", [], "CAM, `configs/demo_cam.yaml`"),
    # the reference for a pretrained CAM: the same Lite0 ImageNet CAM, at 160 px
    "cam_160": ("configs/demo_cam.yaml", ["--data.resize", "160", "--data.crop", "160"],
                "pretrained CAM at 160 px, `configs/demo_cam.yaml --data.resize 160 --data.crop 160`"),
    # no training: Grad-CAM (the grad-cam package) on the stage-0 evaluator of the ornet run of the
    # same set and seed (gradcam_eval.py); its seconds are the evaluation's only
    "gradcam": ("gradcam_eval.py", [], "Grad-CAM on ORNet's stage-0 evaluator (`gradcam_eval.py`)"),
    # ablations of the ORNet preset (bench_ablations.py starts from ornet_attentive_erasing)
    "ornet_paper_loss": ("configs/demo.yaml", ["--method.entropy_weight", "1.5"],
                         "ORNet with the paper's weighted-entropy weight 1.5"),
    "ornet_attentive_erasing": ("configs/demo.yaml", ["--method.erasing", "attentive"],
                                "ORNet with the paper's attentive erasing"),
    # the method zoo (docs/methods.md), each on its demo preset: demo_cam.yaml's network, size and budget
    "has": ("configs/demo_has.yaml", [], "Hide-and-Seek, `configs/demo_has.yaml`"),
    "cutmix": ("configs/demo_cutmix.yaml", [], "CutMix, `configs/demo_cutmix.yaml`"),
    "adl": ("configs/demo_adl.yaml", [], "ADL, `configs/demo_adl.yaml`"),
    "acol": ("configs/demo_acol.yaml", [], "ACoL, `configs/demo_acol.yaml`"),
    "spg": ("configs/demo_spg.yaml", [], "SPG, `configs/demo_spg.yaml`"),
    "bas": ("configs/demo_bas.yaml", [], "BAS, `configs/demo_bas.yaml`"),
}
EXTRACTORS = ("gradcam", "gradcam++", "xgradcam", "layercam", "scorecam", "pc1")
"""The map extractors scored on each CAM run (docs/maps.md; `own` and `cam` are the CAM run's own map)."""
# no training: `ornet evaluate` of the cam run of the same set and seed with another map; seconds: that evaluation's
METHODS.update({f"cam+{e}": (None, ["--eval.maps", e], f"{e} maps of the cam run's network "
                             f"(`ornet evaluate CAM_RUN --eval.maps {e}`, no training)") for e in EXTRACTORS})
# no training: the ornet run of the same set and seed scored on its own map p_a, the class gate off (issue 30)
METHODS["ornet+plain"] = (None, ["--eval.cam_gate", "[0]"], "ORNet's own map p_a without the class gate "
                          "(`ornet evaluate ORNET_RUN --eval.cam_gate '[0]'`, no training)")
ALL = ["ornet", "cam", "has", "cutmix", "adl", "acol", "spg", "bas", *(f"cam+{e}" for e in EXTRACTORS)]
"""`--methods all`: every method and every extractor on CAM (not the ablations, cam_160 or gradcam)."""
KEYS = ["gt_known_loc", "top1_loc", "max_box_acc_v2", "pxap", "top1_cls", "seconds"]
TITLES = ["GT-known Loc", "Top-1 Loc", "MaxBoxAccV2", "PxAP", "Top-1 Cls", "seconds"]
SET_INFO = {
    "synth": "the demo's synthetic set (`ornet demo`'s `ornet synth` arguments, seed 0)",
    "objects": "photographic objects: `realistic_sets objects DIR --seed 0` (28 classes, 128 px)",
    "digits": "cluttered digits: `realistic_sets digits DIR --seed 0` (10 classes, 96 px)",
    "objects_heldout": "photographic objects, held out: `realistic_sets objects_heldout DIR --seed 1` (28 other "
                       "classes, other photos, 128 px)",
    "digits_heldout": "cluttered digits, held out: `realistic_sets digits_heldout DIR --seed 1` (10 classes, the "
                      "digit split turned round, other photos, 96 px)",
}
BUILD_SEED = {"objects": 0, "digits": 0, "objects_heldout": 1, "digits_heldout": 1}
"""The realistic_sets --seed each set is built with (the held-out sets: a seed no tuning set used)."""
HELD_OUT = ("objects_heldout", "digits_heldout")
"""Sets no setting was chosen on; every other set is a tuning set (issue 27)."""


DEFAULT_NOTES = str(ROOT / "benchmarks" / "results" / "quality_notes.md")
DEFAULT_RESULTS = str(ROOT / "benchmarks" / "results" / "quality.md")


def _shown(path: str) -> str:
    """A path as the report's command line shows it: relative to benchmarks/ when inside it, '' quoted."""
    if not path:
        return "''"
    try:
        return str(Path(path).resolve().relative_to(ROOT / "benchmarks"))
    except ValueError:
        return path


def set_role(name: str) -> str:
    """'held out' or 'tuning', as the report marks each set."""
    return "held out" if name in HELD_OUT else "tuning"


def ornet_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("ornet")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "ornet"]


def run(cmd: list[str], log: Path) -> float:
    start = time.perf_counter()
    with log.open("w") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}; see {log}")
    return time.perf_counter() - start


def stats(values: list[float]) -> str:
    """`mean ± sample sd (min-max)`; one run: its value alone (a spread of one run is not 0, it is unknown)."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    mean = statistics.fmean(values)
    return f"{mean:.1f} ± {statistics.stdev(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def build_set(name: str, folder: Path, log: Path) -> str:
    """Create the set when absent; the command that builds it."""
    if name == "synth":
        cmd = [*ornet_cmd(), "synth", str(folder), *FULL["synth"], "--seed", "0", "--quiet"]
    else:
        cmd = [sys.executable, str(ROOT / "benchmarks" / "realistic_sets"), name, str(folder),
               "--seed", str(BUILD_SEED[name])]
    if not (folder / "images.txt").is_file():
        run(cmd, log)
    elif name != "synth":  # a set built earlier must be the one this command names (kind and seed)
        meta = json.loads((folder / "realistic.json").read_text()) if (folder / "realistic.json").is_file() else {}
        if not str(meta.get("generator", "")).endswith(f" {name}") or meta.get("seed") != BUILD_SEED[name]:
            raise SystemExit(f"{folder} holds {meta.get('generator', 'no realistic set')} seed {meta.get('seed')}, "
                             f"not {name} seed {BUILD_SEED[name]}; move it away or pass another --data-root")
    shown = cmd[len(ornet_cmd()):] if name == "synth" else cmd[1:]
    return ("ornet " if name == "synth" else "python ") + " ".join(shown)


def expand_methods(names: list[str]) -> list[str]:
    """--methods as given, `all` replaced by ALL; each method once, in the order first named."""
    out = []
    for name in names:
        out += [m for m in (ALL if name == "all" else [name]) if m not in out]
    return out


def base_method(method: str) -> str | None:
    """The method whose run (same set and seed) a method evaluates instead of training; None: it trains."""
    if method == "gradcam":
        return "ornet"
    return "cam" if method.startswith("cam+") else "ornet" if method.startswith("ornet+") else None


def job_cmd(method: str, data: Path, out: Path, seed: int, extra: list[str], set_args=()) -> list[str]:
    """The command of one (set, method, seed): `ornet train`, or an evaluation of its base method's run."""
    base = out.with_name(f"{base_method(method)}_seed{seed}")
    if method == "gradcam":
        return [sys.executable, str(ROOT / "benchmarks" / "gradcam_eval.py"), str(base), "--out", str(out)]
    if base_method(method):  # the run's data and eval settings (its config.yaml), another map or gate
        return [*ornet_cmd(), "evaluate", str(base), *METHODS[method][1], "--out", str(out), "--force", "--quiet"]
    preset, flags, _ = METHODS[method]
    # a method's own flags win over the set's (cam_160 stays at 160 px on every set)
    pairs = [(k, v) for k, v in zip(set_args[::2], set_args[1::2]) if k not in flags[::2]]
    return [*ornet_cmd(), "train", "--config", preset, "--data.root", str(data), "--out", str(out),
            "--trainer.seed", str(seed), "--trainer.progress", "false", "--force", "--quiet",
            *[a for pair in pairs for a in pair], *flags, *extra]


def make_job(name: str, method: str, seed: int, cmd: list[str], work: Path, jobs: list[dict]) -> dict:
    """One job; an evaluation waits for the job of its base run (`after`), or needs that run finished."""
    key, base = f"{name}/{method}_seed{seed}", base_method(method)
    after = f"{name}/{base}_seed{seed}" if base else None
    if after and after not in {j["key"] for j in jobs}:
        if not (work / after / "metrics.json").is_file():
            raise SystemExit(f"{key} evaluates {work / after}, which is not a finished run: add {base} to --methods")
        after = None
    return {"key": key, "method": method, "cmd": cmd, "out": work / key, "log": work / f"{key}.log", "after": after}


def run_all(jobs: list[dict], parallel: int, threads: int) -> None:
    """Run the jobs' commands, `parallel` at a time; a job waits for the one named in its `after`."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    pending, active, done = list(jobs), {}, set()
    while pending or active:
        for job in list(pending):
            if len(active) >= parallel:
                break
            if job.get("after") and job["after"] not in done:
                continue
            pending.remove(job)
            f = job["log"].open("w")
            active[job["key"]] = (job, subprocess.Popen(job["cmd"], stdout=f, stderr=subprocess.STDOUT, cwd=ROOT,
                                                        env=env), time.perf_counter())
            print(f"start {job['key']}", flush=True)
        for key, (job, proc, t0) in list(active.items()):
            if proc.poll() is None:
                continue
            del active[key]
            if proc.returncode != 0:
                raise SystemExit(f"failed ({proc.returncode}): {' '.join(job['cmd'])}; see {job['log']}")
            metrics_file = job["out"] / "metrics.json"
            metrics = json.loads(metrics_file.read_text())
            if base_method(job["method"]):  # an evaluation: its in-process seconds kept beside the wall clock
                metrics.setdefault("seconds_eval", metrics.get("seconds"))
            metrics["seconds"] = round(time.perf_counter() - t0, 1)  # wall clock of the whole command
            metrics_file.write_text(json.dumps(metrics, indent=2) + "\n")
            done.add(key)
            print(f"done {key}: GT-known {metrics.get('gt_known_loc', 0):.1f}", flush=True)
        time.sleep(1)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", nargs="+", default=["synth", "objects", "digits"], choices=list(SET_INFO))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--set-seeds", nargs="*", default=["digits=0"],
                   help="SET=S1,S2: other training seeds for a set (default: digits=0)")
    p.add_argument("--method-seeds", nargs="*", default=[],
                   help="[SET:]METHOD=S1,S2: run and report a method on these of each set's seeds only "
                        "(e.g. cam+scorecam=0: Score-CAM's forward per channel is slow on a CPU), or of one "
                        "set's (objects:has=0; objects:has= leaves it out there); a set's own item wins over a "
                        "general one")
    p.add_argument("--methods", nargs="+", default=["ornet", "cam", "gradcam", "cam_160"],
                   choices=[*METHODS, "all"], help="all: " + " ".join(ALL))
    p.add_argument("--data-root", default="/tmp/ornet-bench/data", help="where the sets are (built when absent)")
    p.add_argument("--work", default="/tmp/ornet-bench/runs", help="run folders: WORK/<set>/<method>_seed<S>")
    p.add_argument("--jobs", type=int, default=2, help="trainings at once (default 2: one per core)")
    p.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of each run (1: as `ornet demo`)")
    p.add_argument("--override", nargs="*", default=[], help="extra train flags as KEY=VALUE (e.g. refine.epochs=3)")
    p.add_argument("--reuse", action="store_true", help="take runs already finished in --work as they are")
    p.add_argument("--no-train", action="store_true", help="report only the runs already finished")
    p.add_argument("--notes", default=DEFAULT_NOTES,
                   help="a Markdown file of notes the report links (default: results/quality_notes.md, the "
                        "analysis of the committed report; '' for none)")
    p.add_argument("--results", default=DEFAULT_RESULTS)
    args = p.parse_args()
    args.commit = git_commit(ROOT)  # now: the code that trains
    args.methods_given, args.methods = args.methods, expand_methods(args.methods)  # the report quotes the former
    if args.notes and not Path(args.notes).is_file():  # said now, not after hours of training
        p.error(f"--notes {args.notes}: no such file")

    extra = []
    for item in args.override:
        key, _, value = item.partition("=")
        extra += [f"--{key}", value]
    seeds = {s: args.seeds for s in args.sets}
    for item in args.set_seeds:
        name, _, values = item.partition("=")
        if name in seeds:
            seeds[name] = [int(v) for v in values.split(",")]
    args.only = parse_method_seeds(args.method_seeds, args.methods, p, args.sets)
    data_root, work = Path(args.data_root), Path(args.work)
    data_root.mkdir(parents=True, exist_ok=True)
    builds, jobs, commands = {}, [], []
    for name in args.sets:
        (work / name).mkdir(parents=True, exist_ok=True)
        builds[name] = build_set(name, data_root / name, work / f"{name}_build.log")
        commands.append(builds[name])
        for seed in seeds[name]:
            for method in sorted(args.methods, key=lambda m: base_method(m) is not None):  # trainings first
                if seed not in seeds_of(args.only, name, method, [seed]):
                    continue
                out = work / name / f"{method}_seed{seed}"
                cmd = job_cmd(method, data_root / name, out, seed, extra,
                              FULL["train"] if name == "synth" else [])  # as `ornet demo` trains it
                commands.append(("python " + shlex.join(cmd[1:])) if method == "gradcam"
                                else "ornet " + shlex.join(cmd[len(ornet_cmd()):]))
                finished = (out / "metrics.json").is_file()
                if (args.reuse and finished) or args.no_train:
                    continue
                jobs.append(make_job(name, method, seed, cmd, work, jobs))
    run_all(jobs, args.jobs, args.threads)
    results = {name: {m: [] for m in args.methods} for name in args.sets}
    for name in args.sets:
        for seed in seeds[name]:
            for method in args.methods:
                if seed not in seeds_of(args.only, name, method, [seed]):
                    continue
                f = work / name / f"{method}_seed{seed}" / "metrics.json"
                if f.is_file():
                    results[name][method].append({**json.loads(f.read_text()), "seed": seed})
    write_report(Path(args.results), args, seeds, results, commands, builds)
    print(f"wrote {args.results}")
    return 0


def _gap_lines(name: str, runs: dict[str, list[dict]]) -> list[str]:
    if not runs.get("ornet") or not runs.get("cam"):
        return []
    cam = {r["seed"]: r for r in runs["cam"]}
    pairs = [(o["seed"], o["gt_known_loc"], o["gt_known_loc"] - cam[o["seed"]]["gt_known_loc"])
             for o in runs["ornet"] if o["seed"] in cam]
    if not pairs:
        return []
    out = [f"ORNet - CAM, GT-known Loc, per seed: {', '.join(f'{g:+.1f}' for _, _, g in pairs)} "
           f"(mean {statistics.fmean(g for _, _, g in pairs):+.1f} points)."]
    if name in ("objects", "objects_heldout"):
        ok = all(v >= 80 and g >= 5 for _, v, g in pairs)
        out.append(f"Target (ORNet >= 80 and >= CAM + 5 on every seed): {'met' if ok else 'NOT met'} "
                   f"({', '.join(f'seed {s}: {v:.1f}, {g:+.1f}' for s, v, g in pairs)}).")
    plain = [(o["seed"], o["gt_known_loc"] - cam[o["seed"]]["gt_known_loc"]) for o in runs.get("ornet+plain", [])
             if o["seed"] in cam]
    if plain:
        ok = all(g >= 5 for _, g in plain)
        out.append(f"ORNet's plain map (ornet+plain, no class gate) - CAM, GT-known Loc, per seed: "
                   f"{', '.join(f'{g:+.1f}' for _, g in plain)}; target (>= CAM + 5 on every seed, issue 30): "
                   f"{'met' if ok else 'NOT met'}.")
    return out


def _best_other_lines(runs: dict[str, list[dict]]) -> list[str]:
    """ORNet's GT-known Loc against the best other row of each seed: another method or extractor (gradcam and
    cam+<extractor> count; ORNet's ablations, ornet_*, do not)."""
    parts = []
    for o in runs.get("ornet", []):
        others = [(r["gt_known_loc"], m) for m, rs in runs.items() if not m.startswith("ornet")
                  for r in rs if r["seed"] == o["seed"] and isinstance(r.get("gt_known_loc"), (int, float))]
        if others:
            best, method = max(others)
            gap = round(o["gt_known_loc"] - best, 1)
            word = "level with" if gap == 0 else f"ahead by {gap:.1f}" if gap > 0 else f"behind by {-gap:.1f}"
            parts.append(f"seed {o['seed']}: {word} ({o['gt_known_loc']:.1f} vs {method} {best:.1f})")
    line = f"ORNet against the best other method or extractor, GT-known Loc, per seed: {'; '.join(parts)}."
    return [line] if parts else []


def _maps(method: str, run: dict) -> str:
    """The map a run was scored on, as its metrics.json records it (gradcam_eval.py's: its `method`)."""
    return str(run.get("method", "gradcam")) if method == "gradcam" else str(run.get("maps", "own"))


def _gate_cell(run: dict) -> str:
    """metrics.json's class gate: the chosen exponent and, when candidates were scored, their val GT-known."""
    if run.get("cam_gate") is None:
        return "-"
    scores = run.get("cam_gate_scores") or {}
    detail = " / ".join(f"{float(v):.1f}" for _, v in sorted(scores.items(), key=lambda kv: float(kv[0])))
    return f"{float(run['cam_gate']):g}" + (f" ({detail})" if detail else "")


def parse_method_seeds(items: list[str], methods: list[str], parser, sets: list[str] | None = None) -> dict[str, list[int]]:
    """--method-seeds [SET:]METHOD=S1,S2 ... as {method or "SET:method": seeds}; a method not in --methods, a set
    not in --sets or a bad seed: an error."""
    only = {}
    for item in items:
        key, _, values = item.partition("=")
        set_name, _, method = key.rpartition(":")
        if method not in methods:
            parser.error(f"--method-seeds {item}: {method!r} is not one of --methods ({' '.join(methods)})")
        if set_name and sets is not None and set_name not in sets:
            parser.error(f"--method-seeds {item}: {set_name!r} is not one of --sets ({' '.join(sets)})")
        try:
            only[key] = [int(v) for v in values.split(",")] if values else []  # none: not on that set
        except ValueError:
            parser.error(f"--method-seeds {item}: seeds must be integers, as METHOD=0,1")
    return only


def seeds_of(only: dict, set_name: str | None, method: str, default=None):
    """The seeds --method-seeds gives `method` on `set_name` (its set's own item first), else `default`."""
    return only.get(f"{set_name}:{method}", only.get(method, default))


def _missing(runs: dict, wanted: list[int], only: dict | None = None, set_name: str | None = None) -> str:
    """` NOT FINISHED (not in the tables): ornet seed 2.` when some (method, seed) has no run yet; a method
    of --method-seeds is wanted on its own seeds only (those said in ` Run on fewer seeds: ...`)."""
    only = only or {}
    gone = [f"{m} seed {s}" for m, rs in runs.items() for s in wanted
            if s in seeds_of(only, set_name, m, [s]) and s not in {r["seed"] for r in rs}]
    fewer = []
    for m in runs:
        ss = seeds_of(only, set_name, m)
        if ss is None:
            continue
        kept = [s for s in wanted if s in ss]
        if kept != wanted:
            fewer.append(f"{m} seed{'s' if len(kept) > 1 else ''} {' '.join(map(str, kept))}" if kept
                         else f"{m} on none (not run on this set)")
    return ((f" Run on fewer seeds (`--method-seeds`): {', '.join(fewer)}." if fewer else "")
            + (f" NOT FINISHED (not in the tables): {', '.join(gone)}." if gone else ""))


def write_report(path: Path, args, seeds: dict, results: dict, commands: list[str], builds: dict) -> None:
    import torch

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    lines = [
        "# Quality: ORNet against the other methods and map extractors, one protocol",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- commit: {args.commit} " + ("(the code that wrote this report; --no-train: the runs found finished "
                                       "in --work are reported as they are)" if args.no_train else
                                       "(the code that trained the runs" + ("; --reuse: runs found finished in --work "
                                                                             "are reported as they are)" if args.reuse else ")")),
        f"- machine: {cpu_model()}, {os.cpu_count()} cores visible, {args.threads} thread(s) per training run, "
        f"{args.jobs} runs at a time; torch {torch.__version__}, Python {platform.python_version()}"
        + (f"; load average at the end {load[0]:.1f}" if load else ""),
        "- methods: " + "; ".join(f"{m} = {METHODS[m][2]}" for m in args.methods)
        + (f"; overrides: `{' '.join(args.override)}`" if args.override else ""),
        "- command: `cd benchmarks && ../.venv/bin/python bench_quality.py --sets " + " ".join(args.sets)
        + " --seeds " + " ".join(map(str, args.seeds)) + " --set-seeds " + " ".join(args.set_seeds)
        + (" --method-seeds " + " ".join(args.method_seeds) if args.method_seeds else "")
        + " --methods " + " ".join(args.methods_given) + f" --jobs {args.jobs}"
        + (" --override " + " ".join(args.override) if args.override else "")
        + "".join(f" --{k} {v}" for k, v in (("data-root", args.data_root), ("work", args.work)))
        + (" --reuse" if args.reuse else "") + (" --no-train" if args.no_train else "")
        + "".join(f" --{k} {_shown(v)}" for k, v, d in (("notes", args.notes, DEFAULT_NOTES),
                                                        ("results", args.results, DEFAULT_RESULTS))
                  if not v or Path(v).resolve() != Path(d))
        + "`",
        "- sets: " + "; ".join(f"{n} ({set_role(n)})" for n in args.sets) + ". Tuning sets: the presets' settings "
        "were chosen on their test figures, so they are no evidence for a claim; held-out sets: no setting was "
        "chosen on them (benchmarks/realistic_sets/__init__.py).",
        "- threshold chosen on the held-out val split (5 images per class carved from train), applied to test;",
        "  boxes from the largest region, IoU >= 0.5, maps min-max normalised (wsolevaluation conventions).",
        "- seconds: wall clock of the whole `ornet train` (all stages + evaluation + figures), with another",
        "  training beside it on the other core; for gradcam, cam+<extractor> and ornet+plain, no training: the wall",
        "  clock of the evaluation command only (`gradcam_eval.py`, `ornet evaluate`: loading, maps of val and test, scoring).",
        "- maps: the map each run was scored on, from its metrics.json (`maps`; own: the method's own map).",
        "",
    ]
    for name, runs in results.items():
        lines += [f"## {name} ({set_role(name).upper()} set): {SET_INFO[name]}", "",
                  f"Built by `{builds[name]}`.", "",
                  f"Training seeds: {' '.join(map(str, seeds[name]))}."
                  + _missing(runs, seeds[name], args.only, name), "",
                  "| method | maps | seeds | " + " | ".join(TITLES) + " |", "| --- | --- | --- |" + " --- |" * len(TITLES)]
        for method, rs in runs.items():
            cells = [stats([r[k] for r in rs if isinstance(r.get(k), (int, float))]) for k in KEYS]
            maps = " / ".join(sorted({_maps(method, r) for r in rs})) or "-"
            ran = " ".join(str(r["seed"]) for r in sorted(rs, key=lambda r: r["seed"])) or "-"
            lines.append(f"| {method} | {maps} | {ran} | " + " | ".join(cells) + " |")
        lines += ["", "mean ± sample standard deviation (min-max) over seeds; a row of one seed: that run's figure.", ""]
        lines += _gap_lines(name, runs) + _best_other_lines(runs)
        lines += ["", "| method | maps | seed | " + " | ".join(TITLES)
                  + " | threshold | class gate (val GT-known: none / each) |",
                  "| --- | --- | --- |" + " --- |" * len(TITLES) + " --- | --- |"]
        for method, rs in runs.items():
            for r in rs:
                cells = [f"{r[k]:.1f}" if isinstance(r.get(k), (int, float)) else "-" for k in KEYS]
                lines.append(f"| {method} | {_maps(method, r)} | {r['seed']} | " + " | ".join(cells)
                             + f" | {r.get('threshold') or 0:.2f} | {_gate_cell(r)} |")
        lines += ["", "class gate: the exponent of ORNet's class gate chosen on val (`eval.cam_gate`, "
                  "docs/method.md; 0: none), with each candidate's val GT-known.", ""]
    if args.notes:  # hand-written, so linked, never copied into a generated file
        link = os.path.relpath(Path(args.notes).resolve(), path.resolve().parent)
        lines += [f"Notes on these numbers (written by hand, not generated): [{Path(args.notes).name}]({link}).", ""]
    lines += ["## Commands", "", "```", *commands, "```", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, "\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
