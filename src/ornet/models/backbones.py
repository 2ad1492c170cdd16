"""The backbone registry: torchvision and timm classifiers split into stem / rest / head
(METHOD.md, Notation: F_c1, F_c2; the contract: `models.split`).

`build_classifier(name, K)` gives a `SplitClassifier`:

- ``stem``: image -> low-level features at exactly 1/4 of the input resolution
  (`stem_channels` channels). ResNet: conv1-bn1-relu-maxpool (64 ch); VGG: the layers up to
  and including the 2nd max-pool (128 ch); MobileNet: the layers up to stride 4 (v2 and
  v3-large: features[:4], 24 ch; v3-small: features[:2], 16 ch). This is ORNet's F_c1.
- ``rest``: stem features -> last conv feature map (`feature_channels` channels).
- ``head``: last conv features -> K logits: torchvision's own pooling + flatten + classifier
  with its last Linear replaced by K outputs (ResNet and MobileNet-v2: GAP + Linear; VGG:
  AdaptiveAvgPool2d(7) + the 3-layer FC classifier, which works at any input size;
  MobileNet-v3: GAP + its 2-layer classifier). ``rest`` + ``head`` is ORNet's F_c2.

`build_cam_classifier(name, K)` gives a `CAMClassifier` for the CAM baseline: the same stem,
a GAP + Linear head (``fc``) on the last conv features, and ``cam(features, class_idx)``.
As in wsolevaluation, the CAM networks keep a 1/16 feature map: VGG drops the FC classifier
and the last max-pool and adds conv6 (512 -> 1024, 3x3) + ReLU; ResNet sets layer4's stride
to 1 (``stride16=False`` keeps torchvision's 1/32). MobileNet CAMs stay at 1/32. timm CAM
networks use timm's ``output_stride=16`` (dilation) where timm offers it (`timm_backbones`).

Parameters keep torchvision's modules, and each network records the torchvision name of
every parameter (`source_keys`), so torchvision checkpoints load directly
(`ornet.models.weights`).

timm CNNs are ``timm/<timm model name>`` (split at timm's stride-4 ``feature_info`` stage,
`ornet.models.timm_backbones`): a curated few are registered by name, any other timm model
is accepted by its ``timm/`` prefix and checked when built. ``efficientnet_lite0`` is an alias
of ``timm/tf_efficientnet_lite0`` (`ornet.models.names`), the network of the offline ImageNet
weights (`ornet.models.offline_weights`, weights name ``imagenet``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

import torch
from torch import nn

from ..errors import OrnetError
from ..registry import Registry
from .names import ALIASES, TIMM_PREFIX
from .split import (  # noqa: F401  (SplitClassifier and CAMClassifier: the contract, re-exported)
    CAMClassifier,
    ClassifierHead,
    SplitClassifier,
    assemble,
    gap_fc_head,
    init_new_linear,
    new_linear,
)
from .weights import load_weights

T = TypeVar("T")


class BackboneRegistry(Registry):
    """The registry, plus any ``timm/<model>`` by prefix (checked when built: `timm_backbones`)."""

    def get(self, name: str):
        if name not in self._items and isinstance(name, str) and name.startswith(TIMM_PREFIX):
            return _timm(name)
        return super().get(name)

    def __contains__(self, name: object) -> bool:
        return super().__contains__(name) or (isinstance(name, str) and name.startswith(TIMM_PREFIX)
                                              and len(name) > len(TIMM_PREFIX))


BACKBONES: BackboneRegistry = BackboneRegistry("backbone")
"""name -> builder(num_classes, cam: bool, stride16: bool) -> SplitClassifier (no weights).
Listed: torchvision families, aliases and a few timm CNNs; other ``timm/<model>`` names work too."""


def build_classifier(name: str, num_classes: int, weights: str = "none") -> SplitClassifier:
    """A registered (or ``timm/``) classifier with a K-class head, split into stem / rest / head.

    `weights`: ``"none"``, ``"imagenet"`` (offline), a torchvision weights name or a file
    (see `load_weights`).
    """
    _check_classes(num_classes)
    model = BACKBONES.get(name)(num_classes, cam=False, stride16=False)
    load_weights(model, weights, arch=model.arch)
    return model


def build_cam_classifier(name: str, num_classes: int, weights: str = "none",
                         stride16: bool = True) -> CAMClassifier:
    """The CAM baseline network (module docstring): stem, rest, GAP + ``fc``, ``cam()``."""
    _check_classes(num_classes)
    model = BACKBONES.get(name)(num_classes, cam=True, stride16=stride16)
    load_weights(model, weights, arch=model.arch)
    return model


def check_network(name: str, key: str = "network") -> None:
    """OrnetError (prefixed with `key`) unless `name` builds: a registered name, or a ``timm/``
    name that timm knows and that splits at a stride-4 stage (built once, without weights)."""
    if name not in BACKBONES:
        raise OrnetError(f"{key}: unknown network {name!r}; known: {', '.join(BACKBONES.names())}, "
                         f"or any timm CNN as {TIMM_PREFIX}<timm model name>")
    if name.startswith(TIMM_PREFIX) and name not in BACKBONES.names():
        try:
            BACKBONES.get(name)(2, cam=False, stride16=False)
        except OrnetError as e:
            raise OrnetError(f"{key}: {e}") from None


def _check_classes(num_classes: int) -> None:
    if not isinstance(num_classes, int) or num_classes < 1:
        raise OrnetError(f"num_classes must be a positive integer, got {num_classes!r}")


# ---------------------------------------------------------------- torchvision

def _torchvision(arch: str) -> tuple[nn.Module, dict[int, str]]:
    import torchvision

    net = torchvision.models.get_model(arch, weights=None)
    return net, {id(m): n for n, m in net.named_modules() if n}



def _resnet(arch: str) -> Callable[..., SplitClassifier]:
    def build(num_classes: int, cam: bool = False, stride16: bool = False) -> SplitClassifier:
        net, names = _torchvision(arch)
        stem = nn.Sequential(OrderedDict(conv1=net.conv1, bn1=net.bn1, relu=net.relu,
                                         maxpool=net.maxpool))
        rest = nn.Sequential(OrderedDict(layer1=net.layer1, layer2=net.layer2,
                                         layer3=net.layer3, layer4=net.layer4))
        channels = net.fc.in_features
        if cam:
            if stride16:  # wsolevaluation's ResNetCam: layer4 keeps the 1/16 resolution
                for m in net.layer4[0].modules():
                    if isinstance(m, nn.Conv2d) and m.stride == (2, 2):
                        m.stride = (1, 1)
            head = gap_fc_head(channels, num_classes, names, old=net.fc)
        else:
            head = ClassifierHead(net.avgpool, new_linear(net.fc, num_classes, names))
        return assemble(arch, names, stem, rest, head, 64, channels, num_classes, cam)

    return build


def _vgg(arch: str, cut: int) -> Callable[..., SplitClassifier]:
    """`cut`: index just after the 2nd max-pool of ``features`` (1/4 resolution)."""

    def build(num_classes: int, cam: bool = False, stride16: bool = False) -> SplitClassifier:
        if cam:
            # wsolevaluation's VGG-GAP: no last max-pool (1/16), conv6 + ReLU, GAP, fc.
            features, names = _vgg_features(arch)  # without the 120M-parameter FC classifier
            conv6 = nn.Conv2d(512, 1024, kernel_size=3, padding=1)
            nn.init.kaiming_normal_(conv6.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(conv6.bias)
            rest = nn.Sequential(OrderedDict(body=features[cut:-1], conv6=conv6,
                                             relu6=nn.ReLU(inplace=True)))
            head = gap_fc_head(1024, num_classes, names)
            return assemble(arch, names, features[:cut], rest, head, 128, 1024, num_classes,
                             cam, ignored=("classifier.",))
        net, names = _torchvision(arch)
        stem = net.features[:cut]
        classifier = net.classifier
        classifier[6] = new_linear(classifier[6], num_classes, names)
        head = ClassifierHead(net.avgpool, classifier)
        return assemble(arch, names, stem, net.features[cut:], head, 128, 512, num_classes, cam)

    return build


def _vgg_features(arch: str) -> tuple[nn.Sequential, dict[int, str]]:
    """torchvision's VGG ``features`` alone, initialised as torchvision does, with its names."""
    from torchvision.models.vgg import cfgs, make_layers

    features = make_layers(cfgs["D"], batch_norm=arch.endswith("_bn"))
    for m in features.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    holder = nn.Sequential(OrderedDict(features=features))
    # no root entry: `holder` dies here and a later module could reuse its id
    return features, {id(m): n for n, m in holder.named_modules() if n}


