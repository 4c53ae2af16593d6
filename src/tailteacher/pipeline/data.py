"""The stages' training data: the labeled json, its sampler, and per-draw augmented views.

Each draw of a sampler carries a key (``KeyedSampler``) that seeds its augmentation, so a
resumed run draws the same views as an uninterrupted one. Labeled images give one weak view with
its instances (``AugmentedDataset``); unlabeled images give a weak and a strong view
(``UnlabeledViews``), both through the same keyed base (``KeyedViews``).

Shapes (one image):  H, W  image size    N  instances
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler, Sampler

from ..config import Config
from ..data.dataset import LvisDataset, Sample, Skipped
from ..data.lvis_json import LvisData, load_lvis
from ..data.pool_dataset import PoolDataset
from ..data.sampling import RepeatFactorSampler, repeat_factors
from ..data.transforms import (
    Augmentation,
    Photometric,
    View,
    strong_augmentation,
    to_float_image,
    weak_augmentation,
    weak_strong_views,
)

#: ``KeyedSampler`` keys a draw by epoch · stride + position in the epoch; the stride is this, or
#: for an epoch of this many draws or more the next power of two above its length (D102).
DRAWS_PER_EPOCH = 1 << 20


def epoch_stride(draws: int) -> int:
    """Keys one epoch spans: ``DRAWS_PER_EPOCH`` (2^20), or the least power of two above
    ``draws`` for a longer epoch, so the keys of epochs under 2^20 draws are as they always were
    and a pool of millions of images still keys each epoch apart from the next."""
    return max(DRAWS_PER_EPOCH, 1 << max(0, draws).bit_length())


T = TypeVar("T")


def load_train_data(config: Config) -> LvisData:
    """The labeled training images (``data.train_json``)."""
    return load_lvis(config.data.train_json, config.data.image_root)


def labeled_sampler(config: Config, data: LvisData, rank: int, world_size: int) -> Sampler[int]:
    """Repeat-factor sampling (``data.repeat_factor_threshold``, the LVIS standard) or plain
    shuffling, sharded by rank: for the teacher and for the student's labeled batches alike.
    Indices are into ``LvisDataset(data)`` (images sorted by id)."""
    t = config.data.repeat_factor_threshold
    if t is None:
        return DistributedSampler(
            LvisDataset(data), num_replicas=world_size, rank=rank, shuffle=True, seed=config.train.seed
        )
    factors = repeat_factors(data, sorted(data.images), t)
    return RepeatFactorSampler(factors, seed=config.train.seed, rank=rank, world_size=world_size)


def default_augmentation(config: Config) -> Augmentation:
    """The teacher's training views: flip and small scale jitter (weak), at the configured size."""
    return weak_augmentation(short_side=config.data.image_size)


def images_of(samples: Sequence[Sample], device: torch.device) -> list[torch.Tensor]:
    """Float images [3, H, W] in [0, 1] on ``device`` (uint8 samples are scaled)."""
    return [to_float_image(s.image.as_subclass(torch.Tensor)).to(device) for s in samples]


