"""Stop a stage as soon as training diverges (a NaN or Inf loss term or parameter).

One check for every stage (`StageTask.training_step` and `on_train_epoch_end` call it): the
loss terms of a step are tested before the backward pass and the optimiser step, and the
parameters and buffers before the end-of-epoch `<stage>-last.ckpt` is written, so a diverged
state never replaces the last good checkpoint. The error names the stage, the epoch (1-based,
as the progress lines), the training step within the stage (1-based) and the terms:

    stage refine, epoch 2/3, step 17: loss term loss_entropy (L_we) is nan

Testing costs one device-to-host copy of a few scalars per step. Under DDP the verdict is
combined across processes (`agree`), so that every process stops at the same step: a lone
process raising would leave the others waiting in the next gradient all-reduce.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from ..errors import TrainingDiverged

SYMBOLS = {"loss_main": "CE(y_hat, y)", "loss_attn": "CE(y_a, y)", "loss_eval": "L_e",
           "loss_area": "L_a", "loss_entropy": "L_we"}
"""Logged loss-term names -> METHOD.md's symbols (shown in the message)."""


def where(stage: str, epoch: int, epochs: int | None, step: int) -> str:
    """`stage refine, epoch 2/3, step 17` from 0-based epoch and step counters."""
    total = f"/{epochs}" if epochs and epochs > 0 else ""
    return f"stage {stage}, epoch {epoch + 1}{total}, step {step + 1}"


def _value(v: float) -> str:
    return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")


def nonfinite_terms(terms: dict[str, torch.Tensor]) -> dict[str, float]:
    """{name: value} of the terms that are not finite (empty when all are); one host sync."""
    if not terms:
        return {}
    names = list(terms)
    values = torch.stack([terms[n].detach().float().reshape(-1)[0] for n in names])
    if bool(torch.isfinite(values).all()):
        return {}
    return {n: v for n, v in zip(names, values.cpu().tolist()) if not math.isfinite(v)}


def _label(name: str) -> str:
    return f"{name} ({SYMBOLS[name]})" if name in SYMBOLS else name


def _agreed(ok: bool, agree: Callable[[bool], bool] | None, at: str, what: str) -> bool:
    """True if every process is fine; raises if only another process is not."""
    if agree is None:
        return ok
    if agree(ok):
        return True
    if ok:
        raise TrainingDiverged(f"{at}: {what} not finite on another process")
    return False


def check_loss_terms(terms: dict[str, torch.Tensor], at: str, total: str = "loss",
                     agree: Callable[[bool], bool] | None = None) -> None:
    """Raise `TrainingDiverged` naming the non-finite terms (or the total, if no term is).

    `agree(ok) -> all processes ok` (DDP); None in a single process.
    """
    bad = nonfinite_terms(terms)
    if _agreed(not bad, agree, at, "a loss term is"):
        return
    named = {k: v for k, v in bad.items() if k != total}
    if not named:
        note = " (every term is finite)" if len(terms) > 1 else ""
        raise TrainingDiverged(f"{at}: the loss is {_value(bad[total])}{note}")
    noun = "loss term" if len(named) == 1 else "loss terms"
    raise TrainingDiverged(f"{at}: {noun} " + ", ".join(f"{_label(k)} is {_value(v)}" for k, v in named.items()))


def check_parameters(module: nn.Module, at: str, agree: Callable[[bool], bool] | None = None) -> None:
    """Raise `TrainingDiverged` if a parameter or floating-point buffer holds a NaN or Inf."""
    tensors = [(n, t) for n, t in (*module.named_parameters(), *module.named_buffers()) if t.is_floating_point()]
    flags = torch.stack([torch.isfinite(t.detach()).all() for _, t in tensors]) if tensors else torch.ones(1, dtype=torch.bool)
    if _agreed(bool(flags.all()), agree, at, "parameters are"):
        return
    bad = [n for (n, _), ok in zip(tensors, flags.cpu().tolist()) if not ok]
    more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
    raise TrainingDiverged(f"{at}: parameters are not finite ({', '.join(bad[:3])}{more})")
