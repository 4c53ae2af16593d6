"""Run under ``torchrun --nproc-per-node 2``: the toy regression trained with DDP (gloo, CPU).

Writes OUT/{name}_rank{r}.pt for each scenario: per-step metrics and final weights, so the test
can compare them with one process that sees the same global batch. Also resumes a DDP run from a
mid-run checkpoint and records where it ended.
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import engine_toy

from tailteacher.engine import Checkpointer, init_distributed, load_checkpoint, shutdown

STEPS = 12


def main(out: Path) -> None:
    torch.set_num_threads(1)
    dist = init_distributed()
    assert dist.world_size == 2
    scenarios = {"batch4": dict(batch_size=4, accumulate=1), "batch2x2": dict(batch_size=2, accumulate=2)}
    for name, kwargs in scenarios.items():
        ckpt_dir = out / f"{name}_checkpoints"
        trainer, recorder = engine_toy.sgd_trainer(
            steps=STEPS, dist=dist, checkpoint_dir=ckpt_dir, checkpoint_every=6, **kwargs
        )
        trainer.train()
        result = {
            "metrics": [{k: v for k, v in m.items() if k != "data_time"} for m in recorder.metrics],
            "weights": {k: v.clone() for k, v in trainer.model.state_dict().items()},
        }
        # Resume from the checkpoint of step 6 and run to the end again.
        resumed, _ = engine_toy.sgd_trainer(steps=STEPS, dist=dist, **kwargs)
        resumed.load_checkpoint(Checkpointer(ckpt_dir).directory / Checkpointer.file_name(6))
        resumed.train()
        result["resumed_weights"] = {k: v.clone() for k, v in resumed.model.state_dict().items()}
        result["rng_ranks"] = len(load_checkpoint(ckpt_dir / Checkpointer.file_name(6))["rng"])
        torch.save(result, out / f"{name}_rank{dist.rank}.pt")


if __name__ == "__main__":
    try:
        main(Path(sys.argv[1]))
    finally:  # also when main raises: a gloo group left to interpreter exit can abort (D122)
        shutdown()
