"""Network names: torchvision's (``resnet50``), timm's (``timm/<timm model name>``) and aliases.

A timm network is always written ``timm/<name>`` (``timm/resnet18``, ``timm/tf_efficientnet_lite0``)
so that it cannot be mistaken for torchvision's network of the same name. Aliases are ornet
names for a timm network with something extra: ``efficientnet_lite0`` is timm's
``tf_efficientnet_lite0`` (TF "same" padding, the layout of the offline ImageNet weights,
`models.offline_weights`). Note that ``timm/efficientnet_lite0`` is timm's *other* Lite0
(PyTorch padding), which those TF-ported weights do not fit exactly.
"""

from __future__ import annotations

TIMM_PREFIX = "timm/"
ALIASES = {"efficientnet_lite0": "timm/tf_efficientnet_lite0"}
"""ornet name -> the timm network it builds."""


def canonical(name: str) -> str:
    """The network an ornet name builds (aliases resolved)."""
    return ALIASES.get(name, name)


def is_timm(name: str | None) -> bool:
    return bool(name) and canonical(name).startswith(TIMM_PREFIX)


def timm_name(name: str) -> str:
    """timm's own model name of ``timm/<name>`` (or of an alias)."""
    full = canonical(name)
    if not full.startswith(TIMM_PREFIX):
        raise ValueError(f"{name!r} is not a timm network name (timm/<model>)")
    return full[len(TIMM_PREFIX):]
