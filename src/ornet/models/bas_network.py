"""BAS (Wu, Zhai and Cao, "Background Activation Suppression for Weakly Supervised Object
Localization", CVPR 2022) as its authors implement it (github.com/wpy1999/BAS, ``CUB/Model/resnet.py``
``ResNetCam``, ``CUB/Model/vgg.py`` ``Model``) on the trunk of `bas_trunk`.

- ``classifier_cls`` on the 1/16 features: 3x3 conv to `head_width`, ReLU, 3x3 conv, ReLU, 1x1 conv
  to K class maps, ReLU (the paper's feature map F); their GAP are the logits (``score_1``).
- ``classifier_loc`` on the 1/8 features (``x_3``): a 3x3 conv to K maps and a sigmoid, the
  foreground prediction maps; the foreground map of an image is the mean of its maps of the
  chosen classes (``x_saliency``): the label's in training, the top `top_k` classes of ``score_1``
  at test time (``BAS_inference.py``; the label's when `top_k` is 1, as there).
- The erased pass (the paper's background activation, the AMC module): the 1/8 features, detached,
  times (1 - foreground), go through ``high`` and ``classifier_cls`` with their parameters
  detached (BAS runs deep copies made at the start of each forward: no gradient reaches those
  weights and their BN running statistics stay unchanged), then GAP (``x_erase``).
- ``score_2``: GAP of the class maps times the foreground map average-pooled to their size.

The loss terms are `methods.bas.bas_losses`. The localization map is the test-time foreground map
min-max normalised per image (``BAS_inference.py`` ``normalize_map``); the logits are ``score_1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from .acol_network import split_groups
from .bas_trunk import bas_trunk
from .cam_network import minmax_normalize
from .split import ExplainedClassifier
from .wsol_trunks import conv, explained


@dataclass
class BasOutputs:
    """One training forward (named outputs: STYLE.md, habit 3)."""

    logits: Tensor
    """``score_1``: GAP of `class_maps`, B x K."""
    logits_fg: Tensor
    """``score_2``: GAP of `class_maps` times the pooled foreground map, B x K."""
    logits_erased: Tensor
    """GAP of the class maps of the background (the erased features), B x K (``x_erase``)."""
    class_maps: Tensor
    """B x K x h x w (``feature_map``)."""
    foreground: Tensor
    """B x 1 x H x W in (0, 1) at the 1/8 features' size (``x_saliency``)."""


def bas_head(channels: int, width: int, num_classes: int, init: str) -> nn.Sequential:
    """``classifier_cls``: 3x3 conv, ReLU, 3x3 conv, ReLU, 1x1 conv to K maps, ReLU."""
    return nn.Sequential(_conv(channels, width, 3, init), nn.ReLU(inplace=True),
                         _conv(width, width, 3, init), nn.ReLU(inplace=True),
                         _conv(width, num_classes, 1, init), nn.ReLU(inplace=True))


