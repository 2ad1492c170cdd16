"""HaS, CutMix and ADL against clovaai/wsolevaluation's own code, run as an oracle (issue 29).

Needs a checkout of github.com/clovaai/wsolevaluation outside this repository (nothing of it is
copied here; commit 96f4b88 was used). On fixed seeded inputs and weights it runs the oracle's
``wsol/method/has.py``, ``wsol/method/cutmix.py`` (+ the loss of ``main.py _wsol_training``),
``wsol/method/adl.py`` and the ADL networks of ``wsol/resnet.py`` / ``wsol/vgg.py``, and prints
the reference values that tests/test_zoo_parity.py embeds (a Python literal), with ornet's own
values' largest difference from them:

    python benchmarks/zoo_oracle.py --wsolevaluation /work/oracles/wsolevaluation

The random draws are fixed, not reproduced: HaS's patch draws are fed to the oracle's
``random.random``; CutMix's lambda, permutation and box centre to ``np.random.beta``,
``torch.randperm`` and ``np.random.randint``; ADL's per-layer draw comes from the same
``torch.manual_seed`` on both sides (both draw ``torch.rand([])`` from the CPU generator).

Two shims keep the oracle's code as it is on a current, CPU-only install: ``np.int`` (gone in
NumPy 1.24; ``rand_bbox`` uses it) is ``int`` while the oracle runs, and ``Tensor.cuda`` (cutmix
moves its permutation to the GPU) returns the tensor itself.

The input builders (`has_inputs`, `cutmix_inputs`, `adl_input`, `fixed_weights`, `adl_network_input`)
are imported by the test, so both sides see the same tensors; they import neither the oracle nor ornet.
The ADL networks run in float64 (`DTYPE`; weights drawn in float32 and widened): their float32 logits
(hundreds) move by more than 1e-6 between CPUs' kernels, in float64 by about 1e-12.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import pprint
import random
import sys
from pathlib import Path

import numpy as np
import torch

HAS_CASES = [(2, 12, 5, 0.5, 0), (2, 16, 4, 0.3, 1)]
"""(batch, side, grid_size, drop_rate, seed): square images, the oracle's loops are square-only."""
CUTMIX_CASES = [((4, 3, 16, 16), 0.37, [2, 0, 3, 1], (3, 11)), ((3, 2, 16, 24), 0.8, [1, 2, 0], (12, 2))]
"""(shape, lambda, permutation, (row, column) centre); 16 x 24: rows and columns are not swapped."""
ADL_SEEDS = [0, 1, 2, 3, 4, 5]
ADL_NETWORKS = [("resnet50", 64), ("vgg16", 32)]


