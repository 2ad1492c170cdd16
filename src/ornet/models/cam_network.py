"""The CAM baseline as a localization model (`forward` for training, `predict` for evaluation)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .backbones import build_cam_classifier
from .split import ExplainedClassifier


class CAMModel(nn.Module):
    """Class activation mapping (Zhou et al. 2016) on a registered backbone.

    ``predict(images, labels)`` returns the CAM of each image's label (of the predicted class
    when `labels` is None) at feature resolution (1/16 for ResNet, VGG and the timm networks
    that timm can dilate, e.g. EfficientNet-Lite0; 1/32 for MobileNets; see
    `build_cam_classifier` and `timm_backbones`), min-max normalised per image to [0, 1]: (cam - min) / (max -
    min), all zeros for a flat map, as wsolevaluation's `normalize_scoremap`. No ReLU.
    Because bilinear resizing commutes with this affine normalisation, normalising again
    after resizing to the image size (what localization does) gives wsolevaluation's maps.
    """

    def __init__(self, name: str, num_classes: int, weights: str = "none", stride16: bool = True):
        super().__init__()
        self.backbone = name
        self.num_classes = num_classes
        self.net = build_cam_classifier(name, num_classes, weights, stride16=stride16)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def predict(self, images: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        features = self.net.features(images)
        logits = self.net.head(features)
        classes = logits.argmax(dim=1) if labels is None else labels
        cam = self.net.cam(features, classes).unsqueeze(1)  # B x 1 x h x w
        return minmax_normalize(cam), logits

    def explained_classifier(self) -> ExplainedClassifier:
        """The classifier that map extractors (`eval.maps`) explain: this CAM network itself."""
        return ExplainedClassifier(self.net, nn.Identity(), "CAM network", self.backbone)


def minmax_normalize(maps: Tensor) -> Tensor:
    """Per-image (x - min) / (max - min) over all but the batch dim; flat or NaN maps -> 0."""
    flat = maps.flatten(1)
    lo = flat.amin(dim=1).view(-1, *([1] * (maps.dim() - 1)))
    hi = flat.amax(dim=1).view(-1, *([1] * (maps.dim() - 1)))
    span = hi - lo
    out = (maps - lo) / span.clamp_min(torch.finfo(maps.dtype).tiny)
    ok = (span > 0) & torch.isfinite(span)
    return torch.where(ok, out, torch.zeros_like(out))
