"""The activation map generator F_g (METHOD.md, Notation and Stage 1).

A small U-Net F_d on the stem features f_c (C x h x w, h = H/4) gives f_a (K x h x w);
then ``p_a = sigmoid(BN(conv3x3(f_a)))`` (1 x h x w) and the stage-1 attention head
``y_a = GAP(conv1x1(f_a))`` (K logits). Layout as in the public release (c = `width`):

    down1: maxpool 2, block(C -> 2c)        up1: upsample, concat down2, block(8c + 4c -> 4c)
    down2: maxpool 2, block(2c -> 4c)       up2: upsample, concat down1, block(4c + 2c -> 3c)
    down3: maxpool 2, block(4c -> 8c)       up3: upsample, concat f_c,   block(3c + C -> K)

With an `encoder` (``model.generator_encoder: backbone``, `generator_encoder.BackboneEncoder`)
the three down blocks are the backbone's own pretrained stages at 1/8, 1/16, 1/32 instead, with
their channel counts (C1, C2, C3) in place of 2c, 4c, 8c; the decoder is the same.

``stem_skip`` (``model.generator_stem_skip``, docs/method.md) sets what up3 takes from f_c, the
low-level features the paper's failure analysis blames for texture noise: ``concat`` (the release),
``none`` (no f_c: up3 is a block on the upsampled 1/8 features alone, 3c -> K) or ``gated`` (f_c
times a spatial gate sigmoid(conv1x1(x)) from the upsampled decoder features, so the coarser,
semantic path decides where low-level detail enters the map).

``objectness`` (``model.generator_objectness``, alpha > 0; docs/method.md, "The learned class gate")
adds a head ``obj_conv`` (conv1x1, C3 -> 1) on the deepest encoder features x3. While ``objectness_on``
(a buffer: stage 2 switches it on, checkpoints keep it) the map is ``p_a * up(sigmoid(o)) ** alpha``,
o = obj_conv(x3) taken without gradient into the product (the head learns only from its own loss,
stage 2's distillation of the evaluator's CAM), up = bilinear to p_a's grid; before that (stage 1) the
head is not run and p_a is the plain map. The head starts at zero (o = 0: a constant gate).

block = (conv3x3 no bias - BN(momentum 0.01) - LeakyReLU(0.01)) x 2. Upsampling is bilinear
to the skip's exact size, so any h, w >= 8 works (odd sizes too; the release doubles and
needs h, w divisible by 8). f_a is the last block's LeakyReLU output, so it can be negative
(see `ornet.methods.ornet.losses.area_loss`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import OrnetError
from .generator_encoder import BackboneEncoder

BN_MOMENTUM = 0.01
"""The release's U-Net blocks. Their running averages forget 1 % per step: after n steps the
initial (0, 1) still weighs 0.99^n (41 % after 88 steps), so a short schedule needs a larger one
(`model.generator_bn_momentum`)."""


@dataclass
class GeneratorOutput:
    """Named outputs of `ActivationMapGenerator` (all at the stem's h x w)."""

    f_a: Tensor
    """B x K x h x w decoder features (LeakyReLU output, may be negative)."""
    p_a: Tensor
    """B x 1 x h x w activation map in [0, 1]: sigmoid(BN(conv3x3(f_a)))."""
    attn_logits: Tensor | None
    """B x K stage-1 attention head: GAP(conv1x1(f_a)); None without the head."""
    obj_logit: Tensor | None = None
    """B x 1 x h/8 x w/8 objectness logit o (float32) while the learned class gate is on; else None."""


class ConvBlock(nn.Sequential):
    """(conv3x3 - BN - LeakyReLU) x 2."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(c_out, momentum=BN_MOMENTUM),
            nn.LeakyReLU(inplace=True),
            nn.Conv2d(c_out, c_out, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(c_out, momentum=BN_MOMENTUM),
            nn.LeakyReLU(inplace=True),
        )


class Down(nn.Sequential):
    """2x max-pool then a block."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(nn.MaxPool2d(2), ConvBlock(c_in, c_out))


class Up(nn.Module):
    """Bilinear upsampling to the skip's size, concat [skip, x], a block."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.block = ConvBlock(c_in, c_out)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.block(self.join(x, skip))

    def join(self, x: Tensor, skip: Tensor) -> Tensor:
        """The block's input from the upsampled x and the skip: [skip, x]."""
        return torch.cat([skip, x], dim=1)


STEM_SKIPS = ("concat", "none", "gated")
"""`model.generator_stem_skip` values: what the last up block takes from the stem features f_c."""


class StemUp(Up):
    """up3 with the stem skip f_c handled by `stem_skip` (module docstring)."""

    def __init__(self, c_x: int, c_skip: int, c_out: int, stem_skip: str):
        if stem_skip not in STEM_SKIPS:
            raise OrnetError(f"generator stem skip must be one of {', '.join(STEM_SKIPS)}, got {stem_skip!r}")
        super().__init__(c_x + (0 if stem_skip == "none" else c_skip), c_out)
        self.stem_skip = stem_skip
        self.gate = nn.Conv2d(c_x, 1, kernel_size=1) if stem_skip == "gated" else None

    def join(self, x: Tensor, skip: Tensor) -> Tensor:
        if self.stem_skip == "none":
            return x
        if self.stem_skip == "gated":
            skip = skip * torch.sigmoid(self.gate(x))
        return super().join(x, skip)


REFINE_SCOPES = ("release", "decoder", "generator")
"""`method.refine_scope` values: how much of the generator stage 2 trains."""


class ActivationMapGenerator(nn.Module):
    """F_g: stem features B x C x h x w -> `GeneratorOutput` (module docstring).

    ``attention_head=False`` leaves out the stage-1 head (``attn_conv``; the release's
    ``att_conv2``), which stage 2 and inference never use and the release's stage-2
    checkpoints do not hold.
    """

    MIN_SIZE = 8  # three 2x max-pools

    def __init__(self, in_channels: int, num_classes: int, width: int = 64, attention_head: bool = True,
                 encoder: BackboneEncoder | None = None, bn_momentum: float = BN_MOMENTUM,
                 stem_skip: str = "concat", objectness: float = 0.0):
        super().__init__()
        if not 0.0 < bn_momentum <= 1.0:
            raise OrnetError(f"generator BN momentum must be in (0, 1], got {bn_momentum}")
        if in_channels < 1 or num_classes < 1 or width < 1:
            raise OrnetError(f"generator sizes must be positive: in_channels={in_channels}, "
                             f"num_classes={num_classes}, width={width}")
        c = width
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.width = width
        if encoder is None:  # the release's encoder, trained from scratch
            self.down1 = Down(in_channels, 2 * c)
            self.down2 = Down(2 * c, 4 * c)
            self.down3 = Down(4 * c, 8 * c)
            c1, c2, c3 = 2 * c, 4 * c, 8 * c
        else:
            c1, c2, c3 = encoder.channels
        self.up1 = Up(c3 + c2, 4 * c)
        self.up2 = Up(4 * c + c1, 3 * c)
        self.up3 = StemUp(3 * c, in_channels, num_classes, stem_skip)
        self.stem_skip = stem_skip
        self.out_conv = nn.Conv2d(num_classes, 1, kernel_size=3, padding=1, bias=False)
        self.out_bn = nn.BatchNorm2d(1)
        self.attn_conv = (nn.Conv2d(num_classes, num_classes, kernel_size=1, bias=False)
                          if attention_head else None)
        if not (objectness >= 0 and objectness < float("inf")):
            raise OrnetError(f"generator objectness exponent must be a finite number >= 0, got {objectness}")
        self.objectness = float(objectness)
        self.obj_conv = nn.Conv2d(c3, 1, kernel_size=1) if objectness > 0 else None
        self._obj_on = False  # mirrors the buffer, so that forward never reads a device tensor
        if self.obj_conv is not None:
            self.register_buffer("objectness_on", torch.zeros((), dtype=torch.bool))
            self.register_load_state_dict_post_hook(_mirror_objectness)
        for m in self.modules():  # the release's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():  # the U-Net blocks' running averages (not out_bn's: PyTorch's 0.1)
            if isinstance(m, nn.BatchNorm2d) and m is not self.out_bn:
                m.momentum = bn_momentum
        if self.obj_conv is not None:  # zeros: sigmoid(o) = 0.5 everywhere, so the gated map starts as the plain
            nn.init.zeros_(self.obj_conv.weight)  # one up to a constant (the release's kaiming init saturates a
            nn.init.zeros_(self.obj_conv.bias)  # one-output head on 320 deep channels: a dead gradient)
        self.encoder = encoder  # added after the initialisation: it keeps its (pretrained) weights

    def forward(self, f_c: Tensor) -> GeneratorOutput:
        if f_c.dim() != 4 or f_c.shape[1] != self.in_channels:
            raise OrnetError(f"generator expects B x {self.in_channels} x h x w features, "
                             f"got {tuple(f_c.shape)}")
        if min(f_c.shape[-2:]) < self.MIN_SIZE:
            raise OrnetError(f"generator input must be at least {self.MIN_SIZE}x{self.MIN_SIZE} "
                             f"(its encoder halves it three times), got {tuple(f_c.shape[-2:])}")
        if self.encoder is None:
            x1 = self.down1(f_c)
            x2 = self.down2(x1)
            x3 = self.down3(x2)
        else:
            x1, x2, x3 = self.encoder(f_c)
        x = self.up1(x3, x2)
        x = self.up2(x, x1)
        f_a = self.up3(x, f_c)
        logit = self.out_bn(self.out_conv(f_a))
        if logit.dtype in (torch.float16, torch.bfloat16):  # under autocast: the map in float32
            logit = logit.float()
        p_a = torch.sigmoid(logit)
        obj_logit = None
        if self._obj_on:
            obj_logit = self.obj_conv(x3).float()
            gate = F.interpolate(torch.sigmoid(obj_logit.detach()), size=p_a.shape[-2:], mode="bilinear",
                                 align_corners=False)
            p_a = p_a * gate ** self.objectness
        # GAP(conv1x1(f_a)) == conv1x1(GAP(f_a)) (both linear, no bias): pool first, K*K per
        # image instead of K*K*h*w.
        attn_logits = (None if self.attn_conv is None
                       else self.attn_conv(f_a.mean(dim=(2, 3), keepdim=True)).flatten(1))
        return GeneratorOutput(f_a=f_a, p_a=p_a, attn_logits=attn_logits, obj_logit=obj_logit)

    def enable_objectness(self) -> None:
        """Switch the learned class gate on (stage 2 does, before it trains the head); kept in the state dict."""
        if self.obj_conv is None:
            raise OrnetError("this generator has no objectness head (model.generator_objectness: 0)")
        self.objectness_on.fill_(True)
        self._obj_on = True

    # ---------------------------------------------------------------- stage 2

    def encoder_parameters(self) -> list[nn.Parameter]:
        """The pretrained encoder's parameters (empty for the release's encoder): trained at the
        backbone's learning rate in stage 1, not at the new layers' `head_lr_mult`."""
        return list(self.encoder.parameters()) if self.encoder is not None else []

    def refine_modules(self, scope: str = "release") -> list[nn.Module]:
        """The parts trained in stage 2. `scope` (`method.refine_scope`): ``release`` (METHOD.md,
        Stage 2; the release's up_2, up_3, att_conv3, bn_att3): the last two up blocks, the
        output conv and its BN; ``decoder``: every up block and the output conv and BN;
        ``generator``: the decoder and the encoder (not the attention head, which stage 2 does
        not use)."""
        if scope not in REFINE_SCOPES:
            raise OrnetError(f"refine scope must be one of {', '.join(REFINE_SCOPES)}, got {scope!r}")
        mods: list[nn.Module] = [self.up2, self.up3, self.out_conv, self.out_bn]
        if self.obj_conv is not None:  # the learned class gate's head trains in stage 2, whatever the scope
            mods.append(self.obj_conv)
        if scope in ("decoder", "generator"):
            mods.insert(0, self.up1)
        if scope == "generator":
            mods[:0] = [self.encoder] if self.encoder is not None else [self.down1, self.down2, self.down3]
        return mods

    def refine_parameters(self, scope: str = "release") -> Iterator[nn.Parameter]:
        return itertools.chain.from_iterable(m.parameters() for m in self.refine_modules(scope))

    def freeze_for_refine(self, scope: str = "release") -> ActivationMapGenerator:
        """requires_grad only on `refine_parameters(scope)`; returns self.

        Only gradients are switched off: in train mode the frozen blocks' BatchNorm layers
        still normalise with batch statistics and update their running averages (as in the
        release, which calls model.train() on everything). Put them in eval mode for fixed
        statistics.
        """
        for p in self.parameters():
            p.requires_grad_(False)
        for p in self.refine_parameters(scope):
            p.requires_grad_(True)
        return self


def _mirror_objectness(module: ActivationMapGenerator, incompatible) -> None:
    module._obj_on = bool(module.objectness_on)
