"""Batch norm folded into the convolution before it, for networks that do not train (`trainer.fold_frozen_bn`).

A batch norm in eval mode is a per-channel affine map, ``y = (x - mean) / sqrt(var + eps) * w + b``.
When its input is a convolution's output, it folds into that convolution:
``W' = W * s``, ``b' = (b_conv - mean) * s + b`` with ``s = w / sqrt(var + eps)``, and the batch
norm disappears. A memory pass less in the forward, and far less in the backward: stage 2 sends
the gradient of the evaluator's loss back to the map through every batch norm of the frozen
evaluator, and that backward is the slow part of an eval-mode batch norm on CPU
(`benchmarks/results/train_speed.md`). Values equal the unfolded network's up to float rounding.

The folded network is a copy: the original keeps its modules, state dict and checkpoints. The pairs
come from one probing forward with hooks (a batch norm whose input *is* the tensor a plain
``nn.Conv2d`` or timm ``Conv2dSame`` returned, each called once), and the fold must give the original's
outputs on that probe (checked in float64, where rounding cannot hide a wrong fold), or it is not used
(a warning says why). `FoldedCache` rebuilds the copy whenever a parameter
or buffer of the original changed (its version counter), so a cached copy never runs stale weights.
"""

from __future__ import annotations

import copy
import logging
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)

_TOLERANCE = 1e-3
"""Largest difference allowed between the folded and the original network's outputs on the probe, in
float64, relative to the largest magnitude of the original's. A right fold: ~1e-12, up to ~1e-5 where a
fractional power near 0 amplifies rounding (ORNet's class gate, ``minmax(CAM) ** 0.25``); a wrong fold
moves outputs by the size of a batch norm's shift, orders of magnitude more."""


def _batchnorm_kinds() -> tuple[type, ...]:
    kinds: tuple[type, ...] = (nn.BatchNorm2d,)
    try:
        from timm.layers import BatchNormAct2d
    except ImportError:  # pragma: no cover - timm is a dependency
        return kinds
    return (*kinds, BatchNormAct2d)


def _conv_kinds() -> tuple[type, ...]:
    """Convolutions whose forward uses weight and bias as they are: nn.Conv2d and timm's Conv2dSame
    (TensorFlow's "same" padding, the Lite0 stride-2 convolutions: it pads the input, then convolves).
    A subclass that says so (``folds_as_conv2d = True``: `dilated_phases.PhaseDepthwiseConv2d`, whose
    backward alone differs) counts too (`conv_bn_pairs`)."""
    try:
        from timm.layers import Conv2dSame
    except ImportError:  # pragma: no cover - timm is a dependency
        return (nn.Conv2d,)
    return (nn.Conv2d, Conv2dSame)


def _foldable(bn: nn.Module) -> bool:
    return (type(bn) in _batchnorm_kinds() and not bn.training and bn.track_running_stats
            and bn.running_mean is not None and bn.running_var is not None)


def conv_bn_pairs(module: nn.Module, run: Callable[[nn.Module], Any]) -> list[tuple[str, str]]:
    """(conv name, batch-norm name) pairs of `module` that fold: seen in one probing forward `run(module)`,
    the batch norm (eval mode, running statistics) reads exactly the tensor the convolution returned, and
    each is called once. Plain ``nn.Conv2d`` only (a subclass may change its weight in `forward`)."""
    names = {m: n for n, m in module.named_modules()}
    calls: Counter = Counter()
    outputs: dict[int, tuple[nn.Module, torch.Tensor]] = {}
    found: list[tuple[nn.Module, nn.Module]] = []

    def on_conv(mod, _inputs, out):
        calls[mod] += 1
        outputs[id(out)] = (mod, out)  # the tensor is kept, so its id is not reused

    def on_bn(mod, inputs, _out):
        calls[mod] += 1
        seen = outputs.get(id(inputs[0]))
        if seen is not None and seen[1] is inputs[0]:
            found.append((seen[0], mod))

    handles = []
    for m in module.modules():
        if type(m) in _conv_kinds() or getattr(type(m), "folds_as_conv2d", False):
            handles.append(m.register_forward_hook(on_conv))
        elif _foldable(m):
            handles.append(m.register_forward_hook(on_bn))
    try:
        with torch.no_grad():
            run(module)
    finally:
        for h in handles:
            h.remove()
    return [(names[c], names[b]) for c, b in found if calls[c] == 1 and calls[b] == 1]


def _fold(conv: nn.Conv2d, bn: nn.Module) -> None:
    """`bn`'s affine map into `conv`'s weight and bias, in place (computed in float64)."""
    scale = bn.weight.double() if bn.affine else torch.ones_like(bn.running_var, dtype=torch.float64)
    shift = bn.bias.double() if bn.affine else torch.zeros_like(bn.running_var, dtype=torch.float64)
    scale = scale / torch.sqrt(bn.running_var.double() + bn.eps)
    weight = conv.weight.detach()
    layout = torch.channels_last if weight.is_contiguous(memory_format=torch.channels_last) and not \
        weight.is_contiguous() else torch.contiguous_format
    bias = conv.bias.detach().double() if conv.bias is not None else torch.zeros_like(scale)
    conv.weight = nn.Parameter((weight.double() * scale.view(-1, 1, 1, 1)).to(weight.dtype)
                               .contiguous(memory_format=layout), requires_grad=False)
    conv.bias = nn.Parameter(((bias - bn.running_mean.double()) * scale + shift).to(weight.dtype),
                             requires_grad=False)


