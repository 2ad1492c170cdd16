"""Hide-and-Seek (HaS; Singh and Lee, ICCV 2017) as clovaai/wsolevaluation trains it: the CAM
network of the backbone registry, trained on images whose grid patches are hidden at random
(`hidden_patches.hide_patches`; settings `config.zoo_settings.HasConfig`, section ``has``).
Evaluation is the CAM baseline's: the CAM of the label, min-max normalised (docs/methods.md)."""

from __future__ import annotations

from ..cam import CamMethod
from ..entry import Stage


class HasMethod(CamMethod):
    name = "has"
    description = ("Hide-and-Seek: CAM trained on images with random grid patches hidden "
                   "(Singh and Lee, ICCV 2017; as wsolevaluation)")
    stages = (Stage("has", "has.has_stage:HasTask", export="has", frozen_stem=True),)

    def check_config(self, cfg) -> None:
        cfg.has.check("has")
