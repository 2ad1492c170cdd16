"""Settings of the WSOL methods re-implemented from clovaai/wsolevaluation (docs/methods.md).

Each method has one stage named after it, and its section of `RunConfig` is a `StageConfig`
(the optimisation settings, with the `cam` section's defaults) plus the method's own
hyper-parameters, each at wsolevaluation's default: ``config.py`` (its argparse defaults,
the values ``main.py`` passes on) at commit 96f4b88 of github.com/clovaai/wsolevaluation.
``--has.grid_size 4`` and the like set them. `check` says in one line what a value breaks.
Torch-free.

ACoL and SPG (`AcolConfig`, `SpgConfig`) change the network and the loss, and their sections
extend `WsolevalStageConfig`: wsolevaluation's optimisation (main.py: SGD with Nesterov momentum,
a step decay, its ``lr_classifier_ratio`` groups) with its config.py defaults, except ``epochs``
(1, as every stage section; presets set the budget; its default is 40).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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

def _channels(section: str, key: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or int(value) != value or value <= 0):
        raise ConfigError(f"{section}.{key} must be a positive number of channels, got {value}")


@dataclass
class WsolevalStageConfig(StageConfig):
    """wsolevaluation's optimisation (main.py): SGD with Nesterov momentum, the learning rate
    times 0.1 every `lr_decay_frequency` epochs, and some parameters at lr x `head_lr_mult`
    (its ``lr_classifier_ratio``: ResNet's layer4, VGG's layers after ``features``; the new
    heads for other backbones)."""

    lr: float = 0.01
    """config.py ``--lr`` default."""
    weight_decay: float = 1e-4
    """config.py ``--weight_decay`` default."""
    scheduler: Literal["step", "cosine", "cosine_step", "none"] = "step"
    """step: wsolevaluation's ``adjust_learning_rate`` (x0.1 before epochs f, 2f, ... counted from
    1, f = `lr_decay_frequency`); cosine / cosine_step / none as the other stages."""
    head_lr_mult: float = 10.0
    """config.py ``--lr_classifier_ratio`` default."""
    nesterov: bool = True
    """main.py builds ``torch.optim.SGD(..., nesterov=True)`` (optimizer sgd only)."""
    lr_decay_frequency: int = 30
    """config.py ``--lr_decay_frequency`` default (epochs between decays of scheduler step)."""

    def check_optimisation(self, section: str) -> None:
        if self.lr_decay_frequency <= 0:
            raise ConfigError(f"{section}.lr_decay_frequency must be a positive number of epochs, "
                              f"got {self.lr_decay_frequency}")
        if not self.head_lr_mult > 0:
            raise ConfigError(f"{section}.head_lr_mult must be positive, got {self.head_lr_mult}")
        if self.optimizer == "sgd" and self.nesterov and self.momentum <= 0:
            raise ConfigError(f"{section}.nesterov needs {section}.momentum > 0 (got {self.momentum}); "
                              f"set {section}.nesterov false")


@dataclass
class AcolConfig(WsolevalStageConfig):
    """ACoL (Zhang et al., CVPR 2018) as wsolevaluation trains it: wsol/method/acol.py."""

    erase_threshold: float = 0.7
    """config.py ``--acol_threshold``: head B sees the features where head A's normalised map of
    the class is below this (erased where >=)."""
    head_width: int = 1024
    """Channels of each head's two 3x3 convs (wsol/{vgg,resnet}.py: 1024 for VGG-16 and ResNet-50).
    Not a wsolevaluation flag: the CPU presets narrow it."""

    def check(self, section: str = "acol") -> None:
        self.check_optimisation(section)
        _unit(section, "erase_threshold", self.erase_threshold)
        _channels(section, "head_width", self.head_width)


@dataclass
class SpgConfig(WsolevalStageConfig):
    """SPG (Zhang et al., ECCV 2018) as wsolevaluation trains it: wsol/method/spg.py. A guidance
    mask is 1 where the map is above `*h`, 0 below `*l` (which wins), ignored elsewhere."""

    threshold_1h: float = 0.7
    """config.py ``--spg_threshold_1h``: B2's mask from the class map's attention (high)."""
    threshold_1l: float = 0.01
    """config.py ``--spg_threshold_1l`` (low)."""
    threshold_2h: float = 0.5
    """config.py ``--spg_threshold_2h``: B1's mask from sigmoid(B2) (high)."""
    threshold_2l: float = 0.05
    """config.py ``--spg_threshold_2l`` (low)."""
    threshold_3h: float = 0.7
    """config.py ``--spg_threshold_3h``: C's mask from the fused sigmoid(B1), sigmoid(B2) (high)."""
    threshold_3l: float = 0.1
    """config.py ``--spg_threshold_3l`` (low)."""
    branch_width: int | None = None
    """Channels of the B branches' 3x3 convs; None: those of the features they branch from, as
    wsol/{vgg,resnet}.py (1024 for ResNet-50, 512 for VGG-16)."""
    c_width: int = 512
    """Channels of SPG_C's 3x3 conv (wsol/{vgg,resnet}.py: 512). Not a wsolevaluation flag."""

    def check(self, section: str = "spg") -> None:
        self.check_optimisation(section)
        for key in ("threshold_1h", "threshold_1l", "threshold_2h", "threshold_2l", "threshold_3h", "threshold_3l"):
            _unit(section, key, getattr(self, key))
        _channels(section, "branch_width", self.branch_width)
        _channels(section, "c_width", self.c_width)

    def thresholds(self) -> tuple[tuple[float, float], tuple[float, float], tuple[float, float]]:
        """((1h, 1l), (2h, 2l), (3h, 3l)): config.py's ``args.spg_thresholds``."""
        return ((self.threshold_1h, self.threshold_1l), (self.threshold_2h, self.threshold_2l),
                (self.threshold_3h, self.threshold_3l))


