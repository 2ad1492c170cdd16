"""ORNet: stem F_c1, generator F_g, stage-1 head F_c2 and the evaluator F_e (METHOD.md).

Inference needs only ``stem`` + ``generator`` (`ORNet.maps`); ``rest_head`` is used in
stage 1 and ``evaluator`` in stage 2 and for class predictions.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import OrnetError
from .backbones import build_classifier
from .cam_network import minmax_normalize
from .evaluator import build_evaluator
from .generator import BN_MOMENTUM, ActivationMapGenerator, GeneratorOutput
from .generator_encoder import backbone_encoder
from .normalization import Normalization
from .renormalize import Renormalize
from .split import ExplainedClassifier, class_activation_map, gap_linear

GENERATOR_ENCODERS = ("release", "backbone")


class ORNet(nn.Module):
    """The method's networks.

    - ``stem`` (F_c1): image -> f_c at 1/4 resolution (`build_classifier(backbone).stem`);
    - ``generator`` (F_g): f_c -> `GeneratorOutput` (f_a, p_a, attention logits);
    - ``rest_head`` (F_c2): ``rest`` then ``head`` of the same classifier, on f_c * p_a;
    - ``evaluator`` (F_e, optional): a classifier on the (masked) image;
    - ``to_evaluator``: `Renormalize` from the input normalisation (`input_norm`, the stem's:
      what images arrive normalised with) to the evaluator's own (`evaluator_norm`); the
      identity when they agree. Both default to ImageNet's (`models.normalization`).

    Maps come out at the stem's resolution, input / 4 (56 x 56 for 224 x 224 images).

    ``stage1_head=False`` builds the inference / stage-2 network only: no ``rest_head`` and no
    generator attention head (what the release's stage-2 checkpoints hold); it needs an
    evaluator for class predictions and cannot run stage 1.

    `generator_encoder`: ``release`` (the release's encoder, trained from scratch) or
    ``backbone`` (a copy of the backbone's own stages after the stem, with its weights:
    `generator_encoder.BackboneEncoder`). `generator_stem_skip`: what the generator's last up block
    takes from the stem features (`generator.STEM_SKIPS`; ``concat``: the release). `generator_objectness`:
    the exponent of the generator's learned class gate (0: none; `generator.ActivationMapGenerator`).
    """

    map_stride = 4
    _gate: tuple = (0.0, None)  # (exponent, the evaluator's GAP Linear): `set_cam_gate`; a tuple,
                                # so the Linear is not registered twice as a submodule

    def __init__(self, backbone: str, num_classes: int, evaluator: str | None = "vgg16",
                 generator_width: int = 64, backbone_weights: str = "none",
                 evaluator_weights: str = "none", input_norm: Normalization | None = None,
                 evaluator_norm: Normalization | None = None, stage1_head: bool = True,
                 generator_encoder: str = "release", generator_bn_momentum: float = BN_MOMENTUM,
                 generator_stem_skip: str = "concat", generator_objectness: float = 0.0):
        super().__init__()
        if not stage1_head and not evaluator:
            raise ValueError("an ORNet without its stage-1 head needs an evaluator for class predictions")
        if generator_encoder not in GENERATOR_ENCODERS:
            raise OrnetError(f"unknown generator encoder {generator_encoder!r}; known: "
                             f"{', '.join(GENERATOR_ENCODERS)}")
        classifier = build_classifier(backbone, num_classes, backbone_weights)
        self.backbone = backbone
        self.evaluator_name = evaluator
        self.num_classes = num_classes
        self.stem = classifier.stem
        self.stage1_head = stage1_head
        encoder = (backbone_encoder(classifier.rest, classifier.stem_channels, classifier.feature_end, backbone)
                   if generator_encoder == "backbone" else None)
        self.generator_encoder = generator_encoder
        self.generator = ActivationMapGenerator(classifier.stem_channels, num_classes, generator_width,
                                                attention_head=stage1_head, encoder=encoder,
                                                bn_momentum=generator_bn_momentum, stem_skip=generator_stem_skip,
                                                objectness=generator_objectness)
        self.rest_head = (nn.Sequential(OrderedDict(rest=classifier.rest, head=classifier.head))
                          if stage1_head else None)
        self.evaluator = (build_evaluator(evaluator, num_classes, evaluator_weights)
                          if evaluator else None)
        self.to_evaluator = Renormalize(input_norm, evaluator_norm)

    def sync_encoder(self) -> None:
        """Copy F_c2's body weights into a ``backbone`` generator encoder (after `rest_head` was
        loaded from another network, e.g. the trained evaluator); nothing for ``release``."""
        if self.generator.encoder is not None and self.rest_head is not None:
            self.generator.encoder.load_from_rest(self.rest_head.rest)

    def maps(self, images: Tensor) -> GeneratorOutput:
        """Stem + generator only: the inference path (METHOD.md, Inference)."""
        return self.generator(self.stem(images))

    def coarse_forward(self, images: Tensor) -> tuple[Tensor, Tensor, GeneratorOutput]:
        """Stage 1: ``(y_hat, y_a, out)``, y_hat = F_c2(f_c * p_a), y_a = attention logits."""
        if self.rest_head is None:
            raise RuntimeError("this ORNet was built without its stage-1 head (stage1_head=False)")
        f_c = self.stem(images)
        out = self.generator(f_c)
        y_hat = self.rest_head(f_c * out.p_a)  # p_a (B x 1 x h x w) gates every channel
        return y_hat, out.attn_logits, out

    def evaluate_masked(self, images: Tensor, p_map: Tensor, mode: str = "bilinear",
                        evaluator: nn.Module | None = None) -> Tensor:
        """Stage 2: F_e(I_e * upsample(p_map)) -> B x K logits; `mode`: `upsample_mask`'s.

        I_e = `to_evaluator`(images): the evaluator sees its own normalised image times the map
        (the release's semantics), whatever the stem's normalisation. `evaluator`: a network to run
        in F_e's place (stage 2's folded copy of it, `models/fold_bn.py`).
        """
        if self.evaluator is None:
            raise RuntimeError("this ORNet has no evaluator")
        net = self.evaluator if evaluator is None else evaluator
        return net(self.to_evaluator(images) * upsample_mask(p_map, images.shape[-2:], mode))

    def set_cam_gate(self, alpha: float) -> None:
        """Gate `predict`'s map by the evaluator's class activation map (docs/method.md, "The
        class gate"): the map becomes ``minmax(p_a) * minmax(CAM_c) ** alpha``, CAM_c being the
        evaluator's CAM of class c (the label when given, else the predicted class) at the
        evaluator's feature resolution, resized bilinearly to p_a's grid. 0 turns it off (the
        paper's class-agnostic map). Needs an evaluator whose head is GAP + Linear."""
        alpha = float(alpha)
        if not math.isfinite(alpha) or alpha < 0:
            raise OrnetError(f"the class gate's exponent must be a finite number >= 0, got {alpha}")
        self._gate = (alpha, self.cam_linear("a class gate (eval.cam_gate)") if alpha > 0 else None)

    def cam_linear(self, user: str) -> nn.Linear:
        """The evaluator's GAP Linear, whose class rows give its CAM (`class_activation_map`);
        OrnetError naming `user` (what needs the CAM) when the evaluator's head is not GAP + Linear."""
        fc = (gap_linear(self.evaluator.head, self.evaluator.feature_channels)
              if self.evaluator is not None else None)
        if fc is None:
            raise OrnetError(f"{user} needs an evaluator whose head is GAP + Linear, so that its CAM is "
                             f"defined; this model's evaluator is {self.evaluator_name!r}")
        return fc

    def label_cam(self, images: Tensor, classes: Tensor, sizes, fc: nn.Linear,
                  evaluator: nn.Module | None = None) -> list[Tensor]:
        """The evaluator's raw CAM of `classes` (B) on the clean `images`, one B x 1 x size tensor per
        size in `sizes` (e.g. p_a's grid), all from one forward: its last conv features of
        `to_evaluator`(images) weighted by `fc`'s class rows (`cam_linear`), resized bilinearly to
        each size: the class gate's factor before min-max (`predict`). `evaluator`: a network to run
        in F_e's place (stage 2's folded copy)."""
        net = self.evaluator if evaluator is None else evaluator
        features = net.features(self.to_evaluator(images))
        return [cam_on_grid(fc, features, classes, size) for size in sizes]

    @property
    def cam_gate(self) -> float:
        """The class gate's exponent (set with `set_cam_gate`); 0: `predict` gives p_a as is."""
        return self._gate[0]

    def explained_classifier(self) -> ExplainedClassifier | None:
        """The classifier that map extractors (`eval.maps`) explain: the evaluator F_e, which sees
        `to_evaluator`(images) and gives `predict`'s logits; None without one (nothing to explain)."""
        if self.evaluator is None:
            return None
        return ExplainedClassifier(self.evaluator, self.to_evaluator, "evaluator", self.evaluator_name)

    def predict(self, images: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Evaluation: ``(maps B x 1 x h x w, logits B x K)``.

        Logits come from the evaluator on the raw image when there is one, else from F_c2
        on the gated features. Without a class gate (`set_cam_gate`) the map is p_a, in [0, 1],
        and `labels` are ignored (the map is class-agnostic); with one, the map is gated by
        the CAM of each image's label (of the predicted class when `labels` is None).
        """
        alpha = self._gate[0]
        maps, logits = self.predict_gates(images, labels, [alpha])
        return maps[alpha], logits

    def predict_gates(self, images: Tensor, labels: Tensor | None,
                      alphas: list[float]) -> tuple[dict[float, Tensor], Tensor]:
        """`predict` under several class gates from one forward: ``({alpha: maps}, logits)``, each
        map the one `predict` gives after ``set_cam_gate(alpha)`` (the same operations, so the same
        numbers); the network's own gate is left as it is. Used to score the gate's candidates in
        one pass (`evaluation.class_gate.choose_gate`)."""
        f_c = self.stem(images)
        p_a = self.generator(f_c).p_a
        gated = [a for a in alphas if a > 0]
        if self.evaluator is None:
            if gated:
                self.cam_linear("a class gate (eval.cam_gate)")  # raises: no evaluator, no CAM
            return {a: p_a for a in alphas}, self.rest_head(f_c * p_a)
        features = self.evaluator.features(self.to_evaluator(images))
        logits = self.evaluator.head(features)
        maps = {a: p_a for a in alphas if a <= 0}
        if gated:
            fc = self._gate[1] if self._gate[1] is not None else self.cam_linear("a class gate (eval.cam_gate)")
            classes = logits.argmax(dim=1) if labels is None else labels
            cam = minmax_normalize(cam_on_grid(fc, features, classes, p_a.shape[-2:]))
            plain = minmax_normalize(p_a)
            maps.update({a: plain * cam ** a for a in gated})
        return maps, logits


def cam_on_grid(fc: nn.Linear, features: Tensor, classes: Tensor, size) -> Tensor:
    """`class_activation_map` of `classes` as B x 1 x h x w, resized bilinearly (align_corners=False)
    to `size`; raw values (no ReLU, no normalisation)."""
    cam = class_activation_map(fc, features, classes).unsqueeze(1)
    return F.interpolate(cam, size=tuple(size), mode="bilinear", align_corners=False)


def upsample_mask(p_map: Tensor, size, mode: str = "bilinear") -> Tensor:
    """B x 1 x h x w map -> B x 1 x H x W: ``bilinear`` (align_corners=False) or ``nearest`` (the
    release's ``F.interpolate(att, size=...)``, whose default mode is nearest)."""
    if mode == "bilinear":
        return F.interpolate(p_map, size=tuple(size), mode="bilinear", align_corners=False)
    if mode == "nearest":
        return F.interpolate(p_map, size=tuple(size), mode="nearest")
    raise ValueError(f"unknown mask upsampling {mode!r}; known: bilinear, nearest")
