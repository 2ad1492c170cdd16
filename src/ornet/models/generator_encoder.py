"""The generator's encoder taken from the backbone (``model.generator_encoder: backbone``).

The release's generator F_g (`generator.ActivationMapGenerator`) encodes the stem features
f_c with three max-pool + conv blocks trained from scratch. `BackboneEncoder` replaces those
three blocks with a copy of the backbone's own later stages (its ``rest``, pretrained when the
backbone is): f_c (1/4) -> x1 (1/8) -> x2 (1/16) -> x3 (1/32). The decoder is unchanged (three
bilinear up-sampling blocks with skips to x2, x1 and f_c), so the map stays at the stem's 1/4
resolution and its last block still sees the low-level features; only the encoder starts with
ImageNet semantics instead of from nothing, which a few CPU epochs cannot teach.

How the stages are found: ``rest`` is flattened, through nested ``nn.Sequential`` containers,
into its leaf modules in order; a probe forward records each one's output stride; stage i ends
with the last module at stride 8, 16, 32. For timm networks the encoder stops at timm's deepest
``feature_info`` module (EfficientNet-Lite0: ``blocks.6``, 320 channels; the 1 x 1 ``conv_head``
to 1280 channels after it is a classifier's head, not a feature stage); torchvision networks
use all of ``rest`` (ResNet: layer1..layer4). Each encoder module remembers its path in
``rest`` (`paths`), so that weights copied into ``rest`` later (a trained evaluator) can be
copied into the encoder too (`load_from_rest`).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from ..errors import OrnetError

STRIDES = (8, 16, 32)
"""Output strides of the three encoder stages (the release's three 2x max-pools after 1/4)."""


def flatten(module: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """(path, leaf) pairs in call order, descending into `nn.Sequential` containers."""
    if not isinstance(module, nn.Sequential):
        return [(prefix, module)]
    out: list[tuple[str, nn.Module]] = []
    for name, child in module.named_children():
        out += flatten(child, f"{prefix}.{name}" if prefix else name)
    return out


class BackboneEncoder(nn.Module):
    """f_c (B x C x h x w, stride 4) -> (x1, x2, x3) at strides 8, 16, 32 (module docstring)."""

    def __init__(self, stages: list[list[tuple[str, nn.Module]]], channels: tuple[int, int, int]):
        super().__init__()
        self.stages = nn.ModuleList(nn.Sequential(*[m for _, m in stage]) for stage in stages)
        self.paths = [[p for p, _ in stage] for stage in stages]
        self.channels = channels

    def forward(self, f_c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x1 = self.stages[0](f_c)
        x2 = self.stages[1](x1)
        x3 = self.stages[2](x2)
        return x1, x2, x3

    @torch.no_grad()
    def load_from_rest(self, rest: nn.Module) -> None:
        """Copy the weights of the modules of `rest` this encoder was made from."""
        for stage, paths in zip(self.stages, self.paths):
            for module, path in zip(stage, paths):
                module.load_state_dict(rest.get_submodule(path).state_dict())


def backbone_encoder(rest: nn.Module, stem_channels: int, end: str | None = None,
                     name: str = "backbone") -> BackboneEncoder:
    """A `BackboneEncoder` from a deep copy of `rest` (the classifier's F_c2 body).

    `end`: path of the last module to use (timm's deepest feature stage); None uses all of
    `rest`. OrnetError when the network has no stage at 1/8, 1/16 or 1/32.
    """
    items = flatten(copy.deepcopy(rest))
    if end is not None:
        last = [i for i, (p, _) in enumerate(items) if p == end or p.startswith(end + ".")]
        if not last:
            raise OrnetError(f"{name}: its feature stage {end!r} is not part of its body")
        items = items[:last[-1] + 1]
    size = 64  # stem output of a 256 x 256 probe image: 1/32 of it is 8 x 8
    x = torch.zeros(1, stem_channels, size, size)
    strides: list[int] = []
    channels: list[int] = []
    was = [m.training for _, m in items]
    with torch.no_grad():
        for _, m in items:
            m.eval()
            x = m(x)
            if x.dim() != 4:
                raise OrnetError(f"{name}: its body does not keep a B x C x h x w feature map "
                                 "module by module, so it cannot be the generator's encoder")
            strides.append(4 * size // x.shape[-1])
            channels.append(int(x.shape[1]))
    for (_, m), t in zip(items, was):
        m.train(t)
    stages, stage_ends, start = [], [], 0
    for s in STRIDES:
        ends = [i for i, st in enumerate(strides) if st == s]
        if not ends or ends[-1] < start:
            raise OrnetError(f"{name}: no feature stage at 1/{s} of the input (strides seen: "
                             f"{sorted(set(strides))}); model.generator_encoder=backbone needs "
                             "stages at 1/8, 1/16 and 1/32")
        stages.append(items[start:ends[-1] + 1])
        stage_ends.append(ends[-1])
        start = ends[-1] + 1
    c1, c2, c3 = (channels[i] for i in stage_ends)
    return BackboneEncoder(stages, (c1, c2, c3))
