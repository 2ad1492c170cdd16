"""BAS's feature trunk (Wu et al., CVPR 2022; github.com/wpy1999/BAS, ``CUB/Model/resnet.py`` and
``CUB/Model/vgg.py``), built on the backbone registry's CAM split (`build_cam_classifier`).

BAS cuts its network in two: ``low`` ends at 1/8 of the input (the features its localization head
reads: ResNet's ``x_3``, VGG's ``x_4``) and ``high`` takes them on to the classification features
at 1/16 (which the erased features also go through):

- ResNet: conv1 ... layer3 with layer3 at stride 1 (``large_feature_map=True``), then ``high`` =
  a 2 x 2 max-pool (``F.max_pool2d(x, kernel_size=2)``) and layer4 at stride 1. BAS's Bottleneck
  has its stride in the 3 x 3 conv, as torchvision's (v1.5), so torchvision's ResNets are its
  network; ResNet-18/34 get the same cut (not in BAS's repo).
- VGG-16: torchvision's ``features`` to conv4_3 + ReLU (``x_4``), then pool4 and conv5_1-3 + ReLU;
  BAS's pool5 is never used in forward, and there is no conv6.

Beyond BAS (ornet's choice, docs/methods.md "BAS"): a timm CNN, built with ``output_stride=16`` as
its CAM network, is cut after the deepest stride-16 stage of its ``feature_info`` (EfficientNet:
``blocks.4``; ResNet: ``layer3``): ``low`` and ``high`` are then both at 1/16 and no pool is added
(`BasModel` pools the foreground map by the ratio of the two sizes, 2 or 1). Other backbones
(torchvision's MobileNets) are refused in one line.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import OrnetError
from .backbones import build_cam_classifier
from .names import timm_name
from .wsol_trunks import family


@dataclass
class BasTrunk:
    stem: nn.Module
    """image -> 1/4 (the registry's stem; map extractors need it)."""
    low: nn.Module
    """stem features -> the localization head's input (1/8 for ResNet and VGG)."""
    high: nn.Module
    """`low`'s output -> the classification features (1/16)."""
    low_channels: int
    channels: int
    stem_channels: int
    init: str
    """How BAS initialises its new convs: xavier (ResNet, ``initialize_weights``) or normal
    (VGG, ``weight_init``: N(0, 0.02) weights, PyTorch's default biases)."""


def bas_cut(name: str) -> str | None:
    """Where a backbone's CAM ``rest`` is cut (None: BAS's own ResNet / VGG cut); OrnetError, one
    line, for a backbone BAS cannot use."""
    kind = family(name)
    if kind in ("resnet", "vgg"):
        return None
    if kind == "timm":
        import timm

        with torch.device("meta"):  # feature_info only: no memory, no weights
            net = timm.create_model(timm_name(name), pretrained=False)
        at16 = [dict(e)["module"] for e in (getattr(net, "feature_info", None) or []) if dict(e).get("reduction") == 16]
        if at16:
            return at16[-1]
        why = "it has no stride-16 feature stage"
    else:
        why = "it is neither a ResNet, a VGG nor a timm CNN"
    raise OrnetError(f"model.backbone: BAS cannot use {name}: {why} (BAS's localization head reads the "
                     "features before the last stage, as its ResNet-50's layer3)")


def bas_trunk(name: str, num_classes: int, weights: str = "none") -> BasTrunk:
    """BAS's trunk of backbone `name` with `weights` loaded (module docstring)."""
    cut = bas_cut(name)
    net = build_cam_classifier(name, num_classes, weights, stride16=True)
    kind = family(name)
    if kind == "resnet":
        r = net.rest
        for m in r.layer3[0].modules():  # large_feature_map=True: layer3 keeps 1/8
            if isinstance(m, nn.Conv2d) and m.stride == (2, 2):
                m.stride = (1, 1)
        low = nn.Sequential(OrderedDict(layer1=r.layer1, layer2=r.layer2, layer3=r.layer3))
        high = nn.Sequential(OrderedDict(pool=nn.MaxPool2d(2), layer4=r.layer4))
        return BasTrunk(net.stem, low, high, _last_channels(r.layer3), net.feature_channels, net.stem_channels,
                        "xavier")
    if kind == "vgg":
        body = net.rest.body  # features[10:-1]: torchvision's indices kept as names
        pools = [i for i, m in enumerate(body) if isinstance(m, nn.MaxPool2d)]
        low, high = body[:pools[-1]], body[pools[-1]:]  # x_4 = relu4_3; high = pool4, conv5_1-3 + ReLU
        return BasTrunk(net.stem, low, high, _last_channels(low), _last_channels(high), net.stem_channels, "normal")
    low, high = split_after(net.rest, cut)
    return BasTrunk(net.stem, low, high, _probe_channels(net.stem, low), net.feature_channels, net.stem_channels,
                    "xavier")


def split_after(seq: nn.Module, path: str) -> tuple[nn.Sequential, nn.Sequential]:
    """(the modules of `seq` up to and including `path`, the ones after), descending into
    ``nn.Sequential`` containers; names joined with ``_``."""
    head, _, tail = path.partition(".")
    before: OrderedDict[str, nn.Module] = OrderedDict()
    after: OrderedDict[str, nn.Module] = OrderedDict()
    found = False
    for key, child in seq.named_children():
        if found:
            after[key] = child
        elif key != head:
            before[key] = child
        elif not tail:
            before[key], found = child, True
        elif isinstance(child, nn.Sequential):
            b, a = split_after(child, tail)
            before[key], after[key], found = b, a, True
        else:
            break
    if not found:
        raise OrnetError(f"model.backbone: BAS cannot cut the network after {path}: not a step of its forward")
    return nn.Sequential(before), nn.Sequential(after)


def _last_channels(seq: nn.Module) -> int:
    return [m for m in seq.modules() if isinstance(m, nn.Conv2d)][-1].out_channels


def _probe_channels(stem: nn.Module, low: nn.Module) -> int:
    modes = [(m, m.training) for m in (stem, low)]
    try:
        stem.eval()
        low.eval()
        with torch.no_grad():
            return int(low(stem(torch.zeros(1, 3, 64, 64))).shape[1])
    finally:
        for m, mode in modes:
            m.train(mode)
