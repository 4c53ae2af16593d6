"""`tailteacher synth`: write the embedded long-tailed benchmark (LVIS format, PNG images)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError

if TYPE_CHECKING:
    from ..data.synth import SynthSummary


def register(sub: Any) -> None:
    from ..data.synth import PRESETS

    synth = sub.add_parser(
        "synth",
        help="generate the embedded long-tailed benchmark (LVIS json + PNG images)",
        description="Write a generated, deterministic, long-tailed instance-segmentation set in "
        "LVIS format: OUT/train.json, val.json, unlabeled.json (no annotations), "
        "unlabeled_truth.json (the pool's annotations, for measuring mining only) and "
        "OUT/images/{train,val,unlabeled}/*.png. Same preset and seed: the same bytes. "
        "A test bed for the method, not a claim about LVIS (docs/benchmark.md).",
    )
    synth.add_argument("--preset", choices=list(PRESETS), default="demo", help="size (default demo)")
    synth.add_argument("--seed", type=int, default=0, help="seed, a non-negative integer (default 0)")
    synth.add_argument("--out", type=Path, required=True, help="output directory (created)")
    synth.add_argument("--overwrite", action="store_true", help="replace a benchmark already in --out")
    synth.add_argument(
        "--pool-images",
        type=int,
        default=None,
        help="also write a mining pool of this many images drawn like the world (pool.json, "
        "pool_truth.json, images/pool/; 25%% distractors); the other files do not change",
    )
    synth.add_argument(
        "--labeled-fraction",
        type=float,
        default=None,
        metavar="F",
        help="keep the labels of a seeded random fraction F in (0, 1] of the training images; the "
        "others go into unlabeled.json without annotations (the SSOD peers' label-fraction "
        "protocol, D107; every class keeps at least one labeled image, D116; default: every label)",
    )
    synth.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data.synth import generate

    if args.seed < 0:
        raise InputError(f"--seed: expected a non-negative integer, got {args.seed}")
    if args.pool_images is not None and args.pool_images < 0:
        raise InputError(f"--pool-images: expected a non-negative integer, got {args.pool_images}")
    if args.labeled_fraction is not None and not 0 < args.labeled_fraction <= 1:
        raise InputError(f"--labeled-fraction: expected a number in (0, 1], got {args.labeled_fraction}")
    try:
        summary = generate(
            args.preset,
            args.seed,
            args.out,
            overwrite=args.overwrite,
            pool_images=args.pool_images,
            labeled_fraction=args.labeled_fraction,
        )
    except ValueError as err:
        msg = str(err)
        raise InputError(msg.replace("out: ", "--out: ", 1) if msg.startswith("out: ") else msg) from None
    print(format_summary(summary))
    return 0


def format_summary(summary: SynthSummary) -> str:
    g = summary.groups
    lines = [
        f"wrote {summary.out} (preset {summary.preset}, seed {summary.seed}) in {summary.seconds:.1f} s",
        f"classes: {sum(g.values())} (rare {g['r']}, common {g['c']}, frequent {g['f']})",
    ]
    for split, n in summary.instances.items():
        share = ", ".join(
            f"{k} {100 * v / max(n, 1):.1f}%" for k, v in summary.group_instances[split].items()
        )
        lines.append(f"{split:>9}: {summary.images[split]} images, {n} instances ({share})")
    return "\n".join(lines)
