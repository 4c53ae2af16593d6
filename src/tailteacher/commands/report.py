"""`tailteacher report RUN_DIR`: one self-contained HTML page of a run or an ablation folder."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="one self-contained HTML page of a finished run (or ablation folder) with the paper's figures",
        description="Write RUN_DIR/report.html: the teacher / control / student table, Fig. 3 "
        "(reliability diagrams), Fig. 4 (AP per class against training frequency), Fig. 2 "
        "(label-fraction curves, for an ablation folder), Fig. 5 (rare objects, teacher and "
        "student side by side), the pseudo-labels, a sortable per-class table and the resolved "
        "config. Images are inlined: the file opens offline, alone. `run` and `ablate` write it too.",
    )
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a `tailteacher run` or `ablate` folder")
    p.add_argument("--out", type=Path, default=None, help="the HTML file (default RUN_DIR/report.html)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..report import write_html_report

    print(f"report: {write_html_report(args.run_dir, args.out)}")
    return 0
