"""ADL's one stage: the CAM stage on the network with ADL layers (`models.adl_network.ADLModel`),
plain cross entropy as wsolevaluation (``main.py``: ``wsol_method adl`` adds no loss)."""

from __future__ import annotations

from ..cam.cam_stage import CamTask


class AdlTask(CamTask):
    stage = "adl"

    def build_model(self):
        from ...models.adl_network import ADLModel

        m, s = self.model_cfg, self.stage_cfg
        return ADLModel(m.backbone, self.num_classes, m.backbone_weights, s.drop_rate, s.drop_threshold)
