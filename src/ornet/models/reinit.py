"""Fresh initialisation of backbone layers before stage 1 (`model.reinit`).

The release's ``CoarseModel`` loads ImageNet weights into ResNet-50 and, when ``NUM_CLASSES !=
200`` (ILSVRC), replaces ``layer4`` and ``fc`` with those of a new, randomly initialised
ResNet-50. ``model.reinit: [layer4, fc]`` does the same for any backbone: the named layers
(torchvision names, as in the weights files) take the values of a freshly built network of the
same architecture (torchvision's initialisation; a replaced K-class head ornet's N(0, 0.01)).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import ConfigError


def _source_keys(backbone: str) -> dict[str, str]:
    """The backbone's own key -> torchvision key map, from a network built on the meta device
    where the builder allows (`on_meta_if_possible`)."""
    from .backbones import BACKBONES, on_meta_if_possible

    return dict(on_meta_if_possible(lambda: BACKBONES.get(backbone)(1, cam=False, stride16=False)).source_keys)


def _named(src: str, names: Sequence[str]) -> bool:
    return any(src == n or src.startswith(n + ".") for n in names)


def layer_names(backbone: str) -> list[str]:
    """The top-level torchvision layer names of a backbone (conv1, bn1, layer1, ..., fc)."""
    return list(dict.fromkeys(src.split(".")[0] for src in _source_keys(backbone).values()))


def reinit_stem_layers(backbone: str, names: Sequence[str]) -> list[str]:
    """The torchvision keys among `names`' layers that `reinit_backbone` writes into the stem F_c1."""
    return sorted(src for own, src in _source_keys(backbone).items() if own.startswith("stem.") and _named(src, names))


def check_reinit(backbone: str, names: Sequence[str]) -> None:
    """ConfigError naming the first name that is not a layer of `backbone`."""
    if not names:
        return
    known = layer_names(backbone)
    for name in names:
        if name.split(".")[0] not in known:
            raise ConfigError(f"model.reinit: {name!r} is not a layer of {backbone}; its layers: {', '.join(known)}")


def reinit_backbone(ornet, names: Sequence[str]) -> list[str]:
    """Re-initialise the named layers of an `ORNet`'s stem / rest / head; returns the keys changed."""
    from .backbones import BACKBONES

    if not names:
        return []
    check_reinit(ornet.backbone, names)
    fresh = BACKBONES.get(ornet.backbone)(ornet.num_classes, cam=False, stride16=False)
    values = fresh.state_dict()
    state = {}
    for own, src in fresh.source_keys.items():
        if _named(src, names):
            key = own if own.startswith("stem.") else f"rest_head.{own}"
            if ornet.rest_head is None and key.startswith("rest_head."):
                continue
            state[key] = values[own]
    ornet.load_state_dict(state, strict=False)
    return sorted(state)
