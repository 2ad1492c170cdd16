"""Hide-and-Seek's input: a grid of square patches over each image, each hidden with a probability
(wsolevaluation ``wsol/method/has.py``, from github.com/kkanshul/Hide-and-Seek).

The image is cut into `grid_size` x `grid_size` pixel patches from its top-left corner (the last
row and column of patches are cut short by the image's edge); a patch is hidden, set to 0 in all
channels of the normalised image, when its uniform draw u satisfies ``u <= drop_rate``
(wsolevaluation: ``random.random() <= drop_rate``). One draw per patch, per image, in row-major
order (patch rows outer, columns inner): the order wsolevaluation's loops draw in.

Vectorised over the batch: the draws are one B x rows x cols tensor (on the CPU, from `generator`
or the global generator, which `runtime.resume.ReproducibleEpochs` reseeds before every training
batch, so a resumed run hides the same patches), expanded to pixels on the images' device.

One departure, for non-square images only: wsolevaluation's loop runs its row index over the
width and clips both indices at the height, so on an H x W image with H != W it hides patches in
the top-left min(H, W) square only; here the grid covers the whole image. On square inputs (its
224 x 224 crops, and every ornet crop) the two are the same patches.
"""

from __future__ import annotations

import torch
from torch import Tensor


def grid_shape(height: int, width: int, grid_size: int) -> tuple[int, int]:
    """(rows, cols) of patches of side `grid_size` covering an image, the last ones cut short."""
    return -(-height // grid_size), -(-width // grid_size)


def draw_hidden(batch: int, height: int, width: int, grid_size: int, drop_rate: float,
                generator: torch.Generator | None = None) -> Tensor:
    """B x rows x cols bool: which patches to hide (u <= drop_rate, u ~ U[0, 1), CPU draws)."""
    rows, cols = grid_shape(height, width, grid_size)
    return torch.rand((batch, rows, cols), generator=generator) <= drop_rate


def patch_mask(hidden: Tensor, grid_size: int, height: int, width: int) -> Tensor:
    """B x rows x cols bool -> B x 1 x H x W bool, True on the pixels of hidden patches."""
    pixels = hidden.repeat_interleave(grid_size, dim=1).repeat_interleave(grid_size, dim=2)
    return pixels[:, :height, :width].unsqueeze(1)


def apply_hidden(images: Tensor, hidden: Tensor, grid_size: int) -> Tensor:
    """`images` (B x C x H x W) with the patches `hidden` marks set to 0 (a new tensor)."""
    height, width = images.shape[-2:]
    mask = patch_mask(hidden.to(images.device), grid_size, height, width)
    return images.masked_fill(mask, 0.0)


def hide_patches(images: Tensor, grid_size: int, drop_rate: float,
                 generator: torch.Generator | None = None) -> Tensor:
    """HaS on a batch of normalised images, B x C x H x W (module docstring); grid_size 0: unchanged."""
    if images.dim() != 4:
        raise ValueError(f"hide_patches expects B x C x H x W images, got {tuple(images.shape)}")
    if grid_size == 0:
        return images
    b, _, h, w = images.shape
    return apply_hidden(images, draw_hidden(b, h, w, grid_size, drop_rate, generator), grid_size)
