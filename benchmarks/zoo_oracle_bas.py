"""Reference values of BAS from its authors' code (the oracle), for tests/test_zoo_bas.py (issue 29).

    OMP_NUM_THREADS=1 python benchmarks/zoo_oracle_bas.py --bas /work/oracles/BAS

`--bas` is a checkout of github.com/wpy1999/BAS OUTSIDE this repository (its ``CUB/Model/resnet.py``
and ``CUB/Model/vgg.py`` are imported from there; nothing of it is copied here). For ResNet-50 and
VGG-16 (K = 200 and 224 px: the oracle's heads and its 28 x 28 foreground map are hard-coded; a
batch of 2 with labels 1 and 3) the script builds ornet's `BasModel`, fills every parameter and
buffer with fixed seeded values (`zoo_oracle_acol_spg.fixed_weights`), copies them by name into
the oracle's network (`oracle_name`) and runs both on the same images:

- eval mode: the logits (``score_1``), the foreground map of the label (``N=1``) and of every class
  (``N=200``, BAS_inference.py's ``top_k`` for ResNet), min-max normalised as BAS_inference.py's
  ``normalize_map``;
- train mode (batch statistics): the loss terms (cross entropies of ``score_1`` and ``score_2``,
  ``bas_loss`` and its background and area parts, the total as train.py weighs it) and, after one
  backward of the total, the gradients of the localization head, the classification head's first
  conv, layer3 and layer4 (which checks what BAS's deep copies keep from the background term).

Both networks and the images are float64 (`zoo_oracle_acol_spg.DTYPE`: float32 values move by a few
1e-6 between CPUs). The oracle's ``Tensor.cuda`` calls are made no-ops while it runs (its only CUDA use). It prints,
per case, the oracle's values (`values` computes the same summary from ornet's), the largest
difference, and the lines the tests embed. CPU, about a minute.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from zoo_oracle_acol_spg import DTYPE, _list, _sum, fixed_images, fixed_weights, largest_difference  # noqa: E402

K = 200
SIZE = 224
LABELS = (1, 3)
CASES = {"resnet50": (1.2, 0.5), "vgg16": (0.7, 0.0)}  # (area weight, score_2's CE weight): resnet.py / vgg.py, train.py
VGG_CONVS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)  # torchvision's indices of conv1_1 ... conv5_3
VGG_NAMES = ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3", "conv4_1", "conv4_2",
             "conv4_3", "conv5_1", "conv5_2", "conv5_3")
GRADS = {"resnet50": ("classifier_loc.0.weight", "classifier_cls.0.weight", "layer3.0.conv1.weight",
                      "layer4.0.conv1.weight"),
         "vgg16": ("classifier_loc.0.weight", "classifier_cls.0.weight", "conv4_1.weight", "conv5_1.weight")}


def ours(backbone: str, top_k: int = 200) -> torch.nn.Module:
    from ornet.models.bas_network import BasModel

    return fixed_weights(BasModel(backbone, K, top_k=top_k))


def oracle_name(backbone: str, key: str) -> str:
    """The oracle's name of ornet's state-dict `key` (CUB/Model/resnet.py, CUB/Model/vgg.py)."""
    if key.startswith("classifier_"):
        return key
    if backbone.startswith("resnet"):
        for prefix in ("stem.", "rest.low.", "rest.high."):
            if key.startswith(prefix):
                return key[len(prefix):]
        return key
    index, tail = key.split(".")[-2:]
    return f"{VGG_NAMES[VGG_CONVS.index(int(index))]}.{tail}"


def values(model, images, labels, area_weight: float, fg_weight: float) -> dict:
    """ornet's summary (the oracle's is `oracle_values`)."""
    from ornet.methods.bas.bas_losses import bas_losses

    model.eval()
    with torch.no_grad():
        model.top_k = 1
        label_map, logits = model.predict(images, labels)
        model.top_k = K
        all_map, _ = model.predict(images, labels)
    model.train()
    terms = bas_losses(model(images, labels), labels, area_weight, fg_weight)
    terms["loss"].backward()
    named = {oracle_name(model.backbone, n): p for n, p in model.named_parameters()}
    return summary(logits, label_map[:, 0], all_map[:, 0], terms, named, GRADS[model.backbone])


def summary(logits, label_map, all_map, terms: dict, named: dict, grads) -> dict:
    return {"logits_sum": _sum(logits), "logits_first": _list(logits[:, :6]),
            "label_map_sum": _sum(label_map), "label_map_corners": _list(label_map[:, [0, -1], [0, -1]]),
            "all_map_sum": _sum(all_map), "all_map_corners": _list(all_map[:, [0, -1], [0, -1]]),
            "losses": {k: float(terms[k]) for k in ("loss", "loss_cls", "loss_fg", "loss_bas", "background", "area")},
            "grad_sum": {g: _sum(named[g].grad) for g in grads},
            "grad_abs_sum": {g: _sum(named[g].grad.abs()) for g in grads}}


# ------------------------------------------------------------------------ the oracle

def normalize_map(cam: torch.Tensor) -> torch.Tensor:
    """BAS_inference.py ``normalize_map`` before its resize: (x - min) / (max - min), per image."""
    flat = cam.flatten(1)
    lo, hi = flat.min(1).values[:, None, None], flat.max(1).values[:, None, None]
    return (cam - lo) / (hi - lo)


def oracle_values(module, backbone: str, model, images, labels, area_weight: float, fg_weight: float) -> dict:
    """The oracle's summary; torch's default dtype is `DTYPE` meanwhile (the oracle's ``torch.zeros``
    buffers: x_sum, x_saliency, x_erase_sum)."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(DTYPE)
    try:
        return _oracle_values(module, backbone, model, images, labels, area_weight, fg_weight)
    finally:
        torch.set_default_dtype(default)


