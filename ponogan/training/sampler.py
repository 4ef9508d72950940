"""Deterministic, resumable, rank-sharded data order.

The order of epoch ``e`` is ``randperm(n)`` from a generator seeded with ``seed + e`` (as in
``DistributedSampler``), cut to a multiple of ``batch_size * world_size`` (``drop_last``: every batch is
full on every rank, so all ranks take the same number of steps), and dealt to ranks sample by sample
(``perm[rank::world_size]``). ``set_epoch(e, start_batch=k)`` skips the first ``k`` batches of this
rank's share, which is how a resumed run continues mid-epoch with exactly the batches it had left.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class EpochSampler(Sampler[int]):
    """Indices for one rank: ``len(self) == (batches_per_epoch - start_batch) * batch_size``."""

    def __init__(
        self,
        num_items: int,
        *,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
    ):
        if num_items < batch_size * world_size:
            raise ValueError(
                f"the dataset has {num_items} items, fewer than one batch per process "
                f"(batch_size {batch_size} x {world_size} processes)"
            )
        self.num_items = num_items
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.shuffle = shuffle
        self.epoch = 0
        self.start_batch = 0

    @property
    def batches_per_epoch(self) -> int:
        return self.num_items // (self.batch_size * self.world_size)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        if not 0 <= start_batch <= self.batches_per_epoch:
            raise ValueError(f"start_batch {start_batch} outside [0, {self.batches_per_epoch}]")
        self.epoch = epoch
        self.start_batch = start_batch

    def order(self, epoch: int) -> torch.Tensor:
        """This rank's full index order for ``epoch``, ``(batches_per_epoch * batch_size,)``."""
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + epoch)
            perm = torch.randperm(self.num_items, generator=generator)
        else:
            perm = torch.arange(self.num_items)
        used = perm[: self.batches_per_epoch * self.batch_size * self.world_size]
        return used[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[int]:
        order = self.order(self.epoch)[self.start_batch * self.batch_size :]
        return iter(order.tolist())

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.start_batch) * self.batch_size