class KeyedSampler(Sampler[int]):
    """Wraps an index sampler so each draw also carries a key for its augmentation's seed.

    Yields ``key · n + index``: ``index`` is the item, ``key`` = epoch · stride + the draw's place
    in the epoch. The key depends only on (epoch, place), so a resumed run (which skips places) draws
    the same augmentations as an uninterrupted one, and an image repeated within an epoch
    (repeat-factor sampling) gets a different view each time. The stride is 2^20, or for a
    longer epoch (a sized ``base`` of 2^20 draws or more over all ranks, a pool of millions of
    images) the next power of two above it (``epoch_stride``); a ``base`` without length that
    draws 2^20 times in one epoch is stopped, since its keys would repeat the next epoch's.

    Under DDP ``base`` is rank ``rank``'s shard of a strided sampler (``DistributedSampler``,
    ``RepeatFactorSampler``: every ``world_size``-th draw of one epoch list, from ``rank``); its
    p-th draw is the list's (p · world_size + rank)-th, and that global place is the key. So N
    ranks draw the same views of the same images as one process with N times the batch.
    """

    def __init__(self, base: Sampler[int], num_items: int, rank: int = 0, world_size: int = 1) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"KeyedSampler: expected 0 ≤ rank < world_size, got {rank} and {world_size}")
        self.base, self.num_items, self.epoch = base, num_items, 0
        self.rank, self.world_size = rank, world_size
        draws = getattr(base, "__len__", None)
        self.stride = epoch_stride(draws() * world_size) if callable(draws) else DRAWS_PER_EPOCH

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        set_epoch = getattr(self.base, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        for pos, index in enumerate(self.base):
            place = pos * self.world_size + self.rank
            if place >= self.stride:
                raise ValueError(
                    f"KeyedSampler: more than {self.stride} draws in one epoch; their "
                    "augmentation keys would repeat those of the next epoch"
                )
            yield (self.epoch * self.stride + place) * self.num_items + int(index)

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]


class KeyedViews(Dataset[T | Skipped], ABC, Generic[T]):
    """``LvisDataset`` items turned into views by ``view``, each under a generator seeded from
    (seed, *stream, key, index) — the key and index a ``KeyedSampler`` draw carries."""

    def __init__(self, base: LvisDataset | PoolDataset, seed: int, stream: tuple[int, ...] = ()) -> None:
        self.base, self.seed, self.stream = base, seed, stream

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, keyed: int) -> T | Skipped:
        key, index = divmod(keyed, len(self.base))
        item = self.base[index]
        if isinstance(item, Skipped):
            return item
        entropy = [self.seed, *self.stream, key, index]
        g = torch.Generator().manual_seed(int(np.random.SeedSequence(entropy).generate_state(1)[0]))
        return self.view(item, g)

    @abstractmethod
    def view(self, item: Sample, generator: torch.Generator) -> T:
        """The augmented view(s) of one image, drawing only from ``generator``."""


class AugmentedDataset(KeyedViews[Sample]):
    """Labeled items (image [3, H, W], boxes [N, 4], labels [N], masks [N, H, W]) under one
    augmentation, seeded per draw."""

    def __init__(self, base: LvisDataset, augmentation: Augmentation, seed: int) -> None:
        super().__init__(base, seed)
        self.augmentation = augmentation

    def view(self, item: Sample, generator: torch.Generator) -> Sample:
        v = self.augmentation(item.image, boxes=item.boxes, masks=item.masks, generator=generator)
        return Sample(
            image_id=item.image_id, image=v.image, boxes=v.boxes, labels=item.labels[v.keep], masks=v.masks
        )


@dataclass
class UnlabeledPair:
    image_id: int
    weak: View
    strong: View


class UnlabeledViews(KeyedViews[UnlabeledPair]):
    """A weak and a strong view of each unlabeled image, seeded per draw (stream 1, apart from
    the labeled views' seeds)."""

    def __init__(
        self,
        base: LvisDataset | PoolDataset,
        seed: int,
        short_side: int | None,
        photometric: Photometric | None = None,
    ) -> None:
        super().__init__(base, seed, stream=(1,))
        self.weak, self.strong = (
            weak_augmentation(short_side=short_side),
            strong_augmentation(short_side=short_side, photometric=photometric),
        )

    def view(self, item: Sample, generator: torch.Generator) -> UnlabeledPair:
        weak, strong = weak_strong_views(item.image, generator=generator, weak=self.weak, strong=self.strong)
        return UnlabeledPair(item.image_id, weak, strong)


def collate_unlabeled(batch: list[UnlabeledPair | Skipped]) -> tuple[list[UnlabeledPair], list[Skipped]]:
    return [b for b in batch if isinstance(b, UnlabeledPair)], [b for b in batch if isinstance(b, Skipped)]
