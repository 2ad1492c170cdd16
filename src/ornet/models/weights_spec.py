"""A parsed weights spec: what `model.backbone_weights` / `model.evaluator_weights` name, and the
normalisation those weights expect (as torchvision's weights enums carry their transforms).

The config keeps the plain string (config.yaml is unchanged); `parse_weights` reads it once, when
the config is validated (a bad value is one `ConfigError` naming the key), and `weights_spec(m,
net)` derives the same spec wherever a network is built, loaded or normalised. Kinds:

- ``none`` (`WeightsKind.NONE`): keep the module's initialisation (train from scratch);
- ``imagenet`` (`OFFLINE`): ImageNet weights that an installed package ships, no download, only
  for networks listed in `models.offline_weights` (``efficientnet_lite0``);
- a torchvision weights name such as ``IMAGENET1K_V1`` or ``DEFAULT`` (`TORCHVISION`): the member
  of ``torchvision.models.get_model_weights(arch)`` (downloaded into ``$TORCH_HOME`` on first use);
- a file (`FILE`): a path with a folder, a known suffix (``.pth``, ``.safetensors``, ...) or
  one that exists: a ``.safetensors`` file or a ``torch.save``-d state dict (`models.weights`);
- ``evaluator`` (`FROM_EVALUATOR`, `model.backbone_weights` only): stage 1 starts from the
  stage-0 evaluator (the training pipeline copies it in; nothing is loaded here).

Normalisation (`WeightsSpec.normalization`): none and torchvision weights, ImageNet's (the
torchvision enum's transforms say so; nothing is downloaded); ``imagenet``, what the package's
weights were trained with (EfficientNet-Lite0, TF-ported: 0.5 / 0.5); a file, timm's own default
for a timm network (what timm's published weights expect) and ImageNet's for a torchvision one;
``evaluator``, the evaluator's. `model.backbone_mean` / `backbone_std` / `evaluator_mean` /
`evaluator_std` override it (`model_normalizations`); `resolve_model` fills the unset ones and
`ornet train` writes the result into config.yaml.

The run's INPUT normalisation is the backbone's (the network that first sees the image: the
stem F_c1 of ORNet, the CAM network of the baseline): the data pipeline normalises with it. An
evaluator whose own normalisation differs converts the batch with a fixed per-channel affine map
(`models.renormalize.Renormalize`) before anything else, so stage 2 computes
F_e(convert(I) * upsample(p)): the evaluator sees its own normalised image times the map, as in
the release. Torch-free: torchvision or timm is imported only when the normalisation of a
torchvision weights name or of a file for a timm network is asked for.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from ..errors import ConfigError, OrnetError
from .names import is_timm, timm_name
from .normalization import IMAGENET, Normalization, timm_default_normalization

FILE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors")
NONE_NAME = "none"
OFFLINE_NAME = "imagenet"
"""Weights name of the ImageNet weights an installed package ships (`offline_weights`)."""
FROM_EVALUATOR_NAME = "evaluator"
"""`model.backbone_weights` value: stage 1 starts from the stage-0 evaluator's weights."""
_TORCHVISION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class WeightsKind(enum.Enum):
    NONE = "none"
    OFFLINE = "offline"
    TORCHVISION = "torchvision"
    FILE = "file"
    FROM_EVALUATOR = "from_evaluator"


@dataclass(frozen=True)
class WeightsSpec:
    """One network's weights, parsed (`parse_weights`); `str(spec)` is the config's text."""

    kind: WeightsKind
    text: str
    """The value as written in the config (stripped; ``none`` when unset)."""
    arch: str | None = None
    """The network the weights are for (``resnet50``, ``timm/<model>``); None when unknown."""
    key: str = "weights"
    """The config key that names them (``model.backbone_weights``), for messages."""

    def __str__(self) -> str:
        return self.text

    @property
    def from_evaluator(self) -> bool:
        """Stage 1 starts from the stage-0 evaluator (``evaluator``): nothing to load before training."""
        return self.kind is WeightsKind.FROM_EVALUATOR

    @property
    def pretrained(self) -> bool:
        """Anything but ``none``."""
        return self.kind is not WeightsKind.NONE

    @property
    def path(self) -> Path | None:
        """The file, for kind `FILE`."""
        return Path(self.text) if self.kind is WeightsKind.FILE else None

    @property
    def torchvision_name(self) -> str | None:
        """The torchvision weights enum member's name, for kind `TORCHVISION`."""
        return self.text if self.kind is WeightsKind.TORCHVISION else None

    def require_file(self) -> Path:
        """The file of a `FILE` spec; a ConfigError naming the key when it does not exist."""
        path = self.path
        if path is not None and not path.is_file():
            raise ConfigError(f"{self.key}: {path}: no such weights file")
        return path

    @cached_property
    def normalization(self) -> Normalization:
        """The mean / std these weights expect (module docstring). ``evaluator`` takes the evaluator's,
        which only `model_normalizations` knows: asked here, an OrnetError."""
        kind = self.kind
        if kind is WeightsKind.NONE:
            return IMAGENET
        if kind is WeightsKind.FROM_EVALUATOR:
            raise OrnetError(f"{self.key}: weights 'evaluator' take the evaluator's normalisation "
                             "(model_normalizations)")
        if self.arch is None:
            raise OrnetError(f"{self.key}: weights {self.text!r} need a network to say their normalisation")
        if kind is WeightsKind.OFFLINE:
            from .offline_weights import offline_weights

            return offline_weights(self.arch).normalization
        if kind is WeightsKind.FILE:
            return timm_default_normalization(timm_name(self.arch)) if is_timm(self.arch) else IMAGENET
        from .torchvision_weights import torchvision_weights

        tf = torchvision_weights(self.text, self.arch).transforms()
        return Normalization(tuple(tf.mean), tuple(tf.std))


