"""Networks: backbone split (stem / rest / head), generator, evaluator, ORNet, CAM, weights.

Names are imported on first use (PEP 562), so the torch-free modules of this package
(`normalization`, `weights_spec`, `names`, `offline_weights`) import without torch: the config's
validation parses weights specs, and the data pipeline imports `Normalization`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# name -> the module of this package that defines it
_EXPORTS: dict[str, str] = {
    "BACKBONES": "backbones",
    "CAMClassifier": "backbones",
    "SplitClassifier": "backbones",
    "build_cam_classifier": "backbones",
    "build_classifier": "backbones",
    "CAMModel": "cam_network",
    "minmax_normalize": "cam_network",
    "build_evaluator": "evaluator",
    "ActivationMapGenerator": "generator",
    "GeneratorOutput": "generator",
    "ORNet": "ornet_network",
    "LoadReport": "state_dicts",
    "read_state_dict": "state_dicts",
    "load_weights": "weights",
    "Normalization": "normalization",
    "WeightsKind": "weights_spec",
    "WeightsSpec": "weights_spec",
    "parse_weights": "weights_spec",
}

__all__ = [
    "BACKBONES",
    "ActivationMapGenerator",
    "CAMClassifier",
    "CAMModel",
    "GeneratorOutput",
    "LoadReport",
    "Normalization",
    "ORNet",
    "SplitClassifier",
    "WeightsKind",
    "WeightsSpec",
    "build_cam_classifier",
    "build_classifier",
    "build_evaluator",
    "load_weights",
    "minmax_normalize",
    "parse_weights",
    "read_state_dict",
]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # the same names, for type checkers and IDEs
    from .backbones import (
        BACKBONES,
        CAMClassifier,
        SplitClassifier,
        build_cam_classifier,
        build_classifier,
    )
    from .cam_network import CAMModel, minmax_normalize
    from .evaluator import build_evaluator
    from .generator import ActivationMapGenerator, GeneratorOutput
    from .normalization import Normalization
    from .ornet_network import ORNet
    from .state_dicts import LoadReport, read_state_dict
    from .weights import load_weights
    from .weights_spec import WeightsKind, WeightsSpec, parse_weights
