"""The ground truth of an LVIS evaluation: images, categories and annotations, checked by the
project's one ground-truth reader (``data.lvis_json``) and indexed into arrays.

Shapes: I images, K categories, G annotations kept for evaluation.

What LVISEval reads, and so what we read:
- categories: ``id``, ``frequency`` in r/c/f (the groups of APr/APc/APf); ``name``,
  ``image_count``, ``instance_count`` are kept for reports and plots;
- images: ``id``, ``height``, ``width``, ``neg_category_ids`` (verified absent),
  ``not_exhaustive_category_ids`` (present but not all instances annotated);
- annotations: ``id``, ``image_id``, ``category_id``, ``area``, ``bbox`` [x, y, w, h],
  ``segmentation`` (polygons, uncompressed or compressed RLE), optional ``ignore``.
  ``iscrowd`` is not read: LVIS has no crowds, and LVISEval treats every box as one instance.
An annotation with area 0 is dropped, as LVISEval's ``get_ann_ids`` drops it; so it also does
not make its category positive for its image.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pycocotools.mask as mask_utils

from ..data.lvis_json import FREQUENCY_GROUPS, is_id, load_lvis
from ..errors import InputError, Problem

__all__ = ["FREQUENCY_GROUPS", "GroundTruth", "is_id", "load_ground_truth"]


@dataclass(eq=False)
class GroundTruth:
    """A checked LVIS-format ground truth, indexed for evaluation.

    Images and categories are sorted by id (as LVISEval sorts them); category index k is the
    0-based contiguous class of ``category_ids[k]``. Pairs (image, category) are coded as
    ``image_index * K + category_index``.
    """

    source: str
    image_ids: np.ndarray  # [I] int64, ascending
    heights: np.ndarray  # [I] int64
    widths: np.ndarray  # [I] int64
    category_ids: np.ndarray  # [K] int64, ascending
    categories: list[dict[str, Any]]  # [K] id, name, frequency, image_count, instance_count
    frequency: np.ndarray  # [K] int64: 0 r, 1 c, 2 f
    ann_ids: np.ndarray  # [G] int64, file order
    ann_image: np.ndarray  # [G] image index
    ann_category: np.ndarray  # [G] category index
    ann_area: np.ndarray  # [G] float64
    ann_ignore: np.ndarray  # [G] bool
    ann_bbox: np.ndarray | None  # [G, 4] float64; None when an annotation has no box
    ann_segmentation: list[Any] | None  # [G] as in the file; None when one has none
    negative_pairs: np.ndarray  # sorted pair codes from neg_category_ids
    not_exhaustive_pairs: np.ndarray  # sorted pair codes from not_exhaustive_category_ids
    image_index: dict[int, int] = field(repr=False)
    category_index: dict[int, int] = field(repr=False)
    _rles: list[dict[str, Any]] | None = field(default=None, repr=False)

    @property
    def num_categories(self) -> int:
        return len(self.category_ids)

    @property
    def positive_pairs(self) -> np.ndarray:
        """Sorted pair codes of the categories annotated in each image."""
        return np.unique(self.ann_image * self.num_categories + self.ann_category)

    def require(self, iou_type: str) -> None:
        """Raise ``InputError`` if an annotation lacks what ``iou_type`` evaluation needs."""
        if iou_type == "bbox" and self.ann_bbox is None:
            raise InputError([Problem(self.source, "annotations", "bbox", "missing in some annotations")])
        if iou_type == "segm" and self.ann_segmentation is None:
            raise InputError(
                [Problem(self.source, "annotations", "segmentation", "missing in some annotations")]
            )

    def rles(self) -> list[dict[str, Any]]:
        """Compressed RLE of every kept annotation (converted once, as LVIS ``ann_to_rle``)."""
        if self._rles is None:
            self.require("segm")
            assert self.ann_segmentation is not None
            self._rles = _to_rles(self)
        return self._rles


def _to_rles(gt: GroundTruth) -> list[dict[str, Any]]:
    """Every annotation's mask as an RLE. The reader has passed each segmentation through the one
    segmentation rule (``data.segmentation``): nothing malformed or far outside the image reaches
    pycocotools."""
    assert gt.ann_segmentation is not None
    rles: list[dict[str, Any]] = []
    for g, segm in enumerate(gt.ann_segmentation):
        i = int(gt.ann_image[g])
        h, w = int(gt.heights[i]), int(gt.widths[i])
        if isinstance(segm, list):
            rles.append(mask_utils.merge(mask_utils.frPyObjects(segm, h, w)))
        elif isinstance(segm["counts"], list):
            rles.append(mask_utils.frPyObjects(segm, h, w))
        else:
            rles.append({"size": [h, w], "counts": segm["counts"]})
    return rles


def load_ground_truth(source: str | os.PathLike[str] | dict[str, Any] | GroundTruth) -> GroundTruth:
    """Read and check an LVIS-format ground truth (a path, or the parsed json).

    The checks are the project's one ground-truth reader's (``data.lvis_json.load_lvis`` with
    ``purpose="evaluate"``, D90): what LVISEval reads is required, every field is checked as the
    training reader checks it. Annotations with area 0 are dropped afterwards, as LVISEval does.

    Raises:
        InputError: naming the file, the record and the field of every problem found.
    """
    if isinstance(source, GroundTruth):
        return source
    data = load_lvis(source, purpose="evaluate")
    name = str(data.path)
    cats = [
        {
            "id": int(c["id"]),
            "name": c["name"] if isinstance(c.get("name"), str) else str(c["id"]),
            "frequency": c["frequency"],
            "image_count": c.get("image_count"),
            "instance_count": c.get("instance_count"),
        }
        for c in data.categories  # sorted by id
    ]
    category_index = dict(data.class_index)
    images = [data.images[i] for i in sorted(data.images)]
    image_index = {int(im["id"]): i for i, im in enumerate(images)}
    ann_rows: list[tuple[int, int, int, float, bool]] = []
    boxes: list[Any] = []
    segms: list[Any] = []
    for a in data.annotations:
        if a["area"] <= 0:  # LVISEval's get_ann_ids keeps 0 < area < inf
            continue
        row = (int(a["id"]), image_index[a["image_id"]], category_index[a["category_id"]])
        ann_rows.append((*row, float(a["area"]), bool(a.get("ignore", 0))))
        boxes.append(a.get("bbox"))
        segms.append(a.get("segmentation"))

    k = len(cats)
    rows = np.array([r[:3] for r in ann_rows], dtype=np.int64).reshape(-1, 3)

    def pairs(key: str) -> np.ndarray:
        codes = [image_index[int(im["id"])] * k + category_index[c] for im in images for c in im[key]]
        return np.unique(np.array(codes, dtype=np.int64))

    return GroundTruth(
        source=name,
        image_ids=np.array([int(im["id"]) for im in images], dtype=np.int64),
        heights=np.array([int(im["height"]) for im in images], dtype=np.int64),
        widths=np.array([int(im["width"]) for im in images], dtype=np.int64),
        category_ids=np.array([int(c["id"]) for c in cats], dtype=np.int64),
        categories=cats,
        frequency=np.array([FREQUENCY_GROUPS.index(c["frequency"]) for c in cats], dtype=np.int64),
        ann_ids=rows[:, 0],
        ann_image=rows[:, 1],
        ann_category=rows[:, 2],
        ann_area=np.array([r[3] for r in ann_rows], dtype=np.float64),
        ann_ignore=np.array([r[4] for r in ann_rows], dtype=bool),
        ann_bbox=None if any(b is None for b in boxes) else np.array(boxes, dtype=np.float64).reshape(-1, 4),
        ann_segmentation=None if any(s is None for s in segms) else segms,
        negative_pairs=pairs("neg_category_ids"),
        not_exhaustive_pairs=pairs("not_exhaustive_category_ids"),
        image_index=image_index,
        category_index=category_index,
    )
