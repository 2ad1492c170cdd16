"""Where the time of one `ornet train` goes, split by phase (issue 28).

    cd benchmarks && ../.venv/bin/python bench_train_profile.py --data DIR [--preset demo|demo_cam]
        [--override KEY=VALUE ...] [--threads T] [--out DIR] [--results results/train_profile.md]

Runs `ornet train --config configs/PRESET.yaml --data.root DIR --out OUT --force --quiet --trainer.progress
false [--KEY VALUE ...]` in this process (`ornet.cli.main`), with timed wrappers around the big calls
(functions and methods replaced for the run and put back after it; no per-operation hook, no
torch.profiler; the header gives what the timers cost). Time is exclusive (`PhaseClock`): each moment
counts once, for the innermost phase running, so the rows sum to the wall clock (from before `import
torch` to the run's end). Sections: startup (up to the first stage); each stage (its network's build, the
hand-over of earlier stages' checkpoints, data: PIL decoding, v2 transforms, collate, the loader; the
training forward less the parts timed inside it: stem F_c1, generator F_g, F_c2, frozen evaluator F_e;
backward, optimizer step, checkpoints, map snapshots, Lightning's rest); "<stage>: validation" (each
epoch's validation loop); final evaluation (`evaluate_split`: the class gate's and the threshold's val
passes, the test pass); after training; figures and report (`publish`); unaccounted (between these).
Data rows assume `data.num_workers: 0` (the presets'): with workers the loader row is the wait for them.

--data: any CUB-layout tree (`ornet synth`, `realistic_sets objects`); bench_train_speed.py's
`build_subset` (--subset-classes 20 --subset-train 20) makes the 400-image subset of a set. --threads sets OMP_NUM_THREADS / MKL_NUM_THREADS before torch
is imported, and torch.set_num_threads; without it, torch's default. OUT is trained with --force.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import os
import platform
import sys
import time
import timeit
from pathlib import Path

from machine import cpu_model, git_commit  # benchmarks/ (the script's folder, on sys.path)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RESULTS = ROOT / "benchmarks" / "results" / "train_profile.md"
STARTUP = ("startup", "rest (config, checks, run folder)")
UNACCOUNTED = ("unaccounted", "between the phases (run_stages, metrics.json, Python)")
REST = "rest (Lightning loop, callbacks, logging)"
SIZES = "disk-space check: checkpoint sizes (builds every stage's network)"
FORWARD, VAL_STEP = "training forward (training_step, less its parts timed apart)", "validation step (loss forward)"
DECODE, COLLATE, LOADER = "data: read + decode (PIL)", "data: collate", "data: loader (sampler, fetch)"


class PhaseClock:
    """Exclusive seconds per (section, phase): each moment goes to the innermost phase running. `enter`
    starts a phase (in the running one's section unless given), `exit` ends it; `base` holds the rest."""

    def __init__(self, clock=time.perf_counter, base: tuple[str, str] = STARTUP):
        self.clock = clock
        self.stack = [base]
        self.seconds: dict[tuple[str, str], float] = {}
        self.calls: dict[tuple[str, str], int] = {}
        self.start = self.last = clock()
        self.patches: list[tuple[object, str, object]] = []

    def _charge(self) -> None:
        now = self.clock()
        key = self.stack[-1]
        self.seconds[key] = self.seconds.get(key, 0.0) + now - self.last
        self.last = now

    def enter(self, name: str, section: str | None = None) -> None:
        self._charge()
        key = (section or self.stack[-1][0], name)
        if key != self.stack[-1]:  # a phase inside itself (a Compose in a Compose) is one call
            self.calls[key] = self.calls.get(key, 0) + 1
        self.stack.append(key)

    def exit(self) -> None:
        self._charge()
        self.stack.pop()

    def rebase(self, base: tuple[str, str]) -> None:  # the outermost phase from now on
        self._charge()
        self.stack[0] = base

    def wall(self) -> float:  # seconds since the start, all of them charged
        self._charge()
        return self.last - self.start

    def wrap(self, owner, attr: str, name: str, section=None, when=None, after=None) -> None:
        """Time `owner.attr` (of a module, a class or an instance) as phase `name` until `restore()`.
        section: a str, or a function of the call's arguments; when(args): time this call or not;
        after(result): called with what the call returned."""
        own = attr in vars(owner)  # else inherited (an instance's method): restore() deletes the wrapper
        original = vars(owner)[attr] if own else getattr(owner, attr)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            if when is not None and not when(args):
                return original(*args, **kwargs)
            self.enter(name, section(args) if callable(section) else section)
            try:
                result = original(*args, **kwargs)
            finally:
                self.exit()
            if after is not None:
                after(result)
            return result

        setattr(owner, attr, timed)
        self.patches.append((owner, attr, original if own else None))

    def restore(self) -> None:
        while self.patches:
            owner, attr, original = self.patches.pop()
            setattr(owner, attr, original) if original is not None else delattr(owner, attr)


def install(clock: PhaseClock) -> None:
    """Timed wrappers around the calls that make a run (imports torch, Lightning, ornet: startup)."""
    import lightning as L
    import torch.utils.data.dataloader as loader
    from lightning.pytorch.loops.evaluation_loop import _EvaluationLoop
    from torchvision.transforms import v2

    from ornet.api import train as api_train
    from ornet.data import datamodule, dataset, io, sample
    from ornet.evaluation import outputs, protocols
    from ornet.localization.metrics import BoxAccuracySweep, PxAP
    from ornet.methods import CamMethod, Method, OrnetMethod
    from ornet.methods.base import StageTask
    from ornet.methods.ornet.map_snapshots import MapSnapshots
    from ornet.models import fold_bn
    from ornet.models.cam_network import CAMModel
    from ornet.models.generator import ActivationMapGenerator
    from ornet.models.ornet_network import ORNet
    from ornet.reports import publish
    from ornet.runs import export
    from ornet.training import pipeline, stage_sizes

    def stage(args):  # run_stage(cfg, stage, ...): the stage names the section; the first ends the startup
        clock.rebase(UNACCOUNTED)
        return args[1]

    def validation(args):  # a validation loop inside fit gets a section of its own; a test loop does not
        return f"{clock.stack[-1][0]}: validation" if args[0]._stage == "validate" else None

    def in_step(args):
        return clock.stack[-1][1] in (FORWARD, VAL_STEP)

    def parts(task):  # an ORNet task's stem and F_c2: its instances, so only this task's are timed
        model = getattr(task, "model", None)
        for part, label in (("stem", "stem F_c1"), ("rest_head", "F_c2 (stage-1 head)")):
            if isinstance(model, ORNet) and getattr(model, part, None) is not None:
                clock.wrap(getattr(model, part), "forward", label, when=in_step)

    wraps = [
        (api_train, "check_weight_files", "check_weight_files (network and weight-file checks)"),
        (datamodule, "read_index", "dataset index and image headers"),
        (stage_sizes, "expected_sizes", SIZES),
        (pipeline, "run_stage", REST, stage),
        (Method, "build_task", "build the network", None, lambda args: clock.stack[-1][1] != SIZES, parts),
        (OrnetMethod, "initialise", "hand-over: earlier stages' checkpoints loaded"),
        (StageTask, "training_step", FORWARD), (StageTask, "validation_step", VAL_STEP),
        (ActivationMapGenerator, "forward", "generator F_g", None, in_step),
        (ORNet, "evaluate_masked", "frozen evaluator F_e (masked images)", None, in_step),
        (L.LightningModule, "backward", "backward"),
        (L.LightningModule, "optimizer_step", "optimizer step (Adam's update, zero_grad)"),
        (L.Trainer, "save_checkpoint", "checkpoint writing"),
        (MapSnapshots, "on_train_start", "map snapshots"), (MapSnapshots, "on_train_epoch_end", "map snapshots"),
        (_EvaluationLoop, "run", REST, validation),
        # ORNet's `predict` is `predict_gates` with its own gate; the evaluation passes call the latter
        (ORNet, "predict_gates", "network forward (predict)"), (CAMModel, "predict", "network forward (predict)"),
        (fold_bn, "folded_copy", "BN-folded copy: build and float64 check (its ORNet probes: in network forward)"),
        *[(c, f, f"map metrics: {f}") for c in (BoxAccuracySweep, PxAP) for f in ("update", "compute")],
        (protocols, "evaluate_split", "rest (threshold and class gate choice, summaries)", "final evaluation"),
        *[(m, "final_model", "load the final model", "after training") for m in (OrnetMethod, CamMethod)],
        (export, "export_model", "export the model", "after training"),
        (outputs, "write_outputs", "predictions.csv, curves.json", "after training"),
        (publish, "publish", "rest (drawing, report.html)", "figures and report"),
        # dataset.py binds load_image / collate at import; io and sample serve the lazy importers
        *[(m, f, DECODE) for m in (io, dataset) for f in ("load_image", "load_mask")],
        (v2.Compose, "forward", "data: transforms (v2)"),
        (dataset.WSOLDataset, "__getitem__", "data: sample (to tensor, boxes, masks)"),
        (datamodule, "collate", COLLATE), (sample, "collate", COLLATE),
        (loader._SingleProcessDataLoaderIter, "_next_data", LOADER),
        (loader._MultiProcessingDataLoaderIter, "_next_data", LOADER),
    ]
    for owner, attr, name, *rest in wraps:
        clock.wrap(owner, attr, name, *rest)


def timer_cost(n: int = 20000) -> float:
    """Seconds one timed call adds: a wrapped no-op against the bare one."""
    class Probe:
        def f(self):
            return None

    bare = timeit.timeit(Probe().f, number=n)
    PhaseClock().wrap(Probe, "f", "probe")
    return max(timeit.timeit(Probe().f, number=n) - bare, 0.0) / n


def _shown(path: str) -> str:
    """A path as the header's command shows it (run from benchmarks/): relative there when inside it."""
    p = Path(path).resolve()
    return str(p.relative_to(ROOT / "benchmarks")) if p.is_relative_to(ROOT / "benchmarks") else str(p)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="a CUB-layout data folder (images.txt, ...)")
    p.add_argument("--preset", default="demo", choices=["demo", "demo_cam"])
    p.add_argument("--override", nargs="*", default=[], help="extra train flags as KEY=VALUE (e.g. refine.epochs=3)")
    p.add_argument("--threads", type=int, help="CPU threads (default: torch's own choice)")
    p.add_argument("--out", default="/tmp/ornet-bench/profile", help="the run folder (trained with --force)")
    p.add_argument("--results", default=str(DEFAULT_RESULTS))
    args = p.parse_args()
    if not (Path(args.data) / "images.txt").is_file():
        p.error(f"--data {args.data}: no images.txt (not a CUB-layout folder)")
    if any("=" not in item for item in args.override):
        p.error("--override: expected KEY=VALUE items")
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.threads)
    flags = ["--force", "--quiet", "--trainer.progress", "false",
             *[a for item in args.override for a in (f"--{item.partition('=')[0]}", item.partition("=")[2])]]
    load_before = os.getloadavg()
    clock = PhaseClock()
    clock.enter("imports (torch, Lightning, timm, ornet)")
    install(clock)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from ornet.cli import main as ornet_main
    from ornet.commands import train  # noqa: F401  (what `ornet train` imports first)
    clock.exit()
    try:
        code = ornet_main(["train", "--config", str(ROOT / "configs" / f"{args.preset}.yaml"), "--data.root",
                           str(Path(args.data).resolve()), "--out", str(Path(args.out).resolve()), *flags])
    finally:
        wall = clock.wall()
        clock.restore()
    if code != 0:
        raise SystemExit(f"ornet train failed (exit code {code})")
    total = sum(clock.seconds.values())
    if abs(total - wall) > 1e-6 * max(wall, 1.0):  # the clock's own invariant
        raise RuntimeError(f"the rows sum to {total} s, not the wall clock {wall} s")
    metrics = json.loads((Path(args.out) / "metrics.json").read_text())
    command = (f"cd benchmarks && ../.venv/bin/python bench_train_profile.py --data {_shown(args.data)} "
               f"--preset {args.preset}" + (" --override " + " ".join(args.override) if args.override else "")
               + (f" --threads {args.threads}" if args.threads else "") + f" --out {_shown(args.out)}"
               + ("" if Path(args.results).resolve() == DEFAULT_RESULTS else f" --results {_shown(args.results)}"))
    header = [
        f"- date: {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {cpu_model()}, {os.cpu_count()} cores visible; torch {torch.__version__}, Python "
        f"{platform.python_version()}; threads: " + (f"{args.threads} (--threads)" if args.threads else
                                                     f"torch's default ({torch.get_num_threads()})"),
        f"- commit: {git_commit(ROOT)}",
        f"- command: `{command}`",
        f"- the run, in process: `ornet train --config configs/{args.preset}.yaml --data.root DATA --out OUT "
        f"{' '.join(flags)}`; GT-known Loc {metrics.get('gt_known_loc', float('nan')):.1f} (metrics.json)",
        f"- load average (1 min) before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f} (a figure above "
        "the cores' number means something else ran beside it)",
    ]
    from ornet.runtime.atomic import write_text_atomic

    text = report(clock, wall, metrics, header, timer_cost())
    write_text_atomic(Path(args.results), text)
    print(text + f"\nwrote {args.results}")
    return 0


