"""Evaluation: LVIS metrics (AP, APr/APc/APf), detection calibration (Eq. 4, ECE) and plots.

evaluate, LvisEvaluation       LVIS AP equal to the official LVISEval (faster)
evaluate_distributed           the same under DDP, metrics on every rank
detection_samples              (confidences, correct, classes) of a detector, for Eq. 4
calibration_report             Δ per category, ECE overall and per group r/c/f
plot_reliability               Fig. 3, reliability diagram
plot_ap_vs_frequency           Fig. 4, AP per class against training frequency
load_ground_truth, load_results, match    the steps of ``evaluate``, to reuse
"""

from typing import Any

from .detection_calibration import CalibrationReport, DetectionSamples, calibration_report, detection_samples
from .distributed import evaluate_distributed, gather_results
from .ground_truth import FREQUENCY_GROUPS, GroundTruth, load_ground_truth
from .lvis_eval import LvisEvaluation, evaluate, evaluate_matches
from .matching import AREA_RANGES, IOU_THRESHOLDS, Matches, match
from .results import Detections, load_results


def __getattr__(name: str) -> Any:
    # The plots import matplotlib (slow): only when asked for.
    if name in ("plot_ap_vs_frequency", "plot_reliability"):
        from . import plots

        return getattr(plots, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AREA_RANGES",
    "FREQUENCY_GROUPS",
    "IOU_THRESHOLDS",
    "CalibrationReport",
    "DetectionSamples",
    "Detections",
    "GroundTruth",
    "LvisEvaluation",
    "Matches",
    "calibration_report",
    "detection_samples",
    "evaluate",
    "evaluate_distributed",
    "evaluate_matches",
    "gather_results",
    "load_ground_truth",
    "load_results",
    "match",
    "plot_ap_vs_frequency",
    "plot_reliability",
]
