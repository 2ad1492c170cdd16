"""timm CNNs split into stem / rest / head, the same `SplitClassifier` contract as torchvision's.

``timm/<model>`` builds timm's ``<model>`` (always ``pretrained=False``: nothing is fetched;
weights come from `ornet.models.weights`). The split follows timm's own description of the
network:

- ``stem`` (ORNet's F_c1): the modules up to and including the deepest stride-4 entry of
  ``feature_info`` (EfficientNet / MobileNet: ``blocks.1``, 24 ch; ResNet: ``layer1``; ConvNeXt:
  ``stages.0``). This differs from the torchvision ResNet family, whose stem stops before
  ``layer1`` (the release's choice): for timm networks F_c1 is timm's stride-4 feature.
- ``rest``: the remaining modules of ``forward_features`` (for EfficientNet this includes
  ``conv_head`` + ``bn2``), so ``rest(stem(x)) == forward_features(x)``.
- ``head``: timm's ``forward_head`` (pooling, dropout, the K-class classifier, and for
  MobileNetV3 its post-pooling ``conv_head``), run by `TimmHead` on the original model object
  from which the stem and rest modules were removed.

The modules are found, not assumed: forward hooks record which top-level modules (descending
into ``nn.Sequential`` containers on the way to the stride-4 module) ``forward_features``
calls, in which order, and a probe forward at 64 x 64 checks that stem -> rest -> head gives
exactly the model's own forward and that the stem output is B x C x H/4 x W/4. A network that
fails (no stride-4 feature, a ViT, modules that do not run in order, channels-last features)
is refused with one line saying why.

CAM network (`cam=True`): GAP + a new K-class Linear on the ``forward_features`` map. With
``stride16`` the network is built with timm's ``output_stride=16`` (the last stride-2 stage
dilated, as DeepLab does; weights keep their shapes), giving a 1/16 map like the torchvision
CAM networks; networks that timm cannot build so (MobileNetV3, GhostNet: no
``output_stride`` option or no dilation) keep 1/32, with a logged note.
"""

from __future__ import annotations

import difflib
import logging
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..errors import OrnetError
from .names import TIMM_PREFIX

log = logging.getLogger(__name__)

PROBE_SIZE = 64
"""Side of the probe image (the smallest input ornet's configs use)."""


class TimmHead(nn.Module):
    """timm's ``forward_head`` on what is left of the model (the stem and rest removed)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return self.net.forward_head(x)


def create(name: str, num_classes: int, output_stride: int | None = None) -> nn.Module:
    """timm's model `name` (without ``timm/``), ``pretrained=False``; OrnetError for unknown names."""
    import timm

    full = TIMM_PREFIX + name
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
        hint = f"; did you mean {', '.join(TIMM_PREFIX + c for c in close)}?" if close else ""
        raise OrnetError(f"unknown timm model {full!r} (timm {timm.__version__} has no {name!r}){hint}")
    if output_stride:
        try:
            return timm.create_model(name, pretrained=False, num_classes=num_classes,
                                     output_stride=output_stride)
        except Exception:  # no output_stride option (TypeError) or no dilation (AssertionError)
            log.info("%s: timm cannot build it with output_stride=%d; its CAM map stays at 1/32",
                     full, output_stride)
    try:
        return timm.create_model(name, pretrained=False, num_classes=num_classes)
    except Exception as err:  # timm's own errors for models it lists but cannot build this way
        raise OrnetError(f"{full}: timm cannot build it ({type(err).__name__}: {err})") from None


def stride4_module(net: nn.Module, full: str) -> tuple[str, int]:
    """(module name, channels) of the deepest ``feature_info`` entry at reduction 4."""
    info = getattr(net, "feature_info", None)
    entries = [dict(e) for e in info] if info else []
    at4 = [e for e in entries if e.get("reduction") == 4]
    if not at4:
        seen = sorted({e.get("reduction") for e in entries if e.get("reduction")})
        raise OrnetError(f"{full}: no stride-4 feature stage (feature_info reductions: "
                         f"{', '.join(map(str, seen)) or 'none'}); ORNet needs a CNN with features at 1/4 "
                         "of the input for F_c1 (transformers such as ViT have none)")
    return at4[-1]["module"], int(at4[-1]["num_chs"])


def ordered_modules(net: nn.Module, target: str, full: str) -> list[tuple[str, nn.Module]]:
    """The model's top-level modules in registration order, with the ``nn.Sequential``
    containers on the path to `target` replaced by their children (so `target` is an item)."""
    items = list(net.named_children())
    parts = target.split(".")
    for depth in range(1, len(parts)):
        prefix = ".".join(parts[:depth])
        k = next((i for i, (n, _) in enumerate(items) if n == prefix), None)
        if k is None or not isinstance(items[k][1], nn.Sequential):
            raise OrnetError(f"{full}: its stride-4 feature module {target!r} is not reachable through "
                             "sequential containers, so it cannot be split into stem and rest")
        items[k:k + 1] = [(f"{prefix}.{n}", m) for n, m in items[k][1].named_children()]
    if not any(n == target for n, _ in items):
        raise OrnetError(f"{full}: feature_info names {target!r}, which is not one of its modules")
    return items


def _called_in_features(net: nn.Module, items: list[tuple[str, nn.Module]], x: Tensor) -> list[str]:
    """Names of `items` that ``forward_features`` calls, in call order."""
    calls: list[str] = []
    hooks = [m.register_forward_hook(lambda mod, inp, out, n=n: calls.append(n)) for n, m in items]
    try:
        net.forward_features(x)
    finally:
        for h in hooks:
            h.remove()
    return calls


