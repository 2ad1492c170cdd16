"""ORNet's registry entry (METHOD.md): three stages, each handed the earlier ones' checkpoints.

    evaluator (stage 0)  ->  checkpoints/evaluator.ckpt
    coarse    (stage 1)  ->  checkpoints/coarse.ckpt   (init: model.backbone_weights, or the
                                                        stage-0 evaluator with backbone_weights: evaluator)
    refine    (stage 2)  ->  checkpoints/refine.ckpt   (init: ORNet from coarse.ckpt, its
                                                        evaluator from evaluator.ckpt)

The final model is refine's (model.json method ``ornet``), or coarse's when refine has not run
(``ornet-coarse``, with the stage-0 evaluator when its checkpoint exists).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from ...errors import ConfigError, OrnetError
from ...models.weights_spec import weights_spec
from ...runtime.stage_checkpoints import checkpoint_path
from ..entry import Method, Stage, load_state

log = logging.getLogger("ornet")

EVALUATOR, COARSE, REFINE = "evaluator", "coarse", "refine"


class OrnetMethod(Method):
    name = "ornet"
    description = "ORNet (ICCV 2021): evaluator, coarse map, online refinement against the frozen evaluator"
    stages = (Stage(EVALUATOR, "ornet.evaluator_stage:EvaluatorTask", frozen_stem=True),
              Stage(COARSE, "ornet.coarse_stage:CoarseTask", export="ornet-coarse"),
              Stage(REFINE, "ornet.refine_stage:RefineTask", export="ornet"))
    class_gate = True
    settings = frozenset({"model", "method"})  # the evaluator, the generator, stage 2's losses

    def check_config(self, cfg) -> None:
        from ...config.protocol_settings import protocol_settings

        e = cfg.eval
        protocol = protocol_settings(e.protocol)  # what the protocol allows (the evaluation registry's row)
        if any(a > 0 for a in e.cam_gate) and not protocol.cam_gate:
            raise ConfigError(f"eval.cam_gate is not part of {protocol.title} (eval.protocol: {e.protocol}); "
                              "set eval.cam_gate: []")
        g = cfg.model.generator_objectness
        if not (isinstance(g, (int, float)) and math.isfinite(g) and g >= 0):
            raise ConfigError(f"model.generator_objectness must be a number >= 0 (0: no objectness head), got {g}")
        if g > 0 and not cfg.method.objectness_weight:
            raise ConfigError("model.generator_objectness > 0 needs method.objectness_weight > 0 (stage 2 trains the "
                              "objectness head with it)")
        if cfg.model.freeze_features:
            if not weights_spec(cfg.model, "backbone").pretrained:
                raise ConfigError("model.freeze_features keeps the stem and generator encoder as they start: it needs "
                                  "pretrained model.backbone_weights (imagenet, evaluator, ...), got none")
            if cfg.method.refine_scope == "generator":
                raise ConfigError("model.freeze_features and method.refine_scope: generator contradict each other "
                                  "(stage 2 would train the frozen encoder); use refine_scope decoder")

    def check_networks(self, cfg) -> None:
        """eval.cam_gate, and method.gate_distill_weight in a run with stage 2, need an evaluator whose
        head is GAP + Linear: said before a run trains (builds the evaluator once, without weights;
        nothing when neither asks for its CAM). model.reinit must not name stem layers that
        model.freeze_features keeps frozen."""
        if cfg.model.freeze_features and cfg.model.reinit:
            from ...models.reinit import reinit_stem_layers

            stem = reinit_stem_layers(cfg.model.backbone, cfg.model.reinit)  # builds the backbone
            if stem:
                raise ConfigError(f"model.reinit re-initialises stem weights ({', '.join(stem[:3])}"
                                  f"{', ...' if len(stem) > 3 else ''}) that model.freeze_features keeps frozen: "
                                  "they would stay random; drop them from model.reinit or set freeze_features false")
        users = []
        if any(a > 0 for a in cfg.eval.cam_gate):
            users.append(("eval.cam_gate", "set eval.cam_gate: []"))
        if cfg.method.gate_distill_weight and REFINE in cfg.stages:
            users.append(("method.gate_distill_weight", "set method.gate_distill_weight: 0"))
        if cfg.model.generator_objectness and REFINE in cfg.stages:
            users.append(("model.generator_objectness", "set model.generator_objectness: 0"))
        if not users:
            return
        from ...models.backbones import build_classifier
        from ...models.split import gap_linear

        net = build_classifier(cfg.model.evaluator, 2, "none")
        if gap_linear(net.head, net.feature_channels) is None:
            key, fix = users[0]
            raise ConfigError(f"{key} needs an evaluator whose head is GAP + Linear (its CAM is defined); "
                              f"model.evaluator {cfg.model.evaluator!r} has another head: {fix}")

    def check_run(self, cfg, out: Path) -> None:
        from ...models.names import canonical

        stages = cfg.stages
        from_evaluator = weights_spec(cfg.model, "backbone").from_evaluator
        if from_evaluator and canonical(cfg.model.backbone) != canonical(cfg.model.evaluator):
            raise OrnetError(f"model.backbone_weights=evaluator needs model.evaluator == model.backbone "
                             f"({cfg.model.evaluator} != {cfg.model.backbone})")
        if (COARSE in stages and from_evaluator
                and EVALUATOR not in stages[: stages.index(COARSE)]
                and not checkpoint_path(out, EVALUATOR).is_file()):
            raise OrnetError(f"model.backbone_weights=evaluator needs the stage-0 checkpoint "
                             f"{checkpoint_path(out, EVALUATOR)}: run the evaluator stage first")
        if REFINE in stages:
            done_before = stages[: stages.index(REFINE)]
            if COARSE not in done_before and not checkpoint_path(out, COARSE).is_file():
                raise OrnetError(f"stage refine needs the stage-1 checkpoint {checkpoint_path(out, COARSE)}: "
                                 "run the coarse stage first (stages: [evaluator, coarse, refine])")

    def initialise(self, task, cfg, stage: str, out: Path) -> None:
        """Earlier stages' weights, handed explicitly (never read inside a constructor)."""
        if stage == COARSE and weights_spec(cfg.model, "backbone").from_evaluator:
            task.init_backbone_from(load_state(checkpoint_path(out, EVALUATOR)))
            return
        if stage != REFINE:
            return  # stages 0 and 1 start from model.*_weights (loaded by the model builders)
        evaluator_ckpt = checkpoint_path(out, EVALUATOR)
        evaluator_state = load_state(evaluator_ckpt) if evaluator_ckpt.is_file() else None
        task.init_from(ornet_state=load_state(checkpoint_path(out, COARSE)), evaluator_state=evaluator_state)
        if evaluator_state is None:
            from ...models.weights import load_weights

            spec = weights_spec(cfg.model, "evaluator")
            log.warning("no %s: the evaluator of stage 2 uses model.evaluator_weights=%s as it is",
                        evaluator_ckpt, spec)
            if spec.pretrained:
                load_weights(task.model.evaluator, spec)

    def callbacks(self, cfg, stage: str, datamodule, out: Path) -> list:
        if stage != REFINE or cfg.trainer.snapshot_images <= 0:
            return []
        from .map_snapshots import MapSnapshots, snapshot_batch  # the evolution figure's source

        images, ids = snapshot_batch(datamodule, cfg.trainer.snapshot_images)
        norm = datamodule.normalization  # the images' normalisation, undone for display
        return [MapSnapshots(images, Path(out) / "snapshots", image_ids=ids, mean=norm.mean, std=norm.std)]

    def final_model(self, cfg, stage: str, out: Path, num_classes: int):
        from ...models.ornet_network import ORNet
        from ...models.weights_spec import model_normalizations

        m = cfg.model
        input_norm, evaluator_norm = model_normalizations(m)
        model = ORNet(m.backbone, num_classes, evaluator=m.evaluator, generator_width=m.generator_width,
                      backbone_weights="none", evaluator_weights="none", input_norm=input_norm,
                      evaluator_norm=evaluator_norm, generator_encoder=m.generator_encoder,
                      generator_stem_skip=m.generator_stem_skip, generator_objectness=m.generator_objectness)
        model.load_state_dict(load_state(checkpoint_path(out, stage)))
        self.complete(model, stage, out)
        return model.eval()

    def complete(self, model, stage: str, out: Path) -> None:
        """Stage 1's model carries an untrained evaluator slot: the stage-0 evaluator, when it exists."""
        if stage == COARSE and checkpoint_path(out, EVALUATOR).is_file():
            model.evaluator.load_state_dict(load_state(checkpoint_path(out, EVALUATOR)))

    def architecture(self, model_cfg, backbone_norm, evaluator_norm) -> dict:
        m = model_cfg
        return dict(evaluator=m.evaluator, generator_width=int(m.generator_width),
                    generator_encoder=m.generator_encoder, generator_stem_skip=m.generator_stem_skip,
                    generator_objectness=float(m.generator_objectness),
                    evaluator_mean=list(evaluator_norm.mean), evaluator_std=list(evaluator_norm.std))

    def build_network(self, meta: dict):
        from ...models.ornet_network import ORNet

        arch, k = meta["architecture"], int(meta["num_classes"])
        model = ORNet(arch["backbone"], k, evaluator=arch["evaluator"], generator_width=int(arch["generator_width"]),
                      backbone_weights="none", evaluator_weights="none",
                      input_norm=_normalization(arch, "backbone"), evaluator_norm=_normalization(arch, "evaluator"),
                      stage1_head=bool(arch.get("stage1_head", True)),
                      generator_encoder=arch.get("generator_encoder", "release"),
                      generator_stem_skip=arch.get("generator_stem_skip", "concat"),  # absent before it existed
                      generator_objectness=float(arch.get("generator_objectness", 0.0)))
        model.set_cam_gate(meta["localization"].get("cam_gate") or 0.0)  # absent before the gate existed
        return model

    def release_export(self, refined: bool) -> str:
        """For `ornet.release`: model.json's method of an imported network (`refined`: from the
        release's stage-2 file, else its stage-1 file)."""
        return self.stage(REFINE if refined else COARSE).export

    def release_checkpoints(self, model, refined: bool) -> list[tuple[str, object]]:
        """For `ornet.release`: the (stage, network) checkpoints an import writes, so that
        ``ornet train --stages [refine]`` starts stage 2 from a stage-1 import."""
        return [] if refined else [(COARSE, model), (EVALUATOR, model.evaluator)]


def _normalization(arch: dict, net: str):
    """A network's normalisation recorded in model.json (format 1 had none: ImageNet's)."""
    from ...models.normalization import IMAGENET, Normalization

    mean, std = arch.get(f"{net}_mean"), arch.get(f"{net}_std")
    if mean is None and std is None:
        return IMAGENET
    return Normalization(tuple(mean), tuple(std))
