"""Choosing ORNet's class gate where the threshold is chosen (docs/method.md, "The class gate").

The gate itself is `ORNet.set_cam_gate`; `evaluation.evaluate` calls `choose_gate` with a
function that runs one pass of the model over a split under every candidate at once
(`sweep_pass.run_gate_passes`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..localization.sweep import choose_threshold


@dataclass
class GateChoice:
    """The class gate an evaluation used (`choose_gate`): exponent, the candidates' scores."""

    alpha: float | None  # None: the model has no class gate to set (not an ORNet)
    split: str | None = None  # where it was chosen; None: the model's own
    scores: dict = field(default_factory=dict)  # candidate -> GT-known on `split`
    passes: dict = field(default_factory=dict)  # candidate -> its pass result on `split`

    def metrics(self) -> dict:
        """metrics.json's keys: ``cam_gate``, ``cam_gate_split`` and, when candidates were
        scored, ``cam_gate_scores``; nothing for a model without a gate."""
        if self.alpha is None:
            return {}
        out = {"cam_gate": self.alpha, "cam_gate_split": self.split or "model"}
        if self.scores:
            out["cam_gate_scores"] = {str(a): round(float(v), 4) for a, v in self.scores.items()}
        return out


def pick_gate(scores: dict[float, float], margin: float) -> float:
    """The class gate's exponent from each candidate's score (0 among them: no gate): the best
    gate (the smaller exponent on ties) when it beats no gate by more than `margin`, else 0."""
    gated = [a for a in scores if a > 0]
    if not gated:
        return 0.0
    best = max(gated, key=lambda a: (scores[a], -a))
    return best if scores[best] > scores[0.0] + margin else 0.0


def choose_gate(model, candidates: list[float], margin: float, split: str | None,
                run_passes: Callable[[str, list[float]], dict]) -> GateChoice:
    """Choose the gate's exponent among `candidates` and 0 on `split`, set it on `model` and
    return the choice. Each candidate is scored by GT-known at its own best threshold on
    `split` (``run_passes(split, alphas)[alpha].sweep``), as the threshold is chosen; `pick_gate` decides.
    Without candidates, or with `split` None, the model keeps its own gate; a model without one
    (the CAM baseline) has none."""
    if not hasattr(model, "set_cam_gate"):
        return GateChoice(alpha=None)
    if not candidates or split is None:
        return GateChoice(alpha=float(model.cam_gate))
    alphas = sorted({0.0, *(float(a) for a in candidates)})
    passes = run_passes(split, alphas)
    scores = {}
    for alpha in alphas:
        sweep = passes[alpha].sweep
        scores[alpha] = float(sweep.accuracy(sweep.box_mode)[choose_threshold(sweep)])
    alpha = pick_gate(scores, margin)
    model.set_cam_gate(alpha)
    return GateChoice(alpha=alpha, split=split, scores=scores, passes=passes)


def gate_note(metrics: dict) -> str:
    """For a command's one-line summary: ``; class gate A chosen on SPLIT``, ``; class gate A``
    (the model's own), ``; no class gate chosen`` (candidates scored, none taken), or ``""``."""
    alpha = metrics.get("cam_gate")
    if alpha is None:
        return ""
    scored = bool(metrics.get("cam_gate_scores"))
    if not alpha:
        return "; no class gate chosen" if scored else ""
    return f"; class gate {alpha:g}" + (f" chosen on {metrics.get('cam_gate_split')}" if scored else "")
