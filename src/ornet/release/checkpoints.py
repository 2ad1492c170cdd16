"""Reading the release's checkpoint files and recognising what each holds.

The release saves ``torch.save({"state_dict": model.state_dict(), ...})`` with, beside the
weights, optimiser and scheduler state and numbers (``epoch``, ``best_epoch``, ``best_acc``,
``best_threshold``) that may be numpy scalars. Files are read with `safe_torch_load`
(``weights_only=True``) allowing, for this call only, numpy's numeric scalar and dtype
constructors (`numpy_scalar_globals`); any other pickled object is refused with one line
naming the file. Three kinds of file (``models/model.py``, ``models/evaluator.py``):

- ``coarse`` (``CoarseModel``, stage 1): ``conv1``, ``bn1``, ``layer1-4``, ``fc`` (ResNet-50),
  ``att_layer4.*``, ``att_conv2``, ``att_conv3``, ``bn_att3``;
- ``fine`` (``FineModel``, stage 2): ``conv1``, ``bn1``, ``att_layer4.*``, ``att_conv3``,
  ``bn_att3`` and the whole evaluator under ``vgg.model.*``;
- ``evaluator`` (``Evaluator``): ``model.*``, a torchvision VGG-16 whose last Linear has K outputs.

Classifier parts are recognised by matching their torchvision key names and shapes against
ornet's registered torchvision networks (`identify_classifier`), so K comes from the shapes and
any torchvision classifier ornet knows is accepted (the release's are VGG-16 and ResNet-50).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import torch

from ..errors import OrnetError
from .layout import is_generator_key

KINDS = ("coarse", "fine", "evaluator")
EVALUATOR_PREFIX = {"evaluator": "model.", "fine": "vgg.model."}
WHAT = {
    "coarse": "the release's stage-1 CoarseModel (ResNet layer1-4 and fc, att_conv2, no evaluator)",
    "fine": "the release's stage-2 FineModel (stem, generator and the evaluator under vgg.model.)",
    "evaluator": "the release's evaluator alone (model.*)",
}
FLAG = {"coarse": "--coarse", "fine": "--fine", "evaluator": "--evaluator"}


@dataclass
class ReleaseFile:
    """One release checkpoint: its state dict and the plain numbers saved beside it."""

    path: Path
    state: dict[str, torch.Tensor]
    numbers: dict[str, float | int] = field(default_factory=dict)
    """Top-level numbers (numpy scalars converted): epoch, best_epoch, best_acc, best_threshold, ..."""
    other: list[str] = field(default_factory=list)
    """Names of the other top-level entries (optimizer, lr_scheduler, ...): read, not used."""

    @property
    def kind(self) -> str | None:
        return kind_of(self.state)


def read_release_file(path: str | Path) -> ReleaseFile:
    """Read a release checkpoint safely; OrnetError naming the file when it is not one."""
    from ..models.weights import numpy_scalar_globals, safe_torch_load

    p = Path(path)
    obj = safe_torch_load(p, allow=numpy_scalar_globals())
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        state, rest = obj["state_dict"], {k: v for k, v in obj.items() if k != "state_dict"}
    elif isinstance(obj, dict):
        state, rest = obj, {}
    else:
        raise OrnetError(f"{p}: not a checkpoint of the ORNet release (a {type(obj).__name__}, "
                         "expected a dict with a state_dict)")
    if not state or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise OrnetError(f"{p}: not a checkpoint of the ORNet release (its state_dict is not a mapping "
                         "of names to tensors)")
    if all(k.startswith("module.") for k in state):  # saved from DataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    found = ReleaseFile(p, dict(state))
    for key, value in rest.items():
        if isinstance(value, numbers.Number) or _is_numpy_number(value):
            found.numbers[str(key)] = value.item() if hasattr(value, "item") else value
        else:
            found.other.append(str(key))
    return found


def _is_numpy_number(value: Any) -> bool:
    return type(value).__module__ == "numpy" and hasattr(value, "item") and getattr(value, "shape", None) == ()


def kind_of(state: dict[str, torch.Tensor]) -> str | None:
    """``coarse``, ``fine``, ``evaluator`` or None, from the key names alone."""
    keys = list(state)
    if keys and all(k.startswith("model.") for k in keys):
        return "evaluator"
    generator = any(is_generator_key(k) for k in keys)
    if any(k.startswith("vgg.model.") for k in keys):
        return "fine" if generator or "conv1.weight" in state else None
    if any(k.startswith(("layer1.", "layer4.", "fc.", "att_conv2.")) for k in keys):
        return "coarse"
    return None


def expect_kind(rf: ReleaseFile, kind: str) -> None:
    """OrnetError unless `rf` holds `kind`, saying what it does hold and which flag takes it."""
    found = rf.kind
    if found == kind:
        return
    if found is None:
        head = ", ".join(sorted({k.split(".")[0] for k in rf.state})[:8])
        raise OrnetError(f"{rf.path}: holds none of the release's networks (top-level keys: {head}); "
                         f"{FLAG[kind]} expects {WHAT[kind]}")
    raise OrnetError(f"{rf.path}: holds {WHAT[found]}, not {WHAT[kind]}; give it as {FLAG[found]}")


def part(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The keys under `prefix`, prefix removed."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


# --- classifiers by their torchvision names ---------------------------------------------------

@dataclass(frozen=True)
class Signature:
    """A registered network's torchvision key names and shapes (built on the meta device)."""

    name: str
    shapes: dict[str, tuple[int, ...]]
    """torchvision key -> shape (head shapes for K = 1)."""
    own: dict[str, str]
    """torchvision key -> the network's own key (``stem.conv1.weight``, ``head.classifier.6.weight``)."""
    head: tuple[str, str]
    """torchvision keys of the last Linear (weight, bias): their first dimension is K."""


