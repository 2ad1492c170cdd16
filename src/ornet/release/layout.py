"""The release's key names and shapes, and where each goes in ornet's `ORNet` (facts from
Sierkinhane/ORNet ``models/unet.py``, ``models/model.py``, ``models/evaluator.py``).

The release's generator (``att_layer4 = UNet(64, K, c_base=c, activation='leakyrelu')``) is a
U-Net whose blocks are ``UConv = Sequential(conv3x3 no bias, BN(momentum 0.01), LeakyReLU,
conv3x3 no bias, BN(momentum 0.01), LeakyReLU)``:

    release key prefix                 ornet key prefix          conv in -> out
    att_layer4.down_1.1.UConv          generator.down1.1         C -> 2c       (down_k.0 is the max-pool)
    att_layer4.down_2.1.UConv          generator.down2.1         2c -> 4c
    att_layer4.down_3.1.UConv          generator.down3.1         4c -> 8c
    att_layer4.up_1.conv.UConv         generator.up1.block       12c -> 4c     (concat [skip, upsampled])
    att_layer4.up_2.conv.UConv         generator.up2.block       6c -> 3c
    att_layer4.up_3.conv.UConv         generator.up3.block       3c + C -> K
    att_conv3 (conv3x3 K -> 1, no bias)  generator.out_conv
    bn_att3 (BatchNorm2d(1))             generator.out_bn
    att_conv2 (conv1x1 K -> K, no bias)  generator.attn_conv     (coarse file only)
    conv1, bn1 (ResNet stem)             stem.conv1, stem.bn1
    layer1-4, fc (ResNet-50)             rest_head.rest.layer1-4, rest_head.head.classifier (coarse only)
    model.* / vgg.model.* (VGG-16)       evaluator.* (torchvision names, translated by source_keys)

Inside a block, positions 0 and 3 are the convs, 1 and 4 the BNs (2 and 5 the LeakyReLUs).
C is the stem's 64 channels; c (``C_BASE``, 64 in the release) and K (``NUM_CLASSES``) are read
from the shapes: ``c = down_1 conv0.out / 2``, ``K = att_conv3.in``.
"""

from __future__ import annotations

from dataclasses import dataclass

GENERATOR_PREFIXES = ("att_layer4.", "att_conv2.", "att_conv3.", "bn_att3.")
STEM_KEYS = ("conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
             "bn1.num_batches_tracked")
BN_STATS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
WIDTH_KEY = "att_layer4.down_1.1.UConv.0.weight"
K_KEY = "att_conv3.weight"

# (release block prefix, ornet block prefix, conv-in, conv-out) with c, C, K filled by `blocks`.
_BLOCKS = (
    ("att_layer4.down_1.1.UConv", "generator.down1.1", lambda c, C, K: (C, 2 * c)),
    ("att_layer4.down_2.1.UConv", "generator.down2.1", lambda c, C, K: (2 * c, 4 * c)),
    ("att_layer4.down_3.1.UConv", "generator.down3.1", lambda c, C, K: (4 * c, 8 * c)),
    ("att_layer4.up_1.conv.UConv", "generator.up1.block", lambda c, C, K: (12 * c, 4 * c)),
    ("att_layer4.up_2.conv.UConv", "generator.up2.block", lambda c, C, K: (6 * c, 3 * c)),
    ("att_layer4.up_3.conv.UConv", "generator.up3.block", lambda c, C, K: (3 * c + C, K)),
)


@dataclass(frozen=True)
class Entry:
    """Where one release key goes and the shape it must have."""

    ours: str
    shape: tuple[int, ...]
    optional: bool = False
    """BN ``num_batches_tracked`` (absent from files of PyTorch < 0.4.1)."""


def generator_layout(width: int, num_classes: int, stem_channels: int = 64,
                     attention_head: bool = True) -> dict[str, Entry]:
    """release key -> `Entry` for the generator (+ ``att_conv2`` when `attention_head`)."""
    c, C, K = width, stem_channels, num_classes
    out: dict[str, Entry] = {}
    for release, ours, sizes in _BLOCKS:
        c_in, c_out = sizes(c, C, K)
        out[f"{release}.0.weight"] = Entry(f"{ours}.0.weight", (c_out, c_in, 3, 3))
        out[f"{release}.3.weight"] = Entry(f"{ours}.3.weight", (c_out, c_out, 3, 3))
        for bn in (1, 4):
            out.update(_bn(f"{release}.{bn}", f"{ours}.{bn}", c_out))
    out["att_conv3.weight"] = Entry("generator.out_conv.weight", (1, K, 3, 3))
    out.update(_bn("bn_att3", "generator.out_bn", 1))
    if attention_head:
        out["att_conv2.weight"] = Entry("generator.attn_conv.weight", (K, K, 1, 1))
    return out


def stem_layout(channels: int = 64) -> dict[str, Entry]:
    """release key -> `Entry` for the ResNet stem (conv1 7x7 stride 2, bn1)."""
    out = {"conv1.weight": Entry("stem.conv1.weight", (channels, 3, 7, 7))}
    out.update(_bn("bn1", "stem.bn1", channels))
    return out


def _bn(release: str, ours: str, channels: int) -> dict[str, Entry]:
    return {f"{release}.{s}": Entry(f"{ours}.{s}", () if s == "num_batches_tracked" else (channels,),
                                    optional=s == "num_batches_tracked") for s in BN_STATS}


def is_generator_key(key: str) -> bool:
    return key.startswith(GENERATOR_PREFIXES)
