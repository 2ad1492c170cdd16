"""Weights files and state dicts: reading one (`read_state_dict`) and fitting it into a network
(`apply_state_dict`).

A file is a ``.safetensors`` file (its header checked first, `runtime.safe_load.check_safetensors`)
or anything else as a ``torch.save``-d state dict (`runtime.safe_load.safe_torch_load`, weights
only: a pickled object is refused, naming the file). A dict holding a ``"state_dict"`` entry
(Lightning and the ORNet release save that way) is unwrapped; keys saved from DataParallel lose
their ``module.`` prefix.

Keys may be in the module's own layout (``stem.conv1.weight``, what ``module.state_dict()``
gives) or in torchvision's / timm's (``conv1.weight``, ``blocks.1.0.conv_pw.weight``): modules built by
`ornet.models.backbones` carry the correspondence (`source_keys`). Rules:

- a key of the replaceable head (`optional_keys`: the last Linear, layers we add) whose shape
  differs, e.g. 1000 ImageNet classes against K, is skipped with a logged note; it may also
  be missing;
- source keys under `ignored_source_prefixes` (VGG's FC classifier when the CAM network
  drops it) are ignored with a logged note;
- any other missing or unexpected key is an `OrnetError` naming the file and the keys
  (with ``strict_backbone=False`` they are only logged); a shape mismatch outside the head
  is always an error.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import OrnetError
from ..runtime.safe_load import check_safetensors, first_line, safe_torch_load

log = logging.getLogger(__name__)


@dataclass
class LoadReport:
    """What `load_weights` did (for logs and tests)."""

    source: str
    loaded: list[str] = field(default_factory=list)
    """Own keys that received a value."""
    skipped: list[str] = field(default_factory=list)
    """Own head keys whose source shape differed (kept their initialisation)."""
    missing: list[str] = field(default_factory=list)
    """Own keys with no source value (only non-empty for head keys or strict_backbone=False)."""
    unexpected: list[str] = field(default_factory=list)
    """Source keys with no place in the module (only with strict_backbone=False)."""
    ignored: list[str] = field(default_factory=list)
    """Source keys dropped on purpose (`ignored_source_prefixes`)."""


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A flat name -> tensor dict from a ``.safetensors`` or ``torch.save`` file (on CPU)."""
    p = Path(path)
    if not p.is_file():
        raise OrnetError(f"{p}: no such weights file")
    if p.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        check_safetensors(p)
        try:
            obj = load_file(str(p), device="cpu")
        except Exception as err:  # a header that passed the check but a body that does not fit it
            raise OrnetError(f"{p}: cannot read weights ({type(err).__name__}: {first_line(err)})") from None
    else:
        obj = safe_torch_load(p)
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise OrnetError(f"{p}: not a state dict (expected a mapping of names to tensors)")
    state = dict(obj)
    if state and all(k.startswith("module.") for k in state):  # saved from DataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def apply_state_dict(module: nn.Module, state: Mapping[str, torch.Tensor], source: str,
                     strict_backbone: bool = True) -> LoadReport:
    """Translate `state` to the module's own keys, check it (module docstring) and load it."""
    own = module.state_dict()
    to_own = {src: k for k, src in getattr(module, "source_keys", {}).items()}
    optional = set(getattr(module, "optional_keys", ()))
    ignored_prefixes = tuple(getattr(module, "ignored_source_prefixes", ()))
    report = LoadReport(source=source)

    translated: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        target = key if key in own else to_own.get(key)
        if target is None:
            if ignored_prefixes and key.startswith(ignored_prefixes):
                report.ignored.append(key)
            else:
                report.unexpected.append(key)
            continue
        translated[target] = value

    mismatched = []
    for key in list(translated):
        if translated[key].shape != own[key].shape:
            if key in optional:
                report.skipped.append(key)
                del translated[key]
            else:
                mismatched.append(f"{key} {tuple(translated[key].shape)} vs {tuple(own[key].shape)}")
    if mismatched:
        raise OrnetError(f"{source}: shapes do not fit: {_some(mismatched)}")

    missing = [k for k in own if k not in translated and k not in report.skipped]
    required = [k for k in missing if k not in optional and not k.endswith("num_batches_tracked")]
    if required or report.unexpected:
        parts = []
        if required:
            parts.append(f"missing keys: {_some(required)}")
        if report.unexpected:
            parts.append(f"unexpected keys: {_some(report.unexpected)}")
        msg = f"{source}: weights do not fit the network; " + "; ".join(parts)
        if strict_backbone:
            raise OrnetError(msg)
        log.warning("%s (loading the rest, strict_backbone=False)", msg)
    report.missing = missing

    module.load_state_dict(translated, strict=False)
    report.loaded = sorted(translated)
    if report.skipped:
        log.info("%s: head layers of another shape skipped (kept initialised): %s",
                 source, _some(report.skipped))
    if report.ignored:
        log.info("%s: source layers this network does not use ignored: %s",
                 source, _some(report.ignored))
    return report


def _some(keys: list[str], n: int = 6) -> str:
    shown = ", ".join(keys[:n])
    return shown if len(keys) <= n else f"{shown}, ... ({len(keys)} in all)"
