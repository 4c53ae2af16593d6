"""A torch Dataset over a validated LVIS/COCO file: image, boxes, classes and masks per image.

A corrupt or missing image met while training is skipped and counted, never a crash hours in:
``__getitem__`` returns a ``Skipped`` record instead of raising, and ``collate`` separates the
skipped records from the samples, so the count reaches the training loop from every worker.

Shapes (one image):  H, W  image size     N  instances     classes are contiguous 0..C−1
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from .images import read_rgb
from .lvis_json import LvisData, image_relpath


@dataclass
class Sample:
    image_id: int
    image: tv_tensors.Image  # [3, H, W] uint8
    boxes: tv_tensors.BoundingBoxes  # [N, 4] XYXY float32, pixels
    labels: torch.Tensor  # [N] int64, contiguous class index
    masks: tv_tensors.Mask  # [N, H, W] uint8 (0/1)


@dataclass(frozen=True)
class Skipped:
    """An image a stage could not use: its id, its file (relative to the image root) and why."""

    image_id: int
    reason: str
    file: str = ""


def decode_masks(anns: Sequence[dict[str, Any]], height: int, width: int) -> np.ndarray:
    """[N, H, W] uint8 masks from polygons or RLE (pycocotools)."""
    from pycocotools import mask as mask_utils

    out = np.zeros((len(anns), height, width), dtype=np.uint8)
    for k, ann in enumerate(anns):
        seg = ann.get("segmentation")
        if seg is None:
            continue
        if isinstance(seg, list):
            rle = mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
        elif isinstance(seg.get("counts"), list):
            rle = mask_utils.frPyObjects(seg, height, width)
        else:
            rle = {"size": seg["size"], "counts": seg["counts"].encode("ascii")}
        out[k] = mask_utils.decode(rle)
    return out


def pixels_or_skipped(
    load: Callable[[int], torch.Tensor], image_id: int, width: float, height: float, file: str
) -> torch.Tensor | Skipped:
    """``load(image_id)`` ([3, H, W] uint8), or a ``Skipped`` naming ``file`` when the file cannot
    be read or is not the ``width`` × ``height`` its record says (pixels, EXIF orientation
    applied; a whole float such as 640.0 is shown as the record has it). An ``InputError`` of
    ``load`` (no image root, a path leaving it) is a ``ValueError``: skipped with its message,
    and a run of them refused by ``skips.check_skipped``."""
    try:
        pixels = load(image_id)
    except (OSError, ValueError, SyntaxError) as err:  # PIL's errors for unreadable files
        return Skipped(image_id, f"{type(err).__name__}: {err}", file)
    h, w = pixels.shape[1:]
    if (w, h) != (width, height):
        reason = f"file is {w}x{h} (EXIF orientation applied), record says {width}x{height}"
        return Skipped(image_id, reason, file)
    return pixels


class LvisDataset(Dataset[Sample | Skipped]):
    """Images of ``data`` (all, or ``image_ids``) with their annotations.

    Args:
        data: a validated file with an image root.
        image_ids: which images, in this order (default: all, sorted by id).

    Augmentations wrap it (``pipeline.data.AugmentedDataset``), seeded per draw.
    """

    def __init__(self, data: LvisData, image_ids: Sequence[int] | None = None) -> None:
        self.data = data
        self.image_ids = list(image_ids) if image_ids is not None else sorted(data.images)

    def __len__(self) -> int:
        return len(self.image_ids)

    def load_image(self, image_id: int) -> torch.Tensor:
        """[3, H, W] uint8, EXIF orientation applied (``data.images.read_rgb``); raises
        OSError/ValueError for a missing, corrupt or undecodable file."""
        arr = read_rgb(self.data.image_path(self.data.images[image_id]))
        return torch.from_numpy(arr).permute(2, 0, 1)

    def __getitem__(self, index: int) -> Sample | Skipped:
        iid = self.image_ids[index]
        record = self.data.images[iid]
        file = image_relpath(record)
        pixels = pixels_or_skipped(self.load_image, iid, record["width"], record["height"], file)
        if isinstance(pixels, Skipped):
            return pixels
        h, w = pixels.shape[1:]
        # A box of zero width or height is valid LVIS (LVISEval skips it); nothing to learn from it
        # (detectron2 and torchvision's references drop such boxes too).
        anns = [a for a in self.data.anns_by_image.get(iid, []) if a["bbox"][2] > 0 and a["bbox"][3] > 0]
        xywh = torch.tensor([a["bbox"] for a in anns], dtype=torch.float32).reshape(-1, 4)
        xyxy = torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], dim=1)
        return Sample(
            image_id=iid,
            image=tv_tensors.Image(pixels),
            boxes=tv_tensors.BoundingBoxes(xyxy, format="XYXY", canvas_size=(h, w)),
            labels=torch.tensor(
                [self.data.class_index[int(a["category_id"])] for a in anns], dtype=torch.long
            ),
            masks=tv_tensors.Mask(torch.from_numpy(decode_masks(anns, h, w))),
        )


def collate(batch: Sequence[Sample | Skipped]) -> tuple[list[Sample], list[Skipped]]:
    """Split a batch into its samples and its skipped records (count the latter)."""
    samples = [b for b in batch if isinstance(b, Sample)]
    skipped = [b for b in batch if isinstance(b, Skipped)]
    return samples, skipped
