"""The feature trunks of the methods ported from wsolevaluation (ACoL, SPG), built on the backbone
registry's CAM split (`build_cam_classifier`: stem + rest at 1/16, its GAP + fc head dropped).

Where wsolevaluation defines the method (github.com/clovaai/wsolevaluation, ``wsol/vgg.py``,
``wsol/resnet.py``; ``large_feature_map`` False, its default), the trunk is its network:

- ResNet (``ResNetAcol``, ``ResNetSpg``): conv1 ... layer4 with layer4 at stride 1 (1/16), the
  CAM network's trunk. SPG's branches B1 / B2 start after ``layer3.0`` (``SPG_A1``) and after
  ``layer3`` (``SPG_A2``). Its optimiser puts layer4 at lr x ``lr_classifier_ratio``, the rest,
  the new heads included, at lr (main.py ``_FEATURE_PARAM_LAYER_PATTERNS``).
- VGG ACoL (``VggAcol``, config ``'14x14'``): the four 2 x 2 max-pools become 3 x 3 stride-2
  pools with padding 1 (``M1``), a 3 x 3 stride-1 pool (``M2``) follows conv5_3, then a 3 x 3
  stride-1 average pool (``F.avg_pool2d`` in forward); no conv6.
- VGG SPG (``VggSpg``): torchvision's layers to pool3 (``features``), conv4_1-3 (``SPG_A_1``),
  a 3 x 3 stride-2 pool with padding 1, where B1 branches, conv5_1-3 (``SPG_A_2``), where B2
  branches, and two new 3 x 3 convs of 512 (``SPG_A_3``). For VGG the layers after
  ``features`` (and the new ones) train at lr x ``lr_classifier_ratio``.

Beyond wsolevaluation (ornet's choice, docs/methods.md): any other backbone's ACoL trunk is its
CAM trunk (timm networks at ``output_stride=16`` where timm can dilate them). SPG on a timm CNN
branches where ResNet's would: after the first block of its shallowest stride-16
``feature_info`` stage, and after that stage (EfficientNet: ``blocks.4.0``, ``blocks.4``; ResNet:
``layer3.0``, ``layer3``); a network whose stride-16 stage is not a sequence of blocks
(ConvNeXt, RegNet) and torchvision's MobileNets are refused in one line. For these backbones
only the new layers take the lr multiplier.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import OrnetError
from .backbones import build_cam_classifier
from .names import canonical, is_timm, timm_name
from .split import ExplainedClassifier, SplitClassifier

PROBE = 64
"""Side of the probe image that finds the branch points' channels."""


@dataclass
class Trunk:
    """stem -> rest: image -> B x `channels` x H/16 x W/16 (module docstring)."""

    stem: nn.Module
    rest: nn.Module
    channels: int
    boosted: list[nn.Module] = field(default_factory=list)
    """Trunk modules trained at lr x head_lr_mult (wsolevaluation's lr_classifier_ratio)."""
    boost_heads: bool = True
    """Whether the method's new layers train at lr x head_lr_mult too."""
    init: str = "xavier"
    """How the method's new convs are initialised (wsol/util.py initialize_weights): he or xavier."""
    taps: tuple[str, ...] = ()
    """SPG: paths in ``rest`` of the modules whose outputs the B1 and B2 branches take."""
    tap_channels: tuple[int, ...] = ()
    stem_channels: int = 0


def family(name: str) -> str:
    """resnet or vgg (torchvision's, as wsolevaluation's), timm, or other."""
    if is_timm(name):
        return "timm"
    full = canonical(name)
    return "resnet" if full.startswith("resnet") else "vgg" if full.startswith("vgg") else "other"


def init_conv(conv: nn.Conv2d, mode: str) -> nn.Conv2d:
    """wsol/util.py ``initialize_weights``: he (kaiming normal, fan_out, relu) or xavier (uniform); bias 0."""
    if mode == "he":
        nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    else:
        nn.init.xavier_uniform_(conv.weight)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


