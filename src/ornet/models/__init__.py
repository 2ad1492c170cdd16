"""Networks: backbone split (stem / rest / head), generator, evaluator, ORNet, CAM, weights."""

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
from .ornet_network import ORNet
from .weights import LoadReport, load_weights, read_state_dict

__all__ = [
    "BACKBONES",
    "ActivationMapGenerator",
    "CAMClassifier",
    "CAMModel",
    "GeneratorOutput",
    "LoadReport",
    "ORNet",
    "SplitClassifier",
    "build_cam_classifier",
    "build_classifier",
    "build_evaluator",
    "load_weights",
    "minmax_normalize",
    "read_state_dict",
]
