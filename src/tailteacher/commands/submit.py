"""`tailteacher submit CONFIG`: `run` (or up to one stage) as a SLURM job, or a local one (submitit)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    from ..config_io import add_config_arguments
    from ..pipeline.run import PIPELINE_STAGES

    p = sub.add_parser(
        "submit",
        help="`run` as a SLURM job (or a local one) through submitit, requeued on preemption",
        description="Submit `tailteacher run CONFIG` (or its stages up to --stage) as one submitit "
        "job. On preemption or the time limit the job is requeued and resumes where it stopped "
        "(finished stages skipped, a training stage from its last checkpoint). A job has one "
        "task per GPU on each node; with several, the tasks run the pipeline under torch "
        "distributed as torchrun would (rank 0 writes, training is DDP).",
    )
    add_config_arguments(p)
    p.add_argument("--stage", choices=PIPELINE_STAGES, default=None, help="stop after this stage")
    p.add_argument("--nodes", type=int, default=1, help="nodes (default 1)")
    p.add_argument("--gpus-per-node", type=int, default=1, help="GPUs per node, one task each (default 1)")
    p.add_argument(
        "--tasks-per-node",
        type=int,
        default=None,
        help="processes per node (default: one per GPU; several on CPU with --gpus-per-node 0)",
    )
    p.add_argument("--partition", default=None, help="the SLURM partition")
    p.add_argument("--time", type=int, default=60, help="time limit in minutes (default 60)")
    p.add_argument("--cpus-per-task", type=int, default=None, help="CPUs (default data.workers + 2)")
    p.add_argument("--executor", choices=("slurm", "local"), default="slurm", help="default slurm")
    p.add_argument("--folder", type=Path, default=None, help="job logs (default run.run_dir/submitit/%%j)")
    p.add_argument("--wait", action="store_true", help="wait for the job and print its stages")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..config import Config
    from ..config_io import config_from_args
    from ..launch.submit import Resources, submit

    config: Config = config_from_args(args)
    resources = Resources(
        nodes=args.nodes,
        gpus_per_node=args.gpus_per_node,
        partition=args.partition,
        minutes=args.time,
        cpus_per_task=args.cpus_per_task or config.data.workers + 2,
        tasks_per_node=args.tasks_per_node,
    )
    job = submit(config, resources, until=args.stage, executor=args.executor, folder=args.folder)
    print(f"submitted job {job.job_id} ({args.executor}); log: {job.paths.stdout}")
    if args.wait:
        result = job.result()
        for stage in result["stages"]:
            print(f"{stage['name']}: {'skipped' if stage['skipped'] else 'ran'} ({stage['hash'][:12]})")
        print(f"run folder: {result['run_dir']}")
    return 0
