"""Repeat-factor sampling (the LVIS standard), as a sampler that shards across DDP ranks.

Per category c, f_c is the fraction of training images that contain it; r_c = max(1, sqrt(t / f_c));
an image repeats r_i = max over its categories of r_c times per epoch. The fractional part is
realised by stochastic rounding, drawn anew each epoch from (seed, epoch), identically on every rank.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

from .frequency import image_counts
from .lvis_json import LvisData


def repeat_factors(data: LvisData, image_ids: Sequence[int], threshold: float = 0.001) -> torch.Tensor:
    """r_i for each image of ``image_ids`` [N] float64 (1.0 for an image without annotations)."""
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold: expected a number in (0, 1], got {threshold}")
    n_images = len(data.images)
    per_category = {
        cid: max(1.0, math.sqrt(threshold / (n / n_images))) if n else 1.0
        for cid, n in image_counts(data).items()
    }
    factors = [
        max((per_category[int(a["category_id"])] for a in data.anns_by_image.get(iid, [])), default=1.0)
        for iid in image_ids
    ]
    return torch.tensor(factors, dtype=torch.float64)


class RepeatFactorSampler(Sampler[int]):
    """Indices into a data set of N images, each repeated by its factor, shuffled, sharded.

    Every rank draws the same epoch list from (seed, epoch) and takes every ``world_size``-th
    index from ``rank``; the list is padded by wrapping so each rank gets the same count (as
    ``DistributedSampler`` does). Call ``set_epoch`` before each epoch.
    """

    def __init__(
        self,
        factors: torch.Tensor,
        *,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        shuffle: bool = True,
    ) -> None:
        if factors.dim() != 1 or not bool((factors >= 1).all()):
            raise ValueError("factors: expected a 1-D tensor of repeat factors ≥ 1")
        if rank is None or world_size is None:
            dist = torch.distributed
            initialised = dist.is_available() and dist.is_initialized()
            rank = dist.get_rank() if initialised else 0
            world_size = dist.get_world_size() if initialised else 1
        if not 0 <= rank < world_size:
            raise ValueError(f"rank: expected 0 ≤ rank < world_size={world_size}, got {rank}")
        self.factors = factors.to(torch.float64)
        self.seed, self.rank, self.world_size, self.shuffle = seed, rank, world_size, shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _epoch_indices(self) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        whole = self.factors.floor()
        extra = torch.rand(len(self.factors), generator=g, dtype=torch.float64) < (self.factors - whole)
        reps = (whole + extra.to(torch.float64)).long()
        idx = torch.repeat_interleave(torch.arange(len(self.factors)), reps)
        if self.shuffle:
            idx = idx[torch.randperm(len(idx), generator=g)]
        return idx

    def _padded(self) -> torch.Tensor:
        idx = self._epoch_indices()
        total = math.ceil(len(idx) / self.world_size) * self.world_size
        if total > len(idx) and len(idx):
            idx = torch.cat([idx, idx[: total - len(idx)]])
        return idx[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self._padded().tolist())

    def __len__(self) -> int:
        return len(self._padded())
