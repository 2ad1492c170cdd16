"""Stage 2: online refinement of the map with the frozen evaluator (METHOD.md, Stage 2).

Only `generator.refine_parameters()` train (the release: the last two up blocks, the output
conv and its BN). Everything else - the stem F_c1, the generator's encoder and first up block,
the attention head, F_c2 and the evaluator F_e - is frozen *and kept in eval mode* during
training, so its batch-norm running statistics do not drift (`train()` is overridden: Lightning
calls it at the start of every training epoch).

Per batch (METHOD.md, Stage 2, steps 1-6):
    p_a = F_g(F_c1(I));  p_e = erase(p_a) (training only);
    L_e = CE(F_e(I * upsample(p_e)), y);  L_we = weighted entropy of p_a;
    L_a = mean(p_a) + sum of mean(f_a[k]) over the evaluator's ranks skip+1..topk;
    L = eval_weight * L_e + area_weight * L_a + entropy_weight * L_we.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback

from ..data.sample import Batch
from ..method.losses import area_loss, weighted_entropy
from .base import cross_entropy
from .coarse import OrnetTask


class RefineTask(OrnetTask):
    stage = "refine"

    def __init__(self, cfg: dict, num_classes: int, classes: list[str] | None = None):
        super().__init__(cfg, num_classes, classes)
        from ..method.erasing import build_eraser

        m = self.method_cfg
        self.eraser = build_eraser(m.erasing, p=m.erase_p, f_max=m.f_max, min_half=m.min_half)
        self.freeze_for_stage()
        self.train(True)  # frozen parts in eval mode from the start

    def freeze_for_stage(self) -> None:
        """requires_grad only on the parameters METHOD.md trains in stage 2."""
        self.model.requires_grad_(False)
        self.model.generator.freeze_for_refine()
        for p in self.model.generator.refine_parameters():
            p.requires_grad_(True)

    def train(self, mode: bool = True):
        """Frozen parts stay in eval mode; only the refined modules (and the eraser) follow `mode`."""
        super().train(False)
        if mode:
            self.training = True
            for module in self.model.generator.refine_modules():
                module.train(True)
            self.eraser.train(True)
        return self

    def param_groups(self):
        return [(list(self.model.generator.refine_parameters()), 1.0)]

    def _step(self, batch: Batch, split: str) -> torch.Tensor:
        m = self.method_cfg
        images, labels = batch.images, batch.labels
        out = self.model.maps(images)  # step 1
        p_e = self.eraser(out.p_a) if split == "train" else out.p_a  # step 2 (identity in eval mode)
        mask = F.interpolate(p_e, size=images.shape[-2:], mode="bilinear", align_corners=False)
        logits = self.model.evaluator(images * mask)  # step 3
        loss_e = cross_entropy(logits, labels)
        loss_we = weighted_entropy(out.p_a, m.mu, m.sigma, m.beta)  # step 4
        probs = logits.detach().float().softmax(dim=1)
        loss_a = area_loss(out.p_a, out.f_a, probs, m.area_topk, m.area_skip, m.area_form)  # step 5
        loss = m.eval_weight * loss_e + m.area_weight * loss_a + m.entropy_weight * loss_we  # step 6
        self.log_common(split, loss, logits, labels, {
            "loss_eval": loss_e, "loss_area": loss_a, "loss_entropy": loss_we, "map_mean": out.p_a.mean()})
        if split == "val":
            self.update_map_metrics(batch)
        return loss



class MapSnapshots(Callback):  # TODO remove: superseded by ornet.viz.snapshots.MapSnapshots
    """Saves stage-2 maps of a few fixed `val` images before training and after every epoch.

    Files (rank 0 only): `images.npz` (images N x H x W x 3 uint8, image_ids, labels) once, and
    `refine_epoch_{E:03d}.npz` (maps N x h x w float32 in [0, 1], image_ids) where E = 0 is the
    stage-1 map the refinement starts from. The evolution figure reads them.
    """

    def __init__(self, folder: Path, count: int, split: str = "val"):
        self.folder = Path(folder)
        self.count = int(count)
        self.split = split
        self._images: torch.Tensor | None = None

    def _batch(self, trainer):
        from ..data.sample import collate

        dm = trainer.datamodule
        split = self.split if self.split in dm.index.splits and dm.index.splits[self.split] else "train"
        ds = dm.dataset(split, train_transform=False)
        return collate([ds[i] for i in range(min(self.count, len(ds)))])

    def _save(self, trainer, task, epoch: int) -> None:
        if not trainer.is_global_zero or self._images is None:
            return
        was_training = task.training
        task.eval()
        with torch.no_grad():
            maps, _ = task.model.predict(self._images.to(task.device))
        task.train(was_training)
        np.savez_compressed(self.folder / f"refine_epoch_{epoch:03d}.npz",
                            maps=maps[:, 0].float().cpu().numpy(), image_ids=np.array(self._ids))

    def on_train_start(self, trainer, task) -> None:
        if not trainer.is_global_zero or self.count <= 0:
            return
        from ..data.transforms import denormalize

        batch = self._batch(trainer)
        self._images, self._ids = batch.images, batch.image_ids
        self.folder.mkdir(parents=True, exist_ok=True)
        pixels = (denormalize(batch.images) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        np.savez_compressed(self.folder / "images.npz", images=pixels, image_ids=np.array(batch.image_ids),
                            labels=batch.labels.numpy())
        if trainer.current_epoch == 0:
            self._save(trainer, task, 0)

    def on_train_epoch_end(self, trainer, task) -> None:
        self._save(trainer, task, trainer.current_epoch + 1)
