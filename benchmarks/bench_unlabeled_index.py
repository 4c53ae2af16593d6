"""Memory of the student's unlabeled data set for a pool of a million images: the json read whole
(``load_lvis`` + ``LvisDataset``, before D101) against the memory-mapped pool index
(``index_folder`` + ``PoolDataset``), each in a fresh process, in the same run.

For each way it writes nothing but the index; no image file exists (the image root is an empty
folder), so every draw is a ``Skipped`` and what is measured is the index, not image decoding.
It reports, from /proc: the process's peak RSS (VmHWM) after building the data set, and after a
DataLoader with 2 workers (the student's: ``UnlabeledViews`` over a ``KeyedSampler``) has drawn
``--draws`` images, each worker's peak RSS and its private memory (USS: pages no other process
shares, i.e. what each further worker adds), and the PSS of the main process and workers summed.

    python benchmarks/bench_unlabeled_index.py [--images 1000000] [--draws N] [--folder /tmp/…]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

WAYS = ("load_lvis", "pool_index")


def write_pool(path: Path, images: int) -> None:
    """An LVIS-style pool json of ``images`` image records (COCO unlabeled2017-like names), ids
    shuffled, one category, no annotations; written line by line."""
    import numpy as np

    ids = np.random.default_rng(0).permutation(images) * 3 + 100_000
    with open(path, "w") as f:
        f.write('{"info": {"description": "synthetic pool"}, "images": [\n')
        for k, iid in enumerate(ids.tolist()):
            sep = ",\n" if k + 1 < images else "\n"
            f.write(
                f'{{"id": {iid}, "file_name": "unlabeled2017/{iid:012d}.jpg", "width": 640, "height": 480, '
                f'"coco_url": "http://images.cocodataset.org/unlabeled2017/{iid:012d}.jpg"}}{sep}'
            )
        f.write('], "annotations": [], "categories": [{"id": 1, "name": "thing"}]}\n')


def _status(pid: int | str = "self") -> dict[str, int]:
    """VmRSS, VmHWM (kB) from /proc/PID/status; Pss, Private (kB) from smaps_rollup."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    private = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, value = line.partition(":")
        if key == "Pss":
            out["Pss"] = int(value.split()[0])
        elif key in ("Private_Clean", "Private_Dirty"):
            private += int(value.split()[0])
    out["Private"] = private
    return out


def child(way: str, folder: Path, draws: int | None) -> dict[str, Any]:
    """Build the unlabeled data set ``way`` and draw from it with 2 workers; figures in MB."""
    import torch
    from torch.utils.data import Dataset, DistributedSampler

    from tailteacher.data.dataset import LvisDataset, Sample, Skipped
    from tailteacher.data.lvis_json import load_lvis
    from tailteacher.data.pool_dataset import PoolDataset
    from tailteacher.data.pool_index import index_folder, open_index
    from tailteacher.engine import DistInfo, LoaderSource
    from tailteacher.pipeline.data import KeyedSampler, UnlabeledViews, collate_unlabeled
    from tailteacher.pipeline.stages import file_hash

    torch.set_num_threads(1)
    source, root = folder / "pool.json", folder / "images"
    start = _status()
    t0 = time.perf_counter()
    base: Dataset[Sample | Skipped]
    if way == "load_lvis":
        base = LvisDataset(load_lvis(source, root, require_annotations=False))
    else:
        cache = folder / "pool_index"
        shutil.rmtree(cache, ignore_errors=True)
        base = PoolDataset(open_index(index_folder(source, cache, file_hash(source))), root)
    build_s = time.perf_counter() - t0
    built = _status()
    assert isinstance(base, LvisDataset | PoolDataset)
    n = len(base)
    sampler = KeyedSampler(DistributedSampler(base, num_replicas=1, rank=0, seed=0), n)
    views = UnlabeledViews(base, seed=0, short_side=None)
    source_ = LoaderSource(
        views,
        batch_size=64,
        seed=1,
        dist=DistInfo(),
        sampler=sampler,
        num_workers=2,
        collate_fn=collate_unlabeled,
    )
    batches = (draws or n) // 64
    t1 = time.perf_counter()
    stream = source_.batches(0, 0)
    skipped = 0
    for _ in range(batches):
        pairs, skips = next(stream)
        skipped += len(skips) + len(pairs)
    draw_s = time.perf_counter() - t1
    workers = [_status(w.pid) for w in stream._workers]  # type: ignore[attr-defined]
    main = _status()
    del stream
    mb = 1 / 1024
    return {
        "way": way,
        "images": n,
        "drawn": skipped,
        "build_s": round(build_s, 1),
        "draw_s": round(draw_s, 1),
        "rss_after_imports_mb": round(start["VmRSS"] * mb),
        "peak_rss_build_mb": round(built["VmHWM"] * mb),
        "build_added_mb": round((built["VmHWM"] - start["VmRSS"]) * mb),
        "peak_rss_main_mb": round(main["VmHWM"] * mb),
        "peak_rss_workers_mb": [round(w["VmHWM"] * mb) for w in workers],
        "private_workers_mb": [round(w["Private"] * mb) for w in workers],
        "pss_total_mb": round((main["Pss"] + sum(w["Pss"] for w in workers)) * mb),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--draws", type=int, default=None, help="images drawn (default: one epoch)")
    parser.add_argument("--folder", type=Path, default=Path("/tmp/tailteacher_bench_pool"))
    parser.add_argument("--child", choices=WAYS, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.folder, args.draws)))
        return
    args.folder.mkdir(parents=True, exist_ok=True)
    (args.folder / "images").mkdir(exist_ok=True)
    source = args.folder / "pool.json"
    marker = args.folder / "pool.images"
    if not source.is_file() or not marker.is_file() or marker.read_text() != str(args.images):
        write_pool(source, args.images)
        marker.write_text(str(args.images))
    print(f"{source}: {args.images} images, {source.stat().st_size / 2**20:.0f} MB; {os.cpu_count()} CPUs")
    rows = {}
    for way in WAYS:
        cmd = [
            sys.executable,
            __file__,
            "--child",
            way,
            "--folder",
            str(args.folder),
            "--images",
            str(args.images),
        ]
        if args.draws:
            cmd += ["--draws", str(args.draws)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows[way] = json.loads(out.strip().splitlines()[-1])
        print(json.dumps(rows[way]))
    old, new = rows["load_lvis"], rows["pool_index"]
    for key in ("build_added_mb", "peak_rss_build_mb", "pss_total_mb"):
        print(f"{key}: {old[key]} → {new[key]} MB (÷{old[key] / max(1, new[key]):.1f})")
    for k in range(2):
        o, w = old["private_workers_mb"][k], new["private_workers_mb"][k]
        peaks = (old["peak_rss_workers_mb"][k], new["peak_rss_workers_mb"][k])
        print(f"worker {k} private: {o} → {w} MB (÷{o / max(1, w):.1f}); peak RSS {peaks[0]} → {peaks[1]} MB")


if __name__ == "__main__":
    main()
