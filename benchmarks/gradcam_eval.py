"""Grad-CAM (the `grad-cam` package, pytorch-grad-cam) on the evaluator of a finished ORNet run,
scored exactly like ORNet and CAM (threshold chosen on val, applied to test; ornet.evaluation.protocols).

    .venv/bin/python benchmarks/gradcam_eval.py RUN --out DIR [--target-layer PATH]

RUN is an `ornet train` folder whose `checkpoints/evaluator.ckpt` holds the stage-0 evaluator.
The target layer is a path inside the evaluator's `rest` (its last block when the path names a
sequence); by default Grad-CAM's documented choice for the family: the last block of `layer4` for
ResNets, the last conv stage (`bn2`, conv_head's batch norm + activation: the 1280-channel map
the classifier pools) for timm EfficientNets such as Lite0. Grad-CAM
explains the ground-truth class (the GT-known convention, as CAM is scored); Top-1 Loc uses the
evaluator's own prediction. Needs `pip install -e .[bench]` (grad-cam). Writes DIR/metrics.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch import Tensor, nn


class GradCAMLocalizer(nn.Module):
    """`predict(images, labels) -> (maps B x 1 x H x W in [0, 1], logits)` with pytorch-grad-cam."""

    def __init__(self, classifier: nn.Module, target_layer: nn.Module):
        super().__init__()
        from pytorch_grad_cam import GradCAM

        self.classifier = classifier
        self.cam = GradCAM(model=classifier, target_layers=[target_layer])

    def predict(self, images: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        # Lightning evaluates under inference mode; Grad-CAM needs gradients, so leave it and
        # copy the batch out of it (inference tensors cannot be saved for backward).
        with torch.inference_mode(False), torch.enable_grad():
            x = images.clone().requires_grad_(True)
            if labels is None:
                with torch.no_grad():
                    labels = self.classifier(x).argmax(1)
            targets = [ClassifierOutputTarget(int(c)) for c in labels.tolist()]
            maps = torch.from_numpy(self.cam(input_tensor=x, targets=targets)).unsqueeze(1)
            with torch.no_grad():
                logits = self.classifier(images.clone())
        return maps.float(), logits


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--target-layer", default=None,
                   help="path inside the evaluator's rest (default: layer4 for ResNets, bn2 for timm EfficientNets)")
    args = p.parse_args()

    import yaml

    from ornet.config.schema import RunConfig
    from ornet.data.datamodule import WSOLDataModule
    from ornet.evaluation.protocols import evaluate_split
    from ornet.methods.base import run_config
    from ornet.models.evaluator import build_evaluator
    from ornet.models.weights_spec import model_normalizations
    from ornet.training.pipeline import checkpoint_path, load_state

    start = time.perf_counter()
    cfg: RunConfig = run_config(yaml.safe_load((args.run / "config.yaml").read_text()))
    cfg.trainer.progress = False
    dm = WSOLDataModule(cfg.data, normalization=model_normalizations(cfg.model)[1])  # the evaluator's own
    classifier = build_evaluator(cfg.model.evaluator, dm.num_classes)
    classifier.load_state_dict(load_state(checkpoint_path(args.run, "evaluator")))
    classifier.eval()
    layer = args.target_layer or ("bn2" if hasattr(classifier.rest, "bn2") else "layer4")
    target = classifier.rest.get_submodule(layer)
    if isinstance(target, torch.nn.Sequential):
        target = target[-1]
    result = evaluate_split(GradCAMLocalizer(classifier, target), dm, cfg, split="test", quiet=True)
    # maps: what the scores are of (evaluate_split records the localizer's as the run's own)
    metrics = {**result.metrics, "maps": "gradcam", "method": f"gradcam ({cfg.model.evaluator}.{layer})",
               "source_run": str(args.run), "seconds_eval": round(time.perf_counter() - start, 2)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps({k: metrics[k] for k in ("gt_known_loc", "top1_loc", "max_box_acc_v2", "pxap")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
