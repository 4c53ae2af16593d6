"""Real torchrun, two gloo processes: every rank gets the metrics of all ranks' detections."""

import json
import sys
from pathlib import Path

import pytest

from tailteacher.evaluation import evaluate, evaluate_distributed

HELPER = Path(__file__).parent / "helpers" / "dist_evaluate.py"
sys.path.insert(0, str(HELPER.parent))
import dist_evaluate  # noqa: E402
from torchrun import torchrun  # noqa: E402


@pytest.mark.distributed
def test_every_rank_gets_the_single_process_metrics(tmp_path):
    torchrun(HELPER, str(tmp_path))

    gt, results = dist_evaluate.case()
    for rank in (0, 1):
        got = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert got["num_gathered"] == len(results)
        for iou_type in ("segm", "bbox"):
            ref = evaluate(gt, results, iou_type=iou_type)
            assert got[iou_type]["metrics"] == ref.metrics  # equal, not close: same computation
            assert got[iou_type]["per_category"] == [c["AP"] for c in ref.per_category]


def test_without_a_process_group_it_is_plain_evaluation():
    gt, results = dist_evaluate.case()
    assert (
        evaluate_distributed(gt, results, iou_type="bbox").metrics
        == evaluate(gt, results, iou_type="bbox").metrics
    )
