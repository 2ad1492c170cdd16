"""The evaluator F_e (METHOD.md, Notation and Stage 0): an ordinary image classifier.

VGG16 in the paper (ImageNet pretrained, fine-tuned on the target classes, frozen in stage
2). Any registered backbone works; the result is a `SplitClassifier` whose plain
``forward(x)`` gives B x K logits at any input size (VGG's AdaptiveAvgPool2d(7) sees to it).
"""

from __future__ import annotations

from ..errors import OrnetError
from .backbones import SplitClassifier, build_classifier


def build_evaluator(name: str = "vgg16", num_classes: int | None = None,
                    weights: str = "none") -> SplitClassifier:
    """The classifier `name` with a `num_classes` head and `weights` (see `load_weights`)."""
    if num_classes is None:
        raise OrnetError("build_evaluator needs num_classes")
    return build_classifier(name, num_classes, weights)
