"""Run under torchrun: each rank holds the detections of its own images; all evaluate.

Every rank writes what ``evaluate_distributed`` returned to OUT/rank{r}.json, so the test can
check that every rank (not only rank 0) gets the single-process metrics.
"""

import json
import sys
from pathlib import Path

import torch.distributed as dist

from tailteacher.engine import shutdown
from tailteacher.evaluation import evaluate_distributed, gather_results
from tailteacher.evaluation.synthetic import synthetic_lvis_case


def case():
    return synthetic_lvis_case(num_images=9, num_categories=12, dets_per_image=40, seed=21, score_decimals=2)


def main(out: Path) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    gt, results = case()
    image_ids = sorted({r["image_id"] for r in results})
    mine = set(image_ids[rank::world])  # whole images per rank, uneven shards
    shard = [r for r in results if r["image_id"] in mine]
    report = {"num_gathered": len(gather_results(shard))}
    for iou_type in ("segm", "bbox"):
        ev = evaluate_distributed(gt, shard, iou_type=iou_type)
        report[iou_type] = {"metrics": ev.metrics, "per_category": [c["AP"] for c in ev.per_category]}
    (out / f"rank{rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    try:
        main(Path(sys.argv[1]))
    finally:  # also when main raises: a gloo group left to interpreter exit can abort (D122)
        shutdown()
