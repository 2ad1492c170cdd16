"""torchvision weights names (``IMAGENET1K_V1``, ``DEFAULT``): the enum member, its cached file and
its state dict.

A name is resolved with ``torchvision.models.get_model_weights(arch)[name]`` (nothing is
downloaded to resolve it, nor to read its transforms' mean / std). Its state dict comes from
torch.hub's cache in ``$TORCH_HOME`` when the file is there, read weights-only
(`runtime.safe_load.safe_torch_load`: torch.hub itself would unpickle anything), else it is
downloaded (hash checked, weights only). Imports torch and torchvision: `models.weights_spec`
imports this module only to read a name's normalisation.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from ..errors import OrnetError
from ..runtime.safe_load import safe_torch_load
from .names import is_timm
from .weights_spec import timm_refuses_torchvision_name


def torchvision_weights(name: str, arch: str):
    """The torchvision weights enum member `name` of `arch` (nothing is downloaded); OrnetError
    listing the known names when there is none (checked before training starts)."""
    import torchvision

    if is_timm(arch):
        raise OrnetError(timm_refuses_torchvision_name(name, arch))
    try:
        enum = torchvision.models.get_model_weights(arch)
    except (ValueError, KeyError) as err:
        raise OrnetError(f"torchvision has no weights for architecture {arch!r}") from err
    try:
        return enum[name]
    except KeyError:
        known = ", ".join(["DEFAULT", *enum.__members__])
        raise OrnetError(f"unknown weights {name!r} for {arch}; known: {known}; "
                         "or give the path of a .pth / .safetensors file") from None


def torchvision_cache_file(weights) -> Path:
    """Where torch.hub keeps (or will download) a torchvision weights file ($TORCH_HOME)."""
    from urllib.parse import urlparse

    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name


def torchvision_state_dict(name: str, arch: str) -> dict[str, torch.Tensor]:
    """The state dict of torchvision weights `name` of `arch` (the cached file, else downloaded)."""
    weights = torchvision_weights(name, arch)
    cached = torchvision_cache_file(weights)
    if cached.is_file():  # torch.hub would read it with weights_only=False: read it ourselves
        return dict(safe_torch_load(cached))
    try:
        return dict(weights.get_state_dict(progress=True, check_hash=True, weights_only=True))
    except pickle.UnpicklingError:
        raise OrnetError(f"{cached}: contains objects other than tensors and is refused: ornet loads "
                         "weights only, never pickled objects (they could run code)") from None
    except Exception as err:  # network errors, hash mismatch, corrupt cache
        raise OrnetError(f"could not fetch torchvision weights {arch} {name} ({err}); "
                         f"download {weights.url} yourself and pass the file path") from err
