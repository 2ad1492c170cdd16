"""What one of `ornet localize`'s defaults costs or saves: whole `ornet localize` commands on a folder of images
with its defaults and with the flags `--off` (default ``--no-keep-freed-memory``: glibc's default malloc, every
tensor above its mmap threshold mapped and unmapped on each allocation, instead of freed memory kept for reuse,
`runtime/heap.py`).

    .venv/bin/python benchmarks/studies/localize_cost.py --model RUN --images DIR_OR_GLOB [--off FLAGS] \\
        [--batch-sizes 16 64] [--rounds 3] [--results FILE]

Each command is a fresh process (the malloc setting acts on a whole process), the two variants alternating over
`--rounds` rounds for each batch size. A row gives the median wall seconds of the whole command (start,
loading the model, every batch, overlays and boxes.json), images per second, the command's minor page
faults (the kernel zero-filling fresh pages) and its peak resident memory, from `os.wait4`. The two variants'
boxes.json are compared: `--exact` requires them equal (the malloc setting changes where memory comes from,
not a number); otherwise the number of images whose boxes differ is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCH))
from machine import cpu_model, git_commit, run_measured  # noqa: E402  (benchmarks/machine.py)

ROOT = BENCH.parent


def command(model: Path, images: str, out: Path, batch: int, flags: list[str]) -> list[str]:
    return [sys.executable, "-m", "ornet", "localize", str(model), images, "--out", str(out), "--force",
            "--quiet", "--batch-size", str(batch), *flags]


def timed(cmd: list[str], log: Path) -> dict:
    """Wall seconds, minor page faults and peak resident MiB of one command (`machine.run_measured`: this
    script imports no torch before the commands), its output in `log`; a failure stops the study with the end
    of that output (the log is in a temporary folder)."""
    with log.open("w") as f:
        code, seconds, usage = run_measured(cmd, f)
    if code != 0:
        raise SystemExit(f"failed ({code}): {shlex.join(cmd)}\n{log.read_text()[-2000:]}")
    return {"seconds": seconds, "faults": usage.ru_minflt, "peak_mib": usage.ru_maxrss / 1024}


def boxes(out: Path) -> dict:
    return {entry["file"]: entry["boxes"] for entry in json.loads((out / "boxes.json").read_text())["images"]}


def study(model: Path, images: str, off: list[str], batch_sizes: list[int], rounds: int, work: Path,
          exact: bool = False, measure=timed) -> tuple[list[dict], int, int]:
    """Rows (batch, variant, medians), the number of images and of images whose boxes differ between the two
    variants (the last batch size's outputs; `exact`: a difference stops the study); `measure` runs one
    command (tests stub it)."""
    rows, count, differ = [], 0, 0
    for batch in batch_sizes:
        outs = {default: work / f"b{batch}_{'default' if default else 'off'}" for default in (False, True)}
        runs: dict[bool, list[dict]] = {False: [], True: []}  # True: the defaults
        for r in range(rounds):
            for default in ((False, True) if r % 2 == 0 else (True, False)):
                cmd = command(model, images, outs[default], batch, [] if default else off)
                runs[default].append(measure(cmd, work / f"{outs[default].name}_{r}.log"))
        found = {default: boxes(out) for default, out in outs.items()}
        count = len(found[True])
        differ = sum(found[False].get(name) != got for name, got in found[True].items())
        if exact and (differ or found[False].keys() != found[True].keys()):
            raise SystemExit(f"batch {batch}: boxes.json differs between the two variants ({differ} images)")
        for default in (False, True):
            med = {key: statistics.median(run[key] for run in runs[default]) for key in ("seconds", "faults", "peak_mib")}
            rows.append({"batch": batch, "default": default, **med,
                         "all_seconds": [run["seconds"] for run in runs[default]]})
    return rows, count, differ


def table(rows: list[dict], count: int, off: list[str]) -> str:
    lines = ["| batch | variant | seconds (median; each run) | images / s | minor page faults | peak memory (MiB) |",
             "| --- | --- | --- | --- | --- | --- |"]
    by = {(r["batch"], r["default"]): r for r in rows}
    for batch in sorted({r["batch"] for r in rows}):
        for default in (False, True):
            r = by[batch, default]
            label = "the defaults" if default else f"`{shlex.join(off)}`"
            each = " / ".join(f"{s:.1f}" for s in r["all_seconds"])
            lines.append(f"| {batch} | {label} | {r['seconds']:.1f} ({each}) | {count / r['seconds']:.1f} | "
                         f"{r['faults']:,.0f} | {r['peak_mib']:,.0f} |")
        lines.append(f"| {batch} | off / defaults | {by[batch, False]['seconds'] / by[batch, True]['seconds']:.2f}x "
                     f"| | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, type=Path, help="a trained run folder (or its model.json)")
    parser.add_argument("--images", required=True, help="a folder of images, or a glob pattern (quoted), to localize")
    parser.add_argument("--off", default="--no-keep-freed-memory",
                        help="the flags of the variant timed against the defaults (default: --no-keep-freed-memory)")
    parser.add_argument("--exact", action="store_true", help="the two variants' boxes must be equal")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[16, 64])
    parser.add_argument("--rounds", type=int, default=3, help="commands per batch size and variant (default 3)")
    parser.add_argument("--results", type=Path, default=None, help="write the table here (markdown)")
    args = parser.parse_args(argv)
    off = shlex.split(args.off)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="localize_cost_") as work:
        rows, count, differ = study(args.model.resolve(), args.images, off, args.batch_sizes, args.rounds,
                                    Path(work), args.exact)
    import torch  # after the commands: only for the version line

    text = "\n".join([
        f"# `ornet localize` with its defaults against `{args.off}` (issue 28)", "",
        f"Written by `.venv/bin/python benchmarks/studies/localize_cost.py --model {args.model} --images "
        f"{shlex.quote(args.images)} --off={shlex.quote(args.off)}" + (" --exact" if args.exact else "")
        + f" --batch-sizes {' '.join(map(str, args.batch_sizes))} --rounds {args.rounds}"
        + (f" --results {args.results}" if args.results else "") + "`; do not edit by hand.", "",
        f"- date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- machine: {cpu_model()}, {os.cpu_count()} cores visible; torch {torch.__version__}, Python "
        f"{platform.python_version()}; threads: torch's default",
        f"- commit: {git_commit(ROOT)}",
        f"- load average (1 min) at the start / end: {load[0]:.2f} / {os.getloadavg()[0]:.2f}",
        f"- {count} images; each row's commands are fresh processes, the two variants alternating; images whose "
        f"boxes differ between the variants (batch {args.batch_sizes[-1]}): {differ}", "",
        table(rows, count, off), ""])
    print(text)
    if args.results:
        args.results.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
