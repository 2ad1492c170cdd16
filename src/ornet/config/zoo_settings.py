"""Settings of the WSOL methods re-implemented from clovaai/wsolevaluation (docs/methods.md).

Each method has one stage named after it, and its section of `RunConfig` is a `StageConfig`
(the optimisation settings, with the `cam` section's defaults) plus the method's own
hyper-parameters, each at wsolevaluation's default: ``config.py`` (its argparse defaults,
the values ``main.py`` passes on) at commit 96f4b88 of github.com/clovaai/wsolevaluation.
``--has.grid_size 4`` and the like set them. `check` says in one line what a value breaks.
Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from .stage_settings import StageConfig


def _unit(section: str, key: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{section}.{key} must be in [0, 1], got {value}")


@dataclass
class HasConfig(StageConfig):
    """Hide-and-Seek (Singh and Lee, ICCV 2017) as wsolevaluation trains it (``wsol/method/has.py``):
    each training image is cut into a grid of `grid_size` x `grid_size` pixel patches and each patch
    is hidden (set to 0 in the normalised image) with probability `drop_rate`."""

    grid_size: int = 4
    """Side of a patch in input pixels (wsolevaluation ``--has_grid_size``, default 4); 0: nothing is hidden."""
    drop_rate: float = 0.5
    """Probability that a patch is hidden (wsolevaluation ``--has_drop_rate``, default 0.5)."""

    def check(self, section: str = "has") -> None:
        if self.grid_size < 0:
            raise ConfigError(f"{section}.grid_size must be >= 0 (0: no patch hidden), got {self.grid_size}")
        _unit(section, "drop_rate", self.drop_rate)


@dataclass
class CutMixConfig(StageConfig):
    """CutMix (Yun et al., ICCV 2019) as wsolevaluation trains it (``wsol/method/cutmix.py``,
    ``main.py`` ``_wsol_training``): with probability `prob` a batch is mixed: a box of area
    about (1 - lambda) of the image, lambda ~ Beta(beta, beta), is pasted from a permutation of
    the batch, and the loss is lambda' CE(y) + (1 - lambda') CE(y_perm), lambda' the kept area."""

    beta: float = 1.0
    """Both parameters of the Beta distribution of lambda (wsolevaluation ``--cutmix_beta``, default 1.0);
    0: never mixed, as there."""
    prob: float = 1.0
    """Probability that a training batch is mixed (wsolevaluation ``--cutmix_prob``, default 1.0)."""

    def check(self, section: str = "cutmix") -> None:
        if not self.beta >= 0:
            raise ConfigError(f"{section}.beta must be >= 0 (0: never mixed), got {self.beta}")
        _unit(section, "prob", self.prob)


@dataclass
class AdlConfig(StageConfig):
    """Attention-based Dropout Layer (Choe and Shim, CVPR 2019) as wsolevaluation builds it
    (``wsol/method/adl.py``; positions in ``wsol/resnet.py`` ``_ADL_POSITION`` and ``wsol/vgg.py``
    ``configs_dict['adl']``): in training each ADL layer multiplies its input by either the
    sigmoid of the channel-mean map or the mask of where that map is below `drop_threshold`
    times its maximum, the mask with probability `drop_rate`; at evaluation it passes its input."""

    drop_rate: float = 0.75
    """Probability that a layer applies the drop mask instead of the importance map (wsolevaluation
    ``--adl_drop_rate``, default 0.75)."""
    drop_threshold: float = 0.9
    """gamma: the mask drops where the channel mean is >= gamma x its per-image maximum (wsolevaluation
    ``--adl_threshold``, default 0.9; the ADL class's own default, 0.8, is not used there)."""

    def check(self, section: str = "adl") -> None:
        _unit(section, "drop_rate", self.drop_rate)
        _unit(section, "drop_threshold", self.drop_threshold)
