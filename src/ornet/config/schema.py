"""Run configuration: one dataclass per concern (STYLE.md, habit 7).

Torch-free on purpose, so that `ornet --help` and config validation stay fast. YAML presets
in `configs/` set these fields; every field can be overridden with a dotted flag
(`--data.root DIR`, `--coarse.epochs 3`). `jsonargparse` does the parsing (see `cli_config.py`).
`from_dict` builds a config from a plain dict (a saved config.yaml), `dump_yaml` writes one;
`cli_config.validate` checks the values a type cannot express.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ..errors import ConfigError
from .method_settings import MIN_SIDE, MethodConfig, downscaled_side  # noqa: F401  (re-exported)
from .protocol_settings import protocol_settings
from .stage_settings import StageConfig
from .zoo_settings import AcolConfig, AdlConfig, BasConfig, CutMixConfig, HasConfig, SpgConfig


@dataclass
class DataConfig:
    """Which dataset, where, and how images become tensors."""

    name: str = "cub"
    """Dataset reader: cub, ilsvrc, wsol, dogs, aircraft, market1501, dukemtmc, msmt17, folder."""
    root: str | None = None
    """Dataset root folder."""
    metadata: str | None = None
    """wsolevaluation metadata folder (reader `wsol` only)."""
    resize: int = 256
    """Images are resized to resize x resize before cropping (the release: 256)."""
    crop: int = 224
    """Crop size fed to the networks (random crop in training, centre crop in test); divisible by 32."""
    flip: bool = True
    """Random horizontal flip in training."""
    batch_size: int = 16
    """Training batch size (per process)."""
    eval_batch_size: int = 64
    """Batch size for validation, test and inference."""
    num_workers: int = 2
    """DataLoader worker processes."""
    pin_memory: bool | None = None
    """Page-locked batches, copied to a GPU asynchronously; None: when CUDA is available."""
    cache_mb: int = 1024
    """MiB of decoded, resized images kept in memory for the rest of the run, so each image is decoded
    and resized once (the same samples, bit for bit; ornet.data.cache). Used when num_workers is 0
    (loading in the main process); 0: off."""
    val_per_class: int = 5
    """Images per class carved from train into the held-out validation split (threshold selection)."""
    tune_per_class: int = 0
    """Training images per class carved into a ``tune`` split to choose settings on (benchmarks and
    `benchmarks/studies/tune.py`; never val or test images, a class keeps one training image). 0: none."""
    tune_list: str | None = None
    """A text file of the image ids (one per line, the reader's ids; `#` starts a comment) that form the
    ``tune`` split instead: taken out of train (and out of val, if the val carve took one), so whole groups
    (a background photo, a site, a camera) can be held out together. Never test images. Exclusive with
    tune_per_class."""
    split_seed: int = 0
    """Seed of the train/val carve (and of the train/tune carve, on a stream of its own)."""
    clip_boxes: bool = False
    """Clip boxes that leave the image instead of reporting them as an error."""
    options: dict[str, Any] = field(default_factory=dict)
    """Reader-specific options (e.g. aircraft: level, crop_banner)."""


@dataclass
class ModelConfig:
    """Networks of the method (METHOD.md, Notation)."""

    backbone: str = "resnet50"
    """Classifier whose stem F_c1 feeds the generator (and whose rest F_c2 is the stage-1 head); also the
    CAM baseline's network. torchvision names (resnet50, vgg16, ...), timm/<timm model> (any timm CNN with
    a stride-4 feature stage) or efficientnet_lite0 (= timm/tf_efficientnet_lite0)."""
    backbone_weights: str = "none"
    """none; imagenet (ImageNet weights an installed package ships, no download: efficientnet_lite0);
    a torchvision weights name (e.g. IMAGENET1K_V1, downloaded); a local state-dict / safetensors file;
    or evaluator (ORNet only: stage 1 starts from the stage-0 evaluator; needs evaluator == backbone)."""
    evaluator: str = "vgg16"
    """Classifier used as the frozen evaluator F_e in stage 2 (same names as backbone)."""
    evaluator_weights: str = "none"
    """Weights of the evaluator before stage 0 (same forms as backbone_weights, except evaluator)."""
    generator_width: int = 64
    """Base width c of the generator's U-Net (2c, 4c, 8c in the release's encoder; 4c, 3c in the decoder)."""
    generator_encoder: Literal["release", "backbone"] = "release"
    """The generator's encoder: release (three max-pool + conv blocks from scratch, as the paper) or
    backbone (a copy of the backbone's stages at 1/8, 1/16, 1/32, with its weights: pretrained features
    for the map; models/generator_encoder.py)."""
    generator_stem_skip: Literal["concat", "none", "gated"] = "concat"
    """What the generator's last up block takes from the stem features f_c: concat (the release), none
    (the map from the upsampled 1/8 decoder features only) or gated (f_c times a spatial gate computed
    from those features); against the low-level texture noise of issue 30, docs/method.md."""
    generator_objectness: float = 0.0
    """Not in the paper (issue 30; docs/method.md, "The learned class gate"): exponent alpha of the
    generator's own class gate. > 0 adds an objectness head (conv1x1 on the encoder's deepest, 1/32
    features); from stage 2 on the map is p_a * up(sigmoid(o)) ** alpha, o the head's logit, and stage 2
    trains the head towards the frozen evaluator's min-max CAM of the label (method.objectness_weight).
    Inference needs no evaluator and no label. 0: no head (the paper's map)."""
    freeze_features: bool = False
    """Not in the paper (issue 30; docs/method.md, "Features frozen from the evaluator"): stage 1 trains
    neither the stem F_c1 nor a backbone generator encoder; they keep the weights they start from
    (model.backbone_weights; with evaluator: the trained stage-0 evaluator's, so the encoder's deepest
    features are the evaluator's own) and their batch-norm statistics. ORNet only; needs pretrained
    backbone weights."""
    generator_bn_momentum: float = 0.01
    """Momentum of the running averages of the generator's U-Net batch norms (the release: 0.01, for
    schedules of thousands of steps; a run of a few hundred steps needs about 0.1)."""
    backbone_mean: list[float] | None = None
    """RGB mean the backbone's weights expect (images in [0, 1]); also the data pipeline's (the run's input
    normalisation). None: from backbone_weights (none / torchvision: ImageNet's; imagenet: the package's,
    0.5 for Lite0). The resolved value is written to config.yaml."""
    backbone_std: list[float] | None = None
    """RGB std of the backbone's input (None: from backbone_weights, like backbone_mean)."""
    evaluator_mean: list[float] | None = None
    """RGB mean the evaluator's weights expect (None: from evaluator_weights). When it differs from the
    backbone's, the evaluator converts the batch (a per-channel affine map) before the stage-2 mask."""
    evaluator_std: list[float] | None = None
    """RGB std of the evaluator's input (None: from evaluator_weights)."""
    reinit: list[str] = field(default_factory=list)
    """Backbone layers given a fresh random initialisation before stage 1, by torchvision name
    (e.g. [layer4, fc]: the release's CoarseModel does so for ImageNet, K != 200)."""


@dataclass
class EvalConfig:
    """How maps become boxes and numbers (METHOD.md, Evaluation protocol and metrics)."""

    box_mode: Literal["all", "largest", "multi"] = "largest"
    """Box of a thresholded map for GT-known / Top-k Loc: all pixels, largest region, or every region."""
    cam_curve_interval: float = 0.01
    """Threshold step of the sweep (numpy.arange(0, 1, interval))."""
    iou_thresholds: list[int] = field(default_factory=lambda: [30, 50, 70])
    """IoU levels (percent) of MaxBoxAccV2."""
    iou_strict: bool = False
    """Count IoU > 0.5 (the release) instead of >= 0.5 (wsolevaluation)."""
    normalize: Literal["minmax", "none"] = "minmax"
    """Per-image min-max normalisation of maps before thresholding."""
    threshold_split: Literal["val", "test"] = "val"
    """Split on which the threshold is chosen."""
    cam_gate: list[float] = field(default_factory=list)
    """ORNet only: exponents of the class gate to choose from (docs/method.md, "The class gate";
    `ORNet.set_cam_gate`), chosen on the threshold's split together with the threshold; 0 (no
    gate) is always a candidate. Empty: the model's own gate (model.json's ``cam_gate``; none for
    a run that never chose one). Unused by CAM runs, as the method section is."""
    cam_gate_margin: float = 3.0
    """GT-known points by which a gate must beat the ungated map on that split to be chosen."""
    protocol: Literal["wsolevaluation", "release"] = "wsolevaluation"
    """An entry of `ornet.evaluation.protocols.PROTOCOLS` (what it fixes here: `config.protocol_settings`).
    wsolevaluation: the settings above. release: the ORNet release's own scoring: thresholds
    0.05..0.95 on the raw map, one box around all pixels above, IoU without +1, IoU > 0.5,
    unclipped ground truth, threshold chosen on test."""
    maps: str = "own"
    """Map extractor (`ornet methods` lists them; docs/maps.md): own (the run's map), cam, gradcam, gradcam++,
    xgradcam, layercam, scorecam, pc1 (the run's classifier explained); for `ornet evaluate` / `ornet localize`."""


@dataclass
class TrainerConfig:
    """Passed to lightning.Trainer."""

    accelerator: str = "auto"
    devices: int | str = "auto"
    strategy: str = "auto"
    precision: str = "32-true"
    max_epochs: int | None = None
    """If set, every listed stage runs this many epochs (applied once, visible in the saved config)."""
    seed: int = 0
    deterministic: bool = False
    log_every_n_steps: int = 10
    limit_train_batches: int | float = 1.0
    limit_val_batches: int | float = 1.0
    limit_test_batches: int | float = 1.0
    progress: bool = True
    snapshot_images: int = 4
    """Images whose stage-2 map is saved after every epoch (evolution figure); 0 turns it off."""
    channels_last: bool = True
    """Networks in channels-last (NHWC) memory layout for training and evaluation: faster
    convolutions on CPU and GPU, results equal up to float rounding (`models/memory_format.py`;
    benchmarks/bench_train_speed.py measures it). false: PyTorch's default layout."""
    dilated_phases: bool = True
    """Training runs the backward of dilated depthwise convolutions (timm CAM networks at
    ``output_stride=16``, e.g. Lite0's last stage) as undilated convolutions on the input's dilation
    phases, where oneDNN's dilated depthwise backward is slow; on CPU only. Forward and input gradient
    bit for bit the same, weight gradient equal up to float rounding (`models/dilated_phases.py`).
    false: PyTorch's kernels."""
    keep_freed_memory: bool = True
    """Large tensors freed by a step stay in the process's heap for the next step instead of being
    unmapped and mapped again (glibc's malloc, Linux; `runtime/heap.py`): no page faults in a step,
    1.6-1.7x faster Lite0 training steps on the 2-core benchmark machine (docs/training.md). Results bit for bit the same; the
    process keeps its peak memory. It acts on the whole process from the first run (or `ornet evaluate`)
    that sets it on. false: the C library's defaults."""
    fold_frozen_bn: bool = True
    """Batch norms of networks that do not train folded into the convolution before them, in a copy
    used for speed (`models/fold_bn.py`): stage 2's frozen evaluator, and every network during
    evaluation passes. Results equal up to float rounding; checkpoints are unchanged. false: the
    networks run as they are."""
    validate: Literal["every_epoch", "last_epoch", "never"] = "last_epoch"
    """When a stage runs its validation pass (val/* logs and the progress bar): after every epoch,
    after the last one only, or never (the run's evaluation still scores val where it chooses the
    threshold). Validation changes no weight, so all three train the same networks; a stage that
    keeps its best epoch (`keep: best_val` / `best_test`) validates every epoch."""
    keep_last_checkpoints: bool = False
    """Keep `<stage>-last.ckpt` (optimiser and loop state) after a stage finishes; by default it is
    deleted once `<stage>.ckpt` is written, as only an unfinished stage needs it."""


@dataclass
class RunConfig:
    """Everything `ornet train` needs."""

    wsol_method: str | None = None
    """The WSOL method (`ornet methods` lists them): ornet, cam, has, cutmix, adl, acol, spg, bas. None: the method
    whose stages `stages` lists (configs written before this key); the resolved name is written to config.yaml."""
    stages: list[str] = field(default_factory=lambda: ["evaluator", "coarse", "refine"])
    """Stages to run, in the method's order (a subset of its stages): evaluator, coarse, refine (ORNet)
    or the one stage of a one-stage method, named after it (cam, has, ...). Left at this default while
    wsol_method names another method: all of its stages."""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    evaluator: StageConfig = field(default_factory=lambda: StageConfig(epochs=1, lr=1e-3))
    coarse: StageConfig = field(default_factory=lambda: StageConfig(epochs=1, lr=1e-3))
    refine: StageConfig = field(default_factory=lambda: StageConfig(
        epochs=1, lr=1e-4, optimizer="adam", weight_decay=0.0, scheduler="cosine_step"))
    cam: StageConfig = field(default_factory=lambda: StageConfig(epochs=1, lr=1e-3))
    has: HasConfig = field(default_factory=HasConfig)
    cutmix: CutMixConfig = field(default_factory=CutMixConfig)
    adl: AdlConfig = field(default_factory=AdlConfig)
    acol: AcolConfig = field(default_factory=AcolConfig)
    spg: SpgConfig = field(default_factory=SpgConfig)
    bas: BasConfig = field(default_factory=BasConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


def stage_sections() -> list[str]:
    """The `StageConfig` sections of `RunConfig`, one per stage of any method (their names are the
    stages' names; which method each belongs to is `ornet.methods`' business)."""
    return [f.name for f in dataclasses.fields(RunConfig)
            if f.default_factory is not dataclasses.MISSING and isinstance(f.default_factory(), StageConfig)]


def apply_protocol(cfg: RunConfig) -> RunConfig:
    """Settings an evaluation protocol fixes, made visible in the resolved config (in place):
    ``eval.protocol: release`` chooses the threshold on the test split, so ``eval.threshold_split``
    becomes ``test``; its other rules are not EvalConfig fields and live in its protocol entry."""
    fixed = protocol_settings(cfg.eval.protocol).threshold_split
    if fixed is not None:
        cfg.eval.threshold_split = fixed
    return cfg


def check_threshold_source(cfg: RunConfig, maps: bool = True) -> None:
    """A run that evaluates maps needs somewhere to choose the threshold: an empty val split
    (``data.val_per_class: 0``, all training images used for training, as the release) is only
    allowed when the threshold is chosen on test, which the outputs then say. `maps`: whether
    the listed stages make maps (`ornet.methods.check_config` asks the method)."""

    if maps and cfg.data.val_per_class == 0 and cfg.eval.threshold_split == "val":
        raise ConfigError("data.val_per_class is 0, so there is no val split to choose the map threshold on: "
                          "set eval.threshold_split test (or eval.protocol release), which chooses it on the "
                          "test split and says so in metrics.json, or keep data.val_per_class > 0")


def to_dict(cfg: Any) -> dict[str, Any]:
    """A plain nested dict of a config dataclass (for YAML / JSON output)."""
    return asdict(cfg)


def from_dict(cls: type, values: Any):
    """A config dataclass `cls` from a plain (nested) dict, e.g. a saved config.yaml; unknown keys are ignored."""
    if dataclasses.is_dataclass(values):
        return values
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in values:
            continue
        v = values[f.name]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(default) and isinstance(v, dict):
            v = from_dict(type(default), v)
        kwargs[f.name] = v
    return cls(**kwargs)


def dump_yaml(cfg: RunConfig) -> str:
    import yaml

    return yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False)
