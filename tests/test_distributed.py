"""Real torchrun, two gloo processes on CPU: reduced accumulators equal one process."""

import sys
from pathlib import Path

import pytest
import torch

from tailteacher.labels import ccece, class_prototypes, expected_calibration_error

HELPER = Path(__file__).parent / "helpers" / "dist_accumulate.py"
sys.path.insert(0, str(HELPER.parent))
import dist_accumulate  # noqa: E402
from torchrun import torchrun  # noqa: E402


@pytest.mark.distributed
def test_two_process_reduction_equals_single_process(tmp_path):
    torchrun(HELPER, str(tmp_path))

    data = dist_accumulate.global_data()
    ref_protos, ref_counts = class_prototypes(data["embeddings"], data["labels"], dist_accumulate.C)
    ref_delta = ccece(data["confidences"], data["correct"], data["classes"], dist_accumulate.C)
    ref_ece = expected_calibration_error(data["confidences"], data["correct"])
    assert ref_counts[-1] == 0  # the unseen class is part of what is checked
    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        torch.testing.assert_close(got["prototypes"], ref_protos, rtol=1e-6, atol=1e-6)
        assert torch.equal(got["counts"], ref_counts)
        torch.testing.assert_close(got["delta"].float(), ref_delta, rtol=1e-5, atol=1e-6)
        assert got["ece"] == pytest.approx(ref_ece, abs=1e-6)
