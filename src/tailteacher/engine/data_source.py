"""Batches by position: epoch ``e`` from its ``b``-th batch on, so a resumed run sees the same data.

The trainer asks its data source for ``batches(epoch, start)`` and counts the batches it took;
that position (epoch, batch) is saved in every checkpoint. ``LoaderSource`` builds a ``DataLoader``
per epoch whose sampler skips the first ``start · batch_size`` indices (no sample is loaded to
skip it) and whose random generator is seeded from (seed, epoch, rank), not from the global stream.

Bit-for-bit resume with ``num_workers > 0`` also needs augmentations seeded per sample: a worker's
random stream depends on which batches it was handed since the loader started.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sized
from typing import Any, Protocol

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from .distributed import DistInfo, current_dist_info
from .seed import derive_seed


class BatchSource(Protocol):
    """What the trainer draws batches from."""

    def batches(self, epoch: int, start: int) -> Iterator[Any]:
        """The batches of ``epoch`` (0-based) from batch index ``start`` on; each rank gets its own
        shard, and every rank the same number of batches."""
        ...


class _SkipSampler(Sampler[int]):
    """The indices of ``base`` after the first ``skip``."""

    def __init__(self, base: Sampler[int], skip: int) -> None:
        self.base, self.skip = base, skip

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(iter(self.base), self.skip, None)

    def __len__(self) -> int:
        return max(0, len(self.base) - self.skip)  # type: ignore[arg-type]


class LoaderSource:
    """A ``DataLoader`` per epoch over ``dataset``, sharded across ranks.

    Args:
        dataset: a map-style data set.
        batch_size: per rank (the global batch is ``batch_size · world_size · accumulate``).
        sampler: any sampler with ``set_epoch`` that shards by rank itself (e.g.
            ``tailteacher.data.RepeatFactorSampler``); default a ``DistributedSampler`` that
            shuffles with (seed, epoch) and pads so every rank gets the same count.
        drop_last: drop a last, smaller batch (keeps every rank's step count equal).
    """

    def __init__(
        self,
        dataset: Dataset[Any],
        *,
        batch_size: int,
        seed: int = 0,
        dist: DistInfo | None = None,
        sampler: Sampler[int] | None = None,
        shuffle: bool = True,
        num_workers: int = 0,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        drop_last: bool = True,
        pin_memory: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size: expected ≥ 1, got {batch_size}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.seed = seed
        self.dist = dist or current_dist_info()
        self.sampler: Sampler[int] = sampler or DistributedSampler(
            dataset,
            num_replicas=self.dist.world_size,
            rank=self.dist.rank,
            shuffle=shuffle,
            seed=seed,
        )
        self.num_workers = num_workers
        self.collate_fn = collate_fn
        self.drop_last = drop_last
        self.pin_memory = pin_memory

    def __len__(self) -> int:
        """Batches per epoch on this rank."""
        if not isinstance(self.sampler, Sized):
            raise TypeError("sampler: has no length")
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def batches(self, epoch: int, start: int) -> Iterator[Any]:
        set_epoch = getattr(self.sampler, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(epoch)
        generator = torch.Generator().manual_seed(derive_seed(self.seed, epoch, self.dist.rank))
        loader = DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            sampler=_SkipSampler(self.sampler, start * self.batch_size),
            num_workers=self.num_workers,
            collate_fn=self.collate_fn,
            drop_last=self.drop_last,
            pin_memory=self.pin_memory,
            generator=generator,
        )
        return iter(loader)
