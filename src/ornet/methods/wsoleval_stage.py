"""What ACoL and SPG share: their refusal of ``backbone_weights: evaluator`` and wsolevaluation's
optimiser and schedule (main.py: ``Trainer._set_optimizer``, ``Trainer.adjust_learning_rate``;
settings `config.zoo_settings.WsolevalStageConfig`). Torch-free at import: the method entries
import it; `configure_optimizers` imports torch when a stage trains."""

from __future__ import annotations

from ..errors import OrnetError


def refuse_evaluator_weights(cfg, method: str) -> None:
    from ..models.weights_spec import weights_spec

    if weights_spec(cfg.model, "backbone").from_evaluator:
        raise OrnetError(f"model.backbone_weights=evaluator is for ORNet's stage 1; {method} takes none, "
                         "imagenet, a torchvision weights name or a file")


def decay_factor(epoch: int, every: int) -> float:
    """adjust_learning_rate: x0.1 before each epoch (counted from 1) divisible by `every`, so the
    factor during epoch `epoch` (counted from 0) is 0.1 ** ((epoch + 1) // every)."""
    return 0.1 ** ((epoch + 1) // every)


def configure_optimizers(task, decay=decay_factor):
    """SGD (with Nesterov momentum where set) on the stage's parameter groups, and the step
    schedule (`decay(epoch, every)`: the lr factor during an epoch counted from 0; default
    `decay_factor`); other optimisers and schedules as every stage (`methods.base`)."""
    import torch

    from .base import build_optimizer, build_scheduler

    s = task.stage_cfg
    if s.optimizer == "sgd":
        groups = [{"params": [p for p in params if p.requires_grad], "lr": s.lr * mult}
                  for params, mult in task.param_groups()]
        optimizer = torch.optim.SGD([g for g in groups if g["params"]], lr=s.lr, momentum=s.momentum,
                                    weight_decay=s.weight_decay, nesterov=bool(s.nesterov))
    else:
        optimizer = build_optimizer(s, task.param_groups())
    if s.scheduler == "step":
        every = int(s.lr_decay_frequency)
        sched = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: decay(epoch, every))
        scheduler = {"scheduler": sched, "interval": "epoch"}
    else:
        total = task.trainer.estimated_stepping_batches if task._trainer is not None else s.epochs
        scheduler = build_scheduler(s, optimizer, total)
    return optimizer if scheduler is None else {"optimizer": optimizer, "lr_scheduler": scheduler}
