"""Extractors from the class's row of a GAP + Linear head: ``cam`` and ``pc1``.

``cam``: the class activation map (Zhou et al., CVPR 2016), sum_k w_ck f_k over the last conv
feature map, min-max normalised per image without a ReLU: exactly `CAMModel.predict`'s map, so a
CAM run's ``cam`` is its ``own``.

``pc1`` (Yasuki & Taki, "CAM Back Again", CVPR 2024; the authors' release, ``utils.py``
``get_feature_maps`` + ``get_heatmap_from_features``): the CAM's terms w_ck f_k, each channel
min-max normalised over positions, form a C x P matrix (P = h * w positions); PCA with the C
channels as samples, i.e. each position centred over the channels, and the first principal
direction (a vector over the P positions) is the map. Its sign is arbitrary; `orient` fixes it as
the release does: first the largest |entry| positive (scikit-learn's ``svd_flip``, which the
release's PCA applies), then, when more than half of the border cells are above the map's mean,
the map is negated (the release's ``1 - map``: the object is taken not to fill the border).
Departures, each said in docs/maps.md: a flat channel (a dead ReLU channel) becomes 0 where the
release divides by zero; the border is the one-cell ring of any h x w map (the release's slice
keeps a two-cell ring on the bottom and right of its square maps); the class is the label when
labels are given (GT-known), the top-1 otherwise (the release: always the top-1).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import OrnetError
from ..models.cam_network import minmax_normalize
from ..models.split import class_activation_map, gap_linear
from .maps_model import target_classes


def class_linear(target, name: str):
    """The Linear of `target`'s GAP + Linear head; any other head is refused, naming ``eval.maps``."""
    fc = gap_linear(target.network.head, target.network.feature_channels)
    if fc is None:
        raise OrnetError(f"eval.maps {name} needs a classifier whose head is GAP + Linear (the class's weights); "
                         f"the {target.describe()} has another head: use a pytorch-grad-cam extractor "
                         "(e.g. eval.maps gradcam), which works on any head")
    return fc


class _ClassMaps:
    def __init__(self, target, entry):
        self.target, self.fc = target, class_linear(target, entry.name)

    def __call__(self, images: Tensor, labels: Tensor | None) -> tuple[Tensor, Tensor]:
        network = self.target.network
        features = network.features(self.target.convert(images))
        logits = network.head(features)
        return self.maps(features, target_classes(logits, labels)).unsqueeze(1), logits

    def maps(self, features: Tensor, classes: Tensor) -> Tensor:
        raise NotImplementedError


class ClassCam(_ClassMaps):
    """``cam``: min-max normalised CAM of each image's class (B x h x w)."""

    def maps(self, features, classes):
        return minmax_normalize(class_activation_map(self.fc, features, classes))


class Pc1(_ClassMaps):
    """``pc1``: the first principal component of the class-weighted feature maps (B x h x w)."""

    def maps(self, features, classes):
        return pc1_maps(features, self.fc.weight[classes])


def pc1_maps(features: Tensor, weights: Tensor) -> Tensor:
    """B x C x h x w features and B x C class weights -> B x h x w PC1 maps in [0, 1] (module docstring).

    A map whose channels are all alike (no variance, e.g. a 1 x 1 feature map) is all zeros."""
    b, c, h, w = features.shape
    with torch.autocast(features.device.type, enabled=False):  # the SVD in float32
        terms = features.float().flatten(2) * weights.float().unsqueeze(2)  # B x C x P: w_ck f_k
        lo, hi = terms.amin(dim=2, keepdim=True), terms.amax(dim=2, keepdim=True)
        span = hi - lo
        terms = torch.where(span > 0, (terms - lo) / span.clamp_min(torch.finfo(terms.dtype).tiny), 0.0)
        centred = terms - terms.mean(dim=1, keepdim=True)  # each position centred over the channels
        _, s, vh = torch.linalg.svd(centred, full_matrices=False)
        direction = orient(vh[:, 0, :].reshape(b, h, w))
        flat = (s[:, 0] <= 1e-6).view(b, 1, 1)  # no variance among the channels (terms in [0, 1]): no map
        return torch.where(flat, torch.zeros_like(direction), minmax_normalize(direction))


def orient(maps: Tensor) -> Tensor:
    """B x h x w principal directions with the release's sign (module docstring): the largest |entry|
    made positive, then negated where more than half of the border ring is above the map's mean."""
    b = maps.shape[0]
    flat = maps.reshape(b, -1)
    largest = flat.gather(1, flat.abs().argmax(dim=1, keepdim=True))
    maps = maps * torch.where(largest < 0, -1.0, 1.0).view(b, 1, 1)
    above = maps > maps.mean(dim=(1, 2), keepdim=True)
    ring = torch.ones_like(above[0])
    ring[1:-1, 1:-1] = False
    share = (above & ring).sum(dim=(1, 2)) / ring.sum()
    return maps * torch.where(share > 0.5, -1.0, 1.0).view(b, 1, 1)
