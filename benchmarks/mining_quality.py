"""How rare-rich a mined set is (issue 13 §2): the mined images against random sets of the same
size from the same pool, measured on the pool's truth (a benchmark's pool_truth.json).

    tailteacher synth --preset demo --pool-images 8000 --out runs/data/demo --overwrite
    tailteacher mine demo --pool runs/data/demo/pool.json --set mining.max_images=2000 \\
        --set mining.truth_json=runs/data/demo/pool_truth.json --out runs/mine_demo
    python benchmarks/mining_quality.py --pool-truth runs/data/demo/pool_truth.json \\
        --train runs/data/demo/train.json --mined runs/mine_demo

Prints, per set: images, instances per image, the share of instances in each LVIS group (groups of
the training set) and the recall of the pool's instances of each group; random sets are the mean
(± standard deviation) over ``--seeds`` draws. Also the stage's seconds from ``mining.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np

from tailteacher.data.frequency import frequency_groups
from tailteacher.data.lvis_json import image_relpath, load_lvis
from tailteacher.mining.quality import truth_figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pool-truth", type=Path, required=True, help="the pool's annotations (pool_truth.json)")
    ap.add_argument("--train", type=Path, required=True, help="train.json (its LVIS groups are used)")
    ap.add_argument(
        "--mined", type=Path, required=True, help="the mine stage's folder (unlabeled.json, mining.json)"
    )
    ap.add_argument("--seeds", type=int, default=5, help="random sets drawn (default 5)")
    args = ap.parse_args()
    truth = load_lvis(args.pool_truth)
    groups = dict(frequency_groups(load_lvis(args.train)))
    mined_doc = json.loads((args.mined / "unlabeled.json").read_text())
    by_file = {image_relpath(im): iid for iid, im in truth.images.items()}
    mined = [by_file[im["file_name"]] for im in mined_doc["images"] if im["file_name"] in by_file]
    ids = np.array(sorted(truth.images))

    def row(name: str, figures: list[dict]) -> str:
        def cell(get) -> str:
            values = [get(f) for f in figures]
            mean = statistics.fmean(values)
            return f"{mean:.3f}" + (f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else "")

        per_image = cell(lambda f: f["instances"] / max(f["images"], 1))
        shares = " | ".join(cell(lambda f, g=g: f["groups"][g]["share"]) for g in "rcf")
        recalls = " | ".join(cell(lambda f, g=g: f["groups"][g]["recall"]) for g in "rcf")
        return f"| {name} | {figures[0]['images']} | {per_image} | {shares} | {recalls} |"

    print(f"pool {args.pool_truth}: {len(ids)} images; mined {args.mined}: {len(mined)} images")
    print(
        "| set | images | instances / image | share r | share c | share f | recall r | recall c | recall f |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print(row("mined", [truth_figures(truth, mined, groups)]))
    draws = [
        truth_figures(truth, np.random.default_rng(s).choice(ids, len(mined), replace=False).tolist(), groups)
        for s in range(args.seeds)
    ]
    print(row(f"random (mean ± sd of {args.seeds})", draws))
    print(row("whole pool", [truth_figures(truth, ids.tolist(), groups)]))
    summary = json.loads((args.mined / "mining.json").read_text())
    sec = summary["seconds"]
    rate = summary["embedded"] / sec["embed_pool"] if sec["embed_pool"] else float("nan")
    print(
        f"stage: {summary['queries']} queries ({summary['embedder']}), {summary['embedded']} pool images, "
        f"index {summary['index']}; seconds {sec} (pool embedded at {rate:.1f} images/s; 0 when cached)"
    )


if __name__ == "__main__":
    main()
