"""Calibration of a detector from LVIS matching: the samples of Eq. 4 and the ECE (Fig. 3).

Shapes: M detections used as samples, C categories (classes 0..C−1 = categories by id).

A sample is a detection kept by LVIS's rules, with its score as confidence, its predicted
category as class, and ``correct`` when it matched a ground truth of that category at
IoU ≥ 0.5 (LVIS greedy matching, area range "all"). The detections LVIS does not count are
not samples either: categories neither positive nor negative for the image, unmatched
detections of a category not exhaustively annotated there, detections matched to an
``ignore`` ground truth, detections beyond the top ``max_dets`` of their image, and
detections of area 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

from ..labels import CalibrationAccumulator, ReliabilityBins
from .ground_truth import FREQUENCY_GROUPS, GroundTruth, load_ground_truth
from .lvis_eval import GroundTruthSource, Results
from .matching import Matches, match
from .results import load_results


class DetectionSamples(NamedTuple):
    """Calibration samples, ready for ``tailteacher.labels.ccece`` or ``CalibrationAccumulator``."""

    confidences: torch.Tensor  # [M] float64, the detection scores
    correct: torch.Tensor  # [M] bool, matched at IoU ≥ 0.5
    classes: torch.Tensor  # [M] int64, predicted class in [0, C)
    category_ids: list[int]  # [C] category id of each class


def samples_from_matches(gt: GroundTruth, matches: Matches) -> DetectionSamples:
    """The samples of ``matches`` at IoU 0.5 (threshold index 0) and area range "all" (index 0)."""
    used = ~matches.ignored[0, 0]
    return DetectionSamples(
        confidences=torch.from_numpy(np.ascontiguousarray(matches.score[used])),
        correct=torch.from_numpy(np.ascontiguousarray(matches.matched[0, 0][used])),
        classes=torch.from_numpy(np.ascontiguousarray(matches.category[used])),
        category_ids=[int(c) for c in gt.category_ids.tolist()],
    )


def detection_samples(
    ground_truth: GroundTruthSource, results: Results, *, iou_type: str = "segm", max_dets: int = 300
) -> DetectionSamples:
    """Match ``results`` to the ground truth and return one calibration sample per counted
    detection. Scores must lie in [0, 1] (they are confidences).

    Raises:
        InputError: bad input, naming the file, the record and the field.
    """
    gt = load_ground_truth(ground_truth)
    dets = load_results(results, gt, iou_type=iou_type, max_dets=max_dets, unit_scores=True)
    return samples_from_matches(gt, match(gt, dets, iou_type))


@dataclass(eq=False)
class CalibrationReport:
    """Δ (Eq. 4) per category, ECE and reliability bins overall and per frequency group."""

    num_bins: int
    category_ids: list[int]
    delta: torch.Tensor  # [C] float64, 0 for a category without samples
    accumulator: CalibrationAccumulator  # the per (class, bin) statistics behind everything
    groups: dict[str, list[int]]  # "r"/"c"/"f" → class indices

    def reliability(self, group: str = "all") -> ReliabilityBins:
        return self.accumulator.reliability(self._classes(group))

    def ece(self, group: str = "all") -> float | None:
        """ECE of the group's detections; None when the group has none."""
        if self.num_samples(group) == 0:
            return None
        return self.accumulator.ece(self._classes(group))

    def num_samples(self, group: str = "all") -> int:
        return int(self._stats(group)[0].sum())

    def num_correct(self, group: str = "all") -> int:
        return int(self._stats(group)[2].sum())

    def _stats(self, group: str) -> torch.Tensor:
        """[3, C', B] count, confidence sum, correct sum of the group's classes."""
        classes = self._classes(group)
        stats = self.accumulator.stats
        return stats if classes is None else stats.index_select(1, classes)

    def _classes(self, group: str) -> torch.Tensor | None:
        if group == "all":
            return None
        return torch.tensor(self.groups[group], dtype=torch.long)

    def to_json(self, categories: list[dict[str, Any]]) -> dict[str, Any]:
        """Everything as json: Δ keyed by category id (a string, as json keys are)."""
        count, conf_sum, correct_sum = self.accumulator.stats.sum(dim=2)  # [C] each
        names = ("all", *FREQUENCY_GROUPS)
        per_category = []
        for k, cat in enumerate(categories):
            n = int(count[k])
            per_category.append(
                {
                    "id": int(cat["id"]),
                    "name": cat["name"],
                    "frequency": cat["frequency"],
                    "num_detections": n,
                    "num_correct": int(correct_sum[k]),
                    "mean_confidence": float(conf_sum[k]) / n if n else None,
                    "accuracy": float(correct_sum[k]) / n if n else None,
                    "delta": float(self.delta[k]),
                }
            )
        reliability = {}
        for g in names:
            bins = self.reliability(g)
            reliability[g] = {
                "edges": bins.edges.tolist(),
                "count": [int(c) for c in bins.count.tolist()],
                "accuracy": bins.accuracy.tolist(),
                "confidence": bins.confidence.tolist(),
            }
        return {
            "num_bins": self.num_bins,
            "ece": {g: self.ece(g) for g in names},
            "num_detections": {g: self.num_samples(g) for g in names},
            "num_correct": {g: self.num_correct(g) for g in names},
            "delta": {str(c["id"]): c["delta"] for c in per_category},
            "categories": per_category,
            "reliability": reliability,
        }


def calibration_report(gt: GroundTruth, samples: DetectionSamples, num_bins: int = 10) -> CalibrationReport:
    """Bin ``samples`` per (class, confidence bin) and derive Δ, ECE and reliability bins."""
    acc = CalibrationAccumulator(gt.num_categories, num_bins=num_bins)
    if samples.confidences.numel():
        acc.update(samples.confidences, samples.correct, samples.classes)
    groups = {g: np.flatnonzero(gt.frequency == i).tolist() for i, g in enumerate(FREQUENCY_GROUPS)}
    return CalibrationReport(
        num_bins=num_bins,
        category_ids=list(samples.category_ids),
        delta=acc.ccece(),
        accumulator=acc,
        groups=groups,
    )
