"""The stem / rest / head contract shared by every backbone family (METHOD.md, Notation).

`SplitClassifier`: ``stem`` (image -> F_c1 features at 1/4 resolution, `stem_channels`),
``rest`` (-> the last conv map, `feature_channels`) and ``head`` (-> B x K logits); ``forward``
is head(rest(stem(x))). `CAMClassifier` adds ``fc`` and ``cam()`` for a GAP + Linear head.
`assemble` records, for every parameter, the name it has in the source library's model
(`source_keys`), so that torchvision / timm checkpoints load directly (`ornet.models.weights`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


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
        self.feature_end: str | None = None
        """Path in ``rest`` of the deepest feature stage when ``rest`` goes on past it (timm's
        EfficientNet: ``blocks.6``, before its 1 x 1 ``conv_head``); None: all of ``rest``."""

    def features(self, x: Tensor) -> Tensor:
        """B x 3 x H x W -> the last conv feature map, B x feature_channels x h x w."""
        return self.rest(self.stem(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


@dataclass
class ExplainedClassifier:
    """The classifier of a localization model that map extractors explain (`ornet.extractors`):
    ``network`` (its ``features`` = the last conv map, ``rest``'s output; ``head`` -> logits),
    ``convert`` (the run's input normalisation -> the network's own, `Renormalize`), ``role`` (how
    outputs name it: ``CAM network``, ``evaluator``) and ``name`` (its backbone name, e.g. resnet18)."""

    network: SplitClassifier
    convert: nn.Module
    role: str
    name: str

    def describe(self) -> str:
        """metrics.json's ``maps_network``: the role and the backbone, e.g. ``evaluator (resnet18)``."""
        return f"{self.role} ({self.name})"


class CAMClassifier(SplitClassifier):
    """A SplitClassifier whose head is GAP + ``fc``, so class activation maps are defined."""

    @property
    def fc(self) -> nn.Linear:
        return self.head.classifier

    def cam(self, features: Tensor, class_idx: Tensor | int) -> Tensor:
        """`class_activation_map` with this network's ``fc``: B x h x w, raw values
        (`CAMModel.predict` min-max normalises)."""
        return class_activation_map(self.fc, features, class_idx)


def class_activation_map(fc: nn.Linear, features: Tensor, class_idx: Tensor | int) -> Tensor:
    """CAM = sum_c fc.weight[class, c] * features[:, c] -> B x h x w, for a GAP + `fc` head.

    Raw values: no bias, no ReLU, no normalisation (callers decide). `class_idx`: an int or a
    B long tensor (one class per image).
    """
    if isinstance(class_idx, int):
        class_idx = torch.full((features.shape[0],), class_idx, dtype=torch.long, device=features.device)
    weights = fc.weight[class_idx]  # B x C
    return torch.einsum("bc,bchw->bhw", weights.to(features.dtype), features)


def new_linear(old: nn.Linear, num_classes: int, names: dict[int, str]) -> nn.Linear:
    """A K-output Linear in place of `old`; it inherits old's torchvision name.

    old's entry is removed: once replaced it may be freed and its id reused by a new module.
    """
    new = init_new_linear(nn.Linear(old.in_features, num_classes))
    names[id(new)] = names.pop(id(old))
    return new


def init_new_linear(layer: nn.Linear) -> nn.Linear:
    """The initialisation of every newly made K-class layer: weight N(0, 0.01), bias 0; returns it.

    Small initial logits whatever K: fine-tuning from pretrained features starts from a near-uniform
    prediction. (timm initialises EfficientNet / MobileNet classifiers U(+-1 / sqrt(K)), sized for
    K = 1000: with K = 28 the initial logits have a spread of several units and a pretrained
    Lite0 fine-tuned at head_lr_mult 10 reached 31 % val accuracy after 2 epochs instead of 76 %.)
    """
    nn.init.normal_(layer.weight, 0, 0.01)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


def assemble(arch: str, names: dict[int, str], stem: nn.Module, rest: nn.Module,
              head: nn.Module, stem_channels: int, feature_channels: int, num_classes: int,
              cam: bool, ignored: tuple[str, ...] = (),
              replaceable: nn.Module | None = None) -> SplitClassifier:
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
    # the replaceable K-class layer: may differ from the source
    last = replaceable if replaceable is not None else last_linear(head)
    for mod_name, mod in model.named_modules():
        if mod is last:
            model.optional_keys.update(k for k in (f"{mod_name}.weight", f"{mod_name}.bias")
                                       if k in own)
    model.ignored_source_prefixes = ignored
    return model


def gap_linear(head: nn.Module, channels: int) -> nn.Linear | None:
    """The Linear of `head` when the head is global average pooling + that one Linear on
    `channels`-channel features, else None: the heads for which a class activation map (the
    Linear's class row on the last conv features) is defined.

    Checked by what the head computes, not by its class names: on a fixed random feature map the
    head (in eval mode) must give the last Linear applied to the spatial mean. VGG's
    AdaptiveAvgPool2d(7) + 3-layer classifier and MobileNet-v3's 2-layer classifiers are not."""
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    if not linears or linears[-1].in_features != channels:
        return None
    fc = linears[-1]
    probe = torch.randn(2, channels, 3, 3, generator=torch.Generator().manual_seed(0))
    probe = probe.to(device=fc.weight.device, dtype=fc.weight.dtype)
    training = head.training
    head.eval()
    try:
        with torch.no_grad():
            out, ref = head(probe), fc(probe.mean(dim=(2, 3)))
    finally:
        head.train(training)
    return fc if out.shape == ref.shape and torch.allclose(out, ref, rtol=1e-4, atol=1e-5) else None


def last_linear(module: nn.Module) -> nn.Linear:
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    return linears[-1]


def gap_fc_head(in_features: int, num_classes: int, names: dict[int, str],
                 old: nn.Linear | None = None) -> ClassifierHead:
    if old is not None and old.in_features == in_features:
        fc = new_linear(old, num_classes, names)
    else:
        fc = init_new_linear(nn.Linear(in_features, num_classes))
    return ClassifierHead(nn.AdaptiveAvgPool2d(1), fc)