def _conv(cin: int, cout: int, k: int, init: str) -> nn.Conv2d:
    if init == "xavier":  # utils/util.py initialize_weights(init_mode='xavier'): bias 0
        return conv(cin, cout, k, "xavier")
    layer = nn.Conv2d(cin, cout, k, padding=k // 2)  # Model/vgg.py weight_init: N(0, 0.02), bias as PyTorch's
    nn.init.normal_(layer.weight, 0.0, 0.02)
    return layer


def run_detached(module: nn.Module, x: Tensor) -> Tensor:
    """`module` on `x` with its parameters detached and its buffers copied (BAS's per-forward
    ``copy.deepcopy``): gradients reach `x` only, running statistics stay as they are."""
    state = {n: p.detach() for n, p in module.named_parameters()}
    state.update({n: b.clone() for n, b in module.named_buffers()})
    return functional_call(module, state, (x,))


class BasModel(nn.Module):
    """BAS on a registered backbone: ``forward(images, labels) -> BasOutputs``,
    ``predict(images, labels) -> (maps B x 1 x h x w in [0, 1], logits)``."""

    def __init__(self, backbone: str, num_classes: int, weights: str = "none", head_width: int = 1024,
                 top_k: int = 200):
        super().__init__()
        self.backbone = backbone
        self.num_classes = num_classes
        self.top_k = int(top_k)
        trunk = bas_trunk(backbone, num_classes, weights)
        self.stem = trunk.stem
        self.rest = nn.Sequential()
        self.rest.add_module("low", trunk.low)
        self.rest.add_module("high", trunk.high)
        self.stem_channels, self.channels = trunk.stem_channels, trunk.channels
        self.classifier_cls = bas_head(trunk.channels, head_width, num_classes, trunk.init)
        self.classifier_loc = nn.Sequential(_conv(trunk.low_channels, num_classes, 3, trunk.init), nn.Sigmoid())
        self.pool = nn.AdaptiveAvgPool2d(1)

    def low(self, images: Tensor) -> Tensor:
        return self.rest.low(self.stem(images))

    def classify(self, low: Tensor) -> tuple[Tensor, Tensor]:
        """(class maps, logits) of the 1/8 features."""
        class_maps = self.classifier_cls(self.rest.high(low))
        return class_maps, self.pool(class_maps).flatten(1)

    def forward(self, images: Tensor, labels: Tensor) -> BasOutputs:
        low = self.low(images)
        class_maps, logits = self.classify(low)
        fg = foreground(self.classifier_loc(low), labels.unsqueeze(1))
        erased = low.detach() * (1 - fg)
        logits_erased = self.pool(run_detached(self.classifier_cls, run_detached(self.rest.high, erased))).flatten(1)
        logits_fg = self.pool(class_maps * pool_to(fg, class_maps)).flatten(1)
        return BasOutputs(logits, logits_fg, logits_erased, class_maps, fg)

    def chosen_classes(self, logits: Tensor, labels: Tensor | None) -> Tensor:
        """B x k: the label (top_k 1) or the top min(top_k, K) classes of the logits."""
        k = min(self.top_k, self.num_classes)
        if k == 1 and labels is not None:
            return labels.unsqueeze(1)
        return logits.topk(k, dim=1).indices

    def predict(self, images: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        low = self.low(images)
        _, logits = self.classify(low)
        fg = foreground(self.classifier_loc(low), self.chosen_classes(logits, labels))
        return minmax_normalize(fg), logits

    def lr_groups(self, head_mult: float, bias_mult: float) -> list[tuple[list[nn.Parameter], float]]:
        """BAS's utils/optimizer.py: weights x1, biases x `bias_mult`; the two classifiers' weights
        x `head_mult`, their biases x `head_mult` x `bias_mult`."""
        biases = {id(p) for n, p in self.named_parameters() if n.endswith("bias")}
        groups = []
        for params, mult in split_groups(self, [self.classifier_cls, self.classifier_loc], head_mult):
            groups += [([p for p in params if id(p) not in biases], mult),
                       ([p for p in params if id(p) in biases], mult * bias_mult)]
        return [(ps, m) for ps, m in groups if ps]

    def explained_classifier(self) -> ExplainedClassifier:
        """What `eval.maps` extractors explain: the trunk, ``classifier_cls`` and its mean (the logits)."""
        return explained(self, nn.Sequential(self.classifier_cls, self.pool, nn.Flatten(1)), "BAS network")


def foreground(loc_maps: Tensor, classes: Tensor) -> Tensor:
    """The mean of each image's foreground maps of `classes` (B x k) -> B x 1 x H x W."""
    picked = torch.gather(loc_maps, 1, classes[:, :, None, None].expand(-1, -1, *loc_maps.shape[-2:]))
    return picked.mean(dim=1, keepdim=True)


def pool_to(fg: Tensor, maps: Tensor) -> Tensor:
    """``nn.AvgPool2d(2)(x_saliency)``: average-pooled by the ratio of the sizes (2; 1 for timm trunks)."""
    ratio = fg.shape[-1] // maps.shape[-1]
    return F.avg_pool2d(fg, ratio) if ratio > 1 else fg

