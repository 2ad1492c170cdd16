"""Training order and augmentation depend on (seed, stage, epoch, sample) only: not on history,
worker processes or where an epoch was resumed."""

from __future__ import annotations

import torch

from ornet.config.schema import DataConfig
from ornet.data.datamodule import WSOLDataModule
from ornet.data.sampling import EpochSampler, SeededSamples, derive_seed


def test_derive_seed_is_stable_and_separates_its_parts():
    assert derive_seed(0, "coarse", 1) == derive_seed(0, "coarse", 1)
    seeds = {derive_seed(0, "coarse", 1), derive_seed(0, "coarse", 2), derive_seed(0, "refine", 1),
             derive_seed(1, "coarse", 1), derive_seed(0, "coarse1", "")}
    assert len(seeds) == 5 and all(0 <= s < 2**63 for s in seeds)
    assert derive_seed(0, "coarse", 1) == 1255852484014008577  # the same on every machine and Python


def test_the_order_is_a_function_of_seed_stream_and_epoch():
    a, b = EpochSampler(20, seed=3, stream="coarse"), EpochSampler(20, seed=3, stream="coarse")
    b.set_epoch(5)
    b.set_epoch(1)  # b went through other epochs first: no history effect
    a.set_epoch(1)
    assert list(a) == list(b) and sorted(i for i, _ in a) == list(range(20))
    other_epoch, other_stage = EpochSampler(20, seed=3, stream="coarse"), EpochSampler(20, seed=3, stream="refine")
    other_epoch.set_epoch(2)
    other_stage.set_epoch(1)
    assert a.order() != other_epoch.order() and a.order() != other_stage.order()
    assert EpochSampler(5, shuffle=False).order() == [0, 1, 2, 3, 4]


def test_a_resumed_epoch_yields_exactly_the_remaining_items():
    s = EpochSampler(10, seed=0, stream="refine")
    s.start(2)
    full = list(s)
    s.start(2, skip=4)
    assert list(s) == full[4:] and len(s) == 10  # Lightning still counts the whole epoch
    s.set_epoch(2)  # Lightning's call for the same epoch keeps the position
    assert list(s) == full[4:]
    s.set_epoch(3)  # a new epoch starts at its beginning
    assert len(list(s)) == 10


def test_seeded_samples_reproduce_augmentation_and_leave_the_global_generator_alone():
    class Noisy(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return torch.rand(3) + i

    ds = SeededSamples(Noisy())
    state = torch.random.get_rng_state()
    first, again = ds[(1, 123)], ds[(1, 123)]
    assert torch.equal(first, again) and not torch.equal(first, ds[(1, 124)])
    assert torch.equal(torch.random.get_rng_state(), state)


def _epoch_batches(dm: WSOLDataModule, epoch: int) -> list[torch.Tensor]:
    dm.train_sampler.start(epoch, seed=0, stream="coarse")
    return [b.images for b in dm.train_dataloader()]


def test_training_batches_do_not_depend_on_worker_processes(cub_tree):
    """num_workers 0 and 2 (persistent workers) give the same crops and flips, epoch after epoch."""
    cfg = dict(root=str(cub_tree), resize=40, crop=32, batch_size=4, val_per_class=1)
    main = WSOLDataModule(DataConfig(**cfg, num_workers=0))
    workers = WSOLDataModule(DataConfig(**cfg, num_workers=2))
    for epoch in (0, 1):
        a, b = _epoch_batches(main, epoch), _epoch_batches(workers, epoch)
        assert len(a) == len(b) > 1
        assert all(torch.equal(x, y) for x, y in zip(a, b)), epoch
    assert not torch.equal(_epoch_batches(main, 0)[0], _epoch_batches(main, 1)[0])
