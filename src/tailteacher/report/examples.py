"""Fig. 5's images: validation images with rare objects, where teacher and student differ most.

For every true object of a rare category, each model's *found score* is the highest score of
its detections of that category overlapping the object at box IoU ≥ 0.5 (0 when it has none).
An image's difference is the sum over its rare objects of |student's − teacher's| found score:
large where one model finds a rare object confidently and the other does not.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

IOU_THRESHOLD = 0.5


def box_iou_xywh(a: Sequence[float], b: np.ndarray) -> np.ndarray:
    """IoU of one COCO box ``a`` [x, y, w, h] with boxes ``b`` [N, 4] (same format)."""
    if len(b) == 0:
        return np.zeros(0)
    ax0, ay0, aw, ah = (float(v) for v in a)
    bx0, by0, bw, bh = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    iw = np.clip(np.minimum(ax0 + aw, bx0 + bw) - np.maximum(ax0, bx0), 0, None)
    ih = np.clip(np.minimum(ay0 + ah, by0 + bh) - np.maximum(ay0, by0), 0, None)
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def by_image(records: Iterable[Mapping[str, Any]]) -> dict[int, list[Mapping[str, Any]]]:
    """Annotations or detections grouped by ``image_id``."""
    out: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    for r in records:
        out[int(r["image_id"])].append(r)
    return out


def found_score(obj: Mapping[str, Any], detections: Sequence[Mapping[str, Any]]) -> float:
    """The highest score of ``detections`` of ``obj``'s category at box IoU ≥ 0.5 with it, or 0."""
    same = [d for d in detections if d["category_id"] == obj["category_id"]]
    if not same:
        return 0.0
    iou = box_iou_xywh(obj["bbox"], np.asarray([d["bbox"] for d in same], dtype=np.float64))
    scores = np.asarray([float(d["score"]) for d in same])
    hit = iou >= IOU_THRESHOLD
    return float(scores[hit].max()) if hit.any() else 0.0


@dataclass(frozen=True)
class Example:
    """One chosen image: its id, its difference, and per rare object (annotation id) the two found scores."""

    image_id: int
    difference: float
    found: dict[int, tuple[float, float]]  # annotation id → (teacher, student)


def choose_examples(
    annotations: Sequence[Mapping[str, Any]],
    rare_ids: Iterable[int],
    teacher: Sequence[Mapping[str, Any]],
    student: Sequence[Mapping[str, Any]],
    count: int = 4,
) -> list[Example]:
    """Up to ``count`` images with a rare object, the largest difference first (then image id)."""
    rare = set(rare_ids)
    truth = by_image(a for a in annotations if a["category_id"] in rare and not a.get("iscrowd"))
    t_dets, s_dets = by_image(teacher), by_image(student)
    examples = []
    for image_id, objects in truth.items():
        found = {
            int(o["id"]): (found_score(o, t_dets.get(image_id, [])), found_score(o, s_dets.get(image_id, [])))
            for o in objects
        }
        difference = sum(abs(s - t) for t, s in found.values())
        examples.append(Example(image_id, difference, found))
    examples.sort(key=lambda e: (-e.difference, e.image_id))
    return examples[:count]