def report(clock: PhaseClock, wall: float, metrics: dict, header: list[str], cost: float) -> str:
    """The Markdown file: the header, seconds per section, then per phase."""
    sections = list(dict.fromkeys([STARTUP[0], *(k[0] for k in clock.calls), UNACCOUNTED[0]]))
    per_section = {s: sum(v for k, v in clock.seconds.items() if k[0] == s) for s in sections}
    calls = sum(clock.calls.values())
    own = metrics.get("seconds_per_stage") or {}
    stages = [f"{s} {per_section.get(s, 0) + per_section.get(f'{s}: validation', 0):.1f} s / {v:.1f} s"
              for s, v in own.items() if s not in ("evaluation", "total")]
    if "evaluation" in own:
        stages.append(f"final evaluation {per_section.get('final evaluation', 0):.1f} s / {own['evaluation']:.1f} s")
    lines = [
        "# Where the time of one `ornet train` goes", "", *header,
        f"- wall clock {wall:.1f} s, from before `import torch` to the end of the run; the rows sum to it. "
        f"The timers: {calls} timed calls, about {cost * 1e6:.1f} µs each, {calls * cost:.2f} s in all",
        "- exclusive time: each moment counts once, for the innermost phase running (the frozen evaluator "
        "of a forward is in its own row, not in the forward's); sections in the order they start", "",
        "| section | seconds | share |", "| --- | --- | --- |",
        *[f"| {s} | {per_section[s]:.1f} | {100 * per_section[s] / wall:.1f} % |" for s in sections], "",
        "Each stage with its validation, against the run's own clock (metrics.json `seconds_per_stage`): "
        + "; ".join(stages) + ".", "",
        "| section | phase | calls | seconds | share | ms per call |", "| --- | --- | --- | --- | --- | --- |",
    ]
    for s in sections:
        for name, v in sorted(((k[1], v) for k, v in clock.seconds.items() if k[0] == s), key=lambda r: -r[1]):
            n = clock.calls.get((s, name), 0)
            lines.append(f"| {s} | {name} | {n or '-'} | {v:.2f} | {100 * v / wall:.1f} % | "
                         + (f"{1000 * v / n:.1f} |" if n else "- |"))
    lines += [f"| all | | {calls} | {sum(clock.seconds.values()):.2f} | 100.0 % | |", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
