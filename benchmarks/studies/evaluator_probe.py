"""What the frozen evaluator of a finished ORNet run thinks of masked images: does stage 2's signal
point at the object? On the test split, the evaluator's cross entropy and the share of images
whose true class gets probability > 0.5, on the evaluator's input I_e times

- 1 (the whole image), the GT mask, 1 - GT mask (background only), 0 (grey: nothing),
- ORNet's map and 1 - the map (upsampled as the run's stage 2 did, `method.mask_upsample`),

and the mean min-max-normalised map on the object's and on the background's pixels.

    .venv/bin/python benchmarks/studies/evaluator_probe.py RUN --data-root DIR [--split test]

RUN is an `ornet train` folder with config.yaml and `checkpoints/refine.ckpt` (the map and the
evaluator, loaded as the run's own evaluation does: `training.pipeline.final_model`); the
dataset needs masks (the realistic sets and the synthetic set have them). Prints a table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F


def probe(run: Path, data_root: str, split: str) -> dict[str, tuple[float, float]]:
    import ornet

    # no public names: the stage-2 batches, its mask upsampling and the refine checkpoint's model
    from ornet.data.datamodule import WSOLDataModule
    from ornet.models.ornet_network import upsample_mask
    from ornet.models.weights_spec import model_normalizations
    from ornet.training.pipeline import final_model

    cfg = ornet.load_config(run / "config.yaml", {"data.root": data_root})
    dm = WSOLDataModule(cfg.data, normalization=model_normalizations(cfg.model)[0])
    model = final_model(cfg, "refine", run, dm.num_classes)
    mode = cfg.method.mask_upsample
    ce: dict[str, list[torch.Tensor]] = {}
    inside, outside = [], []
    with torch.no_grad():
        for batch in dm.loader(split):
            if batch.masks is None:
                raise SystemExit(f"{data_root}: the {split} split has no masks")
            x, y = batch.images, batch.labels
            p_a = model.maps(x).p_a
            gt = (batch.masks > 0.5).float()
            for name, mask in (("whole image", torch.ones_like(gt)), ("GT mask", gt), ("1 - GT mask", 1 - gt),
                               ("grey (0)", torch.zeros_like(gt)), ("ORNet map", p_a), ("1 - ORNet map", 1 - p_a)):
                logits = model.evaluate_masked(x, mask, mode)  # as stage 2 feeds the evaluator
                ce.setdefault(name, []).append(F.cross_entropy(logits, y, reduction="none"))
            p = upsample_mask(p_a, x.shape[-2:], mode)
            lo, hi = p.amin((2, 3), keepdim=True), p.amax((2, 3), keepdim=True)
            pn = (p - lo) / (hi - lo).clamp_min(1e-6)
            inside.append((pn * gt).sum((1, 2, 3)) / gt.sum((1, 2, 3)).clamp_min(1))
            outside.append((pn * (1 - gt)).sum((1, 2, 3)) / (1 - gt).sum((1, 2, 3)).clamp_min(1))
    out = {k: (float(torch.cat(v).mean()), float((torch.exp(-torch.cat(v)) > 0.5).float().mean()))
           for k, v in ce.items()}
    out["map on object / background"] = (float(torch.cat(inside).mean()), float(torch.cat(outside).mean()))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path)
    p.add_argument("--data-root", required=True)
    p.add_argument("--split", default="test")
    args = p.parse_args(argv)
    if not all((args.run / f).is_file() for f in ("config.yaml", "checkpoints/refine.ckpt")):
        p.error(f"{args.run}: needs config.yaml and checkpoints/refine.ckpt (a finished ORNet run folder)")
    rows = probe(args.run, args.data_root, args.split)
    print(f"| evaluator input | cross entropy | P(true class) > 0.5 |   ({args.run}, {args.split})")
    print("| --- | --- | --- |")
    for k, (a, b) in rows.items():
        if k.startswith("map on"):
            print(f"| mean normalised map on the object / on the background | {a:.3f} | {b:.3f} |")
        else:
            print(f"| I_e x {k} | {a:.3f} | {100 * b:.1f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
