"""A torch Dataset over an unlabeled pool's columns (``PoolIndex``): the image, no annotations.

It reads and skips images as ``LvisDataset`` does (``pixels_or_skipped``, the same paths, checks
and messages), so the student's unlabeled views are the same bytes whichever of the two it is
given. What it holds per process is the index (memory-mapped columns, shared between the ranks
and workers of a node), not a record per image.

Shapes (one image):  H, W  image size; a sample has no instances (boxes [0, 4], masks [0, H, W])
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from ..errors import InputError
from .dataset import Sample, Skipped, pixels_or_skipped
from .images import read_rgb
from .lvis_json import resolve_image_path
from .pool_index import PoolIndex


class PoolDataset(Dataset[Sample | Skipped]):
    """Images ``0 … len(index) − 1`` of ``index`` (sorted by id), each a ``Sample`` with its
    pixels and no instances, or a ``Skipped`` for an unreadable file or a size unlike its record.

    Args:
        index: the pool's columns (``pool_index.open_index`` or ``read_pool``).
        image_root: the folder the paths are relative to; None skips every image with the
            message ``LvisData.image_path`` gives.
    """

    def __init__(self, index: PoolIndex, image_root: str | os.PathLike[str] | None) -> None:
        self.index = index
        self.image_root = Path(image_root) if image_root is not None else None
        self._real_root: Path | None = None

    def __len__(self) -> int:
        return len(self.index)

    def image_path(self, k: int) -> Path:
        """Image k's file (``lvis_json.resolve_image_path``: it may not leave the image root).

        Raises:
            InputError: no image root, or the file resolves outside it.
        """
        if self.image_root is None:
            raise InputError(
                f"{self.index.source}: no image root given; pass the folder that holds the images"
            )
        if self._real_root is None:
            self._real_root = self.image_root.resolve()
        iid = int(self.index.ids[k])
        return resolve_image_path(
            self.image_root, self._real_root, self.index.relpath(k), self.index.source, iid
        )

    def __getitem__(self, k: int) -> Sample | Skipped:
        iid = int(self.index.ids[k])
        h, w = int(self.index.heights[k]), int(self.index.widths[k])

        def load(_: int) -> torch.Tensor:
            return torch.from_numpy(read_rgb(self.image_path(k))).permute(2, 0, 1)

        pixels = pixels_or_skipped(load, iid, w, h, self.index.relpath(k))
        if isinstance(pixels, Skipped):
            return pixels
        return Sample(
            image_id=iid,
            image=tv_tensors.Image(pixels),
            boxes=tv_tensors.BoundingBoxes(torch.zeros(0, 4), format="XYXY", canvas_size=(h, w)),
            labels=torch.zeros(0, dtype=torch.long),
            masks=tv_tensors.Mask(torch.zeros(0, h, w, dtype=torch.uint8)),
        )
