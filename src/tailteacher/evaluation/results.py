"""Detections to evaluate: a COCO results list, checked against the ground truth.

Shapes: N records in the results, D detections kept.

A record is ``{image_id, category_id, score, bbox: [x, y, w, h], segmentation: {size, counts}}``
with compressed RLE counts as a str. What LVISResults does, and so what we do:
- per image, only the ``max_dets`` highest scores are kept (ties: the earlier record);
- a detection's area is its box's w·h when the results carry boxes (also for mask AP: the
  area ranges of APs/APm/APl then use box areas), else its mask's area;
- a detection of area 0 is dropped (after the cut to ``max_dets``).
Boxes must be given for all records or for none; without boxes, bbox evaluation uses the
boxes of the masks. Every record is checked (column by column, fast) before any is used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np
import pycocotools.mask as mask_utils

from ..errors import InputError, Problem
from ..io import read_json
from ..numbers import is_finite_number
from .ground_truth import GroundTruth, is_id
from .rle import check_rle_counts

_NUMBER_TYPES: set[type] = {int, float, np.float64, np.float32, np.float16, np.int64, np.int32}
_MAX_PROBLEMS = 1000


@dataclass(eq=False)
class Detections:
    """The detections kept for evaluation, in record order (arrays [D])."""

    source: str
    num_records: int
    record: np.ndarray  # [D] index of the record in the results list
    image: np.ndarray  # [D] image index in the ground truth
    category: np.ndarray  # [D] category index in the ground truth
    score: np.ndarray  # [D] float64
    area: np.ndarray  # [D] float64
    bbox: np.ndarray | None  # [D, 4] float64; None for mask evaluation without boxes
    segmentation: list[dict[str, Any]] | None  # [D] RLE dicts; None for box evaluation


class _Problems:
    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[Problem] = []
        self.bad: set[int] = set()

    def add(self, n: int, field: str, message: str) -> None:
        if len(self.items) < _MAX_PROBLEMS:
            self.items.append(Problem(self.source, f"results[{n}]", field, message))
        self.bad.add(n)

    def raise_if_any(self) -> None:
        if self.items:
            raise InputError(sorted(self.items, key=lambda p: int(p.record[8:-1])))


def _types(column: list[Any]) -> set[type]:
    return set(map(type, column))


def _ids(column: list[Any], ids: np.ndarray, kind: str, field: str, problems: _Problems) -> np.ndarray:
    """Indices of ``column``'s ids in the sorted ``ids`` [N]; −1 (and a problem) where unknown."""
    out = np.full(len(column), -1, np.int64)
    if _types(column) <= {int} and len(ids):
        try:
            values = np.array(column, dtype=np.int64)
        except OverflowError:
            values = None
        if values is not None:
            out = np.minimum(np.searchsorted(ids, values), len(ids) - 1)
            out[ids[out] != values] = -1
            if (out >= 0).all():
                return out
    index = {int(v): i for i, v in enumerate(ids.tolist())}
    for n, v in enumerate(column):
        if v is None:
            problems.add(n, field, "missing")
        elif not is_id(v):
            problems.add(n, field, f"expected an integer {kind} id, got {type(v).__name__} {v!r}")
        elif v not in index:
            problems.add(n, field, f"unknown {kind} id {v!r}")
        else:
            out[n] = index[v]
    return out


def _score_ok(v: Any, unit: bool) -> bool:
    return is_finite_number(v) and (not unit or 0 <= v <= 1)


def _scores(column: list[Any], unit: bool, problems: _Problems) -> np.ndarray:
    if _types(column) <= _NUMBER_TYPES:
        try:
            scores = np.array(column, dtype=np.float64)
        except OverflowError:
            scores = np.full(len(column), np.nan)
        ok = np.isfinite(scores)
        if unit:
            ok &= (scores >= 0) & (scores <= 1)
        if ok.all():
            return scores
    want = "a number in [0, 1] (a confidence)" if unit else "a finite number"
    scores = np.zeros(len(column))
    for n, v in enumerate(column):
        if _score_ok(v, unit):
            scores[n] = v
        else:
            problems.add(n, "score", f"expected {want}, got {v!r}")
    return scores


