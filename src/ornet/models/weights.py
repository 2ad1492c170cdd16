"""Loading weights into our networks: torchvision names, local state dicts, safetensors.

`load_weights(module, spec, arch)` accepts three forms of `spec`:

- ``"none"``: keep the module's initialisation (train from scratch);
- ``"imagenet"``: ImageNet weights that an installed package ships (no download; only for
  networks listed in `ornet.models.offline_weights`, e.g. ``efficientnet_lite0``);
- a torchvision weights name such as ``"IMAGENET1K_V1"`` or ``"DEFAULT"``, resolved with
  ``torchvision.models.get_model_weights(arch)[spec]`` (downloads into ``$TORCH_HOME`` on
  first use);
- a local file: ``.safetensors`` (read with ``safetensors.torch.load_file``) or anything
  else as a ``torch.save``-d state dict (read with ``torch.load(weights_only=True)``, so no
  arbitrary object is ever unpickled). A dict holding a ``"state_dict"`` entry (Lightning
  and the ORNet release save that way) is unwrapped.

A file holding anything but tensors and plain containers (a pickled object, which could run
code when unpickled) is refused with an `OrnetError` naming it (`safe_torch_load`); a
``.safetensors`` file that is not one (a pickle renamed, say) is refused likewise
(`check_safetensors`). Every checkpoint ornet reads goes through these two functions.

Keys may be in the module's own layout (``stem.conv1.weight``, what ``module.state_dict()``
gives) or in torchvision's / timm's (``conv1.weight``, ``blocks.1.0.conv_pw.weight``): modules built by
`ornet.models.backbones` carry the correspondence (`source_keys`). Rules:

- a key of the replaceable head (`optional_keys`: the last Linear, layers we add) whose shape
  differs, e.g. 1000 ImageNet classes against K, is skipped with a logged note; it may also
  be missing;
- source keys under `ignored_source_prefixes` (VGG's FC classifier when the CAM network
  drops it) are ignored with a logged note;
- any other missing or unexpected key is an `OrnetError` naming the file and the keys
  (with ``strict_backbone=False`` they are only logged); a shape mismatch outside the head
  is always an error.
"""

from __future__ import annotations

import logging
import pickle
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import OrnetError

log = logging.getLogger(__name__)

FILE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors")
IMAGENET_SPEC = "imagenet"
"""Weights name of the ImageNet weights an installed package ships (`offline_weights`)."""


@dataclass
class LoadReport:
    """What `load_weights` did (for logs and tests)."""

    source: str
    loaded: list[str] = field(default_factory=list)
    """Own keys that received a value."""
    skipped: list[str] = field(default_factory=list)
    """Own head keys whose source shape differed (kept their initialisation)."""
    missing: list[str] = field(default_factory=list)
    """Own keys with no source value (only non-empty for head keys or strict_backbone=False)."""
    unexpected: list[str] = field(default_factory=list)
    """Source keys with no place in the module (only with strict_backbone=False)."""
    ignored: list[str] = field(default_factory=list)
    """Source keys dropped on purpose (`ignored_source_prefixes`)."""


def load_weights(module: nn.Module, spec: str | None, arch: str, strict_backbone: bool = True,
                 prefix: str = "") -> LoadReport:
    """Load `spec` (``"none"``, a torchvision weights name or a file path) into `module`.

    `arch` is the torchvision model name whose weights enum resolves a name (``resnet50``).
    `prefix`: only source keys starting with it are used, with the prefix removed (e.g.
    ``"evaluator."`` to pick a sub-network out of a whole-model state dict).
    Returns a `LoadReport`; raises `OrnetError` for unreadable files, unknown names and
    keys that do not fit (see the module docstring).
    """
    if spec is None or spec.strip().lower() in ("", "none"):
        return LoadReport(source="none")
    spec = spec.strip()
    if weights_file(spec) is not None:
        state = read_state_dict(spec)
        source = spec
    elif spec.lower() == IMAGENET_SPEC:
        from .offline_weights import offline_state_dict

        state, source = offline_state_dict(arch, list(getattr(module, "source_keys", {}).values()))
    else:
        state = _torchvision_state_dict(spec, arch)
        source = f"torchvision {arch} {spec}"
    if prefix:
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if not state:
            raise OrnetError(f"{source}: no key starts with {prefix!r}")
    return apply_state_dict(module, state, source, strict_backbone=strict_backbone)


