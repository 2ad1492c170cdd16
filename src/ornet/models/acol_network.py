"""ACoL (Zhang et al., "Adversarial Complementary Learning for Weakly Supervised Object
Localization", CVPR 2018) as wsolevaluation implements it (``wsol/method/acol.py``,
``ResNetAcol`` / ``VggAcol``): two classifier heads on the trunk's features (`wsol_trunks`).

Head A gives class maps and logits (GAP of the maps). Its map of the class (the label in
training; the predicted class without labels), detached and min-max normalised per image, erases
the features where it is >= `erase_threshold`; head B classifies the erased features. Training
minimises the two cross entropies (`methods.acol`). The localization map is, per image, the
maximum of the two heads' min-max normalised maps of the class (wsolevaluation's ``return_cam``),
min-max normalised again (as its evaluator's ``normalize_scoremap``; the two commute with the
bilinear resize to the image). A flat map normalises to zeros where wsolevaluation divides by zero
(NaN, which erases nothing): for `erase_threshold` > 0 both erase nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .cam_network import minmax_normalize
from .split import ExplainedClassifier
from .wsol_trunks import acol_trunk, conv, explained


@dataclass
class AcolOutputs:
    """One forward pass (named outputs, not a dict: STYLE.md, habit 3)."""

    logits: Tensor
    """Head A's logits, B x K (wsolevaluation's ``logits``: the classification)."""
    logits_b: Tensor
    """Head B's logits on the erased features (``logit_b``)."""
    maps_a: Tensor
    """Head A's class maps, B x K x h x w (``feat_map_a``)."""
    maps_b: Tensor
    """Head B's class maps (``feat_map_b``)."""
    erased: Tensor
    """The features head B sees: B x C x h x w (``erased_feature``)."""


def acol_head(channels: int, width: int, num_classes: int, init: str) -> nn.Sequential:
    """``classifier_A`` / ``classifier_B``: 3x3 conv, ReLU, 3x3 conv, ReLU, 1x1 conv to K maps."""
    return nn.Sequential(conv(channels, width, 3, init), nn.ReLU(inplace=False),
                         conv(width, width, 3, init), nn.ReLU(inplace=False),
                         conv(width, num_classes, 1, init))


def class_attention(maps: Tensor, classes: Tensor) -> Tensor:
    """wsol/method/util.py ``get_attention``: each image's map of its class, detached, min-max
    normalised over its pixels -> B x 1 x h x w in [0, 1]."""
    picked = maps.detach()[torch.arange(maps.shape[0], device=maps.device), classes]
    return minmax_normalize(picked.unsqueeze(1))


def erase(features: Tensor, attention: Tensor, threshold: float) -> Tensor:
    """wsol/method/acol.py ``_erase_attention``: features times 0 where attention >= threshold."""
    keep = torch.ones_like(attention).masked_fill(attention >= threshold, 0.0)
    return features * keep.to(features.dtype)


class AcolModel(nn.Module):
    """ACoL on a registered backbone: ``forward(images, labels) -> AcolOutputs``,
    ``predict(images, labels) -> (maps B x 1 x h x w in [0, 1], logits)``."""

    def __init__(self, backbone: str, num_classes: int, weights: str = "none",
                 erase_threshold: float = 0.7, head_width: int = 1024):
        super().__init__()
        self.backbone = backbone
        self.num_classes = num_classes
        self.erase_threshold = float(erase_threshold)
        trunk = acol_trunk(backbone, num_classes, weights)
        self.stem, self.rest = trunk.stem, trunk.rest
        self.stem_channels, self.channels = trunk.stem_channels, trunk.channels
        self.head_a = acol_head(trunk.channels, head_width, num_classes, trunk.init)
        self.head_b = acol_head(trunk.channels, head_width, num_classes, trunk.init)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self._boosted = trunk.boosted + ([self.head_a, self.head_b] if trunk.boost_heads else [])

    def features(self, images: Tensor) -> Tensor:
        return self.rest(self.stem(images))

    def forward(self, images: Tensor, labels: Tensor | None = None) -> AcolOutputs:
        return self.heads(self.features(images), labels)

    def heads(self, features: Tensor, labels: Tensor | None = None) -> AcolOutputs:
        """wsol/method/acol.py ``AcolBase._acol_logits``."""
        maps_a = self.head_a(features)
        logits = self.pool(maps_a).flatten(1)
        classes = logits.argmax(dim=1) if labels is None else labels
        erased = erase(features, class_attention(maps_a, classes), self.erase_threshold)
        maps_b = self.head_b(erased)
        return AcolOutputs(logits, self.pool(maps_b).flatten(1), maps_a, maps_b, erased)

    def combined_map(self, out: AcolOutputs, classes: Tensor) -> Tensor:
        """``return_cam``: max of the two heads' min-max normalised maps of the class, B x 1 x h x w."""
        return torch.maximum(class_attention(out.maps_a, classes), class_attention(out.maps_b, classes))

    def predict(self, images: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        out = self(images, labels)
        classes = out.logits.argmax(dim=1) if labels is None else labels
        return minmax_normalize(self.combined_map(out, classes)), out.logits

    def lr_groups(self, mult: float) -> list[tuple[list[nn.Parameter], float]]:
        """(parameters, lr multiplier): wsolevaluation's split (`wsol_trunks.Trunk.boosted`)."""
        return split_groups(self, self._boosted, mult)

    def explained_classifier(self) -> ExplainedClassifier:
        """What `eval.maps` extractors explain: the trunk and head A (its maps' mean: the logits)."""
        return explained(self, nn.Sequential(self.head_a, self.pool, nn.Flatten(1)), "ACoL network, head A")


def split_groups(model: nn.Module, boosted: list[nn.Module], mult: float) -> list[tuple[list[nn.Parameter], float]]:
    """The parameters of `boosted` at `mult`, every other parameter of `model` at 1."""
    ids = {id(p) for m in boosted for p in m.parameters()}
    rest = [p for p in model.parameters() if id(p) not in ids]
    fast = [p for p in model.parameters() if id(p) in ids]
    return [(rest, 1.0), (fast, float(mult))] if fast else [(rest, 1.0)]
