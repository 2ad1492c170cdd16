"""Expected checkpoint sizes of a run's stages, before it trains (for `runtime.disk_use`'s space check).

Each stage's task is built on the `meta` device (no memory, no weights read; on the CPU for a
builder that needs real tensors, as timm's split check does) and its tensors counted:
`<stage>.ckpt` holds the state dict (parameters and buffers), `<stage>-last.ckpt` also the
optimiser state (SGD with momentum: one tensor per trainable parameter; Adam / AdamW: two).
"""

from __future__ import annotations

import dataclasses

from ..config.schema import RunConfig
from ..runtime.disk_use import StageSize
from .pipeline import build_task

OPTIMIZER_STATE = {"sgd": 1, "adam": 2, "adamw": 2}
"""Tensors of optimiser state per trainable parameter (SGD: the momentum buffer, if momentum > 0)."""


def _nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _build(cfg: RunConfig, stage: str, num_classes: int):
    """The stage's task on the `meta` device; on the CPU where a builder needs real tensors (a timm
    backbone checks its split with a forward pass)."""
    from ..models.backbones import on_meta_if_possible

    names = [str(i) for i in range(num_classes)]
    return on_meta_if_possible(lambda: build_task(cfg, stage, num_classes, names))


def expected_sizes(cfg: RunConfig, stages: list[str], num_classes: int) -> dict[str, StageSize]:
    """Expected checkpoint bytes per stage (module docstring); tensors only, no file overhead."""
    blank = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, backbone_weights="none",
                                                               evaluator_weights="none"))
    sizes = {}
    for stage in stages:
        task = _build(blank, stage, num_classes)
        weights = _nbytes(task.state_dict().values())
        stage_cfg = getattr(cfg, stage)
        per_param = OPTIMIZER_STATE.get(stage_cfg.optimizer, 2)
        if stage_cfg.optimizer == "sgd" and not stage_cfg.momentum:
            per_param = 0
        trainable = {id(p): p for params, _ in task.param_groups() for p in params if p.requires_grad}
        best = weights if getattr(stage_cfg, "keep", "last") != "last" else 0
        sizes[stage] = StageSize(final=weights, last=weights + per_param * _nbytes(trainable.values()), best=best)
    return sizes
