"""Release checkpoints -> one checked `ORNet` state dict (nothing is written here).

`plan_import` reads the files, checks every key and shape against the release's layout
(`layout.py`) and the registered classifiers (`checkpoints.identify_classifier`), reads the
generator width c and the number of classes K from the shapes, checks that all parts agree on
K, and returns an `ImportPlan`; `build_model` turns it into an `ORNet` whose maps are the
release's. Every problem is an `OrnetError` of one line naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import OrnetError
from .checkpoints import (
    EVALUATOR_PREFIX,
    ReleaseFile,
    Signature,
    expect_kind,
    identify_classifier,
    part,
    read_release_file,
)
from .layout import K_KEY, WIDTH_KEY, Entry, generator_layout, is_generator_key, stem_layout

RELEASE_BACKBONE = "resnet50"  # CoarseModel: models.resnet50; FineModel keeps only its stem
RELEASE_EVALUATOR = "vgg16"  # Evaluator: models.vgg16


@dataclass
class ImportPlan:
    """What `ornet import-release` will write: architecture, K, and the ORNet state dict."""

    kind: str
    """``fine`` (an inference / stage-2 network, no stage-1 head) or ``coarse`` (the full network)."""
    backbone: str
    evaluator: str
    width: int
    num_classes: int
    state: dict[str, torch.Tensor]
    """ORNet keys -> tensors (evaluator.* included)."""
    evaluator_state: dict[str, torch.Tensor]
    """The evaluator's own keys (stem.*, rest.*, head.*) -> tensors."""
    files: dict[str, ReleaseFile] = field(default_factory=dict)
    """flag (fine / coarse / evaluator) -> the file read."""
    notes: list[str] = field(default_factory=list)

    @property
    def threshold(self) -> float | None:
        """The release's threshold saved with the stage-2 checkpoint (``best_threshold``), if usable."""
        rf = self.files.get("fine") or self.files.get("coarse")
        value = rf.numbers.get("best_threshold") if rf is not None else None
        return float(value) if isinstance(value, (int, float)) and 0.0 < float(value) < 1.0 else None


def plan_import(fine: str | Path | None = None, coarse: str | Path | None = None,
                evaluator: str | Path | None = None) -> ImportPlan:
    """Read and check the files of ``--fine [--evaluator]`` or ``--coarse --evaluator``."""
    if (fine is None) == (coarse is None):
        raise OrnetError("give exactly one of --fine FILE (the release's stage-2 model) and --coarse FILE "
                         "(its stage-1 model, with --evaluator FILE)")
    if coarse is not None and evaluator is None:
        raise OrnetError("--coarse needs --evaluator FILE: the release's stage-1 file holds no evaluator")
    main_path = Path(fine if fine is not None else coarse)
    kind = "fine" if fine is not None else "coarse"
    main = read_release_file(main_path)
    expect_kind(main, kind)
    ev_file = None
    if evaluator is not None:
        ev_file = read_release_file(evaluator)
        expect_kind(ev_file, "evaluator")

    width, k_gen, generator = _generator(main, attention_head=kind == "coarse")
    backbone, body = (_coarse_body(main, k_gen) if kind == "coarse" else _fine_stem(main))
    ev_source = ev_file if ev_file is not None else main
    ev_state = part(ev_source.state, EVALUATOR_PREFIX[ev_source.kind])
    ev_sig, k_ev = identify_classifier(ev_state, f"{ev_source.path} (evaluator, "
                                       f"{EVALUATOR_PREFIX[ev_source.kind]}*)", prefer=(RELEASE_EVALUATOR,))
    if k_ev != k_gen:
        imagenet = (" (an ImageNet-1000 classifier: the release keeps VGG-16's ImageNet head when "
                    "NUM_CLASSES is 1000)" if k_ev == 1000 else "")
        raise OrnetError(f"number of classes differs: {ev_source.path} has an evaluator of {k_ev} classes{imagenet} "
                         f"but the generator in {main.path} has {k_gen} ({K_KEY})")
    evaluator_own = {ev_sig.own[k]: v for k, v in ev_state.items() if k in ev_sig.own}
    state = {**body, **generator, **{f"evaluator.{k}": v for k, v in evaluator_own.items()}}
    plan = ImportPlan(kind=kind, backbone=backbone, evaluator=ev_sig.name, width=width, num_classes=k_gen,
                      state=state, evaluator_state=evaluator_own, files={kind: main})
    if ev_file is not None:
        plan.files["evaluator"] = ev_file
        if kind == "fine":
            plan.notes.append(_compare_evaluators(main, ev_state, ev_sig, ev_file))
    return plan


