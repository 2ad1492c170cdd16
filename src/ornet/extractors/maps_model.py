"""`MapsModel`: a localization model whose maps come from a map extractor (`eval.maps`).

Evaluation (`evaluation.protocols.evaluate_split`) and `Localizer.use_maps` put it around the run's
model; it keeps the model's interface, ``predict(images, labels) -> (maps, logits)``, so the
passes, the protocols and the box rules need nothing new. The model itself is a submodule:
device moves, eval mode and the memory layout reach it as before.

`gradients` is how gradient extractors run inside evaluation: Lightning's test loop runs under
``torch.inference_mode()`` and a `Localizer` under ``torch.no_grad()``, so the extractor turns
autograd back on for its own forward and backward, on a copy of the batch (an inference tensor
cannot enter a graph), with the classifier's weights frozen meanwhile (no ``.grad`` is left on the
model) and autocast off (pytorch-grad-cam reads activations and gradients as float32 numpy).
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor, nn

from ..errors import OrnetError
from . import DEFAULT_MAPS, check_maps


class MapsModel(nn.Module):
    """`model` whose ``predict`` gives extractor `entry`'s maps of `target` (its classifier), and that
    classifier's logits (the same as the model's own: the CAM network's, ORNet's evaluator's)."""

    foldable = False
    """Evaluation passes run it as it is (`models/fold_bn.py`): its extractor holds hooks on the model."""

    def __init__(self, model: nn.Module, entry, target):
        super().__init__()
        self.model = model
        self.maps = entry.name
        """The extractor's name (metrics.json's ``maps``)."""
        self.maps_network = target.describe()
        """The network it explains, e.g. ``evaluator (resnet18)`` (metrics.json's ``maps_network``)."""
        self._extract = entry.build(target)  # a plain attribute: its modules are `model`'s own

    def predict(self, images: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(maps B x 1 x h x w in [0, 1], logits B x K)``; the maps of each image's label, of its
        predicted class when `labels` is None."""
        return self._extract(images, labels)

    def forward(self, images: Tensor) -> Tensor:
        return self.model(images)


def with_maps(model: nn.Module, name: str) -> nn.Module:
    """`model` with extractor `name`'s maps (`model` itself, unwrapped, for ``own``).

    A model that gives no classifier to explain (``explained_classifier()`` missing or None, e.g. an
    ORNet built without its evaluator) is refused with one line naming ``eval.maps``."""
    from . import EXTRACTORS

    entry = EXTRACTORS.get(check_maps(name))
    base = model.model if isinstance(model, MapsModel) else model
    if entry.name == DEFAULT_MAPS:
        return base
    explain = getattr(base, "explained_classifier", None)
    target = explain() if callable(explain) else None
    if target is None:
        raise OrnetError(f"eval.maps {entry.name} explains the model's classifier, and this "
                         f"{type(base).__name__} has none (an ORNet without its evaluator); use eval.maps "
                         f"{DEFAULT_MAPS}")
    return MapsModel(base, entry, target)


def maps_metrics(model: nn.Module) -> dict:
    """metrics.json's keys for the maps `model` gives: ``maps`` and, for an extractor other than
    the model's own map, ``maps_network``."""
    if isinstance(model, MapsModel):
        return {"maps": model.maps, "maps_network": model.maps_network}
    return {"maps": DEFAULT_MAPS}


@contextlib.contextmanager
def gradients(network: nn.Module, device: torch.device):
    """Autograd on (also under inference mode), `network`'s weights frozen, autocast off (module docstring)."""
    params = [(p, p.requires_grad) for p in network.parameters()]
    with torch.inference_mode(False), torch.enable_grad(), torch.autocast(device.type, enabled=False):
        for p, _ in params:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p, flag in params:
                p.requires_grad_(flag)


def target_classes(logits: Tensor, labels: Tensor | None) -> Tensor:
    """The class each map explains: the label when given (GT-known, as the metrics), else the top-1."""
    return logits.argmax(dim=1) if labels is None else labels.to(logits.device).long()


def float_weights(network: nn.Module, name: str) -> torch.dtype:
    """The network's weight dtype; pytorch-grad-cam needs float32 (or float64) weights."""
    dtype = next(network.parameters()).dtype
    if dtype not in (torch.float32, torch.float64):
        raise OrnetError(f"eval.maps {name} runs pytorch-grad-cam, which reads float32 activations; the network's "
                         f"weights are {str(dtype).removeprefix('torch.')}: use trainer.precision 32-true or a "
                         "*-mixed precision")
    return dtype