def _oracle_values(module, backbone: str, model, images, labels, area_weight: float, fg_weight: float) -> dict:
    if backbone.startswith("resnet"):
        net = module.model(None, pretrained=False)
    else:
        net = module.Model(argparse.Namespace(num_classes=K))
    net.to(DTYPE).load_state_dict({oracle_name(backbone, k): v for k, v in model.state_dict().items()}, strict=True)
    net.eval()
    with torch.no_grad():
        logits, _ = net(images, labels, 1)
        label_map = normalize_map(net.x_saliency[:, 0].clone())
        net(images, labels, K)
        all_map = normalize_map(net.x_saliency[:, 0].clone())
    net.train()
    s1, s2 = net(images, labels, 1)
    ce = torch.nn.CrossEntropyLoss()
    loss_cls, loss_fg, loss_bas = ce(s1, labels), ce(s2, labels), net.bas_loss()
    x_sum, x_res = net.x_sum.detach(), net.x_erase_sum.detach()
    ratio = torch.where(x_res >= x_sum, torch.zeros_like(x_res), x_res / (x_sum + 1e-8))  # bas_loss's `res`
    loss = loss_cls + loss_fg * fg_weight + loss_bas  # train.py
    loss.backward()
    terms = {"loss": loss, "loss_cls": loss_cls, "loss_fg": loss_fg, "loss_bas": loss_bas,
             "background": ratio.mean(), "area": net.x_saliency.detach().flatten(1).mean(1).mean()}
    return summary(logits, label_map, all_map, terms, dict(net.named_parameters()), GRADS[backbone])


def import_oracle(root: Path, backbone: str):
    sys.path.insert(0, str(root / "CUB"))
    return importlib.import_module("Model.resnet" if backbone.startswith("resnet") else "Model.vgg")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bas", required=True, type=Path, help="a checkout of wpy1999/BAS")
    args = parser.parse_args(argv)
    root = args.bas.resolve()
    if not (root / "CUB" / "Model" / "resnet.py").is_file():
        parser.error(f"{root} is not a BAS checkout (no CUB/Model/resnet.py)")
    labels = torch.tensor(LABELS)
    cuda = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]  # the oracle's only CUDA use
    try:
        for backbone, (area_weight, fg_weight) in CASES.items():
            module = import_oracle(root, backbone)
            torch.manual_seed(0)
            model = ours(backbone)
            images = fixed_images(SIZE)
            theirs = oracle_values(module, backbone, model, images, labels, area_weight, fg_weight)
            mine = values(model, images, labels, area_weight, fg_weight)
            print(f"# {backbone}: largest |ornet - oracle| = {largest_difference(theirs, mine):.3g}")
            print(f"ORACLE[{backbone!r}] = {json.dumps(theirs)}")
    finally:
        torch.Tensor.cuda = cuda  # type: ignore[method-assign]
    return 0


if __name__ == "__main__":
    sys.exit(main())
