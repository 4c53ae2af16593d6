"""Evaluation under DDP: every rank gathers all ranks' detections and returns the same metrics.

Each rank evaluates the gathered whole itself (the evaluation is deterministic, so all ranks
get equal results) rather than rank 0 alone and a broadcast: peers are not left with None, and
bad input raises the same ``InputError`` on every rank instead of leaving peers waiting in a
collective for a rank that died.
"""

from __future__ import annotations

from typing import Any

import torch.distributed as dist

from .lvis_eval import GroundTruthSource, LvisEvaluation, evaluate


def gather_results(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every rank's results, concatenated in rank order, on every rank.

    Without an initialised process group: ``results`` itself (one process). Within an image,
    detections keep their order, which only matters for exact score ties, so ranks should
    hold whole images (as a DistributedSampler over images gives them).
    """
    if not (dist.is_available() and dist.is_initialized()):
        return list(results)
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, list(results))
    return [r for part in gathered for r in part]


def evaluate_distributed(
    ground_truth: GroundTruthSource,
    results: list[dict[str, Any]],
    *,
    iou_type: str = "segm",
    max_dets: int = 300,
) -> LvisEvaluation:
    """LVIS metrics of all ranks' ``results`` together, returned on every rank.

    Args:
        ground_truth: the evaluation set (every rank reads the same one).
        results: this rank's COCO-format detections.
    """
    return evaluate(ground_truth, gather_results(results), iou_type=iou_type, max_dets=max_dets)
