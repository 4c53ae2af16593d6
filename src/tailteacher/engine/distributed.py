"""Process-group set-up from torchrun's environment, and the few collectives the engine needs.

One process: nothing to set up (``WORLD_SIZE`` unset or 1). Under
``torchrun --nproc-per-node N`` (or several nodes through torchrun's rendezvous) each process
reads RANK, WORLD_SIZE and LOCAL_RANK from its environment; the backend is nccl when CUDA is
available and gloo otherwise.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from ..errors import InputError


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: global rank, number of processes, rank on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def dist_info_from_env(env: Mapping[str, str] | None = None) -> DistInfo:
    """RANK, WORLD_SIZE and LOCAL_RANK as torchrun sets them (all absent: one process)."""
    env = os.environ if env is None else env
    values: dict[str, int] = {}
    for key, default in (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", 0)):
        raw = env.get(key)
        try:
            values[key] = default if raw is None or raw == "" else int(raw)
        except ValueError:
            raise InputError(f"environment variable {key}: expected an integer, got {raw!r}") from None
    info = DistInfo(values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"])
    if info.world_size < 1 or not 0 <= info.rank < info.world_size or info.local_rank < 0:
        raise InputError(
            f"environment: expected 0 ≤ RANK < WORLD_SIZE and LOCAL_RANK ≥ 0, got RANK={info.rank} "
            f"WORLD_SIZE={info.world_size} LOCAL_RANK={info.local_rank}"
        )
    return info


def init_distributed(backend: str | None = None, timeout_s: float = 1800.0) -> DistInfo:
    """Join the process group torchrun described in the environment (no-op for one process).

    ``backend`` None picks nccl when CUDA is available, gloo otherwise. On CUDA the process's
    device is set to ``cuda:LOCAL_RANK`` first, as nccl requires.
    """
    info = dist_info_from_env()
    if not info.is_distributed or dist.is_initialized():
        return info
    if torch.cuda.is_available():
        torch.cuda.set_device(info.local_rank)
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    return info


def current_dist_info() -> DistInfo:
    """Rank and world size of the initialised process group (one process when there is none)."""
    if dist.is_available() and dist.is_initialized():
        local = dist_info_from_env().local_rank
        return DistInfo(dist.get_rank(), dist.get_world_size(), local)
    return DistInfo()


def default_device(info: DistInfo) -> torch.device:
    """``cuda:LOCAL_RANK`` where CUDA is available, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", info.local_rank)
    return torch.device("cpu")


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_mean(values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The mean of each scalar over all ranks (one collective for the whole dict; same on every rank).

    Every rank must pass the same keys.
    """
    if not _active() or not values:
        return values
    keys = sorted(values)
    stacked = torch.stack([values[k].detach().float().reshape(()) for k in keys])
    dist.all_reduce(stacked)
    stacked /= dist.get_world_size()
    reduced = dict(zip(keys, stacked.unbind(), strict=True))
    return {k: reduced[k] for k in values}


def all_gather_objects(obj: Any) -> list[Any]:
    """``obj`` of every rank, in rank order (``[obj]`` for one process)."""
    if not _active():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def gather_objects(obj: Any, dst: int = 0) -> list[Any] | None:
    """``obj`` of every rank, in rank order, on rank ``dst``; None on the other ranks
    (``[obj]`` for one process). Unlike ``all_gather_objects``, only ``dst`` holds the whole."""
    if not _active():
        return [obj]
    rank = dist.get_rank()
    out: list[Any] | None = [None] * dist.get_world_size() if rank == dst else None
    dist.gather_object(obj, out, dst=dst)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (pickled; ``obj`` itself for one process)."""
    if not _active():
        return obj
    box = [obj if dist.get_rank() == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def barrier() -> None:
    if _active():
        dist.barrier()


def shutdown() -> None:
    """Leave the process group, if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
