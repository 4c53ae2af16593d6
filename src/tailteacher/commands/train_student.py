"""`tailteacher train-student CONFIG`: labeled + unlabeled images with the teacher's pseudo-labels."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    from ..config_io import add_config_arguments

    p = sub.add_parser(
        "train-student",
        help="train the student on labeled images plus the teacher's (calibrated) pseudo-labels",
        description="Train the student as CONFIG's student section says: pseudo_labels onehot "
        "(baseline), soft, or calibrated (Eq. 5 with student.delta), frozen or EMA teacher; "
        "then evaluate it on data.val_json. Writes everything into run.run_dir.",
    )
    add_config_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..config_io import config_from_args
    from ..engine.distributed import current_dist_info
    from ..pipeline.student import train_student
    from ..report.markdown import format_metrics

    result = train_student(config_from_args(args))
    if current_dist_info().is_main:  # under torchrun every rank has the metrics; rank 0 prints
        print(f"student (mask AP on val): {format_metrics(result.metrics)}")
        print(f"run folder: {result.run_dir}")
    return 0
