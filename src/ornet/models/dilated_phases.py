"""Dilated depthwise convolutions trained on their input's dilation phases (`trainer.dilated_phases`).

The CAM-family networks keep a 1/16 feature map (wsolevaluation's choice); timm does that with
``output_stride=16``, which dilates the last stage's convolutions instead of striding them. On
EfficientNet-Lite0 those are depthwise 5x5 and 3x3 convolutions with dilation 2, and on the CPU
oneDNN's backward for a *dilated* depthwise convolution is several times slower than for an
undilated one: three 5x5 layers at 12x12 took ~0.9 s of a 3.4 s training step of the CAM preset.

A stride-1 convolution with dilation ``d`` and "same" padding ``p = d (k - 1) / 2`` reads, for
output row ``d a + i``, only input rows ``d (a + u - p / d) + i``: rows of the same phase ``i``.
So it is ``d * d`` undilated convolutions, one per phase ``(i, j)`` of the input
(``x[..., i::d, j::d]``, padding ``p / d``), whose outputs interleave back (TensorFlow's
space-to-batch for atrous convolution). `PhaseDepthwiseConv2d` keeps PyTorch's forward (the same
kernel as before, bit for bit) and computes the backward that way, the ``d * d`` phases stacked
into the batch: the input gradient comes out bit for bit the same, the weight gradient equal up to
float rounding (the sum over positions runs in another order). A side whose size is not a multiple
of ``d`` is padded with zeros at its end, which the convolution's own zero padding reads anyway.

Only where it was measured to pay: depthwise (``groups == in_channels == out_channels``),
stride 1, zero padding, on CPU tensors outside autocast (`benchmarks/studies/dilated_phases_cost.py`,
`benchmarks/results/train_speed_dilated.md`; dense dilated convolutions gained nothing, GPUs were not measured); elsewhere the layer runs PyTorch's own
backward. The swap changes the modules' class only (as `torch.nn.utils.parametrize` does):
parameters, state-dict keys and checkpoints stay as they are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable


def eligible(conv: nn.Module) -> bool:
    """A depthwise, stride-1, zero-padded "same" convolution with dilation > 1 (odd kernel)."""
    if type(conv) not in (nn.Conv2d, PhaseDepthwiseConv2d):
        return False
    if not (conv.groups == conv.in_channels == conv.out_channels and conv.stride == (1, 1)
            and conv.padding_mode == "zeros"):
        return False
    d = conv.dilation[0]
    if not isinstance(conv.padding, tuple) or conv.dilation[1] != d or d < 2:
        return False
    return all(k % 2 == 1 and p == d * (k - 1) // 2 for k, p in zip(conv.kernel_size, conv.padding))


def use_dilated_phases(module: nn.Module, enabled: bool = True) -> int:
    """Swap every `eligible` convolution of `module` to `PhaseDepthwiseConv2d` (back to nn.Conv2d
    when not `enabled`), in place; returns how many layers it swapped."""
    kind = PhaseDepthwiseConv2d if enabled else nn.Conv2d
    swapped = 0
    for m in module.modules():
        if eligible(m) and type(m) is not kind:
            m.__class__ = kind
            swapped += 1
    return swapped


class PhaseDepthwiseConv2d(nn.Conv2d):
    """An `eligible` nn.Conv2d whose backward runs on the input's dilation phases (module docstring)."""

    folds_as_conv2d = True  # its forward is nn.Conv2d's: `fold_bn` may fold a batch norm into it

    def forward(self, x: Tensor) -> Tensor:
        needs_grad = torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad)
        if not needs_grad or x.device.type != "cpu" or x.dim() != 4 or torch.is_autocast_enabled("cpu"):
            return super().forward(x)
        return _PhaseConv.apply(x, self.weight, self.bias, self.dilation[0], self.padding)


def to_phases(t: Tensor, d: int) -> Tensor:
    """B x C x H x W (H, W multiples of `d`) -> (d * d * B) x C x H/d x W/d, phase (i, j) of image b
    at batch index (i * d + j) * B + b; one copy, channels-last."""
    b, c, h, w = t.shape
    out = t.new_empty((d, d, b, h // d, w // d, c))
    out.copy_(t.view(b, c, h // d, d, w // d, d).permute(3, 5, 0, 2, 4, 1))
    return out.view(d * d * b, h // d, w // d, c).permute(0, 3, 1, 2)


def from_phases(t: Tensor, d: int) -> Tensor:
    """The inverse of `to_phases`: (d * d * B) x C x h x w -> B x C x (h d) x (w d), channels-last."""
    n, c, h, w = t.shape
    b = n // (d * d)
    out = t.new_empty((b, h, d, w, d, c))
    out.copy_(t.view(d, d, b, c, h, w).permute(2, 4, 0, 5, 1, 3))
    return out.view(b, h * d, w * d, c).permute(0, 3, 1, 2)


def _pad_to_multiple(t: Tensor, d: int) -> Tensor:
    h, w = t.shape[-2:]
    extra_h, extra_w = -h % d, -w % d
    return F.pad(t, (0, extra_w, 0, extra_h)) if extra_h or extra_w else t


class _PhaseConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, d, padding):
        ctx.save_for_backward(x, weight)
        ctx.d, ctx.padding, ctx.has_bias = d, padding, bias is not None
        return F.conv2d(x, weight, bias, 1, padding, d, weight.shape[0])

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        d, (ph, pw) = ctx.d, ctx.padding
        h, w = x.shape[-2:]
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        grad_x = grad_w = grad_b = None
        if need_x or need_w:
            gx, gw, _ = torch.ops.aten.convolution_backward(
                to_phases(_pad_to_multiple(grad, d), d), to_phases(_pad_to_multiple(x, d), d), weight, None,
                [1, 1], [ph // d, pw // d], [1, 1], False, [0, 0], weight.shape[0], [need_x, need_w, False])
            grad_w = gw
            if need_x:
                grad_x = from_phases(gx, d)[..., :h, :w]
        if need_b and ctx.has_bias:
            grad_b = grad.sum((0, 2, 3))
        return grad_x, grad_w, grad_b, None, None
