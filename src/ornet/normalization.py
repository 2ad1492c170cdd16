"""TEMPORARY, delete when merging: the former top-level module, kept only for training/pipeline.py
and methods/ornet/{evaluator_stage,coarse_stage}.py until their imports point at
`ornet.models.weights_spec` (`model_normalizations`). Its names live in `ornet.models.normalization`
(`Normalization`, `IMAGENET`) and `ornet.models.weights_spec` (the resolution)."""

from .models.normalization import IMAGENET, IMAGENET_MEAN, IMAGENET_STD, Normalization  # noqa: F401
from .models.weights_spec import input_normalization, model_normalizations, resolve_model  # noqa: F401