def timm_refuses_torchvision_name(name: str, arch: str) -> str:
    """The message for a torchvision weights name given to a timm network."""
    return (f"{name!r} is not a weights name for the timm network {arch} (timm's hub weights are never "
            f"downloaded): use none, {OFFLINE_NAME} where ornet knows offline weights, or a local "
            ".pth / .safetensors file in timm's layout")


def is_weights_file(text: str) -> bool:
    """Whether a weights value names a file: a folder in it, a known suffix, or an existing path
    (``imagenet`` is the name, even beside a folder called imagenet)."""
    if text.lower() in (NONE_NAME, OFFLINE_NAME):
        return False
    return "/" in text or "\\" in text or text.lower().endswith(FILE_SUFFIXES) or Path(text).exists()


def parse_weights(text: str | None, arch: str | None = None, key: str = "weights",
                  from_evaluator: bool = True) -> WeightsSpec:
    """The `WeightsSpec` of weights value `text` for network `arch` (None: not checked against one).

    ConfigError naming `key` for ``evaluator`` where `from_evaluator` is False (the evaluator's own
    weights), ``imagenet`` for a network without offline weights, a torchvision name for a timm
    network, and a value that is none of the kinds. Torch-free; files are not read (`check_weights`
    does, before training), torchvision names are not looked up in their enum.
    """
    s = (text or "").strip() or NONE_NAME

    def spec(kind: WeightsKind) -> WeightsSpec:
        return WeightsSpec(kind, s, arch, key)

    if s.lower() == NONE_NAME:
        return WeightsSpec(WeightsKind.NONE, NONE_NAME, arch, key)
    if s == FROM_EVALUATOR_NAME:
        if not from_evaluator:
            raise ConfigError(f"{key}: 'evaluator' (start from the stage-0 evaluator) is a value of "
                              "model.backbone_weights only")
        return spec(WeightsKind.FROM_EVALUATOR)
    if is_weights_file(s):
        return spec(WeightsKind.FILE)
    if s.lower() == OFFLINE_NAME:
        if arch:
            from .offline_weights import offline_weights

            try:
                offline_weights(arch)
            except OrnetError as e:
                raise ConfigError(f"{key}: {e}") from None
        return spec(WeightsKind.OFFLINE)
    if not _TORCHVISION_NAME.fullmatch(s):
        raise ConfigError(f"{key}: {s!r} is neither none, {OFFLINE_NAME}, {FROM_EVALUATOR_NAME}, a torchvision "
                          f"weights name (e.g. IMAGENET1K_V1) nor a weights file (.pth / .safetensors)")
    if is_timm(arch):
        raise ConfigError(f"{key}: {timm_refuses_torchvision_name(s, arch)}")
    return spec(WeightsKind.TORCHVISION)


def weights_spec(m, net: str) -> WeightsSpec:
    """The parsed weights of network `net` (``backbone`` or ``evaluator``) of a `ModelConfig` `m`."""
    if net not in ("backbone", "evaluator"):
        raise ValueError(f"net must be 'backbone' or 'evaluator', got {net!r}")
    return parse_weights(getattr(m, f"{net}_weights"), getattr(m, net), f"model.{net}_weights",
                         from_evaluator=net == "backbone")


def _given(mean, std, net: str) -> Normalization | None:
    if mean is None and std is None:
        return None
    if mean is None or std is None:
        raise ConfigError(f"model.{net}_mean and model.{net}_std are set together (one of them is missing)")
    return Normalization(tuple(mean), tuple(std))


def model_normalizations(m) -> tuple[Normalization, Normalization]:
    """(backbone's = the run's input normalisation, evaluator's) of a `ModelConfig`: the explicit
    mean / std where set, else what each network's weights expect (``evaluator``: the evaluator's)."""
    evaluator = _given(m.evaluator_mean, m.evaluator_std, "evaluator")
    if evaluator is None:
        evaluator = weights_spec(m, "evaluator").normalization if m.evaluator else IMAGENET
    backbone = _given(m.backbone_mean, m.backbone_std, "backbone")
    if backbone is None:
        spec = weights_spec(m, "backbone")
        backbone = evaluator if spec.from_evaluator else spec.normalization
    return backbone, evaluator


def resolve_model(m):
    """A copy of `ModelConfig` m with every mean / std set (the resolved config records them)."""
    backbone, evaluator = model_normalizations(m)
    return dataclasses.replace(m, backbone_mean=list(backbone.mean), backbone_std=list(backbone.std),
                               evaluator_mean=list(evaluator.mean), evaluator_std=list(evaluator.std))


def input_normalization(m) -> Normalization:
    """The run's input normalisation (the backbone's): what the data pipeline normalises with."""
    return model_normalizations(m)[0]