def weights_file(spec: str | None) -> Path | None:
    """The file a weights `spec` names, or None for "none", "imagenet" and torchvision weights names."""
    if spec is None or spec.strip().lower() in ("", "none"):
        return None
    spec = spec.strip()
    if spec.lower() == IMAGENET_SPEC:  # a name, even beside a folder called imagenet
        return None
    if "/" in spec or "\\" in spec or spec.lower().endswith(FILE_SUFFIXES) or Path(spec).exists():
        return Path(spec)
    return None


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A flat name -> tensor dict from a ``.safetensors`` or ``torch.save`` file (on CPU)."""
    p = Path(path)
    if not p.is_file():
        raise OrnetError(f"{p}: no such weights file")
    if p.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        check_safetensors(p)
        try:
            obj = load_file(str(p), device="cpu")
        except Exception as err:  # a header that passed the check but a body that does not fit it
            raise OrnetError(f"{p}: cannot read weights ({type(err).__name__}: {_first_line(err)})") from None
    else:
        obj = safe_torch_load(p)
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise OrnetError(f"{p}: not a state dict (expected a mapping of names to tensors)")
    state = dict(obj)
    if state and all(k.startswith("module.") for k in state):  # saved from DataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _first_line(err: BaseException) -> str:
    return next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)


def safe_torch_load(path: str | Path, allow: Sequence[Any] = ()) -> Any:
    """`torch.load(path, weights_only=True)` on CPU, with one-line `OrnetError`s naming the file.

    weights_only is passed explicitly (never left to torch's default, which the environment
    variable TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD can turn off): a file whose pickle names any
    other global (an object whose unpickling could run code) is refused, not loaded.
    `allow`: extra globals accepted for this one call only (``torch.serialization.safe_globals``,
    a context: the process-wide allowlist is never changed), e.g. `numpy_scalar_globals()`.
    """
    p = Path(path)
    if not p.is_file():
        raise OrnetError(f"{p}: no such file")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing
            warnings.simplefilter("ignore")
            if allow:
                with torch.serialization.safe_globals(list(allow)):
                    return torch.load(p, map_location="cpu", weights_only=True)
            return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        m = re.search(r"GLOBAL (\S+)", str(err))
        culprit = f" ({m.group(1)})" if m else ""
        raise OrnetError(f"{p}: contains objects other than tensors{culprit} and is refused: ornet loads "
                         "weights only, never pickled objects (they could run code)") from None
    except Exception as err:  # not a torch file at all, truncated, ...
        raise OrnetError(f"{p}: cannot read weights ({type(err).__name__}: {_first_line(err)})") from None


NUMPY_DTYPES = ("Bool", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64",
                "Float16", "Float32", "Float64")


def numpy_scalar_globals() -> list[Any]:
    """The globals a pickled numeric numpy scalar names (``np.float64(0.9)`` saved as, e.g., a
    checkpoint's ``best_acc``), for `safe_torch_load(allow=...)`: the scalar constructor under its
    numpy 1.x and 2.x names (``numpy.core.multiarray.scalar``, ``numpy._core.multiarray.scalar``),
    ``numpy.dtype`` and the numeric dtype classes (``numpy.dtypes.Float64DType``, ...). Nothing
    else: object arrays, ``numpy.core.multiarray._reconstruct`` (whole arrays) and every other
    global stay refused."""
    import numpy as np

    core = getattr(np, "_core", None) or np.core
    scalar = core.multiarray.scalar
    allowed: list[Any] = [(scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar"),
                          np.dtype]
    dtypes = getattr(np, "dtypes", None)  # numpy >= 1.25
    allowed += [getattr(dtypes, f"{n}DType") for n in NUMPY_DTYPES if dtypes is not None and hasattr(dtypes, f"{n}DType")]
    return allowed


def check_safetensors(path: str | Path) -> None:
    """OrnetError unless `path` starts with a valid safetensors header (8-byte length + JSON).

    Reading the header never executes anything; a pickle or a `torch.save` file renamed to
    ``.safetensors`` fails here with a message saying what it is not.
    """
    p = Path(path)
    if not p.is_file():
        raise OrnetError(f"{p}: no such file")
    from safetensors import safe_open

    try:
        with safe_open(str(p), framework="pt", device="cpu") as f:
            f.keys()
    except Exception as err:  # SafetensorError (bad header), OSError
        raise OrnetError(f"{p}: not a safetensors file ({_first_line(err)}); ornet reads model weights "
                         "only from safetensors and never unpickles them") from None


def torchvision_weights(name: str, arch: str):
    """The torchvision weights enum member `name` of `arch` (nothing is downloaded); OrnetError
    listing the known names when there is none (checked before training starts)."""
    import torchvision

    from .names import is_timm

    if is_timm(arch):
        raise OrnetError(f"{name!r} is not a weights name for the timm network {arch} (timm's hub weights are "
                         f"never downloaded): use none, {IMAGENET_SPEC} where ornet knows offline weights, "
                         "or a local .pth / .safetensors file in timm's layout")
    try:
        enum = torchvision.models.get_model_weights(arch)
    except (ValueError, KeyError) as err:
        raise OrnetError(f"torchvision has no weights for architecture {arch!r}") from err
    try:
        return enum[name]
    except KeyError:
        known = ", ".join(["DEFAULT", *enum.__members__])
        raise OrnetError(f"unknown weights {name!r} for {arch}; known: {known}; "
                         "or give the path of a .pth / .safetensors file") from None


def check_weights_spec(spec: str | None, arch: str, key: str = "weights") -> None:
    """Read (or locate) what weights `spec` of network `arch` would load, without loading it into
    a network: OrnetError prefixed with `key` for an unknown name, a missing package or a bad file."""
    spec = (spec or "none").strip()
    path = weights_file(spec)
    if path is not None:
        read_state_dict(path)
        return
    if spec.lower() == "none":
        return
    try:
        if spec.lower() == IMAGENET_SPEC:
            from .offline_weights import weights_path

            read_state_dict(weights_path(arch))
            return
        cached = torchvision_cache_file(torchvision_weights(spec, arch))
    except OrnetError as e:
        raise OrnetError(f"{key}: {e}") from None
    if cached.is_file():  # downloaded earlier: read now like any weights file
        safe_torch_load(cached)


def torchvision_cache_file(weights) -> Path:
    """Where torch.hub keeps (or will download) a torchvision weights file ($TORCH_HOME)."""
    from urllib.parse import urlparse

    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name


def _torchvision_state_dict(name: str, arch: str) -> dict[str, torch.Tensor]:
    weights = torchvision_weights(name, arch)
    cached = torchvision_cache_file(weights)
    if cached.is_file():  # torch.hub would read it with weights_only=False: read it ourselves
        return dict(safe_torch_load(cached))
    try:
        return dict(weights.get_state_dict(progress=True, check_hash=True, weights_only=True))
    except pickle.UnpicklingError:
        raise OrnetError(f"{cached}: contains objects other than tensors and is refused: ornet loads "
                         "weights only, never pickled objects (they could run code)") from None
    except Exception as err:  # network errors, hash mismatch, corrupt cache
        raise OrnetError(f"could not fetch torchvision weights {arch} {name} ({err}); "
                         f"download {weights.url} yourself and pass the file path") from err


def apply_state_dict(module: nn.Module, state: Mapping[str, torch.Tensor], source: str,
                     strict_backbone: bool = True) -> LoadReport:
    """Translate `state` to the module's own keys, check it (module docstring) and load it."""
    own = module.state_dict()
    to_own = {src: k for k, src in getattr(module, "source_keys", {}).items()}
    optional = set(getattr(module, "optional_keys", ()))
    ignored_prefixes = tuple(getattr(module, "ignored_source_prefixes", ()))
    report = LoadReport(source=source)

    translated: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        target = key if key in own else to_own.get(key)
        if target is None:
            if ignored_prefixes and key.startswith(ignored_prefixes):
                report.ignored.append(key)
            else:
                report.unexpected.append(key)
            continue
        translated[target] = value

    mismatched = []
    for key in list(translated):
        if translated[key].shape != own[key].shape:
            if key in optional:
                report.skipped.append(key)
                del translated[key]
            else:
                mismatched.append(f"{key} {tuple(translated[key].shape)} vs {tuple(own[key].shape)}")
    if mismatched:
        raise OrnetError(f"{source}: shapes do not fit: {_some(mismatched)}")

    missing = [k for k in own if k not in translated and k not in report.skipped]
    required = [k for k in missing if k not in optional and not k.endswith("num_batches_tracked")]
    if required or report.unexpected:
        parts = []
        if required:
            parts.append(f"missing keys: {_some(required)}")
        if report.unexpected:
            parts.append(f"unexpected keys: {_some(report.unexpected)}")
        msg = f"{source}: weights do not fit the network; " + "; ".join(parts)
        if strict_backbone:
            raise OrnetError(msg)
        log.warning("%s (loading the rest, strict_backbone=False)", msg)
    report.missing = missing

    module.load_state_dict(translated, strict=False)
    report.loaded = sorted(translated)
    if report.skipped:
        log.info("%s: head layers of another shape skipped (kept initialised): %s",
                 source, _some(report.skipped))
    if report.ignored:
        log.info("%s: source layers this network does not use ignored: %s",
                 source, _some(report.ignored))
    return report


def _some(keys: list[str], n: int = 6) -> str:
    shown = ", ".join(keys[:n])
    return shown if len(keys) <= n else f"{shown}, ... ({len(keys)} in all)"
