"""BAS (Wu, Zhai and Cao, "Background Activation Suppression for Weakly Supervised Object
Localization", CVPR 2022) as its authors train and test it (github.com/wpy1999/BAS): one stage,
`bas` (`bas_stage.BasTask`); the network is `models.bas_network.BasModel`, the loss
`bas_losses`, its settings `config.zoo_settings.BasConfig` (docs/methods.md, "BAS")."""

from __future__ import annotations

from ..entry import Method, Stage, load_state
from ..wsoleval_stage import refuse_evaluator_weights


class BasMethod(Method):
    name = "bas"
    description = ("BAS: a foreground map generator trained to suppress the activation left in the "
                   "background, with an area constraint (Wu et al., CVPR 2022; its authors' code)")
    stages = (Stage("bas", "bas.bas_stage:BasTask", export="bas"),)

    def check_config(self, cfg) -> None:
        cfg.bas.check("bas")

    def check_networks(self, cfg) -> None:
        from ...models.bas_trunk import bas_cut

        bas_cut(cfg.model.backbone)  # one line for a backbone BAS cannot cut

    def check_run(self, cfg, out) -> None:
        refuse_evaluator_weights(cfg, "BAS")

    def final_model(self, cfg, stage, out, num_classes):
        from ...models.bas_network import BasModel
        from ...runtime.stage_checkpoints import checkpoint_path

        model = BasModel(cfg.model.backbone, num_classes, "none", cfg.bas.head_width, cfg.bas.top_k)
        model.load_state_dict(load_state(checkpoint_path(out, stage)))
        return model.eval()

    def settings_architecture(self, cfg) -> dict:
        return {"head_width": int(cfg.bas.head_width), "top_k": int(cfg.bas.top_k)}

    def build_network(self, meta):
        from ...models.bas_network import BasModel

        arch = meta["architecture"]
        return BasModel(arch["backbone"], int(meta["num_classes"]), "none", int(arch["head_width"]),
                        int(arch["top_k"]))
