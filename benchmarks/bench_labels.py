"""Label machinery at LVIS scale, each operation beside a straightforward numpy baseline.

    python benchmarks/bench_labels.py            # LVIS scale (C=1203, D=1024), ~2 min on 2 cores
    python benchmarks/bench_labels.py --small    # a smoke run in seconds

Each case runs in a fresh process so that its peak resident memory is its own. Inputs that a
real run would stream from a model (backbone embeddings, teacher scores) are generated once
as a pool of chunks and fed repeatedly, so the timing is of our code, not of the generator.
Prints one table; the figures in BENCHMARKS.md come from this script.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import platform
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from tailteacher.labels import (
    PrototypeAccumulator,
    calibrate_soft_labels,
    ccece,
    similarity_smoothing_matrix,
)


@dataclass(frozen=True)
class Scale:
    classes: int = 1203
    dim: int = 1024
    instances: int = 1_270_000
    chunk: int = 16_384
    detections: int = 6_000_000
    images: int = 1000
    per_image: int = 300


LVIS = Scale()
SMALL = Scale(classes=50, dim=64, instances=20_000, chunk=4096, detections=100_000, images=20, per_image=50)


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _time(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up (allocator, thread pool, lazy init)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# --- cases: each returns (ours, numpy) callables over inputs it builds --------------------------


def case_prototypes(s: Scale) -> tuple[Callable[[], object], Callable[[], object]]:
    g = torch.Generator().manual_seed(0)
    pool = [torch.randn(s.chunk, s.dim, generator=g) for _ in range(4)]
    labels = [torch.randint(0, s.classes, (s.chunk,), generator=g) for _ in range(4)]
    n_chunks = -(-s.instances // s.chunk)
    sizes = [s.chunk] * (n_chunks - 1) + [s.instances - s.chunk * (n_chunks - 1)]
    pool_np, labels_np = [p.numpy() for p in pool], [lab.numpy() for lab in labels]

    def ours() -> object:
        acc = PrototypeAccumulator(s.classes, s.dim)
        for i, n in enumerate(sizes):
            acc.update(pool[i % 4][:n], labels[i % 4][:n])
        return acc.compute()

    def numpy() -> object:
        sums = np.zeros((s.classes, s.dim))
        counts = np.zeros(s.classes, dtype=np.int64)
        # Sort by class, then one segmented sum (np.add.at, the other obvious choice,
        # measured 0.8 s per 16k chunk here: ~4x slower again).
        for i, n in enumerate(sizes):
            lab, emb = labels_np[i % 4][:n], pool_np[i % 4][:n]
            order = np.argsort(lab, kind="stable")
            present, starts = np.unique(lab[order], return_index=True)
            sums[present] += np.add.reduceat(emb[order], starts, axis=0, dtype=np.float64)
            counts += np.bincount(lab, minlength=s.classes)
        return sums / np.maximum(counts, 1)[:, None], counts

    return ours, numpy


def case_smoothing(s: Scale) -> tuple[Callable[[], object], Callable[[], object]]:
    g = torch.Generator().manual_seed(1)
    protos = torch.randn(s.classes, s.dim, generator=g).relu()
    counts = torch.randint(1, 50_000, (s.classes,), generator=g)
    p_np, c_np = protos.numpy().astype(np.float64), counts.numpy()

    def numpy() -> object:
        unit = p_np / np.linalg.norm(p_np, axis=1, keepdims=True)
        logits = (unit @ unit.T) / np.maximum(c_np, 1)[None, :] ** 1.5
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    return (lambda: similarity_smoothing_matrix(protos, counts, 1.5)), numpy


def case_ccece(s: Scale) -> tuple[Callable[[], object], Callable[[], object]]:
    g = torch.Generator().manual_seed(2)
    conf = torch.rand(s.detections, generator=g)
    correct = torch.rand(s.detections, generator=g) < conf
    classes = torch.randint(0, s.classes, (s.detections,), generator=g)
    conf_np, correct_np, classes_np = conf.numpy(), correct.numpy(), classes.numpy()
    bins = 10

    def numpy() -> object:
        b = np.clip(np.ceil(conf_np.astype(np.float64) * bins).astype(np.int64) - 1, 0, bins - 1)
        cell = classes_np * bins + b
        size = s.classes * bins
        n = np.bincount(cell, minlength=size).reshape(s.classes, bins)
        sc = np.bincount(cell, weights=conf_np, minlength=size).reshape(s.classes, bins)
        sa = np.bincount(cell, weights=correct_np, minlength=size).reshape(s.classes, bins)
        nb = np.maximum(n, 1)
        ni = np.maximum(n.sum(1, keepdims=True), 1)
        return (n / ni * (sa / nb - sc / nb)).sum(1)

    return (lambda: ccece(conf, correct, classes, s.classes, bins)), numpy


def case_calibrate(s: Scale, support: str = "all") -> tuple[Callable[[], object], Callable[[], object]]:
    g = torch.Generator().manual_seed(3)
    # Teacher scores per image: a softmax over classes (dense, as a softmax head gives them),
    # processed image by image as the student does online.
    pool = [torch.softmax(torch.randn(s.per_image, s.classes, generator=g) * 3, 1) for _ in range(8)]
    delta = (torch.rand(s.classes, generator=g) - 0.5) * 0.4
    pool_np, delta_np = [p.numpy() for p in pool], delta.numpy()

    def ours() -> object:
        for i in range(s.images):
            calibrate_soft_labels(pool[i % 8], delta, 2.0, support=support)  # type: ignore[arg-type]

    def numpy() -> object:
        for i in range(s.images):
            y = pool_np[i % 8]
            out = np.clip(y + 2.0 * delta_np, 0.0, 1.0)
            if support == "nonzero":
                out = np.where(y > 0, out, y)

    return ours, numpy


def case_calibrate_nonzero(s: Scale) -> tuple[Callable[[], object], Callable[[], object]]:
    return case_calibrate(s, support="nonzero")


CASES: dict[str, tuple[Callable[[Scale], tuple[Callable[[], object], Callable[[], object]]], str]] = {
    "prototypes": (case_prototypes, "Eq.1 streamed, {instances:,} instances x D={dim}, chunks of {chunk:,}"),
    "smoothing": (case_smoothing, "Eq.2 S' for C={classes}, D={dim}"),
    "ccece": (case_ccece, "Eq.4 CCECE over {detections:,} detections, C={classes}, 10 bins"),
    "calibrate": (case_calibrate, "Eq.5 {images} images x {per_image} dets x {classes} classes"),
    "calibrate_nonzero": (case_calibrate_nonzero, "Eq.5 support='nonzero', same sizes"),
}


def _run_case(name: str, which: str, scale: Scale, repeats: int, queue: mp.Queue) -> None:
    torch.manual_seed(0)
    ours, numpy = CASES[name][0](scale)
    fn = ours if which == "ours" else numpy
    before = _rss_mib()
    seconds = _time(fn, repeats)
    queue.put((seconds, before, _peak_mib()))


def measure(name: str, which: str, scale: Scale, repeats: int) -> tuple[float, float, float]:
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()
    proc = ctx.Process(target=_run_case, args=(name, which, scale, repeats, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", action="store_true", help="a smoke run at small scale")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per case (median reported)")
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    args = parser.parse_args()
    scale = SMALL if args.small else LVIS

    print(
        f"# {platform.processor() or platform.machine()}, {mp.cpu_count()} cores, torch {torch.__version__}, "
    )
    print(f"# numpy {np.__version__}, torch threads {torch.get_num_threads()}, median of {args.repeats}")
    header = (
        f"{'case':<18} {'ours s':>8} {'numpy s':>8} {'ratio':>7} {'ours peak MiB':>14} {'(inputs)':>9}  what"
    )
    print(header)
    for name in args.cases:
        ours_s, ours_before, ours_peak = measure(name, "ours", scale, args.repeats)
        numpy_s, _, _ = measure(name, "numpy", scale, args.repeats)
        what = CASES[name][1].format(**scale.__dict__)
        print(
            f"{name:<18} {ours_s:>8.3f} {numpy_s:>8.3f} {numpy_s / ours_s:>6.1f}x "
            f"{ours_peak:>14.0f} {ours_before:>9.0f}  {what}",
            flush=True,
        )
    print("# ratio = numpy time / ours (higher is better for ours); peak = whole process, inputs included")


if __name__ == "__main__":
    main()
