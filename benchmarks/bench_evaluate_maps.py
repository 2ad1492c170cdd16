"""`ornet evaluate-maps` against wsolevaluation's own evaluators, whole processes, same numbers.

    python benchmarks/bench_evaluate_maps.py --wsolevaluation DIR [--repeats 3] [--scale 50000]

DIR is a checkout of clovaai/wsolevaluation outside this repository (its code is run, never
copied); it needs torch, torchvision, opencv and ``munch`` importable (``pip install munch``).
Its evaluators use ``np.float``, gone since numpy 1.24: the runner sets ``numpy.float = float``
before importing them, nothing else. wsolevaluation is fed as its ``evaluate_wsol`` feeds it:
float32 maps read from ``<id>.npy`` by its ``CamDataset``, as float64 (``t2n``), one process
(its DataLoader with 4 workers was no faster on this 2-core machine).

Cases (maps from benchmarks/wsol_maps.py, seeded, in a temporary folder): 700 real CUB test
images and 300 real ILSVRC val images with several boxes, realistic maps, largest contour
(MaxBoxAcc) and every contour (MaxBoxAccV2); PxAP on 150 OpenImages-layout images; and the
smooth one-blob CUB maps of the first benchmark. Each case runs both tools alternately,
``--repeats`` times; the best wall time counts, and every run's numbers must be identical.
``--scale N`` adds a run of ``ornet evaluate-maps`` on N realistic maps (ILSVRC val ids, repeated),
with its wall time and peak memory. Writes benchmarks/results/evaluate_maps.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata as importlib_metadata
from pathlib import Path

import wsol_maps
from machine import cpu_model  # benchmarks/machine.py (scripts run from benchmarks/)

HERE = Path(__file__).resolve().parent
META = Path("/work/shared/data/wsol-metadata")


def run_wsolevaluation(ws: str, kind: str, meta: str, maps: str, mask_root: str, multi: bool, interval: float):
    """In a child process: wsolevaluation's BoxEvaluator / MaskEvaluator over every map; prints JSON."""
    sys.path.insert(0, ws)
    import numpy as np

    np.float = float  # removed in numpy 1.24; wsolevaluation still uses it
    import evaluation as E  # wsolevaluation's module
    from data_loaders import configure_metadata, get_image_ids

    md = configure_metadata(meta)
    ids = get_image_ids(md)
    common = dict(metadata=md, split="test", cam_threshold_list=list(np.arange(0, 1, interval)),
                  iou_threshold_list=[30, 50, 70], multi_contour_eval=multi)
    if kind == "mask":
        evaluator = E.MaskEvaluator(dataset_name="OpenImages", mask_root=mask_root, **common)
    else:
        evaluator = E.BoxEvaluator(dataset_name="CUB", mask_root=None, **common)
    dataset = E.CamDataset(maps, ids)
    for k in range(len(ids)):
        cam, image_id = dataset[k]
        evaluator.accumulate(cam.astype(np.float64), image_id)
    result = evaluator.compute()
    print(json.dumps({"pxap": float(result)} if kind == "mask" else {"max_box_acc": [float(a) for a in result]}))


