"""Loading a network's weights from its parsed spec (`models.weights_spec.WeightsSpec`).

`load_weights(module, spec)` loads what the spec names into `module`:

- kind ``none``: nothing (the module keeps its initialisation);
- ``imagenet`` (offline): the file an installed package ships, mapped onto the network's timm
  layout (`models.offline_weights`);
- a torchvision weights name: its state dict (`models.torchvision_weights`: torch.hub's cache
  read weights-only, else downloaded into ``$TORCH_HOME``);
- a file: `models.state_dicts.read_state_dict` (``.safetensors`` or a ``torch.save``-d state
  dict, never an unpickled object);
- ``evaluator``: refused; stage 1's backbone is copied from the stage-0 evaluator by the training
  pipeline, not loaded from a spec.

Every state dict is then fitted with `models.state_dicts.apply_state_dict` (own or
torchvision / timm keys; the head of another shape skipped; anything else that does not fit is
an `OrnetError`). `check_weights(spec)` reads what a spec would load without a network, before
training starts. A plain string is still accepted wherever a spec is (parsed on the way in).

The file readers (`safe_torch_load`, `check_safetensors`, `numpy_scalar_globals`: every
checkpoint ornet reads goes through them) live in `runtime.safe_load` and are re-exported here,
with the names the modules above import.
"""

from __future__ import annotations

from torch import nn

from ..errors import OrnetError
from ..runtime.safe_load import (  # noqa: F401  (re-exported: the readers every checkpoint goes through)
    check_safetensors,
    numpy_scalar_globals,
    safe_torch_load,
)
from .state_dicts import LoadReport, apply_state_dict, read_state_dict  # noqa: F401  (re-exported)
from .torchvision_weights import (  # noqa: F401  (torchvision_weights, torchvision_cache_file: re-exported)
    torchvision_cache_file,
    torchvision_state_dict,
    torchvision_weights,
)
from .weights_spec import FILE_SUFFIXES, OFFLINE_NAME, WeightsKind, WeightsSpec, parse_weights  # noqa: F401

IMAGENET_SPEC = OFFLINE_NAME
"""The former name of `weights_spec.OFFLINE_NAME` (``imagenet``)."""


def as_spec(spec: WeightsSpec | str | None, arch: str | None = None, key: str = "weights") -> WeightsSpec:
    """`spec` itself, or the string parsed for network `arch` (`parse_weights`)."""
    return spec if isinstance(spec, WeightsSpec) else parse_weights(spec, arch, key)


def load_weights(module: nn.Module, spec: WeightsSpec | str | None, arch: str | None = None,
                 strict_backbone: bool = True, prefix: str = "") -> LoadReport:
    """Load the weights `spec` names into `module` (module docstring).

    `arch` is the network's name (``resnet50``, ``timm/<model>``) that resolves a torchvision weights
    name or the offline weights (default: the spec's own). `prefix`: only source keys starting with
    it are used, with the prefix removed (e.g. ``"evaluator."`` to pick a sub-network out of a
    whole-model state dict). Returns a `LoadReport`; raises `OrnetError` for unreadable files,
    unknown names and keys that do not fit.
    """
    spec = as_spec(spec)
    arch = arch or spec.arch
    kind = spec.kind
    if kind is WeightsKind.NONE:
        return LoadReport(source="none")
    if kind is WeightsKind.FROM_EVALUATOR:
        raise OrnetError(f"{spec.key}: weights 'evaluator' are the stage-0 evaluator's, copied in by the "
                         "training pipeline; there is nothing to load before it has run")
    if kind is WeightsKind.FILE:
        state, source = read_state_dict(spec.path), spec.text
    elif kind is WeightsKind.OFFLINE:
        from .offline_weights import offline_state_dict

        state, source = offline_state_dict(arch, list(getattr(module, "source_keys", {}).values()))
    else:
        state, source = torchvision_state_dict(spec.text, arch), f"torchvision {arch} {spec.text}"
    if prefix:
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if not state:
            raise OrnetError(f"{source}: no key starts with {prefix!r}")
    return apply_state_dict(module, state, source, strict_backbone=strict_backbone)


def check_weights(spec: WeightsSpec | str | None, arch: str | None = None, key: str = "weights") -> None:
    """Read (or locate) what `spec` would load, without loading it into a network: one OrnetError
    prefixed with the spec's key (`model.backbone_weights`) for a missing or bad file, an unknown
    torchvision name or a missing package. Nothing for ``none`` and ``evaluator`` (the stage-0
    checkpoint is checked by the pipeline). A torchvision name's file is read if torch.hub has it."""
    spec = as_spec(spec, arch, key)
    if spec.kind in (WeightsKind.NONE, WeightsKind.FROM_EVALUATOR):
        return
    try:
        if spec.kind is WeightsKind.FILE:
            read_state_dict(spec.require_file())
        elif spec.kind is WeightsKind.OFFLINE:
            from .offline_weights import weights_path

            read_state_dict(weights_path(spec.arch))
        else:
            cached = torchvision_cache_file(torchvision_weights(spec.text, spec.arch))
            if cached.is_file():  # downloaded earlier: read now like any weights file
                safe_torch_load(cached)
    except OrnetError as e:
        if str(e).startswith(f"{spec.key}: "):  # require_file's ConfigError names it already
            raise
        raise OrnetError(f"{spec.key}: {e}") from None
