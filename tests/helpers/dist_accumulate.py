"""Run under torchrun: each rank accumulates its shard, then all ranks reduce.

Every rank writes what it computed to OUT/rank{r}.pt, so the test can check that the
reduced result is identical on every rank (not only on rank 0).
"""

import sys
from pathlib import Path

import torch
import torch.distributed as dist

from tailteacher.engine import shutdown
from tailteacher.labels import CalibrationAccumulator, PrototypeAccumulator

N, D, C, M = 1000, 16, 7, 3000


def global_data() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1234)
    return {
        "embeddings": torch.randn(N, D, generator=g),
        "labels": torch.randint(0, C - 1, (N,), generator=g),  # class C−1 never appears
        "confidences": torch.rand(M, generator=g),
        "correct": torch.rand(M, generator=g) < 0.4,
        "classes": torch.randint(0, C, (M,), generator=g),
    }


def main(out: Path) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    data = global_data()
    protos = PrototypeAccumulator(C, D)
    calib = CalibrationAccumulator(C, num_bins=10)
    # Uneven shards, fed in several chunks each.
    idx = torch.arange(N)[rank::world]
    for chunk in idx.tensor_split(3):
        protos.update(data["embeddings"][chunk], data["labels"][chunk])
    jdx = torch.arange(M)[(torch.arange(M) % 3 == 0) if rank == 0 else (torch.arange(M) % 3 != 0)]
    calib.update(data["confidences"][jdx], data["correct"][jdx], data["classes"][jdx])
    protos.all_reduce()
    calib.all_reduce()
    prototypes, counts = protos.compute()
    torch.save(
        {"prototypes": prototypes, "counts": counts, "delta": calib.ccece(), "ece": calib.ece()},
        out / f"rank{rank}.pt",
    )


if __name__ == "__main__":
    try:
        main(Path(sys.argv[1]))
    finally:  # also when main raises: a gloo group left to interpreter exit can abort (D122)
        shutdown()
