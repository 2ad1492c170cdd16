"""Which mean / std each network's input is normalised with (docs/architecture.md, "Normalisation").

Normalisation travels with the weights, as torchvision's weights carry their transforms:

- ``none`` (from scratch) and torchvision weights: ImageNet's mean / std (torchvision's
  weights enum says so; `weights.transforms()` is read, nothing is downloaded);
- ``imagenet`` (weights that an installed package ships, `models.offline_weights`): what
  those weights were trained with (EfficientNet-Lite0, TF-ported: 0.5 / 0.5);
- a weights file: for a timm network, timm's own normalisation for that model (what timm's
  published weights expect); for a torchvision network, ImageNet's;
- ``evaluator`` (stage 1 starts from the stage-0 evaluator): the evaluator's.

`model.backbone_mean` / `backbone_std` / `evaluator_mean` / `evaluator_std` override the
choice (e.g. for a file trained otherwise); `resolve_model` fills the unset ones, and
`ornet train` writes the result into config.yaml.

The run's INPUT normalisation is the backbone's (the network that first sees the image: the
stem F_c1 of ORNet, the CAM network of the baseline): the data pipeline normalises with it.
An evaluator whose own normalisation differs converts the batch with a fixed per-channel
affine map (`models.normalization.Renormalize`) before anything else, so stage 2 computes
F_e(convert(I) * upsample(p)): the evaluator sees its own normalised image times the map, as
in the release. Torch-free unless a torchvision weights name or a timm model is resolved.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Normalization:
    """Per-channel RGB mean and std of images scaled to [0, 1]: x_norm = (x - mean) / std."""

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self):
        from .errors import ConfigError

        mean, std = tuple(float(v) for v in self.mean), tuple(float(v) for v in self.std)
        if len(mean) != 3 or len(std) != 3:
            raise ConfigError(f"a normalisation needs 3 means and 3 stds (RGB), got mean={list(self.mean)}, "
                              f"std={list(self.std)}")
        if not all(s > 0 for s in std):
            raise ConfigError(f"normalisation std must be positive, got {list(std)}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    def as_dict(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "std": list(self.std)}


IMAGENET = Normalization()


def weights_normalization(arch: str, spec: str | None) -> Normalization:
    """The normalisation the weights `spec` of network `arch` expect (module docstring).

    `spec` ``evaluator`` is resolved by the caller (`resolve_model`); here it is an error.
    """
    from .errors import OrnetError

    s = (spec or "none").strip()
    if s.lower() in ("", "none"):
        return IMAGENET
    if s == "evaluator":
        raise OrnetError("weights 'evaluator' take the evaluator's normalisation (resolve_model)")
    from .models.names import is_timm, timm_name

    if s.lower() == "imagenet":
        from .models.offline_weights import offline_weights

        return offline_weights(arch).normalization
    from .models.weights import weights_file

    if weights_file(s) is not None:
        if is_timm(arch):
            return timm_default_normalization(timm_name(arch))
        return IMAGENET
    if is_timm(arch):
        return IMAGENET  # load_weights refuses a torchvision name for a timm network, naming it
    from .models.weights import torchvision_weights

    tf = torchvision_weights(s, arch).transforms()
    return Normalization(tuple(tf.mean), tuple(tf.std))


def timm_default_normalization(name: str) -> Normalization:
    """timm's default pretrained config's mean / std of model `name` (no download)."""
    import timm

    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None or cfg.mean is None or cfg.std is None:
        return IMAGENET
    return Normalization(tuple(cfg.mean), tuple(cfg.std))


def _given(mean, std, key: str) -> Normalization | None:
    from .errors import ConfigError

    if mean is None and std is None:
        return None
    if mean is None or std is None:
        raise ConfigError(f"model.{key}_mean and model.{key}_std are set together (one of them is missing)")
    return Normalization(tuple(mean), tuple(std))


def model_normalizations(m) -> tuple[Normalization, Normalization]:
    """(backbone's = the run's input normalisation, evaluator's) of a `ModelConfig`."""
    evaluator = _given(m.evaluator_mean, m.evaluator_std, "evaluator")
    if evaluator is None:
        evaluator = weights_normalization(m.evaluator, m.evaluator_weights) if m.evaluator else IMAGENET
    backbone = _given(m.backbone_mean, m.backbone_std, "backbone")
    if backbone is None:
        if (m.backbone_weights or "").strip() == "evaluator":
            backbone = evaluator
        else:
            backbone = weights_normalization(m.backbone, m.backbone_weights)
    return backbone, evaluator


def resolve_model(m):
    """A copy of `ModelConfig` m with every mean / std set (the resolved config records them)."""
    backbone, evaluator = model_normalizations(m)
    return dataclasses.replace(m, backbone_mean=list(backbone.mean), backbone_std=list(backbone.std),
                               evaluator_mean=list(evaluator.mean), evaluator_std=list(evaluator.std))


def input_normalization(m) -> Normalization:
    """The run's input normalisation (the backbone's): what the data pipeline normalises with."""
    return model_normalizations(m)[0]
