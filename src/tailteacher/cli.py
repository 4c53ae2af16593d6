"""The `tailteacher` command line. Each subcommand is one stage of the pipeline.

Exit codes: 0 success, 2 bad input (a message on stderr names the file, record and field;
no traceback). Under torchrun (``WORLD_SIZE`` > 1) only the commands in ``TORCHRUN_COMMANDS`` run;
the others do one process's work and are refused with exit 2 rather than run N times at once.
A bug in our code is not bad input: anything but ``errors.InputError`` or an
``OSError`` about a file shows its traceback. ``--traceback`` shows one for bad input too.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Sequence

from .errors import InputError

# Modules under tailteacher.commands, in the order `--help` lists them.
COMMANDS = (
    "labels_demo",
    "split",
    "synth",
    "evaluate",
    "results_calibration",
    "prototypes",
    "mine",
    "train_teacher",
    "predict",
    "calibrate",
    "train_student",
    "run",
    "submit",
    "demo",
    "ablate",
    "report",
)


#: The commands that run under ``torchrun --nproc-per-node N``: they train with DDP, share their
#: prediction among the ranks, and write every file once (rank 0).
TORCHRUN_COMMANDS = ("run", "train-teacher", "train-student", "predict", "calibrate", "prototypes")


def check_torchrun(command: str) -> None:
    """Refuse ``command`` under torchrun unless it is one of ``TORCHRUN_COMMANDS``.

    Raises:
        InputError: ``WORLD_SIZE`` > 1 and ``command`` is a one-process command.
    """
    from .engine.distributed import dist_info_from_env

    world = dist_info_from_env().world_size
    if world == 1 or command in TORCHRUN_COMMANDS:
        return
    hint = (
        " To share an ablation among processes, start one process per seed and part "
        "(`ablate --only-seed S --part full|fractions`), then `ablate --collect`."
        if command == "ablate"
        else ""
    )
    raise InputError(
        f"runs in one process, and torchrun started {world} (WORLD_SIZE={world}); run it without "
        f"torchrun. Under torchrun: {', '.join(TORCHRUN_COMMANDS)}.{hint}"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tailteacher",
        description="Semi-supervised long-tailed instance segmentation with better pseudo-labels.",
    )
    parser.add_argument(
        "--traceback",
        action="store_true",
        help="on bad input, show the Python traceback as well as the message (for bug reports)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"tailteacher.commands.{name}").register(sub)
    return parser


def leave_process_group(*, returned: bool) -> None:
    """Leave torchrun's process group, if this process is in one, before the interpreter exits.

    A gloo process group left to the interpreter's finalisation can abort the process: SIGABRT
    instead of the command's exit code in 16 of 120 two-rank launches with the cores busy, 0 of 120
    when the group is left first (``benchmarks/gloo_teardown.py``; D122; the mechanism is the one
    pytorch/pytorch#179291 describes). A gloo group is left whatever the outcome (leaving it is
    local to the process); any other backend (nccl) only after the command returned (``returned``:
    an exit code, 2 included) rather than raised, since tearing down nccl while a peer may still be
    in a collective can hang, and a bug's traceback must not wait for that.
    A failure to leave is a warning on stderr, so it never replaces the command's own outcome.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    if not returned and dist.get_backend() != "gloo":
        return
    from .engine.distributed import shutdown

    try:
        shutdown()
    except Exception as err:  # the command's outcome stands; say what failed
        print(f"tailteacher: warning: leaving the process group failed: {err}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    returned = False
    try:
        code = _run(args)
        returned = True
        return code
    finally:
        leave_process_group(returned=returned)


def _run(args: argparse.Namespace) -> int:
    try:
        check_torchrun(args.command)
        code: int = args.func(args)
    except InputError as err:
        if args.traceback:
            traceback.print_exc()
        print(f"tailteacher {args.command}: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a folder given for a file, an unwritable --out, a full disk
        if err.filename is None and err.strerror is None:
            raise  # not about a file: a bug, with its traceback
        if args.traceback:
            traceback.print_exc()
        where = f"{err.filename}: " if err.filename else ""
        print(f"tailteacher {args.command}: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