def _without_norm(bn: nn.Module) -> nn.Module:
    """What is left of a folded batch norm: timm's BatchNormAct2d keeps its dropout and activation."""
    if type(bn) is nn.BatchNorm2d:
        return nn.Identity()
    return nn.Sequential(bn.drop, bn.act)


def _set(root: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, module)


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return [t for v in vars(value).values() for t in _tensors(v)] if hasattr(value, "__dict__") else []


def _differs(expected: Any, got: Any) -> float | None:
    """The largest difference between two outputs' tensors, relative to each expected tensor's largest
    magnitude; None when their structure differs."""
    a, b = _tensors(expected), _tensors(got)
    if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b)):
        return None
    worst = 0.0
    for x, y in zip(a, b):
        if not x.numel():
            continue
        if x.is_floating_point():
            scale = max(float(x.detach().abs().max()), 1e-12)
            worst = max(worst, float((x.detach() - y.detach()).abs().max()) / scale)
        elif not torch.equal(x, y):
            worst = float("inf")
    return worst


@contextmanager
def _in_float64(module: nn.Module):
    """Every module of `module` casts its floating-point tensor inputs to float64 (the probe's
    inputs are float32, the float64 copy's weights are not)."""
    def cast(_mod, args, kwargs):
        def to64(v):
            return v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v
        return tuple(to64(a) for a in args), {k: to64(v) for k, v in kwargs.items()}

    handles = [m.register_forward_pre_hook(cast, with_kwargs=True) for m in module.modules()]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _fold_pairs(module: nn.Module, pairs: list[tuple[str, str]]) -> nn.Module:
    with torch.no_grad():
        for conv_name, bn_name in pairs:
            _fold(module.get_submodule(conv_name), module.get_submodule(bn_name))
            _set(module, bn_name, _without_norm(module.get_submodule(bn_name)))
    return module.requires_grad_(False)


def _autocast_off(module: nn.Module):
    """Autocast off on `module`'s device while probing."""
    first = next(module.parameters(), None)
    return torch.autocast(first.device.type if first is not None else "cpu", enabled=False)


def folded_copy(module: nn.Module, run: Callable[[nn.Module], Any]) -> nn.Module | None:
    """A copy of `module` with every foldable batch norm (`conv_bn_pairs`) folded into its convolution,
    or None when nothing folds or the fold changes what `run` computes.

    The check runs in float64 (the module and its folded copy, both cast): in float32, rounding alone
    reaches 1e-3 after a min-max normalisation and a fractional power (ORNet's class gate), too close
    to a wrong fold's effect to tell apart; in float64 it stays below 1e-5 (`_TOLERANCE`)."""
    with _autocast_off(module):
        pairs = conv_bn_pairs(module, run)
        if not pairs:
            return None
        probe = copy.deepcopy(module).double()  # the one copy: the reference, then folded in place
        with torch.no_grad(), _in_float64(probe):
            expected = run(probe)
            _fold_pairs(probe, pairs)
            gap = _differs(expected, run(probe))
        del expected
    if gap is None or gap > _TOLERANCE:
        log.warning("fold_frozen_bn: folding %d batch norms of %s changes its outputs (relative difference %s "
                    "in float64); running it unfolded", len(pairs), type(module).__name__, gap)
        return None
    if _all_float32(module):
        # the float64 fold cast to float32 is the float32 fold bit for bit: `_fold` computes in float64
        # from the same values either way (float32 -> float64 is exact) and rounds once at the end
        return probe.float()
    return _fold_pairs(copy.deepcopy(module), pairs)


def _all_float32(module: nn.Module) -> bool:
    return all(t.dtype == torch.float32 for t in (*module.parameters(), *module.buffers()) if t.is_floating_point())


def _state_key(module: nn.Module) -> tuple:
    tensors = [*module.parameters(), *module.buffers()]
    return (tuple((t.data_ptr(), t._version, t.device) for t in tensors),
            tuple(m.training for m in module.modules()))


class FoldedCache:
    """The folded copy of a network that does not train, rebuilt when the network changes.

    `get(run)` gives the copy (built on first use, probed with `run`) or the network itself when
    folding is off, when any of its modules is in train mode (batch statistics), when
    `frozen_only` and a parameter requires grad (it trains), or when nothing folds. Any change of
    a parameter or buffer (load_state_dict, an optimiser step, a device move) or of a module's mode
    rebuilds the copy at the next call. The copy is not a submodule of anything: state dicts and
    checkpoints never see it.
    """

    def __init__(self, module: nn.Module, enabled: bool = True, frozen_only: bool = True):
        self.module = module
        self.enabled = enabled
        self.frozen_only = frozen_only
        self._key: tuple | None = None
        self._copy: nn.Module | None = None

    def _eligible(self) -> bool:
        if not self.enabled or any(m.training for m in self.module.modules()):
            return False
        return not (self.frozen_only and any(p.requires_grad for p in self.module.parameters()))

    def get(self, run: Callable[[nn.Module], Any]) -> nn.Module:
        if not self._eligible():
            return self.module
        key = _state_key(self.module)
        if key != self._key:
            self._copy, self._key = folded_copy(self.module, run), key
        return self._copy if self._copy is not None else self.module