def _boxes(column: list[Any], problems: _Problems) -> np.ndarray:
    try:
        boxes = np.array(column)
    except (ValueError, OverflowError):  # ragged, or an int beyond float range
        boxes = np.zeros(0)
    if boxes.dtype.kind in "if" and boxes.shape == (len(column), 4):
        boxes = boxes.astype(np.float64)
        if np.isfinite(boxes).all() and (boxes[:, 2:] >= 0).all():
            return boxes
    out = np.zeros((len(column), 4))
    for n, b in enumerate(column):
        if isinstance(b, list) and len(b) == 4 and all(map(is_finite_number, b)) and min(b[2:]) >= 0:
            out[n] = b
        else:
            problems.add(
                n, "bbox", f"expected [x, y, width, height], finite, width and height ≥ 0; got {b!r}"
            )
    return out


def _masks(
    column: list[Any], image: np.ndarray, gt: GroundTruth, problems: _Problems
) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Check RLE dicts; returns them and their areas [N]."""
    heights, widths = gt.heights[np.maximum(image, 0)], gt.widths[np.maximum(image, 0)]
    counts: list[str] = []
    where: list[int] = []
    fast = False
    if _types(column) == {dict}:
        try:
            counts = list(map(itemgetter("counts"), column))
            sizes = np.array(list(map(itemgetter("size"), column)))
        except (KeyError, ValueError):  # a missing key, or ragged sizes
            sizes = np.zeros(0)
        fast = (
            _types(counts) == {str}
            and sizes.shape == (len(column), 2)
            and sizes.dtype.kind == "i"
            and bool((sizes[:, 0] == heights).all() and (sizes[:, 1] == widths).all())
            and not problems.bad
        )
        where = list(range(len(column)))
    if not fast:
        counts, where = [], []
        column = list(column)  # uncompressed RLEs are replaced by their compressed form below
        for n, s in enumerate(column):
            if n in problems.bad:
                continue
            h, w = int(heights[n]), int(widths[n])
            if type(s) is dict and type(s.get("counts")) is list and s.get("size") == [h, w]:
                compressed = _compress(s["counts"], h, w)
                if isinstance(compressed, str):
                    problems.add(n, "segmentation.counts", compressed)
                    continue
                column[n] = compressed
                s = compressed
            if type(s) is dict and type(s.get("counts")) is str and s.get("size") == [h, w]:
                counts.append(s["counts"])
                where.append(n)
            elif s is None:
                problems.add(n, "segmentation", "missing (mask evaluation needs one per record)")
            elif not isinstance(s, dict) or not isinstance(s.get("counts"), str | list):
                got = type(s.get("counts")).__name__ if isinstance(s, dict) else type(s).__name__
                msg = f"expected an RLE {{size, counts: str or list of run lengths}}, got {got}"
                problems.add(n, "segmentation", msg)
            else:
                msg = f"expected [{h}, {w}] (the image's), got {s.get('size')!r}"
                problems.add(n, "segmentation.size", msg)
    idx = np.array(where, dtype=np.int64)
    check = check_rle_counts(counts, heights[idx], widths[idx])
    for n, problem in zip(where, check.problem, strict=True):
        if problem:
            problems.add(n, "segmentation.counts", problem)
    area = np.zeros(len(column))
    area[idx] = check.area
    return column, area


def _compress(runs: list[Any], height: int, width: int) -> dict[str, Any] | str:
    """An uncompressed RLE's run lengths (``counts`` a list, as pycocotools and lvis-api accept)
    as the compressed RLE ``{size, counts: str}``; what is wrong with them, as a str, if anything."""
    if not all(type(r) is int and r >= 0 for r in runs):
        return "expected run lengths: integers ≥ 0"
    if sum(runs) != height * width:
        return f"run lengths add up to {sum(runs)}, not height × width = {height * width}"
    from pycocotools import mask as mask_utils

    rle = mask_utils.frPyObjects({"size": [height, width], "counts": runs}, height, width)
    return {"size": [height, width], "counts": rle["counts"].decode("ascii")}


def load_results(
    source: str | os.PathLike[str] | list[dict[str, Any]],
    gt: GroundTruth,
    *,
    iou_type: str = "segm",
    max_dets: int = 300,
    unit_scores: bool = False,
) -> Detections:
    """Read and check a COCO results list; keep what LVISEval would keep.

    Args:
        source: a path to a json list, or the list.
        gt: the ground truth the results refer to.
        iou_type: "segm" (masks needed) or "bbox".
        max_dets: detections kept per image, by score.
        unit_scores: require scores in [0, 1] (confidences, for calibration).

    Raises:
        InputError: every problem, as ``results[n]`` and the field.
    """
    if iou_type not in ("segm", "bbox"):
        raise ValueError(f"iou_type: expected 'segm' or 'bbox', got {iou_type!r}")
    if not (is_id(max_dets) and max_dets > 0):
        raise ValueError(f"max_dets: expected a positive integer, got {max_dets!r}")
    name = "<results>" if isinstance(source, list) else str(source)
    data = source if isinstance(source, list) else read_json(source)
    if not isinstance(data, list):
        raise InputError([Problem(name, "top level", "-", "expected a list of detections")])
    problems = _Problems(name)
    for n, r in enumerate(data):
        if type(r) is not dict:
            problems.add(n, "-", "expected an object {image_id, category_id, score, ...}")
    problems.raise_if_any()

    def col(key: str) -> list[Any]:
        try:
            return list(map(itemgetter(key), data))
        except KeyError:
            return [r.get(key) for r in data]

    image = _ids(col("image_id"), gt.image_ids, "image", "image_id", problems)
    category = _ids(col("category_id"), gt.category_ids, "category", "category_id", problems)
    score = _scores(col("score"), unit_scores, problems)
    has_box = ["bbox" in r for r in data]
    boxes = None
    if all(has_box) and data:
        boxes = _boxes(col("bbox"), problems)
    elif any(has_box):
        for n in [n for n, h in enumerate(has_box) if not h][:_MAX_PROBLEMS]:
            problems.add(n, "bbox", "missing, while other records have one: give boxes for all or none")
    masks, mask_area = None, None
    if iou_type == "segm" or boxes is None:
        masks, mask_area = _masks(col("segmentation"), image, gt, problems)
    problems.raise_if_any()

    area = mask_area if boxes is None else boxes[:, 2] * boxes[:, 3]
    assert area is not None
    # The highest `max_dets` scores of each image; ties keep the earlier record (a stable sort).
    order = np.lexsort((np.arange(len(data)), -score, image))
    sorted_image = image[order]
    group_start = np.searchsorted(sorted_image, sorted_image, side="left")
    rank = np.empty(len(data), np.int64)
    rank[order] = np.arange(len(data)) - group_start
    keep = np.flatnonzero((rank < max_dets) & (area > 0))
    if iou_type == "bbox" and boxes is None:
        assert masks is not None
        boxes = _mask_boxes([masks[n] for n in keep.tolist()])
        kept_boxes: np.ndarray | None = boxes
    else:
        kept_boxes = None if boxes is None else boxes[keep]
    return Detections(
        source=name,
        num_records=len(data),
        record=keep,
        image=image[keep],
        category=category[keep],
        score=score[keep],
        area=area[keep].astype(np.float64),
        bbox=kept_boxes,
        segmentation=[masks[n] for n in keep.tolist()] if iou_type == "segm" and masks is not None else None,
    )


def _mask_boxes(rles: list[dict[str, Any]], chunk: int = 4096) -> np.ndarray:
    parts = [mask_utils.toBbox(rles[i : i + chunk]) for i in range(0, len(rles), chunk)]
    return np.concatenate(parts).astype(np.float64) if parts else np.zeros((0, 4))
