"""`tailteacher evaluate`: LVIS AP of a COCO results file (equal to the official LVISEval)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .. import io
from ..errors import InputError
from ..evaluation.ground_truth import FREQUENCY_GROUPS


def register(sub: Any) -> None:
    p = sub.add_parser(
        "evaluate",
        help="LVIS AP, AP50, AP75, APs/m/l, APr/c/f of detections (segm or bbox)",
        description="Evaluate a COCO results json (image_id, category_id, score, bbox, segmentation "
        "as compressed RLE) against an LVIS-format ground truth with LVIS's federated rules. The "
        "numbers equal the official LVISEval's. Every category's AP goes into --out.",
    )
    p.add_argument("--gt", required=True, help="LVIS-format ground-truth json")
    p.add_argument("--results", required=True, help="COCO results json (a list of detections)")
    p.add_argument("--iou-type", choices=("segm", "bbox"), default="segm", help="default segm")
    p.add_argument("--max-dets", type=int, default=300, help="detections kept per image (default 300)")
    p.add_argument("--out", help="write the metrics and per-category AP to this json")
    p.add_argument("--plot", help="write AP per category against training frequency (Fig. 4) to this PNG")
    p.add_argument(
        "--frequency-key",
        choices=("instance_count", "image_count"),
        default="instance_count",
        help="training frequency of a category for --plot (default instance_count)",
    )
    p.add_argument("--per-class", action="store_true", help="also print every category's AP")
    p.set_defaults(func=run)


def _fmt(v: float | None) -> str:
    return "    -" if v is None or v < 0 else f"{100 * v:5.1f}"


def format_table(metrics: dict[str, float], per_category: list[dict[str, Any]] | None = None) -> str:
    keys = list(metrics)
    lines = ["  ".join(f"{k:>6}" for k in keys), "  ".join(f"{_fmt(metrics[k]):>6}" for k in keys)]
    if per_category is not None:
        lines.append("")
        lines.append(f"{'id':>6}  {'group':>5}  {'#gt':>6}  {'#det':>7}  {'AP':>5}  name")
        for c in sorted(per_category, key=lambda c: (FREQUENCY_GROUPS.index(c["frequency"]), c["id"])):
            lines.append(
                f"{c['id']:>6}  {c['frequency']:>5}  {c['num_gt']:>6}  {c['num_detections']:>7}  "
                f"{_fmt(c['AP'])}  {c['name']}"
            )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ..evaluation import evaluate

    if args.max_dets < 1:
        raise InputError(f"--max-dets: expected a positive integer, got {args.max_dets}")
    for flag, path in (("--out", args.out), ("--plot", args.plot)):
        # Refuse an output that cannot be written before writing the other one.
        if path and Path(path).is_dir():
            raise InputError(f"{flag}: {path} is a folder; expected a file path")
    result = evaluate(args.gt, args.results, iou_type=args.iou_type, max_dets=args.max_dets)
    print(f"LVIS {args.iou_type} evaluation, top {args.max_dets} detections per image (AP in %)")
    print(format_table(result.metrics, result.per_category if args.per_class else None))
    if args.out:
        payload = {"ground_truth": str(args.gt), "results": str(args.results), **result.to_json()}
        io.atomic_write_json(args.out, payload, indent=1)
        print(f"wrote {args.out}")
    if args.plot:
        from ..evaluation.plots import plot_ap_vs_frequency

        n = plot_ap_vs_frequency(result.per_category, args.plot, frequency_key=args.frequency_key)
        print(f"wrote {args.plot} ({n} categories)")
    return 0