def conv(cin: int, cout: int, k: int, mode: str) -> nn.Conv2d:
    return init_conv(nn.Conv2d(cin, cout, k, padding=k // 2), mode)


def acol_trunk(name: str, num_classes: int, weights: str = "none") -> Trunk:
    """ACoL's trunk of backbone `name` with `weights` loaded (module docstring)."""
    net = build_cam_classifier(name, num_classes, weights, stride16=True)
    kind = family(name)
    if kind == "vgg":
        _swap_pools(net.stem)
        _swap_pools(net.rest.body)
        rest = nn.Sequential()
        rest.add_module("body", net.rest.body)
        rest.add_module("pool5", nn.MaxPool2d(3, stride=1, padding=1))  # 'M2'
        rest.add_module("avgpool", nn.AvgPool2d(3, stride=1, padding=1))  # F.avg_pool2d(feature, 3, 1, 1)
        return Trunk(net.stem, rest, _out_channels(net.rest.body), init="xavier", stem_channels=net.stem_channels)
    if kind == "resnet":
        return Trunk(net.stem, net.rest, net.feature_channels, boosted=[net.rest.layer4], boost_heads=False,
                     init="he", stem_channels=net.stem_channels)
    return Trunk(net.stem, net.rest, net.feature_channels, init="he", stem_channels=net.stem_channels)


def spg_trunk(name: str, num_classes: int, weights: str = "none") -> Trunk:
    """SPG's trunk of backbone `name` with `weights` loaded, and its branch points (module docstring)."""
    kind = family(name)
    taps = spg_taps(name)  # refuses a backbone without them, before anything is built
    net = build_cam_classifier(name, num_classes, weights, stride16=True)
    stem, rest, channels = net.stem, net.rest, net.feature_channels
    boosted: list[nn.Module] = []
    if kind == "vgg":
        body = net.rest.body
        pools = [i for i, m in enumerate(body) if isinstance(m, nn.MaxPool2d)]
        body[pools[-1]] = nn.MaxPool2d(3, stride=2, padding=1)  # F.max_pool2d(x, 3, 2, 1) after SPG_A_1
        a3 = nn.Sequential(conv(512, 512, 3, "xavier"), nn.ReLU(inplace=True),
                           conv(512, 512, 3, "xavier"), nn.ReLU(inplace=True))  # SPG_A_3
        rest = nn.Sequential()
        rest.add_module("body", body)
        rest.add_module("a3", a3)
        names = list(body._modules)  # a slice of torchvision's `features` keeps its indices as names
        taps = (f"body.{names[pools[-1]]}", f"body.{names[-1]}")
        boosted = [m for i, m in enumerate(body) if i > pools[0]] + [a3]  # after wsolevaluation's `features`
        channels = 512
    elif kind == "resnet":
        boosted = [rest.layer4]
    return Trunk(stem, rest, channels, boosted=boosted, boost_heads=kind != "resnet", init="xavier",
                 taps=taps, tap_channels=_tap_channels(stem, rest, taps), stem_channels=net.stem_channels)


def spg_taps(name: str) -> tuple[str, ...]:
    """The paths in the CAM trunk's ``rest`` where SPG's B1 and B2 branch (VGG's are set by
    `spg_trunk`); OrnetError, one line, for a backbone SPG is not defined on."""
    kind = family(name)
    if kind == "resnet":
        return ("layer3.0", "layer3")
    if kind == "vgg":
        return ()
    if kind == "timm":
        import timm

        with torch.device("meta"):  # feature_info only: no memory, no weights
            net = timm.create_model(timm_name(name), pretrained=False)
        info = [dict(e) for e in (getattr(net, "feature_info", None) or [])]
        at16 = [e["module"] for e in info if e.get("reduction") == 16]
        stage = net.get_submodule(at16[0]) if at16 else None
        if isinstance(stage, nn.Sequential) and len(stage) >= 2:
            return (f"{at16[0]}.{next(iter(stage._modules))}", at16[0])
        why = (f"its stride-16 stage {at16[0]} is a {type(stage).__name__}, not a sequence of blocks" if at16
               else "it has no stride-16 feature stage")
    else:
        why = "it is neither a ResNet, a VGG nor a timm CNN"
    raise OrnetError(f"model.backbone: SPG cannot use {name}: {why} (SPG branches after the first block of "
                     "the stride-16 stage and after that stage, as wsolevaluation's ResNet-50)")


def _swap_pools(seq: nn.Sequential) -> None:
    """VggAcol's 'M1': every 2 x 2 max-pool becomes a 3 x 3 stride-2 pool with padding 1."""
    for i, m in enumerate(seq):
        if isinstance(m, nn.MaxPool2d):
            seq[i] = nn.MaxPool2d(3, stride=2, padding=1)


def _out_channels(seq: nn.Module) -> int:
    return [m for m in seq.modules() if isinstance(m, nn.Conv2d)][-1].out_channels


def _tap_channels(stem: nn.Module, rest: nn.Module, taps: tuple[str, ...]) -> tuple[int, ...]:
    """Channels of each tap's output, from a probe forward (on the meta device when built there)."""
    found: dict[str, int] = {}

    def keep(path: str, out) -> None:  # a hook that returned a value would replace the output
        found.setdefault(path, int(out.shape[1]))

    hooks = [rest.get_submodule(p).register_forward_hook(lambda mod, inp, out, p=p: keep(p, out)) for p in taps]
    device = next(stem.parameters()).device
    modes = [(m, m.training) for m in (stem, rest)]
    try:
        stem.eval()
        rest.eval()
        with torch.no_grad():
            rest(stem(torch.zeros(1, 3, PROBE, PROBE, device=device)))
    finally:
        for h in hooks:
            h.remove()
        for m, mode in modes:
            m.train(mode)
    missing = [p for p in taps if p not in found]
    if missing:
        raise OrnetError(f"model.backbone: SPG's branch point {missing[0]} is never run by the network's forward")
    return tuple(found[p] for p in taps)


def explained(model: nn.Module, head: nn.Module, role: str) -> ExplainedClassifier:
    """The classifier that map extractors (`eval.maps`) explain: `model`'s stem and rest (the last conv
    map) and `head` (that map -> the logits its ``predict`` gives), as a `SplitClassifier` view."""
    view = SplitClassifier(model.backbone, model.stem, model.rest, head, model.stem_channels, model.channels,
                           model.num_classes)
    return ExplainedClassifier(view, nn.Identity(), role, model.backbone)

