"""`tailteacher labels-demo`: Eq. 1-5 end to end on synthetic long-tailed features."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import InputError


def register(sub: Any) -> None:
    demo = sub.add_parser(
        "labels-demo",
        help="run Eq. 1-5 end to end on synthetic long-tailed features (seconds, CPU)",
        description="The paper's label machinery on a small synthetic long-tailed problem: "
        "prototypes and S', teachers trained with one-hot / uniform / similarity targets, "
        "CCECE on a held-out split, and Eq. 5 on an unlabeled pool. Every figure is measured.",
    )
    demo.add_argument("--seeds", type=int, default=3, help="number of seeds (default 3)")
    demo.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    demo.add_argument("--eps", type=float, default=0.1, help="smoothing weight ε (default 0.1)")
    demo.add_argument("--gamma", type=float, default=1.5, help="frequency exponent γ (default 1.5)")
    demo.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import walkthrough

    if args.seeds < 1:
        raise InputError(f"--seeds: expected a positive integer, got {args.seeds}")
    print(walkthrough.run(seeds=args.seeds, first_seed=args.seed, eps=args.eps, gamma=args.gamma))
    return 0
