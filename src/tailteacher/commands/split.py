"""`tailteacher split`: the deterministic 85/15 split of the training images."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import InputError


def register(sub: Any) -> None:
    p = sub.add_parser(
        "split",
        help="split training images 85/15 (held-out part for tuning and calibration)",
        description="Write OUT/train.json and OUT/heldout.json: a deterministic split of the training "
        "images in which every class with at least 2 images keeps one in each part where possible.",
    )
    p.add_argument("--train", required=True, type=Path, help="LVIS/COCO training json")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--heldout", type=float, default=0.15, help="held-out fraction (default 0.15)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data.lvis_json import load_lvis
    from ..data.split import write_split

    if not 0 < args.heldout < 1:
        raise InputError(f"--heldout: expected a fraction in (0, 1), got {args.heldout}")
    if (args.out / "train.json").resolve() == args.train.resolve():
        raise InputError(
            f"--out: {args.out}/train.json would overwrite --train {args.train}; choose another folder"
        )
    data = load_lvis(args.train)
    report = write_split(data, args.out, args.heldout, args.seed)
    print("\n".join(report.lines()))
    print(f"wrote {args.out / 'train.json'} and {args.out / 'heldout.json'}")
    return 0
