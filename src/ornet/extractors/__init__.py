"""The map extractors registry: which map of a trained run evaluation and `localize` use (`eval.maps`).

``own`` (the default) is the run's own map, what its model's ``predict`` returns: the CAM of a
CAM run, ORNet's map p_a (with its class gate) for an ORNet run. Every other entry explains the
run's classifier instead (`models.split.ExplainedClassifier`: the CAM network of a CAM run,
the evaluator F_e of an ORNet run), at its last conv feature map, for the image's label when
labels are given (GT-known, as the metrics) and its predicted class otherwise:

- ``cam`` and ``pc1`` (`class_maps.py`) use the class's row of the GAP + Linear head;
- ``gradcam``, ``gradcam++``, ``xgradcam``, ``layercam`` and ``scorecam`` run pytorch-grad-cam
  (`library_cams.py`), the field's implementations, unchanged.

docs/maps.md says what each computes. Torch-free: `ornet methods` lists the entries and the
config checks a name without importing torch; `with_maps` (`maps_model.py`) builds the model
whose ``predict(images, labels) -> (maps, logits)`` gives the extractor's maps.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from ..errors import ConfigError, OrnetError
from ..registry import Registry

DEFAULT_MAPS = "own"
"""`eval.maps` when none is named: the run's own map."""


@dataclass(frozen=True)
class Extractor:
    """One entry: its name (the value of `eval.maps`), a one-line description and its implementation."""

    name: str
    description: str
    impl: str | None = None
    """``module:Class`` relative to ``ornet.extractors``, built as ``Class(target, option)`` with the
    `ExplainedClassifier`; None: the model's own map."""
    option: str = ""
    """What the class needs besides the classifier (pytorch-grad-cam's class name)."""

    def build(self, target):
        """The callable ``(images, labels) -> (maps, logits)`` explaining `target`; a classifier the
        extractor cannot explain is refused with an OrnetError naming ``eval.maps``."""
        if self.impl is None:
            raise ValueError(f"map extractor {self.name!r} is the model's own map: nothing to build")
        module, cls = self.impl.split(":")
        return getattr(importlib.import_module(f"ornet.extractors.{module}"), cls)(target, self)


EXTRACTORS: Registry[Extractor] = Registry("map extractor")
"""`eval.maps` name -> its entry."""


def register(entry: Extractor) -> Extractor:
    EXTRACTORS.register(entry.name)(entry)
    return entry


_LIBRARY = "library_cams:LibraryCam"
register(Extractor("own", "the run's own map, what its model predicts: the CAM of a CAM run, ORNet's map "
                          "(with its class gate) for an ORNet run"))
register(Extractor("cam", "class activation map (Zhou et al., CVPR 2016): the class's Linear weights on the "
                          "last feature map (GAP + Linear heads)", "class_maps:ClassCam"))
register(Extractor("gradcam", "Grad-CAM (Selvaraju et al., ICCV 2017): channels weighted by the class score's "
                              "mean gradient, then ReLU (pytorch-grad-cam)", _LIBRARY, "GradCAM"))
register(Extractor("gradcam++", "Grad-CAM++ (Chattopadhay et al., WACV 2018): channels weighted by positive "
                                "gradients with higher-order terms (pytorch-grad-cam)", _LIBRARY, "GradCAMPlusPlus"))
register(Extractor("xgradcam", "XGrad-CAM (Fu et al., BMVC 2020): channels weighted by gradients times "
                               "normalised activations (pytorch-grad-cam)", _LIBRARY, "XGradCAM"))
register(Extractor("layercam", "LayerCAM (Jiang et al., TIP 2021): each position's positive gradient times its "
                               "activation (pytorch-grad-cam)", _LIBRARY, "LayerCAM"))
register(Extractor("scorecam", "Score-CAM (Wang et al., CVPRW 2020): channels weighted by the class score of the "
                               "image masked by each channel, one forward per channel (pytorch-grad-cam)",
                   _LIBRARY, "ScoreCAM"))
register(Extractor("pc1", "PC1 (Yasuki & Taki, CVPR 2024, CAM Back Again): first principal component of the "
                          "class-weighted feature maps, oriented by the map's border", "class_maps:Pc1"))


def check_maps(name) -> str:
    """`name` when it is an extractor's; else a ConfigError naming ``eval.maps`` and listing the names."""
    try:
        return EXTRACTORS.get(name).name
    except OrnetError as e:
        raise ConfigError(f"eval.maps: {e}") from None


def with_maps(model, name: str):
    """`model` (``predict(images, labels) -> (maps, logits)``) with its maps from extractor `name`:
    the model itself for ``own``, else a `maps_model.MapsModel` around it (`maps_model.with_maps`)."""
    from .maps_model import with_maps as build

    return build(model, name)


__all__ = ["DEFAULT_MAPS", "EXTRACTORS", "Extractor", "check_maps", "register", "with_maps"]