def _generator(rf: ReleaseFile, attention_head: bool) -> tuple[int, int, dict[str, torch.Tensor]]:
    """(width c, K, ORNet generator keys -> tensors) from a coarse or fine file."""
    s = rf.state
    missing = [k for k in (WIDTH_KEY, K_KEY) if k not in s]
    if missing:
        raise OrnetError(f"{rf.path}: missing {', '.join(missing)}: the width and number of classes of the "
                         "release's generator are read from them")
    c2, c_in = s[WIDTH_KEY].shape[:2]
    if s[K_KEY].dim() != 4 or c2 % 2:
        raise OrnetError(f"{rf.path}: {WIDTH_KEY} {tuple(s[WIDTH_KEY].shape)} / {K_KEY} {tuple(s[K_KEY].shape)} "
                         "do not have the release's U-Net shapes")
    width, k = int(c2) // 2, int(s[K_KEY].shape[1])
    layout = generator_layout(width, k, int(c_in), attention_head)
    given = {key: v for key, v in s.items() if is_generator_key(key)}
    if not attention_head:
        given.pop("att_conv2.weight", None)  # a fine file never has it; tolerated if present
    return width, k, _apply(rf, layout, given, f"width {width}, K {k}")


def _fine_stem(rf: ReleaseFile) -> tuple[str, dict[str, torch.Tensor]]:
    channels = int(rf.state[WIDTH_KEY].shape[1])
    stem = {k: v for k, v in rf.state.items() if not is_generator_key(k) and not k.startswith("vgg.model.")}
    return RELEASE_BACKBONE, _apply(rf, stem_layout(channels), stem, "the ResNet stem")


def _coarse_body(rf: ReleaseFile, k_gen: int) -> tuple[str, dict[str, torch.Tensor]]:
    body = {k: v for k, v in rf.state.items() if not is_generator_key(k)}
    sig, k_fc = identify_classifier(body, f"{rf.path} (backbone: conv1, bn1, layer1-4, fc)",
                                    prefer=(RELEASE_BACKBONE,))
    if k_fc != k_gen:
        raise OrnetError(f"{rf.path}: its fc has {k_fc} classes but its generator {k_gen} ({K_KEY})")
    channels = int(rf.state[WIDTH_KEY].shape[1])
    stem_out = next((v.shape[0] for k, v in body.items() if sig.own.get(k, "").startswith("stem.") and v.dim() == 4),
                    None)
    if stem_out is not None and stem_out != channels:
        raise OrnetError(f"{rf.path}: the generator takes {channels} channels but the {sig.name} stem gives {stem_out}")
    return sig.name, {_ornet_key(sig, k): v for k, v in body.items() if k in sig.own}


def _ornet_key(sig: Signature, tv_key: str) -> str:
    own = sig.own[tv_key]
    return own if own.startswith("stem.") else f"rest_head.{own}"


def _apply(rf: ReleaseFile, layout: dict[str, Entry], given: dict[str, torch.Tensor], what: str) -> dict[str, torch.Tensor]:
    """Check `given` (release keys) against `layout`; ORNet key -> tensor."""
    missing = [k for k, e in layout.items() if k not in given and not e.optional]
    unexpected = [k for k in given if k not in layout]
    wrong = [f"{k} {tuple(v.shape)} (expected {layout[k].shape})" for k, v in given.items()
             if k in layout and tuple(v.shape) != layout[k].shape]
    problems = ([f"missing {_some(missing)}"] if missing else []) + \
        ([f"unexpected {_some(unexpected)}"] if unexpected else []) + ([f"shapes {_some(wrong)}"] if wrong else [])
    if problems:
        raise OrnetError(f"{rf.path}: does not fit the release's layout ({what}): {'; '.join(problems)}")
    return {layout[k].ours: v for k, v in given.items()}


def _some(items: list[str], n: int = 4) -> str:
    return ", ".join(items[:n]) + (f", ... ({len(items)} in all)" if len(items) > n else "")


def _compare_evaluators(fine: ReleaseFile, ev_state: dict, sig: Signature, ev_file: ReleaseFile) -> str:
    """A note on whether --evaluator equals the copy inside the fine file (it replaces it)."""
    inside = part(fine.state, "vgg.model.")
    if set(inside) != set(ev_state) or any(inside[k].shape != v.shape for k, v in ev_state.items()):
        return f"the evaluator of {ev_file.path} replaces the one inside {fine.path} (a different network)"
    diff = max(float((inside[k].float() - v.float()).abs().max()) for k, v in ev_state.items() if v.numel())
    same = "identical to" if diff == 0 else f"differs by up to {diff:.3g} from"
    return f"the evaluator of {ev_file.path} ({same} the copy inside {fine.path}) is used"


def build_model(plan: ImportPlan):
    """The `ORNet` of `plan` with its weights, in eval mode."""
    from ..models.ornet_network import ORNet

    model = ORNet(plan.backbone, plan.num_classes, evaluator=plan.evaluator, generator_width=plan.width,
                  stage1_head=plan.kind == "coarse")
    missing, unexpected = model.load_state_dict(plan.state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:  # the checks above make this unreachable for files they accept
        raise OrnetError(f"{next(iter(plan.files.values())).path}: converted weights do not fit ornet's network: "
                         f"missing {_some(missing)}, unexpected {_some(unexpected)}")
    return model.eval()
