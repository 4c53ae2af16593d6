"""Mining's search (``tailteacher.mining.index``): flat vs IVF vs IVF-PQ on a clustered pool.

    python benchmarks/bench_faiss.py                      # 1M × 768-d pool, 3,000 queries (minutes)
    python benchmarks/bench_faiss.py --n 100000 --nlist 256   # a smaller run

The pool is a mixture of ``--clusters`` Gaussians on the unit sphere (centres uniform on the
sphere, each vector = centre + σ·noise, normalised: within-cluster cosine ≈ 0.77 at σ = 0.03), the
structure of real embeddings; i.i.d. vectors have no neighbours worth finding. Queries are drawn
from the same mixture. Each index is built with the library's ``build_index`` (IVF trained on
64 × nlist vectors) and searched for k = 64 with ``search``; IVF's recall@64 is the mean share of
flat's 64 neighbours it returns. Memory: the index's vectors, codes, ids and centroids as Faiss
holds them (flat 4·D bytes a vector; IVF-Flat 4·D + 8; IVF-PQ m + 8; plus nlist·D·4 centroids).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np


def clustered(n: int, dim: int, clusters: int, sigma: float, seed: int, chunk: int = 100_000) -> np.ndarray:
    """[n, dim] float32 unit rows from the mixture (generated in chunks)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        x = centres[rng.integers(clusters, size=m)] + sigma * rng.standard_normal((m, dim)).astype(np.float32)
        out[start : start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def main() -> None:
    import faiss

    from tailteacher.mining.index import build_index, search

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000, help="pool vectors")
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--clusters", type=int, default=3000)
    ap.add_argument("--sigma", type=float, default=0.03)
    ap.add_argument("--queries", type=int, default=3000)
    ap.add_argument("--k", type=int, default=64)
    ap.add_argument("--nlist", type=int, default=1024)
    ap.add_argument("--nprobe", default="4,8,16,32,64")
    ap.add_argument("--pq-m", type=int, default=96)
    ap.add_argument("--kinds", default="ivf,ivfpq", help="approximate indexes to compare with flat")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    faiss.omp_set_num_threads(args.threads)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"faiss {faiss.__version__}, {args.threads} threads"
    )
    t = time.perf_counter()
    pool = clustered(args.n, args.dim, args.clusters, args.sigma, args.seed)
    queries = clustered(args.queries, args.dim, args.clusters, args.sigma, args.seed)[::-1].copy()
    # same centres, other draws: the query generator shares the seed for the centres only
    rng = np.random.default_rng(args.seed + 1)
    queries = queries + args.sigma * rng.standard_normal(queries.shape).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    print(
        f"pool {args.n} × {args.dim}, {args.clusters} clusters, σ {args.sigma}; {args.queries} queries; "
        f"k {args.k}; generated in {time.perf_counter() - t:.1f} s"
    )
    shards = lambda: (pool[s : s + 250_000] for s in range(0, args.n, 250_000))  # noqa: E731
    rows = []

    t = time.perf_counter()
    flat = build_index(shards, args.n, args.dim, "flat")
    build = time.perf_counter() - t
    t = time.perf_counter()
    _, truth = search(flat, queries, args.k)
    flat_search = time.perf_counter() - t
    flat_mem = args.n * args.dim * 4
    rows.append(("flat", "-", build, flat_search, 1.0, flat_mem))
    print(f"flat: build {build:.1f} s, search {flat_search:.1f} s, {flat_mem / 2**30:.2f} GiB", flush=True)
    del flat

    def recall(found: np.ndarray) -> float:
        hits = [len(np.intersect1d(a, b)) for a, b in zip(found, truth, strict=True)]
        return float(np.mean(hits) / args.k)

    for kind in args.kinds.split(","):
        t = time.perf_counter()
        index = build_index(shards, args.n, args.dim, kind, nlist=args.nlist, pq_m=args.pq_m, seed=args.seed)
        build = time.perf_counter() - t
        per = args.dim * 4 + 8 if kind == "ivf" else args.pq_m + 8
        mem = args.n * per + args.nlist * args.dim * 4 + (256 * args.dim * 4 if kind == "ivfpq" else 0)
        print(f"{kind}: nlist {args.nlist}, build {build:.1f} s, {mem / 2**30:.2f} GiB", flush=True)
        for nprobe in [int(v) for v in args.nprobe.split(",")]:
            t = time.perf_counter()
            _, found = search(index, queries, args.k, nprobe=nprobe)
            took = time.perf_counter() - t
            rows.append((kind, str(nprobe), build, took, recall(found), mem))
            print(
                f"  nprobe {nprobe}: search {took:.2f} s ({flat_search / took:.1f}× flat), "
                f"recall@{args.k} {rows[-1][4]:.4f}",
                flush=True,
            )
        del index

    print()
    print(
        f"| index | nprobe | build (s) | search {args.queries} queries (s) | speed vs flat "
        f"| recall@{args.k} | memory (GiB) |"
    )
    print("|---|---|---|---|---|---|---|")
    for kind, nprobe, build, took, rec, mem in rows:
        print(
            f"| {kind} | {nprobe} | {build:.1f} | {took:.2f} | {flat_search / took:.1f}× | {rec:.4f} "
            f"| {mem / 2**30:.2f} |"
        )
    met = [r for r in rows if r[0] != "flat" and r[4] >= 0.95 and flat_search / r[3] >= 10]
    print(
        "goal recall@64 ≥ 0.95 at ≥ 10× flat's speed: "
        + ("met by " + ", ".join(f"{r[0]} nprobe {r[1]}" for r in met) if met else "not met")
    )


if __name__ == "__main__":
    main()