def _mobilenet(arch: str, cut: int, stem_channels: int) -> Callable[..., SplitClassifier]:
    """`cut`: number of ``features`` blocks that make up the stride-4 stem."""

    def build(num_classes: int, cam: bool = False, stride16: bool = False) -> SplitClassifier:
        net, names = _torchvision(arch)
        stem = net.features[:cut]
        rest = net.features[cut:]
        first = net.classifier[0]  # v3: Linear(last conv channels, hidden); v2: Dropout
        channels = first.in_features if isinstance(first, nn.Linear) \
            else net.classifier[-1].in_features
        if cam:
            head = gap_fc_head(channels, num_classes, names, old=net.classifier[-1])
            return assemble(arch, names, stem, rest, head, stem_channels, channels,
                             num_classes, cam, ignored=("classifier.",))
        classifier = net.classifier
        classifier[-1] = new_linear(classifier[-1], num_classes, names)
        pool = getattr(net, "avgpool", None)
        if pool is None:  # MobileNetV2 pools in forward(), without a module
            pool = nn.AdaptiveAvgPool2d(1)
        head = ClassifierHead(pool, classifier)
        return assemble(arch, names, stem, rest, head, stem_channels, channels, num_classes, cam)

    return build


def _timm(arch: str) -> Callable[..., SplitClassifier]:
    """``timm/<model>``: timm's network split at its stride-4 feature stage (`timm_backbones`)."""

    def build(num_classes: int, cam: bool = False, stride16: bool = False) -> SplitClassifier:
        from .timm_backbones import split_timm

        s = split_timm(arch[len(TIMM_PREFIX):], num_classes, cam, stride16)
        head, replaceable = s.head, s.classifier
        if cam:
            head = gap_fc_head(s.feature_channels, num_classes, s.names)
            replaceable = head.classifier
        elif isinstance(replaceable, nn.Linear):
            init_new_linear(replaceable)  # as torchvision heads (`new_linear`), not timm's U(+-1/sqrt(K))
        model = assemble(arch, s.names, s.stem, s.rest, head, s.stem_channels, s.feature_channels,
                         num_classes, cam, ignored=s.ignored, replaceable=replaceable)
        model.feature_end = s.feature_end
        return model

    return build