def has_inputs(batch: int, side: int, grid_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(images B x 3 x side x side float64 without zeros, u: B x rows x cols patch draws)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand((batch, 3, side, side), generator=g, dtype=torch.float64) + 0.5
    cells = -(-side // grid_size)
    return images, torch.rand((batch, cells, cells), generator=g)


def cutmix_inputs(shape: tuple[int, ...], classes: int = 5, seed: int = 0):
    """(images float64, labels, logits float32) of a batch of `shape`."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(shape, generator=g, dtype=torch.float64)
    labels = torch.randint(classes, (shape[0],), generator=g)
    logits = torch.randn((shape[0], classes), generator=g)
    return images, labels, logits


DTYPE = torch.float64  # the ADL networks' (module docstring)


def adl_network_input(side: int) -> torch.Tensor:
    """The ADL networks' 2 x 3 x side x side images, in `DTYPE`."""
    return torch.randn((2, 3, side, side), generator=torch.Generator().manual_seed(3)).to(DTYPE)


def adl_input(seed: int = 0) -> torch.Tensor:
    """2 x 4 x 3 x 3 features, mostly positive (as after a ReLU) with a few negatives."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn((2, 4, 3, 3), generator=g) + 0.5


def fixed_weights(model: torch.nn.Module, seed: int = 0) -> None:
    """Fill every float tensor of the state dict from a seeded generator, in sorted key order:
    weights N(0, 2 / fan_in), biases and BN shifts N(0, 0.1^2), BN scales and variances near 1."""
    g = torch.Generator().manual_seed(seed)
    state = model.state_dict()
    with torch.no_grad():
        for key in sorted(state):
            t = state[key]
            if not t.is_floating_point():
                continue
            noise = torch.randn(t.shape, generator=g, dtype=torch.float32)
            if key.endswith("running_var"):
                value = 1.0 + 0.1 * noise.abs()
            elif t.dim() > 1:
                value = noise * math.sqrt(2.0 / (t[0].numel()))
            elif key.endswith("weight"):
                value = 1.0 + 0.1 * noise
            else:
                value = 0.1 * noise
            t.copy_(value.to(t.dtype))


@contextlib.contextmanager
def oracle_shims():
    """np.int and Tensor.cuda as the oracle's code expects them (module docstring)."""
    had_int, cuda = hasattr(np, "int"), torch.Tensor.cuda
    np.int = int  # type: ignore[attr-defined]
    torch.Tensor.cuda = lambda self, *a, **k: self  # type: ignore[method-assign]
    try:
        yield
    finally:
        torch.Tensor.cuda = cuda  # type: ignore[method-assign]
        if not had_int:
            del np.int


def oracle_has(wsol) -> list[dict]:
    from wsol.method.has import has

    out = []
    for batch, side, grid, rate, seed in HAS_CASES:
        images, u = has_inputs(batch, side, grid, seed)
        draws = iter(u.flatten().tolist())  # the oracle's order: image, then row, then column
        saved, random.random = random.random, lambda draws=draws: next(draws)
        try:
            hidden = has(images.clone(), grid, rate)
        finally:
            random.random = saved
        zero = (hidden == 0).all(dim=1)  # B x H x W: the pixels the oracle hid
        rows = [["".join("1" if v else "0" for v in row) for row in img.tolist()] for img in zero]
        out.append({"case": (batch, side, grid, rate, seed), "hidden": rows})
    return out


def oracle_cutmix(wsol) -> list[dict]:
    import importlib

    module = importlib.import_module("wsol.method.cutmix")  # the package's `cutmix` is the function

    out = []
    for shape, lam, perm, centre in CUTMIX_CASES:
        images, labels, logits = cutmix_inputs(shape)
        centres = iter(centre)
        saved = (np.random.beta, np.random.randint, torch.randperm)
        np.random.beta = lambda a, b, lam=lam: lam
        np.random.randint = lambda n, it=centres: next(it)
        torch.randperm = lambda n, perm=perm: torch.tensor(perm)
        try:
            with oracle_shims():
                box = module.rand_bbox(images.size(), lam)
                again = iter(centre)  # the same centre again, for cutmix's own rand_bbox call
                np.random.randint = lambda n, it=again: next(it)
                mixed, target_a, target_b, kept = module.cutmix(images.clone(), labels, 1.0)
        finally:
            np.random.beta, np.random.randint, torch.randperm = saved
        ce = torch.nn.CrossEntropyLoss()  # main.py _wsol_training's loss on the mixed batch
        loss = ce(logits, target_a) * kept + ce(logits, target_b) * (1.0 - kept)
        pixels = torch.arange(mixed[0].numel(), dtype=torch.float64).view(mixed[0].shape)
        out.append({"case": (shape, lam, perm, centre), "box": tuple(int(v) for v in box),
                    "kept": float(kept), "target_b": target_b.tolist(), "loss": float(loss),
                    "sums": mixed.flatten(1).sum(1).tolist(),
                    "weighted_sums": (mixed * pixels).flatten(1).sum(1).tolist()})
    return out


def oracle_adl_layer(wsol) -> dict:
    from wsol.method.adl import ADL

    x = adl_input()
    layer = ADL(0.75, 0.9)
    attention = torch.mean(x, dim=1, keepdim=True)
    ref = {"importance": torch.sigmoid(attention).flatten().tolist(),
           "mask": layer._drop_mask(attention).flatten().tolist(), "train": {}}
    layer.eval()
    ref["eval_equal"] = bool(torch.equal(layer(x), x))
    layer.train()
    for seed in ADL_SEEDS:
        torch.manual_seed(seed)
        ref["train"][seed] = layer(x).flatten().tolist()
    return ref


def _to_oracle_state(model, arch: str, oracle) -> dict:
    """ornet's state dict under the oracle's names (through the torchvision names it records)."""
    from wsol.resnet import align_layer
    from wsol.vgg import adjust_pretrained_model

    extra = {"rest.conv6.weight": "conv6.weight", "rest.conv6.bias": "conv6.bias",
             "head.classifier.weight": "fc.weight", "head.classifier.bias": "fc.bias"}
    names = {**model.net.source_keys, **extra}
    state = {names[k]: v for k, v in model.net.state_dict().items()}
    if arch == "resnet50":
        return align_layer(state)
    return adjust_pretrained_model(state, oracle)


def oracle_adl_networks(wsol) -> dict:
    import wsol as package

    from ornet.models.adl_network import ADLModel  # ornet's network: its weights, the oracle's copy

    out = {}
    for arch, side in ADL_NETWORKS:
        model = ADLModel(arch, 3, drop_rate=0.75, drop_threshold=0.9)
        fixed_weights(model, 1)
        oracle = getattr(package, arch)("adl", num_classes=3, large_feature_map=False, pretrained=False,
                                        adl_drop_rate=0.75, adl_drop_threshold=0.9, acol_drop_threshold=0.7,
                                        dataset_name="CUB")
        model.to(DTYPE)
        oracle.to(DTYPE).load_state_dict(_to_oracle_state(model, arch, oracle), strict=True)
        x = adl_network_input(side)
        labels = torch.tensor([0, 2])
        oracle.eval()
        with torch.no_grad():
            logits = oracle(x)["logits"]
            cams = oracle(x, labels, return_cam=True).unsqueeze(1)
            lo = cams.flatten(1).amin(1).view(-1, 1, 1, 1)
            hi = cams.flatten(1).amax(1).view(-1, 1, 1, 1)
            ref = {"eval_logits": logits.tolist(), "maps": ((cams - lo) / (hi - lo)).flatten().tolist(),
                   "train_logits": {}}
            oracle.train()
            for seed in (0, 1):
                torch.manual_seed(seed)
                ref["train_logits"][seed] = oracle(x)["logits"].tolist()
        out[arch] = ref
    return out


def ornet_differences(ref: dict) -> dict:
    """ornet's own values against `ref`: the largest absolute difference of each check."""
    from ornet.methods.cutmix.box_mixing import (
        CutMixDraw,
        cut_box,
        cutmix_batch,
        mixed_cross_entropy,
    )
    from ornet.methods.has.hidden_patches import apply_hidden
    from ornet.models.adl_layer import ADL, adl_attention, drop_mask, importance_map
    from ornet.models.adl_network import ADLModel

    diff = {}
    for case in ref["has"]:
        batch, side, grid, rate, seed = case["case"]
        images, u = has_inputs(batch, side, grid, seed)
        hidden = (apply_hidden(images, u <= rate, grid) == 0).all(dim=1)
        want = torch.tensor([[[c == "1" for c in row] for row in img] for img in case["hidden"]])
        diff[f"has {case['case']}"] = int((hidden != want).sum())
    for case in ref["cutmix"]:
        shape, lam, perm, (row, col) = case["case"]
        images, labels, logits = cutmix_inputs(shape)
        box = cut_box(shape[2], shape[3], lam, row, col)
        mixed, labels_b, kept = cutmix_batch(images, labels, CutMixDraw(lam, torch.tensor(perm), box))
        loss = mixed_cross_entropy(logits, labels, labels_b, kept)
        pixels = torch.arange(mixed[0].numel(), dtype=torch.float64).view(mixed[0].shape)
        diff[f"cutmix {shape}"] = max(
            float(box != case["box"]), float(labels_b.tolist() != case["target_b"]), abs(kept - case["kept"]),
            abs(float(loss) - case["loss"]),
            max(abs(a - b) for a, b in zip(mixed.flatten(1).sum(1).tolist(), case["sums"])),
            max(abs(a - b) for a, b in zip((mixed * pixels).flatten(1).sum(1).tolist(), case["weighted_sums"])))
    x, layer, r = adl_input(), ADL(0.75, 0.9), ref["adl_layer"]
    a = adl_attention(x)
    d = [(importance_map(a).flatten() - torch.tensor(r["importance"])).abs().max(),
         (drop_mask(a, 0.9).flatten() - torch.tensor(r["mask"])).abs().max()]
    for seed, values in r["train"].items():
        torch.manual_seed(seed)
        d.append((layer(x).flatten() - torch.tensor(values)).abs().max())
    diff["adl layer"] = float(max(d))
    for arch, side in ADL_NETWORKS:
        r = ref["adl_networks"][arch]
        model = ADLModel(arch, 3, drop_rate=0.75, drop_threshold=0.9)
        fixed_weights(model, 1)
        model.to(DTYPE)
        x = adl_network_input(side)
        model.eval()
        with torch.no_grad():
            maps, logits = model.predict(x, torch.tensor([0, 2]))
            d = [(logits - torch.tensor(r["eval_logits"], dtype=DTYPE)).abs().max(),
                 (maps.flatten() - torch.tensor(r["maps"], dtype=DTYPE)).abs().max()]
            model.train()
            for seed, values in r["train_logits"].items():
                torch.manual_seed(seed)
                d.append((model(x) - torch.tensor(values, dtype=DTYPE)).abs().max())
        diff[f"adl {arch}"] = float(max(d))
    return diff


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wsolevaluation", required=True, type=Path, help="checkout of clovaai/wsolevaluation")
    args = parser.parse_args(argv)
    root = args.wsolevaluation.resolve()
    if not (root / "wsol" / "method" / "has.py").is_file():
        parser.error(f"{root} is not a wsolevaluation checkout (no wsol/method/has.py)")
    sys.path.insert(0, str(root))
    import wsol

    torch.set_num_threads(1)
    ref = {"has": oracle_has(wsol), "cutmix": oracle_cutmix(wsol), "adl_layer": oracle_adl_layer(wsol),
           "adl_networks": oracle_adl_networks(wsol)}
    print("REFERENCE = " + pprint.pformat(ref, width=110, compact=True))
    print("# ornet's largest difference from the oracle, per check:")
    for key, value in ornet_differences(ref).items():
        print(f"#   {key}: {value:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
