"""`ornet demo`: synthetic data -> ORNet and the CAM baseline -> one comparison table.

It composes the same commands a user would run (`synth`, `train`), in this process, so what
the demo shows is exactly what the commands do.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from ..errors import OrnetError
from ..fsutil import write_json_atomic
from ..presets import preset_path

# (synth options, extra train overrides) for the full run and for the smoke check.
FULL = {"synth": [], "train": []}
FAST = {
    "synth": ["--classes", "4", "--train", "160", "--test", "48", "--size", "64"],
    "train": ["--trainer.max_epochs", "1", "--data.resize", "64", "--data.crop", "64", "--data.val_per_class", "3"],
}
MARKER = ".ornet-demo"
COLUMNS = [("gt_known_loc", "GT-known"), ("top1_loc", "Top-1 Loc"), ("max_box_acc_v2", "MaxBoxAccV2"),
           ("top1_cls", "Top-1 Cls"), ("seconds", "seconds")]


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=(
        "Generate the synthetic benchmark, train ORNet (configs/demo.yaml) and the CAM baseline "
        "(configs/demo_cam.yaml) on it, evaluate both and print a comparison table. "
        "Writes OUT/data, OUT/ornet, OUT/cam and OUT/summary.json."))
    p.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    p.add_argument("--fast", action="store_true", help="a smaller, one-epoch run: a smoke check in about 2 minutes")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and of training (default 0)")
    return p


def _run(command: str, argv: list[str]) -> None:
    from ..cli import main as cli_main

    print(f"$ ornet {command} {' '.join(argv)}", flush=True)
    code = cli_main([command, *argv])
    if code != 0:
        raise OrnetError(f"`ornet {command}` failed with exit code {code} (see the message above)")


def format_table(summary: dict) -> str:
    header = f"{'method':<8}" + "".join(f"{title:>13}" for _, title in COLUMNS)
    lines = [header, "-" * len(header)]
    for method, m in summary.items():
        cells = []
        for key, _ in COLUMNS:
            v = m.get(key)
            cells.append(f"{v:>13.1f}" if isinstance(v, (int, float)) else f"{'-':>13}")
        lines.append(f"{method:<8}" + "".join(cells))
    return "\n".join(lines)


def main(argv: list[str], prog: str) -> int:
    ns = build_parser(prog).parse_args(argv)
    out = Path(ns.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        earlier_demo = (out / MARKER).is_file()
        if not (ns.force or earlier_demo):
            raise OrnetError(f"{out} exists and is not empty; pass --force to replace it")
        print(f"replacing {out}" + (" (an earlier demo's output)" if earlier_demo else ""), flush=True)
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by `ornet demo`; a later demo replaces this folder\n")
    plan = FAST if ns.fast else FULL
    quiet = ["--quiet"] if ns.quiet else []
    seed = ["--seed", str(ns.seed)]
    start = time.perf_counter()
    _run("synth", [str(out / "data"), *plan["synth"], *seed, *quiet])
    summary: dict[str, dict] = {}
    for method, preset in (("ornet", "demo"), ("cam", "demo_cam")):
        t0 = time.perf_counter()
        _run("train", ["--config", str(preset_path(preset)), "--data.root", str(out / "data"),
                       "--out", str(out / method), "--trainer.seed", str(ns.seed), *plan["train"], *quiet])
        metrics = json.loads((out / method / "metrics.json").read_text())
        metrics["seconds"] = round(time.perf_counter() - t0, 1)
        summary[method] = metrics
    write_json_atomic(out / "summary.json", summary)
    print()
    print(format_table(summary))
    gap = summary["ornet"].get("gt_known_loc", 0) - summary["cam"].get("gt_known_loc", 0)
    print(f"\nORNet - CAM on GT-known: {gap:+.1f} points; total {time.perf_counter() - start:.0f} s; "
          f"reports: {out / 'ornet' / 'report.html'}, {out / 'cam' / 'report.html'}")
    return 0
