"""Evaluate a localization model over a split: the shared metrics, the threshold, per-image rows.

Used by `ornet train` (after the last stage) and `ornet evaluate`. Protocol (METHOD.md,
"Evaluation protocol and metrics"; wsolevaluation): the map threshold is chosen on the held-out
`val` split by GT-known Loc, then applied to the test split; `eval.threshold_split: test` chooses
it on the test split itself (the paper's practice) and the outputs say so.

Passes run through a Lightning `Trainer` with `cfg.trainer`'s accelerator, devices, strategy and
precision. Under DDP every process sees a disjoint share of the split (no padding duplicates),
the metric states are summed across processes and the per-image rows gathered, so the numbers
equal a single-process run's. Only rank 0 should write files (`write_outputs`).
"""

from __future__ import annotations

import csv
import io
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from ..config.schema import EvalConfig, RunConfig
from ..errors import OrnetError
from ..localization.boxes import MODES, box_iou, level_boxes, map_levels, truncate_boxes
from ..localization.metrics import BoxAccuracySweep, PxAP, prepare_maps
from ..localization.sweep import SweepResult, choose_threshold, summarize
from ..runtime.atomic import write_npy_atomic
from .class_gate import choose_gate

ROW_FIELDS = ("image_id", "label", "pred", "score", "x0", "y0", "x1", "y1", "iou", "correct")
"""predictions.csv columns: true and top-1 predicted class index, the predicted class's softmax
score, the box at the chosen threshold (inclusive pixels of the evaluated crop), its best IoU
with a ground-truth box and whether that IoU passes the GT-known level."""


@dataclass
class PassResult:
    split: str
    sweep: SweepResult
    pxap: float | None = None
    rows: list[dict] | None = None
    classification: dict | None = None


@dataclass
class EvalResult:
    """What an evaluation produced; `write_outputs` turns it into files."""

    metrics: dict
    rows: list[dict] = field(default_factory=list)
    curves: dict = field(default_factory=dict)


class _Rows(Metric):
    """Per-image predictions at one threshold, gathered across processes (`cat`)."""

    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        for name in ("index", "label", "pred", "score", "box", "iou"):
            self.add_state(name, [], dist_reduce_fx="cat")

    def update(self, index, label, pred, score, box, iou) -> None:
        for name, value in (("index", index), ("label", label), ("pred", pred), ("score", score),
                            ("box", box), ("iou", iou)):
            getattr(self, name).append(value.to(self.device))

    def compute(self) -> dict[str, np.ndarray]:
        return {name: dim_zero_cat(getattr(self, name)).cpu().numpy()
                for name in ("index", "label", "pred", "score", "box", "iou")}


