"""Several processes sharing one inference job (``torchrun --nproc_per_node N`` / ``accelerate launch``):
``ponogan eval`` and ``ponogan translate``.

Under a launcher every process runs the command with the same arguments; ``WORLD_SIZE``, ``RANK``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` are set by the launcher. Each process then works on its
shard of the items (decoding, translation batches, Inception features, paired metrics, LPIPS), the
results are gathered to every process in the original order, and all processes compute the same final
numbers from the same values (so they equal a one-process run); only rank 0 writes files.

Gathering uses ``torch.distributed.all_gather_object`` on CPU objects over a gloo group: gloo needs no GPU,
and when the launcher already created an NCCL default group a separate gloo group carries the (small,
picklable) results. Items are sharded by stride (``items[rank::world]``); :meth:`ProcessGroup.gather`
undoes exactly that interleaving, so shards of uneven length are fine.

A failure inside a shard (an unreadable file, a CUDA error) is gathered like a result and re-raised in
every process as :class:`ShardError` (a ``ValueError``), so no process waits forever in a collective.
"""

from __future__ import annotations

import datetime
import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")
R = TypeVar("R")

# translation of a large split or features of a large folder between two collectives may take a while
COLLECTIVE_TIMEOUT = datetime.timedelta(hours=2)


class ShardError(ValueError):
    """Work on one process's shard failed; raised in every process with that process's message."""


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place among the evaluation processes; ``group`` is the gloo group (None: default)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    group: Any = None

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def shard(self, items: Sequence[T]) -> list[T]:
        """This process's items: ``items[rank::world_size]`` (all of them in a single process)."""
        return list(items[self.rank :: self.world_size])

    def all_gather(self, obj: Any) -> list[Any]:
        """Every process's ``obj``, by rank (``[obj]`` in a single process)."""
        if not self.distributed:
            return [obj]
        import torch.distributed as dist

        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, obj, group=self.group)
        return gathered

    def gather(self, local: Sequence[T]) -> list[T]:
        """Every process's :meth:`shard` results, back in the order of the original items."""
        shards = self.all_gather(list(local))
        total = sum(len(s) for s in shards)
        return [shards[i % self.world_size][i // self.world_size] for i in range(total)]

    def map(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        *,
        progress: bool = False,
        desc: str = "",
        unit: str = "it",
    ) -> list[R]:
        """``[fn(item) for item in items]`` with each process computing its shard (a tqdm bar over rank 0's
        shard when ``progress``); a failure on any process raises :class:`ShardError` on all of them."""
        results: list[Any] = []
        error = None
        mine = tqdm(
            self.shard(items), desc=desc, unit=unit, disable=not (progress and self.is_main), leave=False
        )
        try:
            results = [fn(item) for item in mine]
        except Exception as err:  # noqa: BLE001 - re-raised below, in every process
            if not self.distributed:
                raise
            error = f"{type(err).__name__}: {err} (process {self.rank})"
        self.raise_any(error)
        return self.gather(results)

    def raise_any(self, error: str | None) -> None:
        """Raise :class:`ShardError` in every process when ``error`` is set in any of them."""
        errors = [e for e in self.all_gather(error) if e is not None]
        if errors:
            raise ShardError(errors[0])

    def broadcast(self, obj: T) -> T:
        """Rank 0's ``obj`` in every process (e.g. a decision every process must share)."""
        return self.all_gather(obj)[0]

    def run_on_main(self, fn: Callable[[], R]) -> R | None:
        """Run ``fn`` on rank 0 only; its exception (as ``type(err)(message)`` when that works, else
        :class:`ShardError`) is raised in every process. Returns ``fn()`` on rank 0, None elsewhere."""
        result, error = None, None
        if self.is_main:
            try:
                result = fn()
            except Exception as err:
                if not self.distributed:
                    raise
                error = (type(err), str(err))
        error = self.broadcast(error)
        if error is not None:
            kind, message = error
            try:
                exc = kind(message)
            except Exception:  # noqa: BLE001 - an exception type with another constructor
                exc = ShardError(message)
            raise exc
        return result

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier(group=self.group)


SINGLE = ProcessGroup()
_STARTED_HERE: list[bool] = []


@functools.lru_cache(maxsize=1)
def current_group() -> ProcessGroup:
    """The evaluation's process group: single-process unless a launcher set ``WORLD_SIZE`` > 1, in which
    case the default process group is initialised with gloo (when nobody did yet)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world_size <= 1:
        return SINGLE
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="gloo", timeout=COLLECTIVE_TIMEOUT)
        _STARTED_HERE.append(True)
    group = (
        None if dist.get_backend() == "gloo" else dist.new_group(backend="gloo", timeout=COLLECTIVE_TIMEOUT)
    )
    return ProcessGroup(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0") or 0),
        group=group,
    )


def shutdown() -> None:
    """Destroy the process group if :func:`current_group` created it (end of ``ponogan eval``)."""
    if _STARTED_HERE:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
        _STARTED_HERE.clear()
        current_group.cache_clear()


def process_device(device: str | None, group: ProcessGroup) -> str | None:
    """The device for this process: ``cuda`` (given or by default) becomes ``cuda:<LOCAL_RANK>`` when several
    processes share a machine; an explicit index (``cuda:1``) or ``cpu`` is kept."""
    if not group.distributed or (device is not None and device != "cuda"):
        return device
    import torch

    if device is None and not torch.cuda.is_available():
        return None
    return f"cuda:{group.local_rank}"
