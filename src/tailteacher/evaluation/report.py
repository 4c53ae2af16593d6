"""Calibration outputs on disk: calibration.json, delta.safetensors and the reliability diagrams."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .. import io
from .detection_calibration import CalibrationReport, calibration_report, detection_samples
from .ground_truth import load_ground_truth

DIAGRAMS = {
    "all": "all categories",
    "r": "rare categories",
    "c": "common categories",
    "f": "frequent categories",
}


def write_calibration(
    gt_path: str | os.PathLike[str],
    results: str | os.PathLike[str] | list[dict[str, Any]],
    out: Path,
    iou_type: str = "segm",
    num_bins: int = 10,
    max_dets: int = 300,
) -> CalibrationReport:
    """Match ``results`` to ``gt_path`` (IoU ≥ 0.5, LVIS rules) and write into ``out``:
    ``calibration.json`` (Δ per category id, ECE per group), ``delta.safetensors`` (Δ [C] float32
    in class order — categories sorted by id, as every tensor of the project — for Eq. 5, and
    ``count`` [C] int64, the detections behind each Δ_c, for its shrinkage, D100) and
    ``reliability_{all,r,c,f}.png``."""
    from safetensors.torch import save

    from .plots import plot_reliability

    gt = load_ground_truth(gt_path)
    samples = detection_samples(gt, results, iou_type=iou_type, max_dets=max_dets)
    report = calibration_report(gt, samples, num_bins=num_bins)
    payload = {
        "ground_truth": str(gt_path),
        "results": str(results) if not isinstance(results, list) else f"{len(results)} detections",
        "iou_type": iou_type,
        "iou_threshold": 0.5,
        "max_dets": max_dets,
        **report.to_json(gt.categories),
    }
    out.mkdir(parents=True, exist_ok=True)
    io.atomic_write_json(out / "calibration.json", payload, indent=1)
    count = report.accumulator.stats[0].sum(dim=1)  # [C] held-out detections behind each Δ_c
    tensors = {"delta": report.delta.float().contiguous(), "count": count.long().contiguous()}
    io.atomic_write_bytes(out / "delta.safetensors", save(tensors))
    for group, title in DIAGRAMS.items():
        plot_reliability(
            report.reliability(group),
            out / f"reliability_{group}.png",
            title=f"{iou_type}: {title}",
            ece=report.ece(group),
        )
    return report
