"""`Normalization`: the mean / std a network's input is normalised with (docs/architecture.md,
"Normalisation").

Normalisation travels with the weights, as torchvision's weights carry their transforms: each
network's comes from its parsed weights spec (`models.weights_spec.WeightsSpec.normalization`),
and `models.weights_spec.model_normalizations` resolves both networks of a run (the config's
explicit mean / std win). A network whose weights expect another normalisation than the run's
input converts the batch with `models.renormalize.Renormalize`.

Torch-free (the data pipeline imports it): timm is imported only to read a timm model's default.
"""

from __future__ import annotations

from dataclasses import dataclass

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Normalization:
    """Per-channel RGB mean and std of images scaled to [0, 1]: x_norm = (x - mean) / std."""

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self):
        from ..errors import ConfigError

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


def timm_default_normalization(name: str) -> Normalization:
    """timm's default pretrained config's mean / std of model `name` (no download)."""
    import timm

    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None or cfg.mean is None or cfg.std is None:
        return IMAGENET
    return Normalization(tuple(cfg.mean), tuple(cfg.std))

