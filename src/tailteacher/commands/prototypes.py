"""`tailteacher prototypes CONFIG`: Eq. 1–2 from the backbone, into the run folder."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    from ..config_io import add_config_arguments

    p = sub.add_parser(
        "prototypes",
        help="class prototypes (Eq. 1) and the smoothing matrix S' (Eq. 2) from the backbone",
        description="Pool the backbone's features inside every labeled box of data.train_json, "
        "average per class, and write prototypes.safetensors (prototypes, counts, S, S'), "
        "nearest_classes.md and prototypes.json into run.run_dir.",
    )
    add_config_arguments(p)
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="use the backbone of this trained detector (e.g. a one-hot teacher) instead of model.weights",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..config_io import config_from_args
    from ..pipeline.prototypes import compute_prototypes

    compute_prototypes(config_from_args(args), str(args.checkpoint) if args.checkpoint else None)
    return 0
