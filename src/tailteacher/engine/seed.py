"""Seeds, determinism, and random-number-generator states that survive ``torch.load(weights_only=True)``.

Every state is stored as tensors and plain Python values (no numpy arrays, no pickled objects),
so a checkpoint can be loaded with ``weights_only=True``.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch


def derive_seed(*parts: int) -> int:
    """A 31-bit seed mixed from several integers (seed, rank, epoch, ...), without collisions such
    as ``seed + rank`` has (seed 1 rank 0 == seed 0 rank 1)."""
    if any(p < 0 for p in parts):
        raise ValueError(f"seed parts: expected integers ≥ 0, got {parts}")
    state = np.random.SeedSequence(list(parts)).generate_state(1, dtype=np.uint32)
    return int(state[0]) & 0x7FFFFFFF


def seed_everything(seed: int, rank: int = 0) -> int:
    """Seed python ``random``, numpy and torch (CPU and every GPU) from (seed, rank); return the seed used.

    Rank 0 of a DDP run and a single process get the same stream, so a model built after this
    call starts from the same weights in both (DDP also broadcasts rank 0's weights).
    """
    derived = derive_seed(seed, rank)
    random.seed(derived)
    np.random.seed(derived)  # noqa: NPY002 - the legacy global stream is what user code draws from
    torch.manual_seed(derived)  # also seeds every CUDA device
    return derived


def set_deterministic(enabled: bool = True) -> None:
    """Ask torch for deterministic kernels where it has them (warn, don't fail, where it has not).

    On CPU the training loop is then bit-for-bit repeatable. On CUDA some detection ops
    (RoIAlign backward, index_add) have no deterministic kernel: they warn and stay nondeterministic.
    """
    if enabled:
        # cuBLAS needs this before its first use to be deterministic; harmless on CPU.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.deterministic = enabled
    if enabled:  # otherwise left as it is: autotuning per input shape rarely pays with detection's sizes
        torch.backends.cudnn.benchmark = False


def get_rng_state() -> dict[str, Any]:
    """The state of python ``random``, numpy's global generator, torch CPU and CUDA generators."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_cached = np.random.get_state(legacy=True)  # noqa: NPY002
    state: dict[str, Any] = {
        "python": {
            "version": int(py_version),
            "state": torch.tensor(py_state, dtype=torch.int64),
            "gauss": py_gauss,
        },
        "numpy": {
            "name": str(np_name),
            "keys": torch.from_numpy(np.asarray(np_keys).astype(np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
    }
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`get_rng_state` returned."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (
            npy["name"],
            npy["keys"].numpy().astype(np.uint32),
            npy["pos"],
            npy["has_gauss"],
            npy["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Run a block (an evaluation, a visualisation) without moving the training's random streams."""
    state = get_rng_state()
    try:
        yield
    finally:
        set_rng_state(state)