@dataclass
class BasConfig(WsolevalStageConfig):
    """BAS (Wu, Zhai and Cao, CVPR 2022) as its authors train it on CUB (github.com/wpy1999/BAS at
    54c395e, ``CUB/train.py``, ``CUB/utils/optimizer.py``, ``CUB/Model/resnet.py``,
    ``CUB/BAS_inference.py``); defaults are its ResNet-50's. Its optimiser has wsolevaluation's
    shape: SGD with Nesterov momentum, a step decay and parameter groups (the two classifiers' weights
    at lr x `head_lr_mult`, every bias at x `bias_lr_mult` on top of its group's)."""

    lr: float = 1e-3
    """train.py ``--lr`` default."""
    weight_decay: float = 5e-4
    """train.py ``--weight_decay`` default."""
    head_lr_mult: float = 10.0
    """utils/optimizer.py: parameters named ``classifier`` (classifier_cls, classifier_loc) at lr x 10."""
    bias_lr_mult: float = 2.0
    """utils/optimizer.py: biases at 2 x their group's lr (lr x 2; the classifiers' at lr x 20)."""
    lr_decay_frequency: int = 80
    """train.py ``poly_lr_scheduler(optimizer, epoch, decay_epoch=80)``: x0.1 before epochs 80, 160, ...
    counted from 0 (scheduler step; BAS's count, not wsolevaluation's)."""
    area_weight: float = 1.2
    """Weight of the area term in ``bas_loss`` (Model/resnet.py: 1.2; Model/vgg.py: 0.7; ILSVRC's ResNet: 2)."""
    fg_weight: float = 0.5
    """Weight of ``score_2``'s cross entropy (train.py: 0.5; 0.0 for VGG)."""
    top_k: int = 200
    """Test-time map: mean of the foreground maps of the top-k classes of ``score_1``
    (BAS_inference.py ``--top_k`` default, every CUB class; VGG: 80); 1: the label's map."""
    head_width: int = 1024
    """Channels of classifier_cls's two 3x3 convs (Model/resnet.py and Model/vgg.py: 1024). Not a BAS
    flag: the CPU presets narrow it."""

    def check(self, section: str = "bas") -> None:
        self.check_optimisation(section)
        if not self.bias_lr_mult > 0:
            raise ConfigError(f"{section}.bias_lr_mult must be positive, got {self.bias_lr_mult}")
        for key in ("area_weight", "fg_weight"):
            if not getattr(self, key) >= 0:
                raise ConfigError(f"{section}.{key} must be >= 0, got {getattr(self, key)}")
        if isinstance(self.top_k, bool) or int(self.top_k) != self.top_k or self.top_k < 1:
            raise ConfigError(f"{section}.top_k must be a positive number of classes, got {self.top_k}")
        _channels(section, "head_width", self.head_width)
