"""Running an evaluation `LightningModule` over one split, shared by every protocol's pass.

Passes run through a Lightning `Trainer` with `cfg.trainer`'s accelerator, devices, strategy and
precision (`eval_trainer`). Under DDP every process sees a disjoint share of the split, without
the padding duplicates of Lightning's own sampler (`SplitData`), so that metric states summed
across processes equal a single-process run's. Only rank 0 should write files.
"""

from __future__ import annotations

import sys

import lightning as L
from torch.utils.data import DataLoader

from ..config.schema import RunConfig


class SplitData(L.LightningDataModule):
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


def eval_trainer(cfg: RunConfig, quiet: bool) -> L.Trainer:
    """A `Trainer` for evaluation passes: no logger, checkpoints or summary; the progress bar only
    on a terminal (no carriage returns in logs) and unless `quiet`."""
    from ..runtime.peers import strategy

    t = cfg.trainer
    return L.Trainer(accelerator=t.accelerator, devices=t.devices, strategy=strategy(t.strategy), precision=t.precision,
                     logger=False, enable_checkpointing=False, enable_model_summary=False,
                     enable_progress_bar=t.progress and not quiet and sys.stderr.isatty(),  # no \r in logs
                     use_distributed_sampler=False,
                     limit_test_batches=t.limit_test_batches, deterministic=t.deterministic)
