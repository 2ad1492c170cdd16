"""The Attention-based Dropout Layer (ADL; Choe and Shim, CVPR 2019) as clovaai/wsolevaluation
trains it: the CAM network of the backbone registry with ADL layers where wsolevaluation inserts
them (`models.adl_network`), trained with cross entropy; the layers pass their input at
evaluation, so the map is the CAM baseline's (settings `config.zoo_settings.AdlConfig`, section
``adl``; docs/methods.md)."""

from __future__ import annotations

from ...errors import ConfigError, OrnetError
from ..cam import CamMethod
from ..entry import Stage

REFUSED_FAMILIES = ("mobilenet_",)
"""torchvision families without ADL positions (refused before anything is built)."""


class AdlMethod(CamMethod):
    name = "adl"
    description = ("ADL: CAM network with attention-based dropout layers in the backbone "
                   "(Choe and Shim, CVPR 2019; as wsolevaluation)")
    stages = (Stage("adl", "adl.adl_stage:AdlTask", export="adl"),)

    def check_config(self, cfg) -> None:
        cfg.adl.check("adl")
        if cfg.model.backbone.startswith(REFUSED_FAMILIES):
            raise ConfigError(f"adl: backbone {cfg.model.backbone!r} has no ADL positions: wsolevaluation "
                              "places ADL in ResNet-50 and VGG-16; here the torchvision ResNets and VGG-16s "
                              "take it, and timm CNNs made of sequential stages")

    def check_networks(self, cfg) -> None:
        """A timm backbone is probed for its positions (built once, without weights); the
        torchvision ResNets and VGGs always have them."""
        from ...models.adl_network import ADLModel
        from ...models.names import is_timm

        if not is_timm(cfg.model.backbone):
            return
        try:
            ADLModel(cfg.model.backbone, 2)
        except OrnetError as e:
            raise ConfigError(str(e)) from None

    def network(self, backbone, num_classes, cfg=None):
        from ...models.adl_network import ADLModel

        s = cfg.adl if cfg is not None else None
        if s is None:  # rebuilt from model.json: the layers pass their input at evaluation anyway
            return ADLModel(backbone, num_classes)
        return ADLModel(backbone, num_classes, "none", s.drop_rate, s.drop_threshold)
