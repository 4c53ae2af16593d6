"""The SSOD label-fraction protocol on a synthetic benchmark: a fraction of the training images
keeps its labels, the rest joins the unlabeled set with its annotations removed.

    python benchmarks/scarce_labels.py runs/data/demo runs/data/demo_f25 --fraction 0.25 [--seed 0]

Writes ``OUT/train.json`` (the labeled fraction, chosen with ``numpy.random.default_rng(seed)``,
categories unchanged so the LVIS frequency groups stay those of the full set) and
``OUT/unlabeled.json`` (the other training images without annotations, then the source's
``unlabeled.json``). Images are not copied: the run's ``data.image_root`` stays the source's.
Used by docs/results.md (2026-12-01, third session) to measure the student where labels, not
steps, are what is scarce (the regime of the SSOD peers' 1–10 % COCO protocols).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from tailteacher.io import atomic_write_json, read_json


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("source", type=Path, help="a synth folder with train.json and unlabeled.json")
    p.add_argument("out", type=Path)
    p.add_argument("--fraction", type=float, default=0.25)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    train = read_json(args.source / "train.json")
    unlabeled = read_json(args.source / "unlabeled.json")
    ids = sorted(im["id"] for im in train["images"])
    keep_n = max(1, round(args.fraction * len(ids)))
    order = np.random.default_rng(args.seed).permutation(len(ids))
    keep = {ids[i] for i in order[:keep_n]}
    labeled = dict(train)
    labeled["images"] = [im for im in train["images"] if im["id"] in keep]
    labeled["annotations"] = [a for a in train["annotations"] if a["image_id"] in keep]
    moved = [im for im in train["images"] if im["id"] not in keep]
    clash = {im["id"] for im in moved} & {im["id"] for im in unlabeled["images"]}
    if clash:
        raise SystemExit(f"image ids in both train.json and unlabeled.json: {sorted(clash)[:5]}")
    pool = dict(unlabeled)
    pool["images"] = moved + list(unlabeled["images"])
    pool["annotations"] = []
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "train.json", labeled)
    atomic_write_json(args.out / "unlabeled.json", pool)
    print(json.dumps({"labeled": len(labeled["images"]), "unlabeled": len(pool["images"])}))


if __name__ == "__main__":
    main()
