"""The batch order of training: an endless, exactly resumable stream of this rank's batches.

``Batches`` deals each epoch's shuffled order to the ranks and can continue at any ``(epoch, batch)``
a saved state names; it also tells the dataset, before each epoch, whether that epoch lies in the
learning-rate decay (``DataOptions.crop_in_decay``), a function of the epoch alone, so a resumed run
gets the same batches as one that never stopped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import torch
from accelerate.data_loader import SkipBatchSampler
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler


def data_workers(requested: int | None, device: torch.device, world_size: int) -> int:
    """DataLoader workers: as configured, else (``null``) none on the CPU, whose cores train the nets,
    and up to 8 per GPU process on CUDA (the CPU cores shared between the processes)."""
    if requested is not None:
        return requested
    if device.type != "cuda":
        return 0
    return max(1, min(8, (os.cpu_count() or 2) // max(1, world_size) - 1))


def to_device(batch: dict, device: torch.device) -> dict:
    """The batch with every tensor moved to ``device`` (other entries, such as paths, as they are)."""
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


class Batches:
    """Endless ``(epoch, batch)``-positioned stream of this rank's batches; the position is resumable.

    Epoch ``e`` is ``DistributedSampler(shuffle=True, seed, drop_last=True)`` at ``set_epoch(e)``:
    ``randperm(n)`` seeded ``seed + e``, cut to a multiple of ``world_size``, dealt
    ``perm[rank::world_size]``; the loader keeps full batches only, so every rank takes
    ``n // (batch_size * world_size)`` steps an epoch. A resumed epoch skips its first ``batch`` batches
    with accelerate's ``SkipBatchSampler``, which drops index lists without loading their items.

    The decay epochs are those whose first batch is batch ``decay_batch`` of the run or later (counted
    over epochs, ``decay_batch // per_epoch`` rounded up): before each epoch's loader is built, a
    dataset with a ``set_decay(active)`` method (the folder datasets) is told whether the epoch is
    one, so the DataLoader's workers, which get a copy of the dataset then, see it too.
    """

    def __init__(
        self,
        dataset,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        *,
        decay_batch: int | None = None,
        **options,
    ):
        """``decay_batch``: the first batch of the learning-rate decay (None: the run has none);
        ``options``: more ``DataLoader`` arguments (``num_workers``, ``pin_memory``)."""
        if len(dataset) < batch_size * world_size:
            raise ValueError(
                f"the dataset has {len(dataset)} items, fewer than one batch per process "
                f"(batch_size {batch_size} x {world_size} processes)"
            )
        self.dataset = dataset
        self.sampler = DistributedSampler(
            dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True
        )
        self.batch_sampler = BatchSampler(self.sampler, batch_size, drop_last=True)
        self.per_epoch = len(self.batch_sampler)
        self.seed = seed
        # seeds the workers (torch derives their python, numpy and torch seeds from it), not the global RNGs
        self.generator = torch.Generator()
        self.options = {**options, "generator": self.generator}
        self.epoch, self.batch = 0, 0  # position of the next batch
        self.decay_epoch = None if decay_batch is None else -(-decay_batch // self.per_epoch)

    def in_decay(self, epoch: int) -> bool:
        """Whether every batch of ``epoch`` lies in the learning-rate decay."""
        return self.decay_epoch is not None and epoch >= self.decay_epoch

    def seek(self, epoch: int, batch: int) -> None:
        """Continue at batch ``batch`` of ``epoch`` (a saved state's position); ``ValueError`` if this data
        has no such batch (it changed size since the state was saved)."""
        if epoch < 0 or not 0 <= batch < self.per_epoch:
            raise ValueError(
                f"its data position (epoch {epoch}, batch {batch}) is outside this data's "
                f"{self.per_epoch} batches per epoch"
            )
        self.epoch, self.batch = epoch, batch

    def _epoch_loader(self) -> DataLoader:
        """The loader of ``self.epoch`` past the ``self.batch`` batches already taken."""
        set_decay = getattr(self.dataset, "set_decay", None)
        if set_decay is not None and self.decay_epoch is not None:
            set_decay(self.in_decay(self.epoch))
        self.sampler.set_epoch(self.epoch)
        self.generator.manual_seed(self.seed * 7919 + self.epoch)
        remaining = SkipBatchSampler(self.batch_sampler, skip_batches=self.batch)
        return DataLoader(self.dataset, batch_sampler=remaining, **self.options)

    def __iter__(self) -> Iterator[dict]:
        while True:
            for batch in self._epoch_loader():
                self.batch += 1
                if self.batch == self.per_epoch:  # a state saved after this batch starts the next epoch
                    self.epoch, self.batch = self.epoch + 1, 0
                yield batch
