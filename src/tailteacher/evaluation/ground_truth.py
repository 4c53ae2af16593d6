"""The ground truth of an LVIS evaluation: images, categories and annotations, checked.

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
from typing import Any, TypeGuard

import numpy as np
import pycocotools.mask as mask_utils

from ..data.segmentation import MAX_IMAGE_SIDE, segmentation_problem
from ..errors import InputError, Problem
from ..numbers import is_finite_number
from .files import read_json

FREQUENCY_GROUPS = ("r", "c", "f")  # LVIS: rare ≤ 10 training images, common 11–100, frequent > 100
_MAX_PROBLEMS = 1000


def is_id(v: object) -> TypeGuard[int]:
    """An integer id that numpy can hold (int64): 2**64 is no id (and overflowed the arrays)."""
    return isinstance(v, int) and not isinstance(v, bool) and -(2**63) <= v < 2**63


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
    """Every annotation's mask as an RLE, after the one segmentation rule (``data.segmentation``)
    has passed it: nothing malformed or far outside the image reaches pycocotools."""
    assert gt.ann_segmentation is not None
    problems: list[Problem] = []
    rles: list[dict[str, Any]] = []
    for g, segm in enumerate(gt.ann_segmentation):
        i = int(gt.ann_image[g])
        h, w = int(gt.heights[i]), int(gt.widths[i])
        why = segmentation_problem(segm, h, w)
        if why is not None:
            problems.append(Problem(gt.source, f"annotation id={int(gt.ann_ids[g])}", *why))
            rles.append({})
            if len(problems) >= _MAX_PROBLEMS:
                break
            continue
        if isinstance(segm, list):
            rles.append(mask_utils.merge(mask_utils.frPyObjects(segm, h, w)))
        elif isinstance(segm["counts"], list):
            rles.append(mask_utils.frPyObjects(segm, h, w))
        else:
            rles.append({"size": [h, w], "counts": segm["counts"]})
    if problems:
        raise InputError(problems)
    return rles


def _check_categories(source: str, records: list[Any], problems: list[Problem]) -> list[dict[str, Any]]:
    cats: list[dict[str, Any]] = []
    seen: set[int] = set()
    for n, c in enumerate(records):
        where = f"categories[{n}]"
        if not isinstance(c, dict):
            problems.append(Problem(source, where, "-", "expected an object"))
            continue
        cid = c.get("id")
        if not is_id(cid) or cid in seen:
            problems.append(Problem(source, where, "id", "expected a unique integer id"))
            continue
        assert isinstance(cid, int)
        seen.add(cid)
        where = f"category id={cid}"
        if c.get("frequency") not in FREQUENCY_GROUPS:
            problems.append(Problem(source, where, "frequency", "expected 'r', 'c' or 'f'"))
        counts = {}
        for key in ("image_count", "instance_count"):
            v = c.get(key)
            if v is not None and not (is_id(v) and v >= 0):
                problems.append(Problem(source, where, key, "expected a non-negative integer"))
            counts[key] = v
        name = c.get("name")
        cats.append(
            {"id": cid, "name": name if isinstance(name, str) else str(cid), "frequency": c.get("frequency")}
            | counts
        )
    return sorted(cats, key=lambda c: int(c["id"]))


def _check_images(
    source: str, records: list[Any], category_index: dict[int, int], problems: list[Problem]
) -> list[dict[str, Any]]:
    images: list[dict[str, Any]] = []
    seen: set[int] = set()
    for n, im in enumerate(records):
        where = f"images[{n}]"
        if not isinstance(im, dict):
            problems.append(Problem(source, where, "-", "expected an object"))
            continue
        iid = im.get("id")
        if not is_id(iid) or iid in seen:
            problems.append(Problem(source, where, "id", "expected a unique integer id"))
            continue
        assert isinstance(iid, int)
        seen.add(iid)
        where = f"image id={iid}"
        ok = True
        for key in ("height", "width"):
            v = im.get(key)
            if not (is_id(v) and 0 < v <= MAX_IMAGE_SIDE):
                message = f"expected a positive integer ≤ {MAX_IMAGE_SIDE}, got {v!r}"
                problems.append(Problem(source, where, key, message))
                ok = False
        for key in ("neg_category_ids", "not_exhaustive_category_ids"):
            v = im.get(key)
            if not isinstance(v, list):
                msg = "expected a list of category ids (LVIS federated annotation; [] if none)"
                problems.append(Problem(source, where, key, msg))
                ok = False
            elif not all(is_id(c) and c in category_index for c in v):
                bad = next(c for c in v if not (is_id(c) and c in category_index))
                problems.append(Problem(source, where, key, f"unknown category id {bad!r}"))
                ok = False
        if ok:
            images.append(im)
    return sorted(images, key=lambda im: int(im["id"]))


def load_ground_truth(source: str | os.PathLike[str] | dict[str, Any] | GroundTruth) -> GroundTruth:
    """Read and check an LVIS-format ground truth (a path, or the parsed json).

    Raises:
        InputError: naming the file, the record and the field of every problem found.
    """
    if isinstance(source, GroundTruth):
        return source
    name = "<ground truth>" if isinstance(source, dict) else str(source)
    data = source if isinstance(source, dict) else read_json(source)
    problems: list[Problem] = []
    if not isinstance(data, dict):
        raise InputError(
            [Problem(name, "top level", "-", "expected an object with images, annotations, categories")]
        )
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            problems.append(Problem(name, "top level", key, "expected a list"))
    if problems:
        raise InputError(problems)

    cats = _check_categories(name, data["categories"], problems)
    if not data["categories"]:
        problems.append(Problem(name, "top level", "categories", "expected at least one category"))
    category_index = {int(c["id"]): k for k, c in enumerate(cats)}
    images = _check_images(name, data["images"], category_index, problems)
    image_index = {int(im["id"]): i for i, im in enumerate(images)}
    if problems:
        raise InputError(problems)

    ann_rows: list[tuple[int, int, int, float, bool]] = []
    boxes: list[Any] = []
    segms: list[Any] = []
    seen: set[int] = set()
    for n, a in enumerate(data["annotations"]):
        if len(problems) >= _MAX_PROBLEMS:
            break
        where = f"annotations[{n}]"
        if not isinstance(a, dict):
            problems.append(Problem(name, where, "-", "expected an object"))
            continue
        aid = a.get("id")
        if not is_id(aid) or aid in seen:
            problems.append(Problem(name, where, "id", "expected a unique integer id"))
            continue
        seen.add(aid)
        where = f"annotation id={aid}"
        image, cat, area = a.get("image_id"), a.get("category_id"), a.get("area")
        for field_, kind, value, index in (
            ("image_id", "image", image, image_index),
            ("category_id", "category", cat, category_index),
        ):
            if not is_id(value):
                message = f"expected an integer {kind} id, got {type(value).__name__} {value!r}"
                problems.append(Problem(name, where, field_, message))
            elif value not in index:
                problems.append(Problem(name, where, field_, f"unknown {kind} id {value!r}"))
        if not (is_finite_number(area) and area >= 0):
            problems.append(Problem(name, where, "area", "expected a finite number ≥ 0"))
        box = a.get("bbox")
        if box is not None and not (
            isinstance(box, list) and len(box) == 4 and all(map(is_finite_number, box)) and min(box[2:]) >= 0
        ):
            problems.append(Problem(name, where, "bbox", "expected [x, y, width, height], finite, size ≥ 0"))
        ignore = a.get("ignore", 0)
        if ignore not in (0, 1):  # also True/False
            problems.append(Problem(name, where, "ignore", "expected 0 or 1"))
        if problems and problems[-1].record == where:
            continue
        assert isinstance(aid, int) and isinstance(image, int) and isinstance(cat, int)
        assert isinstance(area, (int, float))
        if area <= 0:  # LVISEval's get_ann_ids keeps 0 < area < inf
            continue
        ann_rows.append((aid, image_index[image], category_index[cat], float(area), bool(ignore)))
        boxes.append(box)
        segms.append(a.get("segmentation"))
    if problems:
        raise InputError(problems)

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