for _name in ("resnet18", "resnet34", "resnet50", "resnet101"):
    BACKBONES.register(_name)(_resnet(_name))
BACKBONES.register("vgg16")(_vgg("vgg16", cut=10))
BACKBONES.register("vgg16_bn")(_vgg("vgg16_bn", cut=14))
BACKBONES.register("mobilenet_v2")(_mobilenet("mobilenet_v2", cut=4, stem_channels=24))
BACKBONES.register("mobilenet_v3_large")(_mobilenet("mobilenet_v3_large", cut=4, stem_channels=24))
BACKBONES.register("mobilenet_v3_small")(_mobilenet("mobilenet_v3_small", cut=2, stem_channels=16))
for _name in ("tf_efficientnet_lite0", "efficientnet_b0", "mobilenetv3_large_100", "resnet18",
              "resnet50", "convnext_nano", "regnetx_002"):
    BACKBONES.register(TIMM_PREFIX + _name)(_timm(TIMM_PREFIX + _name))
for _alias, _target in ALIASES.items():
    BACKBONES.register(_alias)(_timm(_target))


def on_meta_if_possible(build: Callable[[], T]) -> T:
    """`build()` on the `meta` device (shapes only: no memory, no initialisation), or on the CPU
    where a builder needs real tensors (a timm backbone checks its split with a forward pass)."""
    try:
        with torch.device("meta"):
            return build()
    except (RuntimeError, NotImplementedError, ValueError):
        return build()
