"""A threshold study on a trained run: how box accuracy depends on the map threshold.

    ornet synth data/synth && ornet train --config demo --data.root data/synth --out runs/demo
    python examples/threshold_study.py runs/demo --out study/

The run's model (``ornet.load_model``) maps every image of the validation and test splits of
the run's own dataset (its config.yaml, read with ``ornet.load_config``); a streaming
``ornet.BoxAccuracySweep`` counts, at every threshold, which boxes hit a ground-truth box. The
threshold chosen on val (the protocol) is compared with the best one on test (an oracle, what
"MaxBoxAcc" reports) and the one the run stored, and the accuracy curves are drawn with
``ornet.threshold_curve``. Maps and boxes are taken on each WHOLE image at its original size
(the model's inference preprocessing), not through the benchmark's centre crop, so the
numbers differ a little from ``ornet evaluate``'s.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import ornet


def sweep_split(loc: ornet.Localizer, records, batch_size: int, box_mode: str) -> ornet.SweepResult:
    """Box accuracy counters over `records` at every threshold (maps resized to each image)."""
    sweep = ornet.BoxAccuracySweep(box_mode=box_mode, normalize=loc.normalize)
    for start in range(0, len(records), batch_size):
        batch = records[start:start + batch_size]
        pred = loc.predict([r.path for r in batch])
        for j, r in enumerate(batch):  # one update per image: each has its own size
            sweep.update(pred.maps[j:j + 1], [torch.tensor(r.boxes, dtype=torch.float64)],
                         image_size=pred.sizes[j], labels=torch.tensor([r.label]), logits=pred.logits[j:j + 1])
    return sweep.compute()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="a run folder written by `ornet train`")
    p.add_argument("--out", type=Path, default=Path("study"))
    p.add_argument("--box-mode", choices=("all", "largest", "multi"), default=None, help="default: the model's")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default=None)
    args = p.parse_args(argv)

    loc = ornet.load_model(args.run, device=args.device)
    cfg = ornet.load_config(args.run / "config.yaml")
    index = ornet.read_dataset(cfg.data, strict=True)
    box_mode = args.box_mode or loc.box_mode
    val = sweep_split(loc, index.split("val"), args.batch_size, box_mode)
    test = sweep_split(loc, index.split("test"), args.batch_size, box_mode)

    chosen = ornet.choose_threshold(val)  # GT-known Loc on val: the protocol
    oracle = ornet.choose_threshold(test)
    stored = loc.threshold
    rows = {"chosen on val": ornet.summarize(test, chosen, threshold_split="val"),
            "best on test (oracle)": ornet.summarize(test, oracle, threshold_split="test")}
    if stored is not None:
        k = int(np.argmin(np.abs(test.thresholds - stored)))
        rows["stored in model.json"] = ornet.summarize(test, k, threshold_split="model")
    print(f"{'threshold':<22} {'value':>6} {'GT-known':>8} {'Top-1 Loc':>9} {'MaxBoxAccV2':>11}"
          f"   ({test.num_images} test images, box mode {box_mode})")
    for name, m in rows.items():
        print(f"{name:<22} {m['threshold']:6.2f} {m['gt_known_loc']:8.2f} {m['top1_loc']:9.2f} "
              f"{m['max_box_acc_v2']:11.2f}")

    curves = {f"{split} IoU >= 0.5": result.accuracy(box_mode, 50) for split, result in (("val", val), ("test", test))}
    curves["test IoU >= 0.7"] = test.accuracy(box_mode, 70)
    args.out.mkdir(parents=True, exist_ok=True)
    figure = ornet.threshold_curve(test.thresholds, curves, chosen, note="chosen on val",
                                   title=f"Box accuracy vs threshold ({loc.method}, box mode {box_mode})")
    Image.fromarray(figure).save(args.out / "threshold_curve.png")
    (args.out / "study.json").write_text(json.dumps({"box_mode": box_mode, "rows": rows, "val": val.to_dict(),
                                                      "test": test.to_dict()}, indent=1) + "\n")
    print("wrote", args.out / "threshold_curve.png", "and", args.out / "study.json")


if __name__ == "__main__":
    main()
