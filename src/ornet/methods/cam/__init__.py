"""The CAM baseline (Zhou et al., CVPR 2016): one stage, `cam`, a GAP-FC classifier trained with
cross entropy (`cam_stage.CamTask`); its map is the CAM of the ground-truth class, min-max
normalised per image (`models.cam_network.CAMModel.predict`).

`CamMethod` and `CamTask` are also the bases of the one-stage methods that train a CAM network
differently (HaS, CutMix: the training input; ADL: layers in the backbone): a subclass names its
stage and overrides `network` (and the task its `build_model` / `logits_and_loss`)."""

from __future__ import annotations

from ...errors import OrnetError
from ..entry import Method, Stage, load_state

NO_EVALUATOR_WEIGHTS = ("model.backbone_weights=evaluator is for ORNet's stage 1; a CAM network "
                        "takes none, imagenet, a torchvision weights name or a file")


class CamMethod(Method):
    name = "cam"
    description = "the CAM baseline: a GAP-FC classifier and its class activation map (Zhou et al., CVPR 2016)"
    stages = (Stage("cam", "cam.cam_stage:CamTask", export="cam", frozen_stem=True),)

    def check_run(self, cfg, out) -> None:
        from ...models.weights_spec import weights_spec

        if weights_spec(cfg.model, "backbone").from_evaluator:
            raise OrnetError(NO_EVALUATOR_WEIGHTS)

    def network(self, backbone: str, num_classes: int, cfg=None):
        """The localization model without weights; `cfg`: the run config when known (None when
        rebuilt from model.json), for a subclass whose network reads its section."""
        from ...models.cam_network import CAMModel

        return CAMModel(backbone, num_classes, "none")

    def final_model(self, cfg, stage, out, num_classes):
        from ...runtime.stage_checkpoints import checkpoint_path

        model = self.network(cfg.model.backbone, num_classes, cfg)
        model.load_state_dict(load_state(checkpoint_path(out, stage)))
        return model.eval()

    def build_network(self, meta):
        return self.network(meta["architecture"]["backbone"], int(meta["num_classes"]))
