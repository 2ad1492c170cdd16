"""Torchvision classifiers split into stem / rest / head (METHOD.md, Notation: F_c1, F_c2).

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
to 1 (``stride16=False`` keeps torchvision's 1/32). MobileNet CAMs stay at 1/32.

Parameters keep torchvision's modules, and each network records the torchvision name of
every parameter (`source_keys`), so torchvision checkpoints load directly
(`ornet.models.weights`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..errors import OrnetError
from ..registry import Registry
from .weights import load_weights

BACKBONES: Registry[Callable[..., SplitClassifier]] = Registry("backbone")
"""name -> builder(num_classes, cam: bool, stride16: bool) -> SplitClassifier (no weights)."""


class ClassifierHead(nn.Module):
    """pool -> flatten -> classifier (a Linear or torchvision's classifier Sequential)."""

    def __init__(self, pool: nn.Module, classifier: nn.Module):
        super().__init__()
        self.pool = pool
        self.classifier = classifier

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(torch.flatten(self.pool(x), 1))


class SplitClassifier(nn.Module):
    """A classifier as stem -> rest -> head; ``forward(x)`` = head(rest(stem(x))) -> B x K logits."""

    def __init__(self, arch: str, stem: nn.Module, rest: nn.Module, head: nn.Module,
                 stem_channels: int, feature_channels: int, num_classes: int):
        super().__init__()
        self.arch = arch
        self.num_classes = num_classes
        self.stem_channels = stem_channels
        self.feature_channels = feature_channels
        self.stem = stem
        self.rest = rest
        self.head = head
        # Filled by `_record_sources` (read by ornet.models.weights).
        self.source_keys: dict[str, str] = {}
        self.optional_keys: set[str] = set()
        self.ignored_source_prefixes: tuple[str, ...] = ()

    def features(self, x: Tensor) -> Tensor:
        """B x 3 x H x W -> the last conv feature map, B x feature_channels x h x w."""
        return self.rest(self.stem(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class CAMClassifier(SplitClassifier):
    """A SplitClassifier whose head is GAP + ``fc``, so class activation maps are defined."""

    @property
    def fc(self) -> nn.Linear:
        return self.head.classifier

    def cam(self, features: Tensor, class_idx: Tensor | int) -> Tensor:
        """CAM = sum_c fc.weight[class, c] * features[:, c] -> B x h x w.

        Raw values: no bias, no ReLU, no normalisation (callers decide; `CAMModel.predict`
        min-max normalises). `class_idx`: an int or a B long tensor (one class per image).
        """
        if isinstance(class_idx, int):
            class_idx = torch.full((features.shape[0],), class_idx, dtype=torch.long,
                                   device=features.device)
        weights = self.fc.weight[class_idx]  # B x C
        return torch.einsum("bc,bchw->bhw", weights.to(features.dtype), features)


def build_classifier(name: str, num_classes: int, weights: str = "none") -> SplitClassifier:
    """A registered torchvision classifier with a K-class head, split into stem / rest / head.

    `weights`: ``"none"``, a torchvision weights name or a file (see `load_weights`).
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


def _check_classes(num_classes: int) -> None:
    if not isinstance(num_classes, int) or num_classes < 1:
        raise OrnetError(f"num_classes must be a positive integer, got {num_classes!r}")


# ---------------------------------------------------------------- construction helpers

def _torchvision(arch: str) -> tuple[nn.Module, dict[int, str]]:
    import torchvision

    net = torchvision.models.get_model(arch, weights=None)
    return net, {id(m): n for n, m in net.named_modules() if n}


def _new_linear(old: nn.Linear, num_classes: int, names: dict[int, str]) -> nn.Linear:
    """A K-output Linear in place of `old`; it inherits old's torchvision name.

    old's entry is removed: once replaced it may be freed and its id reused by a new module.
    """
    new = nn.Linear(old.in_features, num_classes)
    nn.init.normal_(new.weight, 0, 0.01)
    nn.init.zeros_(new.bias)
    names[id(new)] = names.pop(id(old))
    return new


def _assemble(arch: str, names: dict[int, str], stem: nn.Module, rest: nn.Module,
              head: nn.Module, stem_channels: int, feature_channels: int, num_classes: int,
              cam: bool, ignored: tuple[str, ...] = ()) -> SplitClassifier:
    cls = CAMClassifier if cam else SplitClassifier
    model = cls(arch, stem, rest, head, stem_channels, feature_channels, num_classes)
    own = model.state_dict()
    for mod_name, mod in model.named_modules():
        src = names.get(id(mod))
        for local in [*mod._parameters, *mod._buffers]:
            key = f"{mod_name}.{local}" if mod_name else local
            if key not in own:
                continue
            if src is None:
                model.optional_keys.add(key)  # a layer we add: nothing to load it from
            else:
                model.source_keys[key] = f"{src}.{local}"
    last = _last_linear(head)  # the replaceable K-class layer: may differ from the source
    for mod_name, mod in model.named_modules():
        if mod is last:
            model.optional_keys.update(k for k in (f"{mod_name}.weight", f"{mod_name}.bias")
                                       if k in own)
    model.ignored_source_prefixes = ignored
    return model


def _last_linear(module: nn.Module) -> nn.Linear:
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    return linears[-1]


def _gap_fc_head(in_features: int, num_classes: int, names: dict[int, str],
                 old: nn.Linear | None = None) -> ClassifierHead:
    if old is not None and old.in_features == in_features:
        fc = _new_linear(old, num_classes, names)
    else:
        fc = nn.Linear(in_features, num_classes)
        nn.init.normal_(fc.weight, 0, 0.01)
        nn.init.zeros_(fc.bias)
    return ClassifierHead(nn.AdaptiveAvgPool2d(1), fc)


# ---------------------------------------------------------------- families

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
            head = _gap_fc_head(channels, num_classes, names, old=net.fc)
        else:
            head = ClassifierHead(net.avgpool, _new_linear(net.fc, num_classes, names))
        return _assemble(arch, names, stem, rest, head, 64, channels, num_classes, cam)

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
            head = _gap_fc_head(1024, num_classes, names)
            return _assemble(arch, names, features[:cut], rest, head, 128, 1024, num_classes,
                             cam, ignored=("classifier.",))
        net, names = _torchvision(arch)
        stem = net.features[:cut]
        classifier = net.classifier
        classifier[6] = _new_linear(classifier[6], num_classes, names)
        head = ClassifierHead(net.avgpool, classifier)
        return _assemble(arch, names, stem, net.features[cut:], head, 128, 512, num_classes, cam)

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
            head = _gap_fc_head(channels, num_classes, names, old=net.classifier[-1])
            return _assemble(arch, names, stem, rest, head, stem_channels, channels,
                             num_classes, cam, ignored=("classifier.",))
        classifier = net.classifier
        classifier[-1] = _new_linear(classifier[-1], num_classes, names)
        pool = getattr(net, "avgpool", None)
        if pool is None:  # MobileNetV2 pools in forward(), without a module
            pool = nn.AdaptiveAvgPool2d(1)
        head = ClassifierHead(pool, classifier)
        return _assemble(arch, names, stem, rest, head, stem_channels, channels, num_classes, cam)

    return build


for _name in ("resnet18", "resnet34", "resnet50", "resnet101"):
    BACKBONES.register(_name)(_resnet(_name))
BACKBONES.register("vgg16")(_vgg("vgg16", cut=10))
BACKBONES.register("vgg16_bn")(_vgg("vgg16_bn", cut=14))
BACKBONES.register("mobilenet_v2")(_mobilenet("mobilenet_v2", cut=4, stem_channels=24))
BACKBONES.register("mobilenet_v3_large")(_mobilenet("mobilenet_v3_large", cut=4, stem_channels=24))
BACKBONES.register("mobilenet_v3_small")(_mobilenet("mobilenet_v3_small", cut=2, stem_channels=16))
