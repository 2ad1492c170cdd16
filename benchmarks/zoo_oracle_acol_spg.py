"""Reference values of ACoL and SPG from wsolevaluation's own code (the oracle), for
tests/test_zoo_acol_spg.py (issue 29).

    python benchmarks/zoo_oracle_acol_spg.py --wsolevaluation /work/oracles/wsolevaluation2

`--wsolevaluation` is a checkout of github.com/clovaai/wsolevaluation OUTSIDE this repository
(its ``wsol`` package is imported from there; nothing of it is copied here). For each case
(ResNet-50 and VGG-16, K = 5 classes, a batch of 2 with labels 1 and 3, eval mode) the script
builds ornet's network (`AcolModel` / `SpgModel`), fills every parameter and buffer with fixed
seeded values (`fixed_weights`), copies them by name into wsolevaluation's network
(``wsol.resnet50`` / ``wsol.vgg16`` with ``architecture_type`` acol or spg; `oracle_name` maps
the names), runs both on the same images and prints, per case, the oracle's values (`*_values`
below computes the same summary from ornet's outputs), ornet's, and the largest difference. The
tests embed the oracle's lines. Inputs: ACoL at 112 px, SPG at 224 px (wsolevaluation's SPG
resizes every map to a fixed 224 x 224). Runs on the CPU in about a minute.

Both networks and the images are float64 (`DTYPE`; the weights are drawn in float32 and widened):
in float32 the two sides agree exactly on one machine, but the values differ by a few 1e-6 from
one CPU's kernels to another's (AVX-512 against AVX2), more than the tests' 1e-6; in float64 that
spread is around 1e-12, so the embedded values hold on any machine.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import torch

K = 5
LABELS = (1, 3)
SIZES = {"acol": 112, "spg": 224}
CASES = (("acol", "resnet50"), ("acol", "vgg16"), ("spg", "resnet50"), ("spg", "vgg16"))
SPG_THRESHOLDS = ((0.7, 0.01), (0.5, 0.05), (0.7, 0.1))  # config.py's defaults
ACOL_THRESHOLD = 0.7  # config.py's default
DTYPE = torch.float64  # module docstring


def fixed_weights(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every floating parameter and buffer, in name order, from one seeded generator: conv / linear
    weights N(0, 1 / fan_in), biases N(0, 0.01^2), BN weights 1 + N(0, 0.1^2), BN means N(0, 0.1^2),
    BN variances 1 + U(0, 0.1)."""
    g = torch.Generator().manual_seed(seed)
    state = model.state_dict()
    with torch.no_grad():
        for name in sorted(state):
            t = state[name]
            if not t.is_floating_point():
                continue
            n = torch.randn(t.shape, generator=g)
            if name.endswith("running_var"):
                t.copy_(1 + 0.1 * torch.rand(t.shape, generator=g))
            elif name.endswith("running_mean"):
                t.copy_(0.1 * n)
            elif t.dim() > 1:
                t.copy_(n * (1.0 / t[0].numel()) ** 0.5)
            elif _is_bn(model, name):
                t.copy_(1 + 0.1 * n if name.endswith("weight") else 0.1 * n)
            else:
                t.copy_(0.01 * n)
    return model.to(DTYPE).eval()


def _is_bn(model, name: str) -> bool:
    return isinstance(model.get_submodule(name.rsplit(".", 1)[0]), torch.nn.BatchNorm2d)


