"""The SSOD label-fraction protocol on a synthetic benchmark: a fraction of the training images
keeps its labels, the rest joins the unlabeled set with its annotations removed.

    python benchmarks/scarce_labels.py runs/data/demo runs/data/demo_f25 --fraction 0.25 [--seed 0]

For a benchmark already on disk (or any LVIS-format set); ``tailteacher synth --labeled-fraction``
writes the same split at generation (D107). Writes ``OUT/train.json`` (the labeled fraction),
``OUT/unlabeled.json`` (the other training images without annotations, then the source's
``unlabeled.json``) and, when the source has one, ``OUT/unlabeled_truth.json`` (those images with
their annotations, for the pseudo-label check), by ``tailteacher.data.label_fraction.split_labeled``.
Images are not copied: the run's ``data.image_root`` stays the source's.
Every class keeps a labeled image (D116; ``--uncovered``: the uniformly random subset of the
third to fifth sessions' ``runs/data/demo_f25``). Used by docs/results.md (2026-12-01, third
session on) to measure the student where labels, not steps, are what is scarce (the regime of the
SSOD peers' 1–10 % COCO protocols).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tailteacher.data.label_fraction import split_labeled
from tailteacher.io import atomic_write_json, read_json


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("source", type=Path, help="a synth folder with train.json and unlabeled.json")
    p.add_argument("out", type=Path)
    p.add_argument("--fraction", type=float, default=0.25)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--uncovered",
        action="store_true",
        help="the uniformly random subset of D107 (classes may keep no labeled image); default: D116",
    )
    args = p.parse_args()
    truth_file = args.source / "unlabeled_truth.json"
    unlabeled = read_json(args.source / "unlabeled.json")
    has_truth = truth_file.is_file()
    part = split_labeled(
        read_json(args.source / "train.json"),
        unlabeled,
        read_json(truth_file) if has_truth else {**unlabeled, "annotations": []},
        args.fraction,
        args.seed,
        cover_classes=not args.uncovered,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "train.json", part.train)
    atomic_write_json(args.out / "unlabeled.json", part.unlabeled)
    if has_truth:  # without the source's, a truth file would call every pool pseudo-box wrong
        atomic_write_json(args.out / "unlabeled_truth.json", part.truth)
    print(json.dumps({"labeled": len(part.train["images"]), "unlabeled": len(part.unlabeled["images"])}))


if __name__ == "__main__":
    main()
