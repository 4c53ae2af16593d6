"""The `tailteacher` command line. Each subcommand is one stage of the pipeline.

Exit codes: 0 success, 2 bad input (a message on stderr names the file, record and field;
no traceback).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Modules under tailteacher.commands, in the order `--help` lists them.
COMMANDS = (
    "labels_demo",
    "split",
    "synth",
    "evaluate",
    "calibration",
    "prototypes",
    "train_teacher",
    "predict",
    "calibrate",
    "train_student",
    "run",
    "demo",
    "ablate",
    "report",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tailteacher",
        description="Semi-supervised long-tailed instance segmentation with better pseudo-labels.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"tailteacher.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except ValueError as err:  # InputError is a ValueError
        print(f"tailteacher {args.command}: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a folder given for a file, an unwritable --out, a full disk
        where = f"{err.filename}: " if err.filename else ""
        print(f"tailteacher {args.command}: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
