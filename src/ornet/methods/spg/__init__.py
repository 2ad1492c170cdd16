"""SPG (Zhang et al., "Self-produced Guidance for Weakly-supervised Object Localization", ECCV
2018) as wsolevaluation trains and scores it: one stage, `spg` (`spg_stage.SpgTask`); the network
is `models.spg_network.SpgModel`, the guidance masks and losses `spg_losses`, its settings
`config.zoo_settings.SpgConfig` (docs/methods.md, "SPG")."""

from __future__ import annotations

from ..entry import Method, Stage, load_state
from ..wsoleval_stage import refuse_evaluator_weights


class SpgMethod(Method):
    name = "spg"
    description = ("SPG: side branches trained on masks the network produces from its own maps "
                   "(Zhang et al., ECCV 2018; wsolevaluation's version)")
    stages = (Stage("spg", "spg.spg_stage:SpgTask", export="spg"),)

    def check_config(self, cfg) -> None:
        cfg.spg.check("spg")

    def check_networks(self, cfg) -> None:
        from ...models.wsol_trunks import spg_taps

        spg_taps(cfg.model.backbone)  # one line for a backbone SPG has no branch points on

    def check_run(self, cfg, out) -> None:
        refuse_evaluator_weights(cfg, "SPG")

    def final_model(self, cfg, stage, out, num_classes):
        from ...models.spg_network import SpgModel
        from ...runtime.stage_checkpoints import checkpoint_path

        model = SpgModel(cfg.model.backbone, num_classes, "none", cfg.spg.branch_width, cfg.spg.c_width)
        model.load_state_dict(load_state(checkpoint_path(out, stage)))
        return model.eval()

    def settings_architecture(self, cfg) -> dict:
        return {"branch_width": cfg.spg.branch_width, "c_width": int(cfg.spg.c_width)}

    def build_network(self, meta):
        from ...models.spg_network import SpgModel

        arch = meta["architecture"]
        return SpgModel(arch["backbone"], int(meta["num_classes"]), "none", arch.get("branch_width"),
                        int(arch["c_width"]))