def fixed_images(size: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(len(LABELS), 3, size, size, generator=torch.Generator().manual_seed(seed)).to(DTYPE)


def ours(method: str, backbone: str) -> torch.nn.Module:
    if method == "acol":
        from ornet.models.acol_network import AcolModel

        return fixed_weights(AcolModel(backbone, K, erase_threshold=ACOL_THRESHOLD))
    from ornet.models.spg_network import SpgModel

    return fixed_weights(SpgModel(backbone, K))


def oracle_name(method: str, backbone: str, key: str) -> str:
    """wsolevaluation's name of ornet's state-dict `key` (wsol/resnet.py, wsol/vgg.py)."""
    heads = {"head_a.": "classifier_A.", "head_b.": "classifier_B.", "b1.": "SPG_B_1a.", "b2.": "SPG_B_2a.",
             "b_shared.": "SPG_B_shared.", "c.": "SPG_C."}
    heads["classifier."] = "SPG_A4." if backbone.startswith("resnet") else "SPG_A_4."
    for ours_prefix, theirs in heads.items():
        if key.startswith(ours_prefix):
            return theirs + key[len(ours_prefix):]
    if backbone.startswith("resnet"):
        key = re.sub(r"^stem\.", "", key).replace("rest.", "", 1)
        if method == "spg" and key.startswith("layer3."):
            block, tail = key[len("layer3."):].split(".", 1)
            return f"SPG_A1.0.{tail}" if block == "0" else f"SPG_A2.{int(block) - 1}.{tail}"
        return key
    m = re.match(r"^(?:stem|rest\.body)\.(\d+)\.(.*)$", key)
    if m:  # torchvision's indices of `features` (kept as names by ornet's slices)
        i, tail = int(m.group(1)), m.group(2)
        if method == "spg" and i >= 17:
            return f"SPG_A_1.{i - 17}.{tail}" if i < 23 else f"SPG_A_2.{i - 24}.{tail}"
        return f"features.{i}.{tail}"
    return key.replace("rest.a3.", "SPG_A_3.")


def acol_values(model, images, labels) -> dict:
    """The summary the tests compare: both heads' logits, the erased features, the combined map."""
    with torch.no_grad():
        out = model(images, labels)
        cams = model.combined_map(out, labels)[:, 0]
    return summary(logits=out.logits, logits_b=out.logits_b, erased=out.erased, cams=cams,
                   features=model.features(images))


def spg_values(model, images, labels) -> dict:
    """The summary the tests compare: logits, branch maps, attentions, the three masks, the losses."""
    from ornet.methods.spg.spg_losses import guidance, spg_losses

    size = tuple(images.shape[-2:])
    with torch.no_grad():
        out = model(images)
        g = guidance(out, labels, size, SPG_THRESHOLDS)
        losses = spg_losses(out, labels, size, SPG_THRESHOLDS)
        cams = model.predict(images, labels)[0][:, 0]
    return spg_summary(out.logits, out.logits_b1, out.logits_b2, out.logits_c, g, losses, cams)


def summary(logits, logits_b, erased, cams, features) -> dict:
    kept = (erased != 0).any(dim=1)  # positions head B still sees
    return {"logits": _list(logits), "logits_b": _list(logits_b),
            "erased_positions": [int((~k).sum()) for k in kept], "erased_sum": _sum(erased),
            "erased_abs_sum": _sum(erased.abs()), "features_sum": _sum(features),
            "cams_sum": _sum(cams), "cams_corners": _list(cams[:, [0, -1], [0, -1]])}


def spg_summary(logits, b1, b2, c, g: dict, losses: dict, cams) -> dict:
    masks = {k: [[int((m == v).sum()) for v in (1.0, 0.0, 255.0)] for m in g[k]] for k in ("mask_b2", "mask_b1", "mask_c")}
    return {"logits": _list(logits), "b1_sum": _sum(b1), "b2_sum": _sum(b2), "c_sum": _sum(c),
            "attention_sum": _sum(g["attention"]), "fused_sum": _sum(g["fused_attention"]),
            "mask_counts": masks, "losses": {k: float(v) for k, v in losses.items()},
            "cams_sum": _sum(cams), "cams_corners": _list(cams[:, [0, -1], [0, -1]])}


def fallback_attention() -> torch.Tensor:
    """A 2 x 1 x 224 x 224 map with fewer than 30 pixels above 0.999 in image 0 (``mask_fg``'s
    fallback to 0.7 x the maximum) and many in image 1."""
    g = torch.Generator().manual_seed(2)
    a = torch.rand(2, 1, 224, 224, generator=g)
    a[0] = a[0] ** 50
    return a


def _sum(t) -> float:
    return float(t.detach().double().sum())


def _list(t) -> list:
    return [float(v) for v in t.detach().flatten()]


# ------------------------------------------------------------------------ the oracle


def oracle_values(wsol, method: str, backbone: str, model, images, labels) -> dict:
    import wsol.method.spg as ospg
    from wsol.method.util import normalize_tensor

    net = getattr(wsol, backbone)(architecture_type=method, pretrained=False, num_classes=K,
                                  large_feature_map=False, acol_drop_threshold=ACOL_THRESHOLD)
    state = {oracle_name(method, backbone, k): v for k, v in model.state_dict().items()}
    net.to(DTYPE).load_state_dict(state, strict=True)
    net.eval()
    with torch.no_grad():
        if method == "acol":
            seen: dict = {}

            def keep(key, inputs) -> None:  # returns None: a hook's value would replace the head's output
                seen.setdefault(key, inputs[0])

            hooks = [net.classifier_A.register_forward_hook(lambda m, i, o: keep("features", i)),
                     net.classifier_B.register_forward_hook(lambda m, i, o: keep("erased", i))]
            out = net(images, labels)
            cams = net(images, labels, return_cam=True)
            for h in hooks:
                h.remove()
            return summary(out["logits"], out["logit_b"], seen["erased"], cams, seen["features"])
        out = net(images, labels)
        up = torch.nn.Upsample(size=(224, 224), mode="bilinear")
        b2i = torch.sigmoid(up(out["logits_b2"]))
        (h1, l1), (h2, l2), (h3, l3) = SPG_THRESHOLDS
        g = {"attention": out["attention"], "fused_attention": out["fused_attention"],
             "mask_b2": ospg.get_mask(out["attention"], h1, l1), "mask_b1": ospg.get_mask(b2i, h2, l2),
             "mask_c": ospg.get_mask(out["fused_attention"], h3, l3)}
        bce = torch.nn.BCEWithLogitsLoss()
        losses = {"loss": ospg.get_loss(out, labels, spg_thresholds=SPG_THRESHOLDS),
                  "loss_cls": torch.nn.CrossEntropyLoss()(out["logits"], labels),
                  "loss_b2": ospg.loss_attention(bce, up(out["logits_b2"]).squeeze(1), g["mask_b2"]),
                  "loss_b1": ospg.loss_attention(bce, up(out["logits_b1"]).squeeze(1), g["mask_b1"]),
                  "loss_c": ospg.loss_attention(bce, up(out["logits_c"]).squeeze(1), g["mask_c"])}
        cams = net(images, labels, return_cam=True)
        cams = normalize_tensor(cams.unsqueeze(1))[:, 0]  # wsolevaluation's normalize_scoremap, per image
    return spg_summary(out["logits"], out["logits_b1"], out["logits_b2"], out["logits_c"], g, losses, cams)


def fallback_counts(get_mask) -> list:
    mask = get_mask(fallback_attention(), 0.999, 0.01)
    return [[int((m == v).sum()) for v in (1.0, 0.0, 255.0)] for m in mask]


def largest_difference(a, b) -> float:
    if isinstance(a, dict):
        return max(largest_difference(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return max(largest_difference(x, y) for x, y in zip(a, b))
    return abs(float(a) - float(b))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wsolevaluation", required=True, type=Path, help="a checkout of clovaai/wsolevaluation")
    args = parser.parse_args(argv)
    root = args.wsolevaluation.resolve()
    if not (root / "wsol" / "method" / "spg.py").is_file():
        parser.error(f"{root} is not a wsolevaluation checkout (no wsol/method/spg.py)")
    sys.path.insert(0, str(root))
    import wsol
    from wsol.method.spg import get_mask

    from ornet.methods.spg.spg_losses import guidance_mask

    torch.set_num_threads(max(1, torch.get_num_threads()))
    labels = torch.tensor(LABELS)
    for method, backbone in CASES:
        model = ours(method, backbone)
        images = fixed_images(SIZES[method])
        mine = (acol_values if method == "acol" else spg_values)(model, images, labels)
        theirs = oracle_values(wsol, method, backbone, model, images, labels)
        print(f"# {method} {backbone}: largest |ornet - oracle| = {largest_difference(theirs, mine):.3g}")
        print(f"ORACLE[{method!r}, {backbone!r}] = {json.dumps(theirs)}")
    mine = [[int((m == v).sum()) for v in (1.0, 0.0, 255.0)] for m in guidance_mask(fallback_attention(), 0.999, 0.01)]
    theirs = fallback_counts(get_mask)
    print(f"# mask_fg fallback: ornet {mine}")
    print(f"ORACLE_FALLBACK = {json.dumps(theirs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