def timed(cmd: list[str]) -> tuple[float, float, str]:
    """Wall and CPU seconds (user + system of the process and its children) and stdout of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, proc.stdout


def numbers(tool: str, stdout: str):
    """The numbers both tools report, in one form: MaxBoxAcc at IoU 30/50/70, or PxAP."""
    out = json.loads(stdout.strip().splitlines()[-1]) if tool == "ws" else json.loads(stdout)
    if "pxap" in out:
        return ("pxap", out["pxap"])
    acc = out["max_box_acc"]
    return ("max_box_acc", tuple(acc) if isinstance(acc, list) else tuple(acc[k] for k in ("30", "50", "70")))


def make_cases(tmp: Path, args) -> list[dict]:
    cub = wsol_maps.pick_ids(META / "CUB/test", args.cub)
    ilsvrc = wsol_maps.pick_ids(META / "ILSVRC/val", args.ilsvrc, min_boxes=2)
    cases = []
    for name, src, ids, kind in (("CUB", META / "CUB/test", cub, "realistic"),
                                 ("ILSVRC", META / "ILSVRC/val", ilsvrc, "realistic"),
                                 ("CUB smooth", META / "CUB/test", cub, "smooth")):
        meta, maps = wsol_maps.box_case(src, tmp / name.replace(" ", "_"), ids, kind, seed=0)
        for multi in (False, True):
            cases.append(dict(name=f"{name}, {'every contour (MaxBoxAccV2)' if multi else 'largest contour (MaxBoxAcc)'}",
                              n=len(ids), meta=meta, maps=maps, mask_root=None, multi=multi, main=kind == "realistic"))
    meta, maps, masks = wsol_maps.mask_case(tmp / "OpenImages", args.pxap, seed=0)
    cases.append(dict(name="OpenImages-layout masks, PxAP", n=args.pxap, meta=meta, maps=maps, mask_root=masks,
                      multi=False, main=True))
    return cases


def commands(case: dict, args) -> dict[str, list[str]]:
    interval = str(args.interval)
    ornet = [sys.executable, "-m", "ornet", "evaluate-maps", "--metadata", str(case["meta"]),
             "--scoremaps", str(case["maps"]), "--cam-curve-interval", interval, "--workers", str(args.workers)]
    if case["mask_root"] is not None:
        ornet += ["--mask-root", str(case["mask_root"])]
    if case["multi"]:
        ornet.append("--multi-contour")
    ws = [sys.executable, __file__, "--run-wsolevaluation", str(args.wsolevaluation),
          "mask" if case["mask_root"] is not None else "box", str(case["meta"]), str(case["maps"]),
          str(case["mask_root"] or ""), str(int(case["multi"])), interval]
    return {"ws": ws, "ornet": ornet}


def scale_run(tmp: Path, args) -> dict:
    """``ornet evaluate-maps`` on args.scale map files (the 10,000 ILSVRC val ids, repeated under
    prefixes; a repeat is a hard link to the first copy's map): wall time and the peak resident
    memory of its largest process (the main one or a worker)."""
    ids = wsol_maps.pick_ids(META / "ILSVRC/val", min(args.scale, 10000))
    copies = -(-args.scale // len(ids))
    need = len(ids) * (224 * 224 * 4 + 128) * 1.2
    free = shutil.disk_usage(tmp).free
    if free < need:
        raise SystemExit(f"--scale {args.scale} needs {need / 1e9:.1f} GB in {tmp}, {free / 1e9:.1f} GB free")
    t0 = time.perf_counter()
    meta, maps = wsol_maps.box_case(META / "ILSVRC/val", tmp / "scale", ids, "realistic", seed=1, copies=copies,
                                    workers=2)
    made = time.perf_counter() - t0
    n = len((meta / "image_ids.txt").read_text().split())
    probe = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
             "p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
             "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, p.returncode); "
             "print(p.stdout if p.returncode == 0 else p.stderr)")
    runs = []
    for multi in (False, True):
        cmd = [sys.executable, "-c", probe, sys.executable, "-m", "ornet", "evaluate-maps", "--metadata", str(meta),
               "--scoremaps", str(maps), "--cam-curve-interval", str(args.interval), "--workers", str(args.workers)]
        out = subprocess.run(cmd + (["--multi-contour"] if multi else []), capture_output=True, text=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1"}).stdout
        head, body = out.split("\n", 1)
        wall, rss_kb, rc = head.split()
        if rc != "0":
            raise SystemExit(f"scale run failed:\n{body[-3000:]}")
        runs.append(dict(multi=multi, wall=float(wall), rss_mb=int(rss_kb) / 1024, result=json.loads(body)))
    shutil.rmtree(tmp / "scale")
    return dict(n=n, distinct=len(ids), made=made, runs=runs)


def machine() -> str:
    versions = []
    for pkg in ("numpy", "opencv-python-headless", "torch"):
        try:
            versions.append(f"{pkg} {importlib_metadata.version(pkg)}")
        except importlib_metadata.PackageNotFoundError:
            pass
    return f"{cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}, {', '.join(versions)}"


def report(args, rows: list, scale: dict | None, loads: list[float]) -> str:
    main = [r for r in rows if r["main"]]
    lines = [
        "# `ornet evaluate-maps` against wsolevaluation",
        "",
        f"- date: {dt.datetime.now():%Y-%m-%d %H:%M}; machine: {machine()}",
        f"- command: `python benchmarks/bench_evaluate_maps.py --wsolevaluation DIR --repeats {args.repeats}"
        f"{f' --scale {args.scale}' if args.scale else ''}` (wsolevaluation at DIR: clovaai/wsolevaluation, "
        f"commit {args.ws_commit})",
        f"- maps: benchmarks/wsol_maps.py, seeded, 224 x 224 float32 `.npy`; {len(rows[0]['runs_ws'])} runs of each "
        f"tool per case, alternating; thresholds numpy.arange(0, 1, {args.interval}); ornet with "
        f"--workers {args.workers}",
        "- times: whole processes (interpreter start, imports, metadata, reading maps, evaluation), best (and "
        "median) wall seconds; CPU = user + system of the process and its workers, best run",
        f"- load average during the runs: {min(loads):.1f} to {max(loads):.1f} on {os.cpu_count()} cores: the "
        "machine was shared with other jobs, so the best of the alternating runs is the fairer figure",
        "- numbers: identical in every run of every case (checked; the table shows them)",
        "- the \"all five\" row sums the realistic CUB and ILSVRC rows and PxAP; the smooth rows are the first benchmark's one-blob maps without noise, where wsolevaluation traces few contours and the gap is smallest",
        "",
        "| case | maps | ornet s | ornet CPU s | wsolevaluation s | wsolevaluation CPU s | speed-up | numbers (both) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        o, w = r["runs_ornet"], r["runs_ws"]
        ob, wb = min(x[0] for x in o), min(x[0] for x in w)
        med = lambda xs: sorted(x[0] for x in xs)[len(xs) // 2]  # noqa: E731
        value = r["numbers"][1]
        shown = f"PxAP {value:.4f}" if r["numbers"][0] == "pxap" else "MaxBoxAcc " + "/".join(f"{v:.2f}" for v in value)
        lines.append(f"| {r['name']} | {r['n']} | {ob:.2f} ({med(o):.2f}) | {min(x[1] for x in o):.2f} | {wb:.2f} "
                     f"({med(w):.2f}) | {min(x[1] for x in w):.2f} | {wb / ob:.1f}x | {shown} |")
    total_o = sum(min(x[0] for x in r["runs_ornet"]) for r in main)
    total_w = sum(min(x[0] for x in r["runs_ws"]) for r in main)
    lines.append(f"| all five realistic cases | | {total_o:.2f} | | {total_w:.2f} | | {total_w / total_o:.1f}x | |")
    if scale:
        thresholds = len(__import__("numpy").arange(0, 1, args.interval))
        lines += ["", f"## ILSVRC scale: {scale['n']:,} realistic maps, {thresholds} thresholds", "",
                  f"The {scale['distinct']:,} ILSVRC val ids, {scale['n'] // scale['distinct']} times under prefixes: "
                  f"{scale['n']:,} map files ({scale['n'] * 224 * 224 * 4 / 1e9:.1f} GB as read), of which the repeats are "
                  f"hard links to the first copy ({scale['distinct'] * 224 * 224 * 4 / 1e9:.1f} GB on disk: this shared "
                  f"machine had under 10 GB free); made in {scale['made']:.0f} s in a temporary folder, deleted after; one run of "
                  f"`ornet evaluate-maps --workers {args.workers}` each; peak memory = the largest resident set of "
                  "its processes (the main one or a worker).", "",
                  "| boxes | wall s | maps/s | peak memory MB | MaxBoxAcc 30/50/70 |", "| --- | --- | --- | --- | --- |"]
        for run in scale["runs"]:
            acc = "/".join(f"{v:.2f}" for v in run["result"]["max_box_acc"].values())
            lines.append(f"| {'every contour' if run['multi'] else 'largest contour'} | {run['wall']:.1f} | "
                         f"{scale['n'] / run['wall']:.0f} | {run['rss_mb']:.0f} | {acc} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--wsolevaluation", type=Path, help="checkout of clovaai/wsolevaluation (outside this repo)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--cub", type=int, default=700)
    p.add_argument("--ilsvrc", type=int, default=300)
    p.add_argument("--pxap", type=int, default=150)
    p.add_argument("--interval", type=float, default=0.01)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--scale", type=int, default=0, help="also time ornet on this many maps (0: no)")
    p.add_argument("--tmp", type=Path, default=None, help="where to write the maps (default: system temp)")
    p.add_argument("--out", type=Path, default=HERE / "results" / "evaluate_maps.md")
    p.add_argument("--run-wsolevaluation", nargs=7, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.run_wsolevaluation:
        ws, kind, meta, maps, mask_root, multi, interval = args.run_wsolevaluation
        run_wsolevaluation(ws, kind, meta, maps, mask_root, multi == "1", float(interval))
        return
    if args.wsolevaluation is None or not (args.wsolevaluation / "evaluation.py").is_file():
        raise SystemExit("--wsolevaluation DIR: a checkout of clovaai/wsolevaluation (DIR/evaluation.py) is needed")
    git = subprocess.run(["git", "-C", str(args.wsolevaluation), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True)
    args.ws_commit = git.stdout.strip() if git.returncode == 0 else "96f4b88"
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="bench_evaluate_maps_", dir=args.tmp) as tmp:
        cases = make_cases(Path(tmp), args)
        rows = [dict(case, runs_ws=[], runs_ornet=[], numbers=None) for case in cases]
        for rep in range(args.repeats):  # alternating, so that a busy spell hits both tools alike
            for row in rows:
                cmds = commands(row, args)
                for tool in (("ws", "ornet") if rep % 2 == 0 else ("ornet", "ws")):
                    wall, cpu, out = timed(cmds[tool])
                    got = numbers(tool, out)
                    if row["numbers"] is None:
                        row["numbers"] = got
                    elif got != row["numbers"]:
                        raise SystemExit(f"{row['name']}: {tool} gave {got}, earlier {row['numbers']}")
                    row[f"runs_{tool}"].append((wall, cpu))
                loads.append(os.getloadavg()[0])
                print(f"[{rep + 1}/{args.repeats}] {row['name']}: ornet {row['runs_ornet'][-1][0]:.2f} s, "
                      f"wsolevaluation {row['runs_ws'][-1][0]:.2f} s", flush=True)
        scale = scale_run(Path(tmp), args) if args.scale else None
    text = report(args, rows, scale, loads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
