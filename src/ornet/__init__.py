"""ornet: weakly supervised object localization (ORNet, ICCV 2021) and baselines.

The public API (docs/api.md); every ``ornet`` command is a thin shell over it::

    import ornet

    loc = ornet.load_model("runs/ornet")                 # a run folder, model.json or a checkpoint
    pred = loc.predict(["photo.jpg"])                    # maps, boxes in original pixels, classes
    cfg = ornet.load_config("demo", {"data.root": "data/synth"})
    metrics = ornet.train(cfg, "runs/demo")              # stages, evaluation, export
    result = ornet.evaluate("runs/demo", split="test")   # EvalResult: metrics, rows, curves

Names are imported on first use (PEP 562), so ``import ornet`` stays cheap and torch-free.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# public name -> (module, attribute there)
_EXPORTS: dict[str, tuple[str, str]] = {
    # a trained model on images
    "load_model": ("ornet.inference.loading", "load_model"),
    "Localizer": ("ornet.inference.localizer", "Localizer"),
    "Prediction": ("ornet.inference.localizer", "Prediction"),
    "FilePrediction": ("ornet.inference.on_files", "FilePrediction"),
    # configs, data, training, evaluation
    "RunConfig": ("ornet.config.schema", "RunConfig"),
    "load_config": ("ornet.api.config", "load_config"),
    "read_dataset": ("ornet.api.data", "read_dataset"),
    "make_synthetic": ("ornet.api.data", "make_synthetic"),
    "train": ("ornet.api.train", "train"),
    "evaluate": ("ornet.api.evaluate", "evaluate"),
    "EvalResult": ("ornet.evaluation.outputs", "EvalResult"),
    # metrics (wsolevaluation's conventions, docs/metrics.md)
    "BoxAccuracySweep": ("ornet.localization.metrics", "BoxAccuracySweep"),
    "PxAP": ("ornet.localization.metrics", "PxAP"),
    "SweepResult": ("ornet.localization.sweep", "SweepResult"),
    "choose_threshold": ("ornet.localization.sweep", "choose_threshold"),
    "summarize": ("ornet.localization.sweep", "summarize"),
    "boxes_from_map": ("ornet.localization.boxes", "boxes_from_map"),
    "evaluate_scoremaps": ("ornet.localization.wsoleval", "evaluate_scoremaps"),
    # figures: arrays in, an H x W x 3 uint8 image out
    "overlay": ("ornet.viz.figures", "overlay"),
    "evolution_grid": ("ornet.viz.figures", "evolution_grid"),
    "failure_panel": ("ornet.viz.figures", "failures"),
    "threshold_curve": ("ornet.viz.figures", "threshold_curve"),
    "load_snapshots": ("ornet.runs.snapshots", "load_snapshots"),
    # errors: OrnetError is the base of every user-facing error (the CLI's exit code 2)
    "OrnetError": ("ornet.errors", "OrnetError"),
    "DataError": ("ornet.errors", "DataError"),
    "ConfigError": ("ornet.errors", "ConfigError"),
}

__all__ = [  # the same names as _EXPORTS, spelled out for static tools (tests check they agree)
    "__version__",
    "load_model", "Localizer", "Prediction", "FilePrediction",
    "RunConfig", "load_config", "read_dataset", "make_synthetic", "train", "evaluate", "EvalResult",
    "BoxAccuracySweep", "PxAP", "SweepResult", "choose_threshold", "summarize", "boxes_from_map",
    "evaluate_scoremaps",
    "overlay", "evolution_grid", "failure_panel", "threshold_curve", "load_snapshots",
    "OrnetError", "DataError", "ConfigError",
]


def __getattr__(name: str):
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'ornet' has no attribute {name!r}")
    value = getattr(importlib.import_module(target[0]), target[1])
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # the same names, for type checkers and IDEs
    from .api.config import load_config
    from .api.data import make_synthetic, read_dataset
    from .api.evaluate import evaluate
    from .api.train import train
    from .config.schema import RunConfig
    from .errors import ConfigError, DataError, OrnetError
    from .evaluation.outputs import EvalResult
    from .inference.loading import load_model
    from .inference.localizer import Localizer, Prediction
    from .inference.on_files import FilePrediction
    from .localization.boxes import boxes_from_map
    from .localization.metrics import BoxAccuracySweep, PxAP
    from .localization.sweep import SweepResult, choose_threshold, summarize
    from .localization.wsoleval import evaluate_scoremaps
    from .runs.snapshots import load_snapshots
    from .viz.figures import evolution_grid, overlay, threshold_curve
    from .viz.figures import failures as failure_panel
