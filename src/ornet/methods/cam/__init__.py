"""The CAM baseline (Zhou et al., CVPR 2016): one stage, `cam`, a GAP-FC classifier trained with
cross entropy (`cam_stage.CamTask`); its map is the CAM of the ground-truth class, min-max
normalised per image (`models.cam_network.CAMModel.predict`)."""

from __future__ import annotations

from ...errors import OrnetError
from ..entry import Method, Stage, load_state

NO_EVALUATOR_WEIGHTS = ("model.backbone_weights=evaluator is for ORNet's stage 1; the CAM baseline "
                        "takes none, a torchvision weights name or a file")


class CamMethod(Method):
    name = "cam"
    description = "the CAM baseline: a GAP-FC classifier and its class activation map (Zhou et al., CVPR 2016)"
    stages = (Stage("cam", "cam.cam_stage:CamTask", export="cam"),)

    def check_run(self, cfg, out) -> None:
        from ...models.weights_spec import weights_spec

        if weights_spec(cfg.model, "backbone").from_evaluator:
            raise OrnetError(NO_EVALUATOR_WEIGHTS)

    def final_model(self, cfg, stage, out, num_classes):
        from ...models.cam_network import CAMModel
        from ...runtime.stage_checkpoints import checkpoint_path

        model = CAMModel(cfg.model.backbone, num_classes, "none")
        model.load_state_dict(load_state(checkpoint_path(out, stage)))
        return model.eval()

    def build_network(self, meta):
        from ...models.cam_network import CAMModel

        return CAMModel(meta["architecture"]["backbone"], int(meta["num_classes"]), "none")
