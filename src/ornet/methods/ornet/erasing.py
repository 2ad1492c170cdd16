"""Erasing of the activation map in stage 2 (METHOD.md, Attentive erasing).

One shared mechanism (`Eraser`), vectorised over the batch on the map's device; each
strategy only says where its rectangle sits and which pixels of it form the erased set E:

- ``attentive`` (AE): rectangle around the peak, E = R ∩ rectangle;
- ``random`` (RE): a rectangle of the same size distribution centred on a uniformly random
  pixel, E = the whole rectangle, pixels dropped as in AE;
- ``rectangle`` (ER): rectangle around the peak, E = the whole rectangle, every pixel of it
  dropped (hard erasing);
- ``none``: the identity.

Per sample (training only): with probability `p`, draw f ~ U(0, f_max); peak c = argmax p_a
(the first one in row-major order); t = max - (max - min) f; region R = {p_a > t}; Hr, Wr =
R's row / column extent (last index - first index, as the release); half sizes h, w are
uniform integers in [min_half, Hr // 2) and [min_half, Wr // 2) (the sample is skipped when
either range is empty, e.g. a flat map where R is empty); the rectangle is rows
[c_y - h, c_y + h] x columns [c_x - w, c_x + w] (inclusive, clipped to the map).
Each pixel of E is dropped with probability p' = 0.6 p_a + 0.2 (stronger activations are
dropped more often). The map passed on is p' itself (squeezed into [0.2, 0.8], as in the
release) with dropped pixels set to 0; gradients flow through the kept pixels only.
In eval mode every strategy is the identity.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ...errors import ConfigError, OrnetError
from ...registry import Registry

ERASERS: Registry[type[Eraser]] = Registry("erasing strategy")

SQUEEZE_SCALE = 0.6
SQUEEZE_SHIFT = 0.2


@dataclass
class EraseMasks:
    """What an eraser decided for a batch (all on the map's device)."""

    applied: Tensor
    """B bool: the sample was drawn for erasing and its size ranges were non-empty."""
    region: Tensor
    """B x 1 x h x w bool: R = {p_a > t}."""
    erased: Tensor
    """B x 1 x h x w bool: E (empty where not applied)."""
    dropped: Tensor
    """B x 1 x h x w bool: pixels set to 0 (a subset of E)."""
    centre: Tensor
    """B x 2 long: (row, column) of the rectangle's centre."""
    half: Tensor
    """B x 2 long: half sizes (h, w) of the rectangle (meaningful where applied)."""


class Eraser(nn.Module):
    """Shared mechanism (module docstring). Subclasses define `centre` and `erased_set`."""

    stochastic_drop: bool = True
    """Drop E's pixels with probability p' (True) or all of them (False)."""

    def __init__(self, p: float = 0.5, f_max: float = 0.5, min_half: int = 4,
                 squeeze: bool = True):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"erasing probability must be in [0, 1], got {p}")
        if not 0.0 <= f_max <= 1.0:
            raise ConfigError(f"erasing f_max must be in [0, 1], got {f_max}")
        if int(min_half) != min_half or min_half < 0:
            raise ConfigError(f"erasing min_half must be a non-negative integer, got {min_half}")
        self.p = float(p)
        self.f_max = float(f_max)
        self.min_half = int(min_half)
        self.squeeze = squeeze

    def extra_repr(self) -> str:
        return f"p={self.p}, f_max={self.f_max}, min_half={self.min_half}, squeeze={self.squeeze}"

    def forward(self, p_a: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """p_a (B x 1 x h x w in [0, 1]) -> p_e, same shape; the identity in eval mode."""
        if not self.training:
            return p_a
        masks = self.masks(p_a, generator)
        passed = SQUEEZE_SCALE * p_a + SQUEEZE_SHIFT if self.squeeze else p_a
        return passed * (~masks.dropped).to(p_a.dtype)

    @torch.no_grad()
    def masks(self, p_a: Tensor, generator: torch.Generator | None = None) -> EraseMasks:
        """The random decisions for a batch (used by `forward`; exposed for tests and figures).

        Draw order (fixed, so a seeded generator reproduces a batch): B x 6 uniforms (apply,
        f, h, w, random centre row, random centre column), then B x 1 x h x w uniforms for
        the per-pixel drops.
        """
        _check_map(p_a)
        b, _, height, width = p_a.shape
        device = p_a.device
        p = p_a.detach().float()
        flat = p.reshape(b, height * width)
        top, bottom, peak = flat.amax(dim=1), flat.amin(dim=1), flat.argmax(dim=1)
        draws = _uniform((b, 6), generator, device)
        pixel_draws = _uniform((b, 1, height, width), generator, device)

        f = draws[:, 1] * self.f_max
        threshold = top - (top - bottom) * f
        region = p > threshold.view(b, 1, 1, 1)

        rows = torch.arange(height, device=device)
        cols = torch.arange(width, device=device)
        ext_h = _extent(region.any(dim=3).view(b, height), rows)
        ext_w = _extent(region.any(dim=2).view(b, width), cols)
        half_h, ok_h = _half_size(draws[:, 2], ext_h, self.min_half)
        half_w, ok_w = _half_size(draws[:, 3], ext_w, self.min_half)
        applied = (draws[:, 0] < self.p) & ok_h & ok_w

        peak_yx = torch.stack([peak // width, peak % width], dim=1)
        centre = self.centre(peak_yx, draws[:, 4:6], height, width)
        inside = (((rows.view(1, -1) - centre[:, :1]).abs() <= half_h.view(-1, 1))[:, :, None]
                  & ((cols.view(1, -1) - centre[:, 1:]).abs() <= half_w.view(-1, 1))[:, None, :])
        rectangle = inside.unsqueeze(1)  # B x 1 x h x w
        erased = self.erased_set(region, rectangle) & applied.view(b, 1, 1, 1)
        if self.stochastic_drop:
            dropped = erased & (pixel_draws < SQUEEZE_SCALE * p + SQUEEZE_SHIFT)
        else:
            dropped = erased
        return EraseMasks(applied=applied, region=region, erased=erased, dropped=dropped,
                          centre=centre, half=torch.stack([half_h, half_w], dim=1))

    # ---------------------------------------------------------------- what subclasses define

    def centre(self, peak: Tensor, uniforms: Tensor, height: int, width: int) -> Tensor:
        """B x 2 (row, column) rectangle centres; `uniforms` is B x 2 in [0, 1)."""
        return peak

    def erased_set(self, region: Tensor, rectangle: Tensor) -> Tensor:
        """E from R and the rectangle (both B x 1 x h x w bool)."""
        raise NotImplementedError


@ERASERS.register("attentive")
class AttentiveEraser(Eraser):
    """AE: the pixels of R inside the rectangle around the peak."""

    def erased_set(self, region: Tensor, rectangle: Tensor) -> Tensor:
        return region & rectangle


@ERASERS.register("random")
class RandomEraser(Eraser):
    """RE: the whole rectangle, centred on a uniformly random pixel; pixels dropped as in AE."""

    def centre(self, peak: Tensor, uniforms: Tensor, height: int, width: int) -> Tensor:
        rows = (uniforms[:, 0] * height).long().clamp(max=height - 1)
        cols = (uniforms[:, 1] * width).long().clamp(max=width - 1)
        return torch.stack([rows, cols], dim=1)

    def erased_set(self, region: Tensor, rectangle: Tensor) -> Tensor:
        return rectangle


@ERASERS.register("rectangle")
class RectangleEraser(Eraser):
    """ER: the whole rectangle around the peak, every pixel of it dropped."""

    stochastic_drop = False

    def erased_set(self, region: Tensor, rectangle: Tensor) -> Tensor:
        return rectangle


@ERASERS.register("none")
class NoEraser(Eraser):
    """No erasing and no squeezing: the identity in training too."""

    def forward(self, p_a: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return p_a

    def erased_set(self, region: Tensor, rectangle: Tensor) -> Tensor:
        return torch.zeros_like(region)


def build_eraser(name: str, p: float = 0.5, f_max: float = 0.5, min_half: int = 4,
                 squeeze: bool = True) -> Eraser:
    """The strategy `name` (attentive, random, rectangle, none); unknown names list the known."""
    return ERASERS.get(name)(p=p, f_max=f_max, min_half=min_half, squeeze=squeeze)


# ---------------------------------------------------------------- helpers

def _check_map(p_a: Tensor) -> None:
    if p_a.dim() != 4 or p_a.shape[1] != 1:
        raise OrnetError(f"erasing expects a B x 1 x h x w map, got {tuple(p_a.shape)}")


def _uniform(shape: tuple[int, ...], generator: torch.Generator | None,
             device: torch.device) -> Tensor:
    """U[0, 1) float32 on `device`, from `generator` (drawn on its own device) or the global RNG."""
    if generator is None:
        return torch.rand(shape, device=device)
    return torch.rand(shape, generator=generator, device=generator.device).to(device)


def _extent(present: Tensor, index: Tensor) -> Tensor:
    """B: last - first index where `present` (B x n) is True; negative when none is."""
    n = present.shape[1]
    first = torch.where(present, index, n).amin(dim=1)
    last = torch.where(present, index, -1).amax(dim=1)
    return last - first


def _half_size(u: Tensor, extent: Tensor, min_half: int) -> tuple[Tensor, Tensor]:
    """Uniform integer in [min_half, extent // 2) from u in [0, 1); and whether it exists."""
    count = extent.div(2, rounding_mode="floor") - min_half  # admissible values
    ok = count >= 1
    count = count.clamp_min(1)
    pick = torch.minimum((u * count).long(), count - 1)
    return min_half + pick, ok
