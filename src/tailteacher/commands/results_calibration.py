"""`tailteacher calibration`: Δ per category (Eq. 4), ECE and reliability diagrams (Fig. 3)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import InputError


def register(sub: Any) -> None:
    p = sub.add_parser(
        "calibration",
        help="detection calibration: Δ per category (Eq. 4), ECE, reliability diagrams",
        description="Match detections to ground truth as LVIS does (IoU ≥ 0.5, greedy by score, "
        "federated rules) and measure calibration: Δ per category id (Eq. 4, signed), ECE overall "
        "and per frequency group, and reliability diagrams (the paper's Fig. 3). Writes "
        "calibration.json and reliability_{all,r,c,f}.png into --out.",
    )
    p.add_argument("--gt", required=True, help="LVIS-format ground-truth json (held-out labeled images)")
    p.add_argument("--results", required=True, help="COCO results json; scores in [0, 1]")
    p.add_argument("--out", required=True, help="folder to write into (created if missing)")
    p.add_argument("--iou-type", choices=("segm", "bbox"), default="segm", help="default segm")
    p.add_argument("--num-bins", type=int, default=10, help="confidence bins (default 10)")
    p.add_argument("--max-dets", type=int, default=300, help="detections kept per image (default 300)")
    p.set_defaults(func=run)


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


def run(args: argparse.Namespace) -> int:
    from ..evaluation.report import DIAGRAMS, write_calibration

    if args.num_bins < 1:
        raise InputError(f"--num-bins: expected a positive integer, got {args.num_bins}")
    if args.max_dets < 1:
        raise InputError(f"--max-dets: expected a positive integer, got {args.max_dets}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out: {out} exists and is not a folder")
    report = write_calibration(args.gt, args.results, out, args.iou_type, args.num_bins, args.max_dets)
    print(f"{'group':>6}  {'#det':>8}  {'#correct':>8}  {'ECE':>7}")
    for group in DIAGRAMS:
        print(
            f"{group:>6}  {report.num_samples(group):>8}  {report.num_correct(group):>8}  "
            f"{_fmt(report.ece(group)):>7}"
        )
    print(f"wrote {out / 'calibration.json'} and reliability_{{all,r,c,f}}.png")
    return 0