def torchvision_names() -> list[str]:
    """The registered torchvision families (the release's files use torchvision's key names;
    timm networks and aliases are not candidates)."""
    from ..models.backbones import BACKBONES
    from ..models.names import is_timm

    return [n for n in BACKBONES.names() if not is_timm(n)]


@cache
def signature(name: str) -> Signature | None:
    """The `Signature` of registered network `name` (None if it cannot be built on meta)."""
    from ..models.backbones import BACKBONES

    try:
        with torch.device("meta"):
            net = BACKBONES.get(name)(1, cam=False, stride16=False)
    except Exception:  # a network family that cannot be built this way: not a candidate
        return None
    sd = net.state_dict()
    shapes = {src: tuple(sd[own].shape) for own, src in net.source_keys.items()}
    own = {src: o for o, src in net.source_keys.items()}
    head = [net.source_keys[k] for k in sorted(net.optional_keys) if k in net.source_keys]
    weight = next((k for k in head if k.endswith(".weight")), None)
    if weight is None:
        return None
    return Signature(name, shapes, own, (weight, weight[: -len("weight")] + "bias"))


def identify_classifier(state: dict[str, torch.Tensor], source: str,
                        prefer: tuple[str, ...] = ()) -> tuple[Signature, int]:
    """(signature, K) of the registered network whose torchvision keys and shapes `state` has.

    BN ``num_batches_tracked`` entries may be missing. OrnetError naming `source` and the
    closest network's first differences otherwise.
    """
    names = [*prefer, *(n for n in torchvision_names() if n not in prefer)]
    best: tuple[int, str, list[str]] | None = None
    for name in names:
        sig = signature(name)
        if sig is None:
            continue
        problems = _differences(state, sig)
        if not problems:
            return sig, int(state[sig.head[0]].shape[0])
        overlap = len(set(state) & set(sig.shapes))
        if best is None or overlap > best[0]:
            best = (overlap, name, problems)
    detail = f"; closest {best[1]}: {', '.join(best[2][:4])}" if best else ""
    raise OrnetError(f"{source}: matches no classifier ornet knows{detail}")


def _differences(state: dict[str, torch.Tensor], sig: Signature) -> list[str]:
    missing = [k for k in sig.shapes if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in sig.shapes]
    out = [f"missing {k}" for k in missing[:3]] + [f"unexpected {k}" for k in unexpected[:3]]
    if out:
        return out
    weight, bias = sig.head
    for key, shape in sig.shapes.items():
        if key not in state:
            continue
        got = tuple(state[key].shape)
        want = (got[0], *shape[1:]) if key in (weight, bias) else shape
        if got != want:
            out.append(f"{key} is {got}, expected {want}")
    if not out and state[weight].shape[0] != state[bias].shape[0]:
        out.append(f"{weight} and {bias} disagree on the number of classes")
    return out
