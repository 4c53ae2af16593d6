"""`tailteacher calibrate CONFIG`: the teacher's CCECE Δ (Eq. 4) and ECE on the held-out split."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    from ..config_io import add_config_arguments

    p = sub.add_parser(
        "calibrate",
        help="the teacher's Δ per class (Eq. 4), ECE and reliability diagrams on data.heldout_json",
        description="Run the teacher over the held-out labeled images (data.heldout_json, which "
        "must not overlap data.train_json), match its detections at IoU ≥ 0.5 and write Δ, ECE "
        "and reliability diagrams into run.run_dir/calibration/.",
    )
    add_config_arguments(p)
    p.add_argument(
        "--checkpoint", type=Path, default=None, help="teacher weights (default: run's model_final)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..config_io import config_from_args
    from ..engine.distributed import current_dist_info
    from ..evaluation.report import DIAGRAMS
    from ..pipeline.calibrate import calibrate_teacher

    report, out = calibrate_teacher(config_from_args(args), str(args.checkpoint) if args.checkpoint else None)
    if not current_dist_info().is_main:  # under torchrun rank 0 prints
        return 0
    for group in DIAGRAMS:
        ece = report.ece(group)
        shown = "-" if ece is None else f"{ece:.4f}"
        print(f"{group:>4}: {report.num_samples(group):>7} detections, ECE {shown}")
    print(f"wrote {out}/calibration.json, delta.safetensors, reliability_{{all,r,c,f}}.png")
    return 0
