"""`tailteacher ablate CONFIG --seeds N`: the paper's ablation (Table 1, Fig. 2), N seeds each."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from ..errors import InputError


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def register(sub: Any) -> None:
    from ..config_io import add_config_arguments

    p = sub.add_parser(
        "ablate",
        help="the paper's ablation: five supervised teachers, four students and the control, label fractions",
        description="Run the paper's ablation rows, as docs/design.md reads them (one-hot / "
        "uniform / similarity γ=0 / γ=1.5 teachers; one-hot / soft / calibrated students, "
        "calibrated on the top-k classes, a "
        "w=0 control; the supervised rows at fractions of the labels) for seeds 0…N-1 into "
        "--out (default run.run_dir) and write ablation.md and ablation.json with mean ± std. "
        "Every run is a resumable stage: the same command again continues a stopped ablation.",
    )
    add_config_arguments(p)
    p.add_argument("--seeds", type=int, default=3, help="seeds 0…N-1 (default 3)")
    p.add_argument("--only-seed", type=int, default=None, help="run this seed only (one process per seed)")
    p.add_argument(
        "--part",
        choices=("all", "full", "fractions"),
        default="all",
        help="full: Table 1's rows; fractions: Fig. 2's label fractions < 1 (independent; default all)",
    )
    p.add_argument(
        "--rows",
        type=_names,
        default=None,
        help="train only these rows (comma-separated keys, e.g. onehot,student_soft) and what they "
        "need; the others are read when finished. Several processes with different --rows share "
        "one seed: a stage another process is running is waited for, never run twice",
    )
    p.add_argument(
        "--collect", action="store_true", help="train nothing: write the tables from the finished rows"
    )
    p.add_argument("--out", type=Path, default=None, help="output folder (default run.run_dir)")
    p.add_argument(
        "--fractions", type=_floats, default=[0.25, 0.5], help="label fractions < 1 (default 0.25,0.5)"
    )
    p.add_argument(
        "--fraction-rows",
        type=_names,
        default=["onehot", "sim_g15"],
        help="teacher rows run at each fraction",
    )
    p.add_argument(
        "--temperature", type=float, default=None, help="add the similarity rows with this Eq. 2 temperature"
    )
    p.add_argument("--student-teacher", default="sim_g15", help="the teacher row the students learn from")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..config import Config
    from ..config_io import config_from_args
    from ..pipeline.ablation import AblationPlan, run_ablation

    if args.seeds < 1:
        raise InputError(f"--seeds: expected a positive integer, got {args.seeds}")
    if args.only_seed is not None and not 0 <= args.only_seed < args.seeds:
        raise InputError(f"--only-seed: expected a seed in 0…{args.seeds - 1}, got {args.only_seed}")
    if args.temperature is not None and not args.temperature > 0:
        raise InputError(f"--temperature: expected a positive number, got {args.temperature}")
    plan = AblationPlan(
        seeds=range(args.seeds),
        fractions=args.fractions,
        fraction_rows=args.fraction_rows,
        temperature=args.temperature,
        student_teacher=args.student_teacher,
        rows=None if args.rows is None else frozenset(args.rows),
    )
    config: Config = config_from_args(args)
    out = args.out or Path(config.run.run_dir)
    command = "tailteacher " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    _, md = run_ablation(
        config,
        plan,
        out,
        only_seed=args.only_seed,
        part=args.part,
        collect_only=args.collect,
        command=command,
    )
    print(md.read_text(encoding="utf-8"))
    print(f"wrote {md} and {md.with_suffix('.json')}")
    print(f"report: {md.parent / 'report.html'}")
    return 0
