"""SPG (Zhang et al., "Self-produced Guidance for Weakly-supervised Object Localization", ECCV
2018) as wsolevaluation implements it (``wsol/resnet.py`` ``ResNetSpg``, ``wsol/vgg.py``
``VggSpg``): the trunk (`wsol_trunks.spg_trunk`) ends in a 1x1 conv to K class maps whose GAP
are the logits (``SPG_A4``); two branches B1 and B2 (``SPG_B_1a`` / ``SPG_B_2a``: a 3x3 conv +
ReLU each, then the shared ``SPG_B_shared``: 3x3 conv + ReLU + 1x1 conv to one map) start from the
two branch points, and C (``SPG_C``: 3x3 conv + ReLU + 1x1 conv to one map) from the last
features. New convs are initialised xavier-uniform, bias 0 (wsol/util.py).

The guidance masks and losses that train the branches are `methods.spg.spg_losses`. The
localization map is the class map of the label (of the predicted class without labels), min-max
normalised (wsolevaluation's ``return_cam`` and ``normalize_scoremap``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .acol_network import split_groups
from .cam_network import minmax_normalize
from .split import ExplainedClassifier
from .wsol_trunks import conv, explained, spg_trunk


@dataclass
class SpgOutputs:
    """One forward pass (wsolevaluation's output dict, without the attentions the losses derive)."""

    logits: Tensor
    """B x K, GAP of `class_maps` (``logits``)."""
    class_maps: Tensor
    """B x K x h x w (``feat_map``, the output of ``SPG_A4``)."""
    logits_b1: Tensor
    """B x 1 x h x w (``logits_b1``)."""
    logits_b2: Tensor
    """B x 1 x h x w (``logits_b2``)."""
    logits_c: Tensor
    """B x 1 x h x w (``logits_c``)."""


class SpgModel(nn.Module):
    """SPG on a registered backbone: ``forward(images) -> SpgOutputs``,
    ``predict(images, labels) -> (maps B x 1 x h x w in [0, 1], logits)``."""

    def __init__(self, backbone: str, num_classes: int, weights: str = "none",
                 branch_width: int | None = None, c_width: int = 512):
        super().__init__()
        self.backbone = backbone
        self.num_classes = num_classes
        trunk = spg_trunk(backbone, num_classes, weights)
        self.stem, self.rest = trunk.stem, trunk.rest
        self.stem_channels, self.channels = trunk.stem_channels, trunk.channels
        self.taps = trunk.taps
        c1, c2 = trunk.tap_channels
        width = int(branch_width or c2)
        x = "xavier"
        self.classifier = conv(trunk.channels, num_classes, 1, x)  # SPG_A4
        self.b1 = nn.Sequential(conv(c1, width, 3, x), nn.ReLU(inplace=True))  # SPG_B_1a
        self.b2 = nn.Sequential(conv(c2, width, 3, x), nn.ReLU(inplace=True))  # SPG_B_2a
        self.b_shared = nn.Sequential(conv(width, width, 3, x), nn.ReLU(inplace=True),
                                      conv(width, 1, 1, x))  # SPG_B_shared
        self.c = nn.Sequential(conv(trunk.channels, c_width, 3, x), nn.ReLU(inplace=True),
                               conv(c_width, 1, 1, x))  # SPG_C
        self.pool = nn.AdaptiveAvgPool2d(1)
        new = [self.classifier, self.b1, self.b2, self.b_shared, self.c]
        self._boosted = trunk.boosted + (new if trunk.boost_heads else [])

    def trunk(self, images: Tensor) -> tuple[Tensor, list[Tensor]]:
        """(the last features, [the outputs at the two branch points])."""
        taps: dict[str, Tensor] = {}
        hooks = [self.rest.get_submodule(p).register_forward_hook(
            lambda mod, inp, out, p=p: taps.__setitem__(p, out)) for p in self.taps]
        try:
            features = self.rest(self.stem(images))
        finally:
            for h in hooks:
                h.remove()
        return features, [taps[p] for p in self.taps]

    def forward(self, images: Tensor) -> SpgOutputs:
        features, (f1, f2) = self.trunk(images)
        class_maps = self.classifier(features)
        return SpgOutputs(logits=self.pool(class_maps).flatten(1), class_maps=class_maps,
                          logits_b1=self.b_shared(self.b1(f1)), logits_b2=self.b_shared(self.b2(f2)),
                          logits_c=self.c(features))

    def predict(self, images: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        features, _ = self.trunk(images)
        class_maps = self.classifier(features)
        logits = self.pool(class_maps).flatten(1)
        classes = logits.argmax(dim=1) if labels is None else labels
        picked = class_maps[torch.arange(class_maps.shape[0], device=class_maps.device), classes]
        return minmax_normalize(picked.unsqueeze(1)), logits

    def lr_groups(self, mult: float) -> list[tuple[list[nn.Parameter], float]]:
        """(parameters, lr multiplier): wsolevaluation's split (`wsol_trunks.Trunk.boosted`)."""
        return split_groups(self, self._boosted, mult)

    def explained_classifier(self) -> ExplainedClassifier:
        """What `eval.maps` extractors explain: the trunk, its 1x1 class conv and the mean (the logits)."""
        return explained(self, nn.Sequential(self.classifier, self.pool, nn.Flatten(1)), "SPG network")

