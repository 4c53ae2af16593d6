"""`tailteacher train-teacher CONFIG`: the teacher with one-hot, uniform or similarity targets."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    from ..config_io import add_config_arguments

    p = sub.add_parser(
        "train-teacher",
        help="train the teacher (targets: onehot | uniform | similarity), then evaluate it",
        description="Train the Cascade Mask R-CNN teacher as CONFIG says (targets.kind: onehot, "
        "uniform or similarity; gamma and eps from the config), under torchrun for several "
        "processes, then evaluate it on data.val_json. Writes everything into run.run_dir.",
    )
    add_config_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..config_io import config_from_args
    from ..engine.distributed import current_dist_info
    from ..pipeline.teacher import train_teacher
    from ..report.markdown import format_metrics

    result = train_teacher(config_from_args(args))
    if current_dist_info().is_main:  # under torchrun every rank has the metrics; rank 0 prints
        print(f"teacher (mask AP on val): {format_metrics(result.metrics)}")
        if result.skipped_images:
            print(f"skipped {result.skipped_images} unreadable images while training")
        print(f"run folder: {result.run_dir}")
    return 0
