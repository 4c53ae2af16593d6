"""LVIS AP (AP, AP50, AP75, APs/m/l, APr/c/f, AR), equal to the official LVISEval, faster.

Shapes: T = 10 IoU thresholds, R = 101 recall thresholds, K categories, A = 4 area ranges.

The accumulation and the summary repeat LVISEval's arithmetic operation for operation (the
same float64 cumulative sums, divisions, interpolation and means), so the numbers are equal,
not merely close; what differs is how the matching is computed (``matching.py``). A metric
without any ground truth to measure it is −1, as in LVISEval; a category's AP without ground
truth is None.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from .ground_truth import FREQUENCY_GROUPS, GroundTruth, load_ground_truth
from .matching import AREA_RANGES, IOU_THRESHOLDS, Matches, match
from .results import load_results

RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
AREA_NAMES = tuple(AREA_RANGES)

Results = str | os.PathLike[str] | list[dict[str, Any]]
GroundTruthSource = str | os.PathLike[str] | dict[str, Any] | GroundTruth


@dataclass(eq=False)
class LvisEvaluation:
    """What ``evaluate`` measured.

    ``metrics``: AP, AP50, AP75, APs, APm, APl, APr, APc, APf, AR@{max_dets}, ARs/ARm/ARl@...
    ``per_category``: one dict per category (sorted by id): id, name, frequency,
    image_count, instance_count, num_gt, num_detections, AP, AP50, AR (None without ground truth).
    """

    iou_type: str
    max_dets: int
    metrics: dict[str, float]
    per_category: list[dict[str, Any]]
    precision: np.ndarray  # [T, R, K, A], −1 where a category has no ground truth
    recall: np.ndarray  # [T, K, A]

    def to_json(self) -> dict[str, Any]:
        """A json-ready summary (no arrays)."""
        return {
            "iou_type": self.iou_type,
            "max_dets": self.max_dets,
            "metrics": dict(self.metrics),
            "per_category": [dict(c) for c in self.per_category],
        }


def accumulate(matches: Matches, num_categories: int) -> tuple[np.ndarray, np.ndarray]:
    """Precision at each recall threshold and final recall, per category (LVISEval ``accumulate``).

    Returns:
        precision [T, R, K, A] and recall [T, K, A], −1 where there is no ground truth.
    """
    num_t, num_r, num_a = len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS), len(AREA_RANGES)
    precision = -np.ones((num_t, num_r, num_categories, num_a))
    recall = -np.ones((num_t, num_categories, num_a))
    bounds = np.searchsorted(matches.category, np.arange(num_categories + 1))
    for k in range(num_categories):
        areas = np.flatnonzero(matches.num_gt[k] > 0)
        if not len(areas):
            continue
        lo, hi = int(bounds[k]), int(bounds[k + 1])
        if hi == lo:  # ground truth but no detection: precision and recall 0
            precision[:, :, k, areas] = 0.0
            recall[:, k, areas] = 0.0
            continue
        tps = matches.matched[areas, :, lo:hi]  # [a, T, n]
        fps = ~tps & ~matches.ignored[areas, :, lo:hi]
        tp_sum = np.cumsum(tps, axis=2).astype(np.float64)
        fp_sum = np.cumsum(fps, axis=2).astype(np.float64)
        num_gt = matches.num_gt[k, areas][:, None, None]
        rc = tp_sum / num_gt
        pr = tp_sum / (fp_sum + tp_sum + np.spacing(1))
        pr = np.maximum.accumulate(pr[:, :, ::-1], axis=2)[:, :, ::-1]  # max to the right
        recall[:, k, areas] = rc[:, :, -1].T
        for i, a in enumerate(areas.tolist()):
            for t in range(num_t):
                inds = np.searchsorted(rc[i, t], RECALL_THRESHOLDS, side="left")
                q = np.zeros(num_r)
                valid = inds < hi - lo
                q[valid] = pr[i, t, inds[valid]]
                precision[t, :, k, a] = q
    return precision, recall


def _mean_valid(s: np.ndarray) -> float:
    return float(np.mean(s[s > -1])) if (s > -1).any() else -1.0


def summarize(
    precision: np.ndarray, recall: np.ndarray, frequency: np.ndarray, max_dets: int
) -> dict[str, float]:
    """LVISEval ``summarize``: the means over the valid entries of each slice."""
    groups = [np.flatnonzero(frequency == g).tolist() for g in range(len(FREQUENCY_GROUPS))]

    def ap(iou: float | None = None, area: str = "all", group: int | None = None) -> float:
        aidx = [AREA_NAMES.index(area)]
        s = precision if iou is None else precision[np.where(iou == IOU_THRESHOLDS)[0]]
        s = s[:, :, groups[group], aidx] if group is not None else s[:, :, :, aidx]
        return _mean_valid(s)

    def ar(area: str = "all") -> float:
        return _mean_valid(recall[:, :, [AREA_NAMES.index(area)]])

    return {
        "AP": ap(),
        "AP50": ap(iou=0.50),
        "AP75": ap(iou=0.75),
        "APs": ap(area="small"),
        "APm": ap(area="medium"),
        "APl": ap(area="large"),
        "APr": ap(group=0),
        "APc": ap(group=1),
        "APf": ap(group=2),
        f"AR@{max_dets}": ar(),
        f"ARs@{max_dets}": ar("small"),
        f"ARm@{max_dets}": ar("medium"),
        f"ARl@{max_dets}": ar("large"),
    }


def _per_category(
    gt: GroundTruth, matches: Matches, precision: np.ndarray, recall: np.ndarray
) -> list[dict[str, Any]]:
    num_dets = np.bincount(matches.category, minlength=gt.num_categories)
    out = []
    for k, cat in enumerate(gt.categories):
        has_gt = bool(matches.num_gt[k, 0] > 0)
        out.append(
            {
                "id": int(cat["id"]),
                "name": cat["name"],
                "frequency": cat["frequency"],
                "image_count": cat.get("image_count"),
                "instance_count": cat.get("instance_count"),
                "num_gt": int(matches.num_gt[k, 0]),
                "num_detections": int(num_dets[k]),
                "AP": float(np.mean(precision[:, :, k, 0])) if has_gt else None,
                "AP50": float(np.mean(precision[0, :, k, 0])) if has_gt else None,
                "AR": float(np.mean(recall[:, k, 0])) if has_gt else None,
            }
        )
    return out


def evaluate(
    ground_truth: GroundTruthSource,
    results: Results,
    *,
    iou_type: str = "segm",
    max_dets: int = 300,
) -> LvisEvaluation:
    """LVIS evaluation of ``results`` (a COCO results list or its json path) against an LVIS
    ground truth (path, parsed json, or a loaded ``GroundTruth`` to reuse).

    Raises:
        InputError: bad input, naming the file, the record and the field.
    """
    gt = load_ground_truth(ground_truth)
    dets = load_results(results, gt, iou_type=iou_type, max_dets=max_dets)
    matches = match(gt, dets, iou_type)
    return evaluate_matches(gt, matches, iou_type=iou_type, max_dets=max_dets)


def evaluate_matches(gt: GroundTruth, matches: Matches, *, iou_type: str, max_dets: int) -> LvisEvaluation:
    """The metrics of matched detections (``evaluate`` after ``match``)."""
    precision, recall = accumulate(matches, gt.num_categories)
    return LvisEvaluation(
        iou_type=iou_type,
        max_dets=max_dets,
        metrics=summarize(precision, recall, gt.frequency, max_dets),
        per_category=_per_category(gt, matches, precision, recall),
        precision=precision,
        recall=recall,
    )
