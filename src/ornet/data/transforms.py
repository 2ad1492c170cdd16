"""Joint image / box / mask transforms through torchvision.transforms.v2.

Defaults follow the ORNet release: train = resize to 256x256, random 224 crop, horizontal
flip; test = resize to 256x256, centre 224 crop. Boxes (`tv_tensors.BoundingBoxes`, XYXY)
and masks (`tv_tensors.Mask`) move with the image. For wsolevaluation's protocol set
resize = crop = 224 (a plain resize, no crop). Normalisation: `mean` / `std` of the run's input
(`ornet.models.normalization`; ImageNet's by default).
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2

from ..models.normalization import IMAGENET_MEAN, IMAGENET_STD  # noqa: F401  (the defaults; re-exported)


def check_sizes(resize: int, crop: int) -> None:
    from ..errors import ConfigError

    if resize <= 0 or crop <= 0:
        raise ConfigError(f"data.resize and data.crop must be positive, got resize={resize}, crop={crop}")
    if crop > resize:
        raise ConfigError(f"data.crop ({crop}) must not exceed data.resize ({resize})")
    if crop % 32:
        raise ConfigError(f"data.crop must be divisible by 32 (the networks downsample 32x), got {crop}")


def geometry(train: bool, resize: int = 256, crop: int = 224, flip: bool = True) -> v2.Transform:
    """The geometric part only (no dtype change or normalisation); used by tests and figures."""
    ops: list[v2.Transform] = [v2.Resize((resize, resize), antialias=True)]
    if train:
        ops.append(v2.RandomCrop(crop))
        if flip:
            ops.append(v2.RandomHorizontalFlip())
    else:
        ops.append(v2.CenterCrop(crop))
    return v2.Compose(ops)


def build_transform(train: bool, resize: int = 256, crop: int = 224, flip: bool = True,
                    mean=IMAGENET_MEAN, std=IMAGENET_STD) -> v2.Transform:
    """PIL image (+ boxes, masks) -> normalised float tensor (+ transformed boxes, masks)."""
    check_sizes(resize, crop)
    return v2.Compose([
        v2.ToImage(),
        geometry(train, resize, crop, flip),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean=list(mean), std=list(std)),
    ])


def fixed_steps(train: bool, resize: int = 256, crop: int = 224) -> v2.Transform:
    """The steps of `build_transform` that draw nothing: to an image tensor, resize (and the
    centre crop in test). `WSOLDataset` keeps their output in its `ImageCache`."""
    check_sizes(resize, crop)
    ops: list[v2.Transform] = [v2.ToImage(), v2.Resize((resize, resize), antialias=True)]
    if not train:
        ops.append(v2.CenterCrop(crop))
    return v2.Compose(ops)


def remaining_steps(train: bool, crop: int = 224, flip: bool = True,
                    mean=IMAGENET_MEAN, std=IMAGENET_STD) -> v2.Transform:
    """The rest of `build_transform` after `fixed_steps`: the random crop and flip (training),
    then float conversion and normalisation; `remaining_steps(fixed_steps(x))` is `build_transform(x)`."""
    ops: list[v2.Transform] = []
    if train:
        ops.append(v2.RandomCrop(crop))
        if flip:
            ops.append(v2.RandomHorizontalFlip())
    ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=list(mean), std=list(std))]
    return v2.Compose(ops)


def denormalize(images: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """Undo `Normalize` for display: B x 3 x H x W -> values in [0, 1]."""
    m = torch.tensor(mean, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    s = torch.tensor(std, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    return (images * s + m).clamp(0, 1)