def _sequential(items: list[tuple[str, nn.Module]]) -> nn.Sequential:
    """Modules in order; children of a split container stay grouped (``blocks`` -> ``blocks.2``...)."""
    groups: OrderedDict[str, list[tuple[str, nn.Module]]] = OrderedDict()
    for name, module in items:
        top, _, sub = name.partition(".")
        groups.setdefault(top, []).append((sub, module))
    out = nn.Sequential()
    for top, members in groups.items():
        if len(members) == 1 and not members[0][0]:
            out.add_module(top, members[0][1])
        else:
            out.add_module(top, _sequential(members))
    return out


@dataclass
class TimmSplit:
    """The parts of a split timm network (module docstring)."""

    stem: nn.Module
    rest: nn.Module
    head: nn.Module | None
    """`TimmHead`, or None for the CAM network (its caller adds GAP + fc)."""
    stem_channels: int
    feature_channels: int
    names: dict[int, str]
    """id(module) -> timm's name of the module (for `SplitClassifier.source_keys`)."""
    ignored: tuple[str, ...]
    """timm key prefixes of the head modules (ignored when the CAM network drops them)."""
    classifier: nn.Module | None
    """timm's K-class classifier (replaceable when loading 1000-class weights)."""
    feature_end: str | None = None
    """Module name of timm's deepest ``feature_info`` stage (e.g. ``blocks.6``): where the features
    end and a classifier's own head (EfficientNet's 1 x 1 ``conv_head``) begins."""


def split_timm(name: str, num_classes: int, cam: bool, stride16: bool) -> TimmSplit:
    """Build ``timm/<name>`` with a K-class head and split it (module docstring)."""
    full = TIMM_PREFIX + name
    net = create(name, num_classes, output_stride=16 if (cam and stride16) else None)
    originals = list(net.modules())  # held until the end: no id in `names` can be reused meanwhile
    names = {id(m): n for n, m in net.named_modules() if n}
    target, stem_channels = stride4_module(net, full)
    items = ordered_modules(net, target, full)
    was_training = net.training
    net.eval()
    if any(p.is_meta for p in net.parameters()):  # the probe needs values; on meta it only costs time
        raise NotImplementedError(f"{full}: split on the meta device (its probe forward needs real tensors)")
    x = torch.randn(2, 3, PROBE_SIZE, PROBE_SIZE, generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():
            calls = _called_in_features(net, items, x)
            expected_features = net.forward_features(x)
            expected = net(x)
    except Exception as err:
        raise OrnetError(f"{full}: its forward fails on a {PROBE_SIZE}x{PROBE_SIZE} image "
                         f"({type(err).__name__}: {err})") from None
    used = [n for n, _ in items]
    consumed = {n.split(".")[0] for n in calls}
    if calls != used[:len(calls)] or any(n.split(".")[0] in consumed for n in used[len(calls):]):
        raise OrnetError(f"{full}: forward_features does not call its modules once each in order, "
                         "so it cannot be split into stem / rest / head")
    cut = used.index(target) + 1
    if cut > len(calls):
        raise OrnetError(f"{full}: forward_features never reaches its stride-4 module {target!r}")
    stem, rest = _sequential(items[:cut]), _sequential(items[cut:len(calls)])
    classifier = net.get_classifier() if hasattr(net, "get_classifier") else None
    for top in consumed:  # the head keeps the rest of the model object, without stem and body
        setattr(net, top, nn.Identity())
    ignored = tuple(f"{n}." for n, _ in net.named_children() if n not in consumed)
    with torch.no_grad():
        f_c = stem(x)
        feats = rest(f_c)
        if f_c.shape != (2, stem_channels, PROBE_SIZE // 4, PROBE_SIZE // 4):
            raise OrnetError(f"{full}: its stride-4 features are {tuple(f_c.shape)} for a "
                             f"{PROBE_SIZE}x{PROBE_SIZE} image, not B x {stem_channels} x "
                             f"{PROBE_SIZE // 4} x {PROBE_SIZE // 4} (not a channels-first CNN)")
        if feats.shape != expected_features.shape or not torch.allclose(feats, expected_features,
                                                                         rtol=1e-4, atol=1e-5):
            raise OrnetError(f"{full}: stem -> rest does not reproduce forward_features, "
                             "so it cannot be split")
        head: nn.Module = TimmHead(net)
        if not cam and not torch.allclose(head(feats), expected, rtol=1e-4, atol=1e-5):
            raise OrnetError(f"{full}: stem -> rest -> head does not reproduce its forward, "
                             "so it cannot be split")
    for module in (stem, rest, net):
        module.train(was_training)
    if cam:
        head = None  # the caller adds GAP + a new K-class fc; timm's whole head is dropped
        classifier = None
    # Only the modules that live on keep their names: a dropped one (timm's head in the CAM
    # network) is freed after this returns, and its id may be reused by a module the caller
    # adds (the new fc), which must not inherit the dropped module's name.
    kept = {id(m) for part in (stem, rest, head) if part is not None for m in part.modules()}
    names = {i: n for i, n in names.items() if i in kept}
    del originals
    info = getattr(net, "feature_info", None)
    deepest = dict(info[-1]).get("module") if info else None  # entries run shallow to deep
    return TimmSplit(stem, rest, head, stem_channels, int(feats.shape[1]), names, ignored,
                     classifier if isinstance(classifier, nn.Module) else None, deepest)
