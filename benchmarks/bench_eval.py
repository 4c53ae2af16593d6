"""Our LVIS evaluator against the official LVISEval at LVIS density, from the same files.

    python benchmarks/bench_eval.py              # 500 images × 300 detections, ~100 categories
    python benchmarks/bench_eval.py --small      # a smoke run in seconds

Builds a synthetic LVIS-format case (``tailteacher.evaluation.synthetic``: ~12 ground-truth
instances and 300 detections with RLE masks per image, categories in the r/c/f groups,
negative and not-exhaustive categories), writes ground truth and results as json, then times
each evaluator end to end from those two files (json parsing included, as a user runs it)
in a fresh process per run, alternating the two, and reports the median. Checks that the
numbers agree and prints one table; the figures in BENCHMARKS.md come from this script.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def _lvis_worker(gt: str, results: str, iou_type: str, loaded: bool) -> dict[str, Any]:
    import logging

    logging.getLogger("lvis").setLevel(logging.ERROR)
    np.float = float  # type: ignore[attr-defined]  # noqa: NPY001 (lvis 0.5.3 on numpy ≥ 1.24)
    from lvis import LVIS, LVISEval

    if loaded:  # what a training loop holds: the ground truth object and a list of results
        lvis_gt = LVIS(gt)
        dets = json.loads(Path(results).read_text())
        t0 = time.perf_counter()
        ev = LVISEval(lvis_gt, dets, iou_type)
    else:
        t0 = time.perf_counter()
        ev = LVISEval(LVIS(gt), results, iou_type)
    ev.run()
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "metrics": {k: float(v) for k, v in ev.results.items()}}


def _ours_worker(gt: str, results: str, iou_type: str, loaded: bool) -> dict[str, Any]:
    from tailteacher.evaluation import evaluate, load_ground_truth

    if loaded:
        ground_truth = load_ground_truth(gt)
        dets = json.loads(Path(results).read_text())
        t0 = time.perf_counter()
        ev = evaluate(ground_truth, dets, iou_type=iou_type)
    else:
        t0 = time.perf_counter()
        ev = evaluate(gt, results, iou_type=iou_type)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "metrics": ev.metrics}


WORKERS = {"lvis": _lvis_worker, "ours": _ours_worker}


def _run(worker: str, folder: Path, iou_type: str, loaded: bool) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", worker, "--dir", str(folder), "--iou-type", iou_type]
    cmd += ["--loaded"] if loaded else []
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _build(folder: Path, images: int, categories: int, gt_per_image: int, dets: int) -> dict[str, int]:
    from tailteacher.evaluation.synthetic import synthetic_lvis_case

    gt, results = synthetic_lvis_case(
        num_images=images,
        num_categories=categories,
        gt_per_image=gt_per_image,
        dets_per_image=dets,
        seed=0,
    )
    (folder / "gt.json").write_text(json.dumps(gt))
    (folder / "results.json").write_text(json.dumps(results))
    groups = {g: sum(c["frequency"] == g for c in gt["categories"]) for g in "rcf"}
    return {"annotations": len(gt["annotations"]), "detections": len(results), **groups}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", action="store_true", help="50 images × 100 detections")
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each (median)")
    parser.add_argument("--iou-types", nargs="+", default=["segm", "bbox"], choices=["segm", "bbox"])
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    parser.add_argument("--iou-type", help=argparse.SUPPRESS)
    parser.add_argument("--loaded", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:  # one timed run, in its own process
        folder = Path(args.dir)
        gt, res = str(folder / "gt.json"), str(folder / "results.json")
        out = WORKERS[args.worker](gt, res, args.iou_type, args.loaded)
        print(json.dumps(out))
        return

    images, dets = (50, 100) if args.small else (args.images, 300)
    with tempfile.TemporaryDirectory(prefix="bench_eval_") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        sizes = _build(folder, images, categories=100, gt_per_image=12, dets=dets)
        print(
            f"case: {images} images, {sizes['annotations']} ground-truth instances, {sizes['detections']} "
            f"detections (RLE masks and boxes), 100 categories (r {sizes['r']}, c {sizes['c']}, "
            f"f {sizes['f']}); built in {time.perf_counter() - t0:.1f} s"
        )
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"numpy {np.__version__}; median of {args.repeats} runs, each in a fresh process, alternating"
        )
        print()
        print("| iou type | inputs | LVISEval (s) | ours (s) | LVISEval / ours | max abs diff (13 metrics) |")
        print("|---|---|---:|---:|---:|---:|")
        runs_text = []
        for iou_type in args.iou_types:
            for loaded in (False, True):
                times: dict[str, list[float]] = {"lvis": [], "ours": []}
                metrics: dict[str, dict[str, float]] = {}
                for _ in range(args.repeats):
                    for worker in ("lvis", "ours"):
                        out = _run(worker, folder, iou_type, loaded)
                        times[worker].append(out["seconds"])
                        metrics[worker] = out["metrics"]
                diff = max(abs(metrics["lvis"][k] - metrics["ours"][k]) for k in metrics["lvis"])
                lvis_s, ours_s = statistics.median(times["lvis"]), statistics.median(times["ours"])
                inputs = "json in memory" if loaded else "json files"
                ratio = lvis_s / ours_s
                print(f"| {iou_type} | {inputs} | {lvis_s:.2f} | {ours_s:.2f} | {ratio:.1f}× | {diff:.1e} |")
                pairs = ", ".join(
                    f"{a:.2f}/{b:.2f}" for a, b in zip(times["lvis"], times["ours"], strict=True)
                )
                runs_text.append(f"{iou_type}, {inputs}: {pairs}")
                if diff > 1e-4:
                    raise SystemExit(f"{iou_type}: metrics differ by {diff:g}: {metrics}")
        print()
        print("every run, LVISEval/ours (s):")
        for line in runs_text:
            print("  " + line)
        print()
        print("metrics (ours):", json.dumps({k: round(v, 4) for k, v in metrics["ours"].items()}))


if __name__ == "__main__":
    main()
