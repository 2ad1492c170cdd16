"""The release protocol's pass: a model over one split, scored as the ORNet release scores it.

The geometry is `ornet.localization.release_rule` (numpy); this module runs the model over a
split through a Lightning `Trainer` (`split_runner`, like the wsolevaluation pass) and keeps,
per image, the best IoU at each of the release's thresholds, whether its class is top-1 / top-5
and the box, gathered across processes under DDP. The threshold is chosen on the evaluated split
itself, as the release does, and `metrics.json` says so (`threshold_split`, `protocol_note`).
The entry that uses it is `release_protocol.Release`.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from ..errors import OrnetError
from ..localization.release_rule import image_scores, release_ground_truth, release_thresholds
from .outputs import EvalResult
from .release_protocol import ReleaseResult
from .split_runner import SplitData, eval_trainer

_STATES = ("index", "label", "pred", "score", "top1", "top5", "iou", "boxes")


class _PerImage(Metric):
    """Per-image release scores, concatenated across processes."""

    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        for name in _STATES:
            self.add_state(name, [], dist_reduce_fx="cat")

    def update(self, **values: torch.Tensor) -> None:
        for name in _STATES:
            getattr(self, name).append(values[name].to(self.device))

    def compute(self) -> dict[str, np.ndarray]:
        return {name: dim_zero_cat(getattr(self, name)).cpu().numpy() for name in _STATES}


class ReleasePass(L.LightningModule):
    """One pass of a model with ``predict(images, labels) -> (maps, logits)`` over a split.

    Maps stay at the network's resolution (B x 1 x h x w, in [0, 1]); the ground truth is
    rebuilt from each record's original boxes and size (unclipped, `release_ground_truth`).
    """

    def __init__(self, model: torch.nn.Module, records, resize: int, crop: int,
                 thresholds: np.ndarray, scoremap_dir: Path | None = None):
        super().__init__()
        self.model = model
        self.records = list(records)
        self.positions = {r.image_id: i for i, r in enumerate(self.records)}
        self.resize, self.crop = int(resize), int(crop)
        self.thresholds = thresholds
        self.scores = _PerImage()
        self.scoremap_dir = scoremap_dir
        self.result: dict[str, np.ndarray] | None = None

    def test_step(self, batch, batch_idx: int) -> None:
        maps, logits = self.model.predict(batch.images, batch.labels)
        maps, logits = maps.float(), logits.float()
        if maps.ndim != 4 or maps.shape[1] != 1:
            raise OrnetError(f"eval.protocol release needs B x 1 x h x w maps, got {tuple(maps.shape)}")
        size = tuple(batch.images.shape[-2:])
        raw = maps[:, 0].detach().cpu().numpy()
        if not np.isfinite(raw).all() or raw.min() < 0 or raw.max() > 1:
            raise OrnetError("eval.protocol release thresholds the map as it is: maps must be finite and in [0, 1]")
        boxes, ious, index = [], [], []
        for m, image_id, (height, width) in zip(raw, batch.image_ids, batch.orig_sizes.tolist()):
            pos = self.positions[image_id]
            gt = release_ground_truth(self.records[pos].boxes, width, height, self.resize, self.crop)
            b, iou = image_scores(m, gt, size, self.thresholds)
            boxes.append(b)
            ious.append(iou)
            index.append(pos)
        labels = batch.labels.to(logits.device)
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        probs = logits.softmax(dim=1)
        score, pred = probs.max(dim=1)
        self.scores.update(index=torch.tensor(index, dtype=torch.long),
                           label=labels.cpu(), pred=pred.cpu(), score=score.cpu(),
                           top1=(top[:, 0] == labels).cpu(), top5=(top == labels[:, None]).any(dim=1).cpu(),
                           iou=torch.from_numpy(np.stack(ious)),
                           boxes=torch.from_numpy(np.stack(boxes).astype(np.float32)))
        if self.scoremap_dir is not None:
            self._save(maps, size, batch.image_ids)

    def _save(self, maps: torch.Tensor, size, image_ids) -> None:
        """wsolevaluation's layout: <dir>/<image_id>.npy, the map resized to the input, not normalised."""
        from ..localization.metrics import prepare_maps

        for m, image_id in zip(prepare_maps(maps, size, "none"), image_ids):
            path = self.scoremap_dir / f"{image_id}.npy"
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, m.astype(np.float32))

    def on_test_epoch_end(self) -> None:
        self.result = self.scores.compute() if self.scores.update_called else None


def evaluate_release(model: torch.nn.Module, datamodule, cfg, split: str = "test", quiet: bool = False,
                     scoremap_dir: str | Path | None = None) -> EvalResult:
    """`EvalResult` of `model` on `split` under the release's protocol."""
    from ..training.pipeline import quiet_lightning_warnings

    quiet_lightning_warnings()
    if not getattr(datamodule.index, "has_boxes", True):
        raise OrnetError("eval.protocol release scores boxes, and this dataset has none; "
                         "use eval.protocol wsolevaluation (classification only)")
    model.eval()
    ds = datamodule.dataset(split, train_transform=False)
    d = datamodule.cfg
    thresholds = release_thresholds()
    module = ReleasePass(model, ds.records, d.resize, d.crop, thresholds,
                         None if scoremap_dir is None else Path(scoremap_dir))
    trainer = eval_trainer(cfg, quiet)
    trainer.test(module, datamodule=SplitData(ds, d.eval_batch_size, d.num_workers), verbose=False)
    if module.result is None or len(module.result["index"]) == 0:
        raise OrnetError(f"the {split} split gave no image to evaluate (check trainer.limit_test_batches)")
    r = module.result
    order = np.argsort(r["index"], kind="stable")
    r = {k: v[order] for k, v in r.items()}
    result = ReleaseResult(thresholds=thresholds, iou=r["iou"], top1=r["top1"].astype(bool), top5=r["top5"].astype(bool))
    index = result.choose()
    metrics = result.summarize(index, split=split)
    metrics["split"] = split
    rows = []
    for j in range(result.num_images):
        iou = float(r["iou"][j, index])
        x0, y0, x1, y1 = (round(float(v), 4) for v in r["boxes"][j, index])
        rows.append({"image_id": ds.records[int(r["index"][j])].image_id, "label": int(r["label"][j]),
                     "pred": int(r["pred"][j]), "score": round(float(r["score"][j]), 6),
                     "x0": x0, "y0": y0, "x1": x1, "y1": y1, "iou": round(iou, 6), "correct": int(iou > 0.5)})
    return EvalResult(metrics=metrics, rows=rows, curves=result.curves(index, split))
