"""CutMix (Yun et al., ICCV 2019) as clovaai/wsolevaluation trains it: the CAM network of the
backbone registry, trained on batches where a box of each image is replaced by the same box of
another image of the batch, the loss mixing both labels by the area kept (`box_mixing`; settings
`config.zoo_settings.CutMixConfig`, section ``cutmix``). Evaluation is the CAM baseline's."""

from __future__ import annotations

from ..cam import CamMethod
from ..entry import Stage


class CutMixMethod(CamMethod):
    name = "cutmix"
    description = ("CutMix: CAM trained on batches with boxes pasted between images and mixed labels "
                   "(Yun et al., ICCV 2019; as wsolevaluation)")
    stages = (Stage("cutmix", "cutmix.cutmix_stage:CutMixTask", export="cutmix", frozen_stem=True),)

    def check_config(self, cfg) -> None:
        cfg.cutmix.check("cutmix")