class _Classification(Metric):
    """Top-1 / top-5 classification counts (for datasets without boxes), summed across processes."""

    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        for name in ("top1", "top5", "total"):
            self.add_state(name, torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        k = min(5, logits.shape[1])
        top = logits.topk(k, dim=1).indices
        hit = top == labels.view(-1, 1)
        self.top1 += hit[:, 0].sum()
        self.top5 += hit.any(dim=1).sum()
        self.total += labels.numel()

    def compute(self) -> dict:
        n = int(self.total)
        return {"num_images": n, "top1_cls": 100.0 * int(self.top1) / max(n, 1),
                "top5_cls": 100.0 * int(self.top5) / max(n, 1)}


class LocalizationPass(L.LightningModule):
    """One pass of a model with `predict(images, labels) -> (maps, logits)` over a split."""

    def __init__(self, model: torch.nn.Module, eval_cfg: EvalConfig, image_ids: list[str],
                 with_masks: bool, threshold_index: int | None = None, scoremap_dir: Path | None = None,
                 with_boxes: bool = True):
        super().__init__()
        self.with_boxes = with_boxes
        self.classification = _Classification()
        self.model = model
        self.eval_cfg = eval_cfg
        e = eval_cfg
        self.sweep = BoxAccuracySweep(cam_curve_interval=e.cam_curve_interval, iou_thresholds=list(e.iou_thresholds),
                                      box_mode=e.box_mode, iou_strict=e.iou_strict, normalize=e.normalize)
        self.pxap = PxAP(cam_curve_interval=e.cam_curve_interval, normalize=e.normalize) if with_masks else None
        self.threshold_index = threshold_index
        self.rows = _Rows() if threshold_index is not None else None
        self.positions = {image_id: i for i, image_id in enumerate(image_ids)}
        self.scoremap_dir = None if scoremap_dir is None else Path(scoremap_dir)
        self.result: PassResult | None = None

    def test_step(self, batch, batch_idx: int) -> None:
        images, labels = batch.images, batch.labels
        maps, logits = self.model.predict(images, labels)
        maps, logits = maps.float(), logits.float()
        size = tuple(images.shape[-2:])
        self.classification.update(logits, labels)
        if not self.with_boxes:  # e.g. re-id sets: classification and maps only
            if self.scoremap_dir is not None:
                self._save_scoremaps(prepare_maps(maps, size, self.eval_cfg.normalize), batch.image_ids)
            return
        self.sweep.update(maps, batch.boxes, image_size=size, labels=labels, logits=logits)
        if self.pxap is not None and batch.masks is not None:
            self.pxap.update(maps, batch.masks, batch.ignores)
        if self.rows is not None or self.scoremap_dir is not None:
            arr = prepare_maps(maps, size, self.eval_cfg.normalize)
            if self.rows is not None:
                self._rows(arr, batch, logits)
            if self.scoremap_dir is not None:
                self._save_scoremaps(arr, batch.image_ids)

    def _rows(self, arr: np.ndarray, batch, logits: torch.Tensor) -> None:
        e = self.eval_cfg
        relative = e.normalize == "minmax"
        boxes, ious = [], []
        for m, gt in zip(arr, batch.boxes):
            values, levels = map_levels(m, self.sweep.thresholds, relative=relative)
            candidates = level_boxes(values, levels[self.threshold_index], e.box_mode)
            iou = box_iou(candidates, truncate_boxes(gt.detach().cpu().numpy())).max(axis=1)
            best = int(np.argmax(iou))  # multi: the region matching a GT box best (MaxBoxAccV2)
            boxes.append(candidates[best])
            ious.append(iou[best])
        probs = logits.softmax(dim=1)
        score, pred = probs.max(dim=1)
        index = torch.tensor([self.positions[i] for i in batch.image_ids], dtype=torch.long)
        self.rows.update(index, batch.labels.cpu(), pred.cpu(), score.cpu(),
                         torch.from_numpy(np.stack(boxes).astype(np.int64)),
                         torch.tensor(ious, dtype=torch.float64))

    def _save_scoremaps(self, arr: np.ndarray, image_ids: list[str]) -> None:
        """wsolevaluation's layout: `<dir>/<image_id>.npy`, 2-D float32 in [0, 1] at the crop size."""
        for m, image_id in zip(arr, image_ids):
            write_npy_atomic(self.scoremap_dir / f"{image_id}.npy", m.astype(np.float32))

    def on_test_epoch_end(self) -> None:
        if not self.with_boxes:
            self.result = PassResult(split="", sweep=None, classification=self.classification.compute())
            return
        sweep = self.sweep.compute()  # summed across processes
        pxap = float(self.pxap.compute()) if self.pxap is not None and self.pxap.update_called else None
        rows = self.rows.compute() if self.rows is not None else None
        self.result = PassResult(split="", sweep=sweep, pxap=pxap, rows=rows)


class _SplitData(L.LightningDataModule):
    """An evaluation loader over one split; under DDP each process gets a disjoint share."""

    def __init__(self, dataset, batch_size: int, num_workers: int):
        super().__init__()
        self.ds, self.batch_size, self.num_workers = dataset, batch_size, num_workers

    def test_dataloader(self) -> DataLoader:
        from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler

        from ..data.sample import collate

        sampler = None
        if self.trainer is not None and self.trainer.world_size > 1:
            sampler = UnrepeatedDistributedSampler(self.ds, num_replicas=self.trainer.world_size,
                                                   rank=self.trainer.global_rank, shuffle=False)
        return DataLoader(self.ds, batch_size=self.batch_size, shuffle=False, sampler=sampler,
                          num_workers=self.num_workers, collate_fn=collate)


def _trainer(cfg: RunConfig, quiet: bool) -> L.Trainer:
    from ..runtime.peers import strategy

    t = cfg.trainer
    return L.Trainer(accelerator=t.accelerator, devices=t.devices, strategy=strategy(t.strategy), precision=t.precision,
                     logger=False, enable_checkpointing=False, enable_model_summary=False,
                     enable_progress_bar=t.progress and not quiet and sys.stderr.isatty(),  # no \r in logs
                     use_distributed_sampler=False,
                     limit_test_batches=t.limit_test_batches, deterministic=t.deterministic)


def run_pass(trainer: L.Trainer, model: torch.nn.Module, datamodule, split: str, eval_cfg: EvalConfig,
             threshold_index: int | None = None, scoremap_dir: Path | None = None) -> PassResult:
    ds = datamodule.dataset(split, train_transform=False)
    with_masks = bool(getattr(datamodule.index, "has_masks", False))
    with_boxes = bool(getattr(datamodule.index, "has_boxes", True))
    module = LocalizationPass(model, eval_cfg, [r.image_id for r in ds.records], with_masks,
                              threshold_index, scoremap_dir, with_boxes=with_boxes)
    data = _SplitData(ds, datamodule.cfg.eval_batch_size, datamodule.cfg.num_workers)
    try:
        trainer.test(module, datamodule=data, verbose=False)
    except Exception as e:
        from ..runtime import peers

        if peers.is_peer_failure(e, trainer.world_size):
            raise peers.lost(f"while evaluating the {split} split", e) from None
        raise
    result = module.result
    if result is not None and result.sweep is None:
        if result.classification["num_images"] == 0:
            raise OrnetError(f"the {split} split gave no image to evaluate (check trainer.limit_test_batches)")
        result.split = split
        return result
    if result is None or result.sweep.num_images == 0:
        raise OrnetError(f"the {split} split gave no image to evaluate (check trainer.limit_test_batches)")
    result.split = split
    if result.rows is not None:
        result.rows = _row_dicts(result.rows, ds.records, eval_cfg)
    return result


def _row_dicts(rows: dict[str, np.ndarray], records, eval_cfg: EvalConfig) -> list[dict]:
    level = 0.5
    order = np.argsort(rows["index"], kind="stable")
    out = []
    for j in order:
        iou = float(rows["iou"][j])
        x0, y0, x1, y1 = (int(v) for v in rows["box"][j])
        out.append({"image_id": records[int(rows["index"][j])].image_id, "label": int(rows["label"][j]),
                    "pred": int(rows["pred"][j]), "score": round(float(rows["score"][j]), 6),
                    "x0": x0, "y0": y0, "x1": x1, "y1": y1, "iou": round(iou, 6),
                    "correct": int(iou > level if eval_cfg.iou_strict else iou >= level)})
    return out


def curves(result: PassResult, threshold_index: int) -> dict:
    """Box accuracy (percent) at every threshold, per box mode and IoU level, on one split."""
    s = result.sweep
    return {
        "split": result.split,
        "thresholds": [round(float(t), 6) for t in s.thresholds],
        "chosen_index": int(threshold_index),
        "chosen_threshold": float(s.thresholds[threshold_index]),
        "box_mode": s.box_mode,
        "iou_thresholds": list(s.iou_thresholds),
        "accuracy": {str(iou): [round(float(v), 4) for v in s.accuracy(s.box_mode, iou)] for iou in s.iou_thresholds},
        "accuracy_by_mode": {mode: {str(iou): [round(float(v), 4) for v in s.accuracy(mode, iou)]
                                    for iou in s.iou_thresholds} for mode in MODES},
        "num_images": int(s.num_images),
    }


def evaluate(model: torch.nn.Module, datamodule, cfg: RunConfig, split: str = "test", quiet: bool = False,
             scoremap_dir: str | Path | None = None, fallback_threshold_index: int | None = None) -> EvalResult:
    """Choose the threshold (cfg.eval.threshold_split), evaluate `split`, return metrics, rows, curves.

    ``cfg.eval.protocol == "release"`` hands over to `ornet.evaluation.release_protocol.evaluate_release`
    (the release's thresholds, geometry and IoU rule; threshold chosen on `split` itself).

    With threshold_split `val` and an empty val split, `fallback_threshold_index` (e.g. the one a
    trained model carries) is used and `threshold_split` reads `model`; without it it is an error.
    """
    from ..training.pipeline import quiet_lightning_warnings

    quiet_lightning_warnings()
    e = cfg.eval
    if e.protocol == "release":  # the release's own scoring (threshold on the evaluated split)
        from .release_protocol import evaluate_release

        return evaluate_release(model, datamodule, cfg, split, quiet=quiet, scoremap_dir=scoremap_dir)
    model.eval()
    trainer = _trainer(cfg, quiet)
    scoremap_dir = None if scoremap_dir is None else Path(scoremap_dir)
    if not getattr(datamodule.index, "has_boxes", True):
        # No boxes (the re-id sets): box metrics are skipped and the output says so.
        only = run_pass(trainer, model, datamodule, split, e, scoremap_dir=scoremap_dir)
        metrics = {**only.classification, "split": split, "threshold": None, "threshold_split": None,
                   "box_metrics": "skipped: the dataset has no boxes"}
        return EvalResult(metrics=metrics, rows=[], curves={})
    chooser: PassResult | None = None
    threshold_split = e.threshold_split
    index: int | None = None
    with_val = bool(datamodule.index.splits.get("val"))
    # the class gate is chosen where the threshold is (none without val: the model's own)
    gate_split = split if e.threshold_split != "val" else "val" if with_val else None
    gate = choose_gate(model, e.cam_gate, e.cam_gate_margin, gate_split,
                       lambda where: run_pass(trainer, model, datamodule, where, e))
    if e.threshold_split == "val" and split != "val":
        if with_val:
            chooser = gate.passes.get(gate.alpha) or run_pass(trainer, model, datamodule, "val", e)
            index = choose_threshold(chooser.sweep)
        elif fallback_threshold_index is not None:
            index, threshold_split = int(fallback_threshold_index), "model"
        else:
            raise OrnetError("eval.threshold_split is val but the val split is empty: set data.val_per_class > 0, "
                             "or eval.threshold_split=test to choose the threshold on the test split (and say so)")
    elif e.threshold_split == "val":
        threshold_split = "val"
    test = run_pass(trainer, model, datamodule, split, e, threshold_index=index, scoremap_dir=scoremap_dir)
    if index is None:  # chosen on the evaluated split itself: a second pass for the per-image rows
        chooser = test
        index = choose_threshold(test.sweep)
        test = run_pass(trainer, model, datamodule, split, e, threshold_index=index)
    metrics = summarize(test.sweep, index, threshold_split=threshold_split, pxap=test.pxap)
    metrics.update(split=split, protocol="wsolevaluation", **gate.metrics())
    for key, value in list(metrics.items()):
        if isinstance(value, float) and not math.isfinite(value):
            metrics[key] = None
    curve = curves(chooser if chooser is not None else test, index)
    if threshold_split == "model":
        curve["split"] = "model"
    return EvalResult(metrics=metrics, rows=test.rows or [], curves=curve)


def write_outputs(out: str | Path, result: EvalResult) -> None:
    """metrics.json, predictions.csv and curves.json in `out`, each written atomically."""
    from ..runtime.atomic import write_json_atomic, write_text_atomic

    out = Path(out)
    write_json_atomic(out / "metrics.json", result.metrics)
    if result.curves:  # none without boxes
        write_json_atomic(out / "curves.json", result.curves)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(ROW_FIELDS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(result.rows)
    write_text_atomic(out / "predictions.csv", buf.getvalue())
