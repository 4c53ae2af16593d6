"""Nearest-neighbour search over the pool's vectors with Faiss (``mining.index``).

Vectors are unit rows, so the inner product is the cosine. Kinds:

    flat   exact (``IndexFlatIP``): 4·D bytes a vector, search time ∝ pool size;
    ivf    ``IndexIVFFlat``: k-means into ``nlist`` cells, ``nprobe`` searched; same memory as flat;
    ivfpq  ``IndexIVFPQ``: each vector in ``pq_m`` bytes (8-bit codes), for pools beyond memory;
    auto   flat up to ``FLAT_MAX`` vectors, ivf up to ``IVF_MAX``, ivfpq beyond (our decision, D81,
           from BENCHMARKS.md "Mining search").

IVF kinds are trained on a sample of at most ``TRAIN_PER_CELL`` × nlist vectors drawn from the
shards, then the shards are added in turn: nothing holds the whole pool but the index itself.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np

IndexKind = Literal["flat", "ivf", "ivfpq"]

#: auto: largest pool searched exactly; largest pool kept uncompressed in an IVF index.
FLAT_MAX = 1_000_000
IVF_MAX = 10_000_000
#: Training vectors per IVF cell (Faiss warns below 39; 64 gives stable centroids).
TRAIN_PER_CELL = 64


def choose_kind(n: int, kind: str) -> IndexKind:
    """The index kind for ``n`` vectors: ``kind`` itself unless ``auto``."""
    if kind in ("flat", "ivf", "ivfpq"):
        return kind  # type: ignore[return-value]
    if kind != "auto":
        raise ValueError(f"index kind: expected auto, flat, ivf or ivfpq, got {kind!r}")
    return "flat" if n <= FLAT_MAX else "ivf" if n <= IVF_MAX else "ivfpq"


def default_nlist(n: int) -> int:
    """About 4·√n cells, at most n / 39 (Faiss's minimum training points per cell), at least 1."""
    return max(1, min(int(4 * math.sqrt(n)), n // 39))


def _sample(shards: Iterable[np.ndarray], n: int, size: int, seed: int) -> np.ndarray:
    """``size`` rows drawn without replacement from the concatenated shards (``n`` rows in all)."""
    pick = np.sort(np.random.default_rng(seed).choice(n, size=min(size, n), replace=False))
    out, start = [], 0
    for vectors in shards:
        stop = start + vectors.shape[0]
        hit = pick[(pick >= start) & (pick < stop)]
        if hit.size:
            out.append(np.asarray(vectors[hit - start], dtype=np.float32))
        start = stop
    return np.concatenate(out)


def build_index(
    shards: Any,
    n: int,
    dim: int,
    kind: IndexKind,
    nlist: int | None = None,
    pq_m: int = 64,
    seed: int = 0,
) -> Any:
    """A Faiss index over every vector of ``shards`` (a callable returning a fresh iterable of
    [n_i, D] float32 arrays, read twice for IVF kinds: a sample to train on, then all to add).
    Row ids are the vectors' order, 0..n-1.

    Raises:
        ValueError: ``pq_m`` does not divide ``dim`` (ivfpq).
    """
    import faiss

    index: Any
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    else:
        cells = min(nlist or default_nlist(n), n)
        quantizer = faiss.IndexFlatIP(dim)
        if kind == "ivf":
            index = faiss.IndexIVFFlat(quantizer, dim, cells, faiss.METRIC_INNER_PRODUCT)
        else:
            if dim % pq_m:
                raise ValueError(f"mining.pq_m={pq_m} must divide the embedding dimension {dim}")
            index = faiss.IndexIVFPQ(quantizer, dim, cells, pq_m, 8, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed  # k-means initialisation: the same index every time
        index.train(_sample(shards(), n, max(TRAIN_PER_CELL * cells, 256 if kind == "ivfpq" else 0), seed))
    for vectors in shards():
        if vectors.shape[0]:
            index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def search(index: Any, queries: np.ndarray, k: int, nprobe: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of each query by inner product.

    Args:
        queries: [Q, D] float32 unit rows.

    Returns:
        (similarities [Q, k] float32, rows [Q, k] int64; −1 where fewer than k were found).
    """
    import faiss

    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        ivf.nprobe = nprobe
    sims, rows = index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, index.ntotal))
    if rows.shape[1] < k:  # a pool smaller than k
        pad = k - rows.shape[1]
        sims = np.pad(sims, ((0, 0), (0, pad)), constant_values=-np.inf)
        rows = np.pad(rows, ((0, 0), (0, pad)), constant_values=-1)
    return sims.astype(np.float32), rows.astype(np.int64)


def save_index(index: Any, path: Path) -> None:
    """``faiss.write_index`` through a temp file and ``os.replace`` (never half-written)."""
    import faiss

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        faiss.write_index(index, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_index(path: Path) -> Any:
    """An index ``save_index`` wrote."""
    import faiss

    return faiss.read_index(str(path))


def index_bytes(index: Any) -> int:
    """The index's size in bytes as Faiss serialises it (≈ its memory)."""
    import faiss

    return int(faiss.serialize_index(index).size)
