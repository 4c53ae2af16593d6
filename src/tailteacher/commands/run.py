"""`tailteacher run CONFIG`: the whole pipeline, each stage skipped when done, resumed when stopped."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    from ..config_io import add_config_arguments

    p = sub.add_parser(
        "run",
        help="the whole pipeline: split → prototypes → teacher → calibrate → student → report",
        description="Run every stage CONFIG needs in run.run_dir, one folder per stage. A stage "
        "whose outputs exist for the same resolved config and input files is skipped; one that "
        "was stopped part-way resumes from its last checkpoint: run the same command again. "
        "Ends by printing the teacher/student table and writing report.md and report.json.",
    )
    add_config_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..config import Config
    from ..config_io import config_from_args
    from ..engine.distributed import current_dist_info
    from ..pipeline.run import run_pipeline
    from ..report.markdown import format_table, gain_sentence

    config: Config = config_from_args(args)
    result = run_pipeline(config)
    if not current_dist_info().is_main:  # under torchrun rank 0 prints
        return 0
    print()
    print(format_table(result.rows))
    gain = gain_sentence(result.rows)
    if gain is not None:
        print(f"\n{gain}")
    print(f"\nreport: {result.run_dir / 'report.html'} (report.md and report.json beside it)")
    return 0
