"""The wsolevaluation pass: a model's maps over one split, swept over every threshold.

`LocalizationPass` feeds `localization.metrics.BoxAccuracySweep` (box accuracy per threshold, box
mode and IoU level, streamed: no map is kept), `PxAP` where the split has masks, top-1 / top-5
classification, and, at a given threshold, the per-image rows of predictions.csv. Metric states
are summed (rows gathered) across processes under DDP (`split_runner`). `run_pass` runs it once;
`curves` is curves.json of a pass. The protocol that uses it is `wsol_protocol.WsolEvaluation`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from ..config.schema import EvalConfig
from ..errors import OrnetError
from ..localization.boxes import MODES, box_iou, level_boxes, map_levels, truncate_boxes
from ..localization.metrics import BoxAccuracySweep, PxAP, prepare_maps
from ..localization.sweep import SweepResult
from ..models.fold_bn import FoldedCache
from ..runtime.atomic import write_npy_atomic
from .split_runner import SplitData


@dataclass
class PassResult:
    split: str
    sweep: SweepResult
    pxap: float | None = None
    rows: list[dict] | None = None
    classification: dict | None = None


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


def _box_sweep(e: EvalConfig) -> BoxAccuracySweep:
    return BoxAccuracySweep(cam_curve_interval=e.cam_curve_interval, iou_thresholds=list(e.iou_thresholds),
                            box_mode=e.box_mode, iou_strict=e.iou_strict, normalize=e.normalize)


def folded_model(model: torch.nn.Module, fold_bn: bool) -> FoldedCache:
    """The folded copy of `model` for evaluation passes (`trainer.fold_frozen_bn`; not for a model
    that says it is not `foldable`). One per evaluation, handed to each of its passes: the copy is
    built (and checked in float64, `fold_bn.folded_copy`) once, not once per pass."""
    return FoldedCache(model, enabled=fold_bn and getattr(model, "foldable", True), frozen_only=False)


class LocalizationPass(L.LightningModule):
    """One pass of a model with `predict(images, labels) -> (maps, logits)` over a split.

    With `gates` (ORNet's class-gate candidates), one box sweep per candidate from one forward per
    batch (`ORNet.predict_gates`), nothing else (no PxAP, rows or score maps): `results`."""

    def __init__(self, model: torch.nn.Module, eval_cfg: EvalConfig, image_ids: list[str],
                 with_masks: bool, threshold_index: int | None = None, scoremap_dir: Path | None = None,
                 with_boxes: bool = True, fold_bn: bool = False, gates: list[float] | None = None,
                 folded: FoldedCache | None = None):
        super().__init__()
        # `trainer.fold_frozen_bn`: a folded copy of the model, built at the first batch that needs it;
        # `folded` (`folded_model`) shares one between the passes of an evaluation
        self._folded = folded if folded is not None else folded_model(model, fold_bn)
        self.with_boxes = with_boxes
        self.classification = _Classification()
        self.model = model
        self.eval_cfg = eval_cfg
        e = eval_cfg
        self.sweep = _box_sweep(e)
        self.gates = None if gates is None else [float(a) for a in gates]
        self.gate_sweeps = torch.nn.ModuleList([_box_sweep(e) for _ in self.gates or []])
        self.results: dict[float, PassResult] = {}
        self.pxap = PxAP(cam_curve_interval=e.cam_curve_interval, normalize=e.normalize) if with_masks else None
        self.threshold_index = threshold_index
        self.rows = _Rows() if threshold_index is not None else None
        self.positions = {image_id: i for i, image_id in enumerate(image_ids)}
        self.scoremap_dir = None if scoremap_dir is None else Path(scoremap_dir)
        self.result: PassResult | None = None

    def _predict(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`model.predict` through the folded copy. A model with a class gate gets its exponent read
        from the model itself, not the copy (`predict_gates`, the same operations as `predict`), so
        a copy folded before `set_cam_gate` (the gate's own pass) serves the passes after it."""
        alpha = getattr(self.model, "cam_gate", None)
        if alpha is None:
            net = self._folded.get(lambda m: m.predict(images[:1], labels[:1]))
            return net.predict(images, labels)
        net = self._folded.get(lambda m: m.predict_gates(images[:1], labels[:1], [alpha]))
        maps, logits = net.predict_gates(images, labels, [alpha])
        return maps[alpha], logits

    def test_step(self, batch, batch_idx: int) -> None:
        images, labels = batch.images, batch.labels
        if self.gates is not None:
            net = self._folded.get(lambda m: m.predict_gates(images[:1], labels[:1], self.gates))
            maps, logits = net.predict_gates(images, labels, self.gates)
            for alpha, sweep in zip(self.gates, self.gate_sweeps):
                sweep.update(maps[alpha].float(), batch.boxes, image_size=tuple(images.shape[-2:]), labels=labels,
                             logits=logits.float())
            return
        maps, logits = self._predict(images, labels)
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
        if self.gates is not None:
            self.results = {alpha: PassResult(split="", sweep=sweep.compute())  # summed across processes
                            for alpha, sweep in zip(self.gates, self.gate_sweeps)}
            return
        if not self.with_boxes:
            self.result = PassResult(split="", sweep=None, classification=self.classification.compute())
            return
        sweep = self.sweep.compute()  # summed across processes
        pxap = float(self.pxap.compute()) if self.pxap is not None and self.pxap.update_called else None
        rows = self.rows.compute() if self.rows is not None else None
        self.result = PassResult(split="", sweep=sweep, pxap=pxap, rows=rows)


def _test(trainer: L.Trainer, datamodule, split: str, module: LocalizationPass, ds) -> None:
    data = SplitData(ds, datamodule.cfg.eval_batch_size, datamodule.cfg.num_workers)
    try:
        trainer.test(module, datamodule=data, verbose=False)
    except Exception as e:
        from ..runtime import peers

        if peers.is_peer_failure(e, trainer.world_size):
            raise peers.lost(f"while evaluating the {split} split", e) from None
        raise


def _no_image(split: str) -> OrnetError:
    return OrnetError(f"the {split} split gave no image to evaluate (check trainer.limit_test_batches)")


def run_gate_passes(trainer: L.Trainer, model: torch.nn.Module, datamodule, split: str, eval_cfg: EvalConfig,
                    gates: list[float], fold_bn: bool = False,
                    folded: FoldedCache | None = None) -> dict[float, PassResult]:
    """ORNet over `split` once, swept under each class gate of `gates` (`LocalizationPass`'s
    `gates`): ``{alpha: PassResult}`` with the box sweep only, each equal to `run_pass`'s sweep after
    ``model.set_cam_gate(alpha)``."""
    ds = datamodule.dataset(split, train_transform=False)
    module = LocalizationPass(model, eval_cfg, [r.image_id for r in ds.records], False, fold_bn=fold_bn,
                              gates=gates, folded=folded)
    _test(trainer, datamodule, split, module, ds)
    if not module.results or any(r.sweep.num_images == 0 for r in module.results.values()):
        raise _no_image(split)
    for result in module.results.values():
        result.split = split
    return module.results


def run_pass(trainer: L.Trainer, model: torch.nn.Module, datamodule, split: str, eval_cfg: EvalConfig,
             threshold_index: int | None = None, scoremap_dir: Path | None = None, fold_bn: bool = False,
             folded: FoldedCache | None = None) -> PassResult:
    ds = datamodule.dataset(split, train_transform=False)
    with_masks = bool(getattr(datamodule.index, "has_masks", False))
    with_boxes = bool(getattr(datamodule.index, "has_boxes", True))
    module = LocalizationPass(model, eval_cfg, [r.image_id for r in ds.records], with_masks,
                              threshold_index, scoremap_dir, with_boxes=with_boxes, fold_bn=fold_bn, folded=folded)
    _test(trainer, datamodule, split, module, ds)
    result = module.result
    if result is not None and result.sweep is None:
        if result.classification["num_images"] == 0:
            raise _no_image(split)
        result.split = split
        return result
    if result is None or result.sweep.num_images == 0:
        raise _no_image(split)
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
