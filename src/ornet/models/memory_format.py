"""Channels-last layout for convolutional networks (`trainer.channels_last`).

A network whose 4-D weights are channels-last (NHWC in memory) makes every convolution take its
input, and give its output, in that layout: oneDNN's fast NHWC kernels on CPU (depthwise
convolutions above all, which EfficientNet is full of) and tensor-core kernels on GPU. Images
need no conversion: the first convolution produces NHWC activations from an NCHW batch, and
later layers keep that layout. Results equal the default layout's up to float rounding (other
kernels sum in another order). `benchmarks/bench_train_speed.py` measures the speed.
"""

from __future__ import annotations

import torch
from torch import nn


def use_channels_last(module: nn.Module, enabled: bool = True) -> nn.Module:
    """`module` with its 4-D parameters and buffers in channels-last layout (in place; returned for
    chaining); contiguous (NCHW) layout again when not `enabled`. Values are unchanged."""
    return module.to(memory_format=torch.channels_last if enabled else torch.contiguous_format)
