"""`tailteacher mine CONFIG`: pick unlabeled images for the chosen classes from a pool (§4.1)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import Config


def register(sub: Any) -> None:
    from ..config_io import add_config_arguments

    p = sub.add_parser(
        "mine",
        help="mine a pool of images for the rare classes (the paper's §4.1): the student's unlabeled json",
        description="Embed the crops of the labeled instances of the chosen classes (mining.query_groups, "
        "rare by default) and every image of mining.pool (a folder, a .txt list or a json; cached in "
        "shards, resumable), find each crop's mining.k nearest pool images with Faiss, remove "
        "duplicates and images of the labeled sets, and write unlabeled.json (set it as "
        "data.unlabeled_json), provenance.json and mining.json into --out (default run.run_dir/mining).",
    )
    add_config_arguments(p)
    p.add_argument(
        "--pool",
        default=None,
        help="the pool to mine (a folder, a .txt list or a json under data.image_root); sets mining.pool, "
        "the other mining keys at their defaults unless the config or --set gives them",
    )
    p.add_argument("--out", type=Path, default=None, help="output folder (default run.run_dir/mining)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..config_io import config_from_args
    from ..mining.mine import mine

    if args.pool is not None:
        args.overrides = [*args.overrides, f"mining.pool={json.dumps(args.pool)}"]
    config: Config = config_from_args(args)
    out = args.out if args.out is not None else Path(config.run.run_dir) / "mining"
    mine(config, out)
    return 0
