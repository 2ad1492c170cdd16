"""The CAM network with ADL layers (`adl_layer.ADL`) where wsolevaluation inserts them.

- torchvision ResNets (wsolevaluation ``wsol/resnet.py``, ``_ADL_POSITION = [[], [], [], [0],
  [0, 2]]``): after the first block of layer3, after the first and after the last block of
  layer4 (ResNet-50's layer4 has 3 blocks: block 2 is the last);
- torchvision VGG-16 (``wsol/vgg.py``, ``configs_dict['adl']['14x14']``): after pool3 (the input
  of conv4_1), after conv4_3's ReLU (before pool4) and after conv5_3's ReLU (the input of conv6);
  vgg16_bn the same, after the BN-ReLU pairs;
- timm CNNs (not in wsolevaluation; ornet's rule, which gives wsolevaluation's ResNet-50 positions
  on timm/resnet50): after the first block whose output is at 1/16 of the input, after the first
  block at 1/32 (found on the network without dilation, so the CAM network's 1/16 map does not
  move them) and after the last feature layer. A block is a child of a sequential stage, so
  networks whose stages are not ``nn.Sequential`` (ConvNeXt, RegNet) are refused;
- other backbones (the torchvision MobileNets) are refused.

The layers are added into the existing ``nn.Sequential`` containers under new names (``adl_0``,
...), so every parameter keeps its name: the state dict equals the plain CAM network's, and
torchvision / timm / offline weights load unchanged. `ADLModel.predict` is `CAMModel`'s (the
layers pass their input at evaluation).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import OrnetError
from .adl_layer import ADL
from .cam_network import CAMModel
from .names import TIMM_PREFIX
from .split import CAMClassifier

REFUSED = ("wsolevaluation places ADL in ResNet-50 and VGG-16; here the torchvision ResNets and "
           "VGG-16s take it, and timm CNNs made of sequential stages")


class ADLModel(CAMModel):
    """`CAMModel` with ADL layers (module docstring); `adl_positions` names where they are."""

    def __init__(self, name: str, num_classes: int, weights: str = "none", drop_rate: float = 0.75,
                 drop_threshold: float = 0.9):
        super().__init__(name, num_classes, weights)
        self.adl_positions = insert_adl(self.net, drop_rate, drop_threshold)


def insert_adl(net: CAMClassifier, drop_rate: float, drop_threshold: float) -> list[str]:
    """Add ADL layers to `net` in place; returns the paths they follow (``rest.layer3.0``, ...)."""
    places = adl_places(net)
    for k, (parent, key) in enumerate(places):
        _insert_after(parent, key, f"adl_{k}", ADL(drop_rate, drop_threshold))
    names = {id(m): n for n, m in net.named_modules()}
    return [f"{names[id(parent)]}.{key}" if names[id(parent)] else key for parent, key in places]


def adl_places(net: CAMClassifier) -> list[tuple[nn.Sequential, str]]:
    """(container, key of the module an ADL layer follows), in forward order."""
    arch = net.arch
    if arch.startswith("resnet"):
        l3, l4 = net.rest.layer3, net.rest.layer4
        return [(l3, _keys(l3)[0]), (l4, _keys(l4)[0]), (l4, _keys(l4)[-1])]
    if arch.startswith("vgg16"):
        body = net.rest.body  # features after pool2, without pool5 (`backbones._vgg`)
        keys = _keys(body)
        pools = [k for k in keys if isinstance(body._modules[k], nn.MaxPool2d)]
        return [(body, pools[0]), (body, keys[keys.index(pools[1]) - 1]), (body, keys[-1])]
    if arch.startswith(TIMM_PREFIX):
        return _timm_places(net)
    raise OrnetError(f"adl: backbone {arch!r} has no ADL positions: {REFUSED}")


def _timm_places(net: CAMClassifier) -> list[tuple[nn.Sequential, str]]:
    from .backbones import BACKBONES
    from .timm_backbones import PROBE_SIZE

    plain = BACKBONES.get(net.arch)(2, cam=True, stride16=False)  # same module names, no dilation
    blocks = _blocks(plain.rest)
    sizes: dict[str, int] = {}

    def record(path: str):
        def hook(module, inputs, output) -> None:  # returns None: the output is left as it is
            sizes.setdefault(path, int(output.shape[-1]))
        return hook

    hooks = [plain.rest.get_submodule(path).register_forward_hook(record(path)) for path in blocks]
    try:
        with torch.no_grad():
            plain.eval().features(torch.zeros(1, 3, PROBE_SIZE, PROBE_SIZE))
    finally:
        for h in hooks:
            h.remove()
    first = {r: next((p for p in blocks if sizes.get(p) == PROBE_SIZE // r), None) for r in (16, 32)}
    if None in first.values() or first[32] == plain.feature_end:  # ConvNeXt: whole stages, not blocks
        raise OrnetError(f"adl: backbone {net.arch!r} has no sequential block at 1/16 and at 1/32 "
                         f"(its stages are not nn.Sequential), so ADL has no position: {REFUSED}")
    places = []
    for path in (first[16], first[32]):
        parent, _, key = path.rpartition(".")
        places.append((net.rest.get_submodule(parent), key))
    return places + [(net.rest, _keys(net.rest)[-1])]


def _blocks(module: nn.Module, prefix: str = "") -> list[str]:
    """Paths (in `module`) of the blocks of its sequential stages, in forward order: the
    non-sequential children of the ``nn.Sequential`` containers below `module`."""
    out = []
    for key, child in module.named_children():
        if isinstance(child, nn.Sequential):
            path = f"{prefix}{key}"
            kids = list(child.named_children())
            if kids and all(isinstance(c, nn.Sequential) for _, c in kids):
                out += _blocks(child, f"{path}.")
            else:
                out += [f"{path}.{k}" for k, c in kids if not isinstance(c, nn.Sequential)]
    return out


def _keys(seq: nn.Sequential) -> list[str]:
    return list(seq._modules)


def _insert_after(parent: nn.Sequential, key: str, name: str, module: nn.Module) -> None:
    """Put `module` (as `name`) right after `key` in the container's order; other names stay."""
    items = list(parent._modules.items())
    for k, _ in items:
        del parent._modules[k]
    for k, m in items:
        parent.add_module(k, m)
        if k == key:
            parent.add_module(name, module)
