"""DDP under real torchrun (2 gloo processes on CPU) equals one process with the same global batch."""

import sys
from pathlib import Path

import pytest
import torch

HELPERS = Path(__file__).parent / "helpers"
sys.path.insert(0, str(HELPERS))
import engine_toy  # noqa: E402
from torchrun import torchrun  # noqa: E402


@pytest.mark.distributed
def test_ddp_two_processes_equal_one_process_with_the_global_batch(tmp_path):
    torchrun(HELPERS / "engine_ddp.py", str(tmp_path))

    torch.set_num_threads(1)
    single, recorder = engine_toy.sgd_trainer(batch_size=8, steps=12)
    single.train()
    ref_losses = [m["loss_mse"] for m in recorder.metrics]
    assert len(ref_losses) == 12 and ref_losses[-1] < ref_losses[0]
    ref_weights = single.model.state_dict()

    # per-rank batch 4 × 2 ranks, and per-rank batch 2 × 2 accumulated × 2 ranks (DDP no_sync path)
    for name in ("batch4", "batch2x2"):
        results = [torch.load(tmp_path / f"{name}_rank{r}.pt", weights_only=True) for r in (0, 1)]
        for rank, got in enumerate(results):
            losses = [m["loss_mse"] for m in got["metrics"]]
            assert losses == pytest.approx(ref_losses, rel=1e-5, abs=1e-6), (name, rank)
            for key, value in ref_weights.items():
                torch.testing.assert_close(got["weights"][key], value, rtol=1e-5, atol=1e-5)
                # every rank holds the same replica, bit for bit
                assert torch.equal(got["weights"][key], results[0]["weights"][key])
                # a DDP run resumed from its step-6 checkpoint ends where the uninterrupted one did
                assert torch.equal(got["resumed_weights"][key], got["weights"][key])
            assert got["rng_ranks"] == 2  # each rank's random state is in the checkpoint
