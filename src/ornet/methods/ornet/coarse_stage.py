"""Stage 1: coarse low-level activation map, trained online with the classifier (METHOD.md, Stage 1).

Loss `CE(y_hat, y) + CE(y_a, y)`: y_hat = F_c2(f_c * p_a) (main head on gated low-level
features), y_a = GAP(conv1x1(f_a)) (attention head). The evaluator is part of the ORNet module
but takes no part in this stage: frozen and in eval mode (so DDP sees no unused trainable
parameter).
"""

from __future__ import annotations

import torch

from ...data.sample import Batch
from ...errors import OrnetError
from ..base import MapValidation, StageTask, cross_entropy


class OrnetTask(MapValidation, StageTask):
    """Shared by stages 1 and 2: an ORNet in `self.model`, maps validated on `val`."""

    def __init__(self, cfg: dict, num_classes: int, classes: list[str] | None = None):
        super().__init__(cfg, num_classes, classes)
        from ...models.ornet_network import ORNet
        from ...models.weights_spec import model_normalizations, weights_spec

        m = self.model_cfg
        input_norm, evaluator_norm = model_normalizations(m)
        # evaluator_weights are not loaded here: stage 0 trains the evaluator, and the pipeline
        # hands its checkpoint to stage 2 explicitly (`init_from`).
        # backbone_weights "evaluator": the pipeline copies the trained evaluator in (`init_backbone_from`).
        weights = "none" if weights_spec(m, "backbone").from_evaluator else m.backbone_weights
        self.model = ORNet(m.backbone, self.num_classes, evaluator=m.evaluator, generator_width=m.generator_width,
                           backbone_weights=weights, evaluator_weights="none", input_norm=input_norm,
                           evaluator_norm=evaluator_norm, generator_encoder=m.generator_encoder,
                           generator_bn_momentum=m.generator_bn_momentum,
                           generator_stem_skip=m.generator_stem_skip,
                           generator_objectness=m.generator_objectness)
        self._init_map_metrics()

    def init_from(self, ornet_state: dict | None = None, evaluator_state: dict | None = None) -> None:
        """Initialise from earlier stages' weights (state dicts of `ORNet` / of the evaluator network)."""
        if ornet_state is not None:
            self.model.load_state_dict(ornet_state)
        if evaluator_state is not None:
            self.model.evaluator.load_state_dict(evaluator_state)

    def init_backbone_from(self, classifier_state: dict) -> None:
        """Stage 1 from a trained classifier of the backbone's architecture (the stage-0 evaluator):
        its stem becomes F_c1 and its rest + head F_c2; the generator keeps its initialisation."""
        own = {f"stem.{k[5:]}": v for k, v in classifier_state.items() if k.startswith("stem.")}
        own.update({f"rest_head.{k}": v for k, v in classifier_state.items() if k.startswith(("rest.", "head."))})
        if len(own) != len(classifier_state):
            raise OrnetError("model.backbone_weights=evaluator: the evaluator's weights are not a "
                             "stem / rest / head classifier")
        wanted = {k for k in self.model.state_dict() if k.startswith(("stem.", "rest_head."))}
        if set(own) != wanted:
            raise OrnetError(f"model.backbone_weights=evaluator needs model.evaluator == model.backbone "
                             f"({self.model_cfg.evaluator} != {self.model_cfg.backbone})")
        self.model.load_state_dict(own, strict=False)
        self.model.sync_encoder()  # a backbone generator encoder starts from the same weights
        if self.stage == "coarse":
            self.reinit_layers()  # after the weights it starts from, as the release

    def reinit_layers(self) -> None:
        """`model.reinit`: fresh initialisation of the named backbone layers (models/reinit.py)."""
        from ...models.reinit import reinit_backbone

        reinit_backbone(self.model, self.model_cfg.reinit)

    def localize(self, images: torch.Tensor, labels: torch.Tensor | None = None):
        return self.model.predict(images, labels)


class CoarseTask(OrnetTask):
    stage = "coarse"

    def __init__(self, cfg: dict, num_classes: int, classes: list[str] | None = None):
        super().__init__(cfg, num_classes, classes)
        self.reinit_layers()
        if self.model.generator.obj_conv is not None:  # the learned class gate's head: stage 2 trains it
            self.model.generator.obj_conv.requires_grad_(False)
        self.train(True)  # the fixed modules: no gradient, eval mode

    def fixed_modules(self) -> list:
        """The evaluator (not trained in this stage); with `model.freeze_features` also the stem and a
        backbone generator encoder."""
        fixed = [*super().fixed_modules(), self.model.evaluator]
        if self.model_cfg.freeze_features:
            encoder = self.model.generator.encoder
            fixed += [self.model.stem] + ([encoder] if encoder is not None else [])
        return fixed

    def param_groups(self):
        """Pretrained stem, F_c2 body and generator encoder (``backbone``) at lr; the rest of the
        generator, the attention head and the classifier head at lr * mult."""
        mult = self.stage_cfg.head_lr_mult
        model = self.model
        pretrained = {id(p) for p in model.generator.encoder_parameters()}
        new = [p for p in model.generator.parameters() if id(p) not in pretrained and p.requires_grad]
        head = getattr(getattr(model, "rest_head", None), "head", None)
        if head is not None:
            new += list(head.parameters())
        new_ids = {id(p) for p in new}
        eval_ids = {id(p) for p in model.evaluator.parameters()}
        body = [p for p in model.parameters() if id(p) not in new_ids and id(p) not in eval_ids and p.requires_grad]
        return [(body, 1.0), (new, mult)]

    def _step(self, batch: Batch, split: str) -> torch.Tensor:
        y_hat, y_a, out = self.model.coarse_forward(batch.images)
        loss_main = cross_entropy(y_hat, batch.labels)
        loss_attn = cross_entropy(y_a, batch.labels)
        loss = loss_main + loss_attn  # METHOD.md, Stage 1: CE(y_hat, y) + CE(y_a, y)
        self.log_common(split, loss, y_hat, batch.labels,
                        {"loss_main": loss_main, "loss_attn": loss_attn, "map_mean": out.p_a.mean()})
        if split == "val":
            self.update_map_metrics(batch)
        return loss
