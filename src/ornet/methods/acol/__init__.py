"""ACoL (Zhang et al., "Adversarial Complementary Learning for Weakly Supervised Object
Localization", CVPR 2018) as wsolevaluation trains and scores it: one stage, `acol`
(`acol_stage.AcolTask`); the network is `models.acol_network.AcolModel`, its settings
`config.zoo_settings.AcolConfig` (docs/methods.md, "ACoL")."""

from __future__ import annotations

from ..entry import Method, Stage, load_state
from ..wsoleval_stage import refuse_evaluator_weights


class AcolMethod(Method):
    name = "acol"
    description = ("ACoL: a second classifier head on features erased where the first head's map is high "
                   "(Zhang et al., CVPR 2018; wsolevaluation's version)")
    stages = (Stage("acol", "acol.acol_stage:AcolTask", export="acol"),)

    def check_config(self, cfg) -> None:
        cfg.acol.check("acol")

    def check_run(self, cfg, out) -> None:
        refuse_evaluator_weights(cfg, "ACoL")

    def final_model(self, cfg, stage, out, num_classes):
        from ...models.acol_network import AcolModel
        from ...runtime.stage_checkpoints import checkpoint_path

        model = AcolModel(cfg.model.backbone, num_classes, "none", cfg.acol.erase_threshold, cfg.acol.head_width)
        model.load_state_dict(load_state(checkpoint_path(out, stage)))
        return model.eval()

    def settings_architecture(self, cfg) -> dict:
        return {"erase_threshold": float(cfg.acol.erase_threshold), "head_width": int(cfg.acol.head_width)}

    def build_network(self, meta):
        from ...models.acol_network import AcolModel

        arch = meta["architecture"]
        return AcolModel(arch["backbone"], int(meta["num_classes"]), "none", float(arch["erase_threshold"]),
                         int(arch["head_width"]))
