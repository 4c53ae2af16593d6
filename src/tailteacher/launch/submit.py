"""`run` (or the pipeline up to one stage) as a submitit job, requeued on preemption (D88).

The job is ``PipelineJob``: the resolved config and the stage to stop after, nothing else. On
SLURM's preemption or time-limit signal submitit calls its ``checkpoint()``, which resubmits the
same call: the pipeline already resumes from its own files (``stage.started.json`` and a training
stage's last checkpoint, D54), so the job needs no state of its own. Work since a stage's last
checkpoint (``train.checkpoint_every``) is done again. The scheduler is submitit's (the
well-kept one), not ours: ``executor="slurm"`` submits with ``sbatch``, ``executor="local"`` runs
the job in local processes under submitit's controller, which signals and requeues it the same way.

Several processes per job (D103): a job has ``nodes × tasks_per_node`` tasks, one per GPU (or
``tasks_per_node`` CPU processes with ``gpus_per_node=0``). Each task maps submitit's job
environment (global rank, local rank, task count, first host name, a port drawn from the job id)
to torchrun's variables (``torch_environment``) and runs the same pipeline, which joins the
process group from them as under torchrun (D93–D99): rank 0 decides and writes, training is DDP.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import submitit
from submitit.helpers import Checkpointable, DelayedSubmission, TorchDistributedEnvironment

from ..config import Config
from ..engine.distributed import shutdown
from ..errors import InputError
from ..pipeline.run import PIPELINE_STAGES, run_pipeline

Executor = Literal["slurm", "local"]


@dataclass(frozen=True)
class Resources:
    """What a job asks the scheduler for (``tailteacher submit``'s options).

    ``tasks_per_node`` None means one task per GPU (one with ``gpus_per_node=0``); a number is
    for CPU jobs (``gpus_per_node=0``, gloo), or must equal ``gpus_per_node``."""

    nodes: int = 1
    gpus_per_node: int = 1
    partition: str | None = None
    minutes: int = 60
    cpus_per_task: int = 4
    name: str = "tailteacher"
    tasks_per_node: int | None = None

    @property
    def tasks(self) -> int:
        """Tasks (processes) per node."""
        return self.tasks_per_node if self.tasks_per_node is not None else max(1, self.gpus_per_node)

    def check(self) -> None:
        """Refuse what cannot run: a count below one, or tasks that do not each hold one GPU."""
        for field, value in (
            ("--nodes", self.nodes),
            ("--time", self.minutes),
            ("--tasks-per-node", self.tasks),
        ):
            if value < 1:
                raise InputError(f"{field}: expected a positive integer, got {value}")
        if self.gpus_per_node < 0 or self.cpus_per_task < 1:
            raise InputError(
                f"--gpus-per-node / --cpus-per-task: expected ≥ 0 / ≥ 1, got {self.gpus_per_node} / "
                f"{self.cpus_per_task}"
            )
        if self.gpus_per_node > 0 and self.tasks != self.gpus_per_node:
            raise InputError(
                f"--tasks-per-node {self.tasks}: a job with GPUs runs one process per GPU; leave it out "
                f"or give {self.gpus_per_node} (several CPU processes: --gpus-per-node 0)"
            )

    def parameters(self, executor: Executor) -> dict[str, Any]:
        """``AutoExecutor.update_parameters`` keywords: submitit's shared names, plus the SLURM
        partition (ignored by the local executor)."""
        out: dict[str, Any] = {
            "name": self.name,
            "timeout_min": self.minutes,
            "nodes": self.nodes,
            "tasks_per_node": self.tasks,
            "gpus_per_node": self.gpus_per_node,
            "cpus_per_task": self.cpus_per_task,
        }
        if executor == "slurm" and self.partition is not None:
            out["slurm_partition"] = self.partition
        return out


def torch_environment(
    rank: int, world_size: int, local_rank: int, local_world_size: int, master_addr: str, master_port: int
) -> dict[str, str]:
    """torchrun's variables for one task: RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
    MASTER_ADDR, MASTER_PORT (``engine.distributed.init_distributed`` reads them).

    Raises:
        ValueError: a rank outside [0, world_size), a local rank outside [0, local_world_size),
            or a port outside 1–65535.
    """
    if not (0 <= rank < world_size and 0 <= local_rank < local_world_size <= world_size):
        raise ValueError(
            f"expected 0 ≤ rank < world size and 0 ≤ local rank < local world size ≤ world size, got "
            f"{rank}, {world_size}, {local_rank}, {local_world_size}"
        )
    if not 0 < master_port < 65536:
        raise ValueError(f"expected a port in 1–65535, got {master_port}")
    return {
        "RANK": str(rank),
        "WORLD_SIZE": str(world_size),
        "LOCAL_RANK": str(local_rank),
        "LOCAL_WORLD_SIZE": str(local_world_size),
        "MASTER_ADDR": master_addr,
        "MASTER_PORT": str(master_port),
    }


def job_environment() -> dict[str, str]:
    """This task's torchrun variables from submitit's job environment (``torch_environment``);
    ``{}`` outside a submitit job or in a job of one task. The port is submitit's: ``MASTER_PORT``
    when the environment has it, else drawn in 20000–60000 from the job id (the same on every
    task, and again when the job is requeued)."""
    try:
        env = TorchDistributedEnvironment()
    except RuntimeError:  # not inside a submitit job: one process
        return {}
    if env.world_size == 1:
        return {}
    return torch_environment(
        env.rank, env.world_size, env.local_rank, env.local_world_size, env.master_addr, env.master_port
    )


class PipelineJob(Checkpointable):
    """``run_pipeline(config, until=until)`` as a picklable, requeueable callable.

    Returns a summary that pickles: the run folder, the report's rows and each stage's name, hash
    and whether it was skipped."""

    def __init__(self, config: Config, until: str | None = None) -> None:
        if until is not None and until not in PIPELINE_STAGES:
            raise InputError(f"--stage: expected one of {', '.join(PIPELINE_STAGES)}, got {until!r}")
        self.config = config
        self.until = until

    def __call__(self) -> dict[str, Any]:
        env = job_environment()
        _export(env)
        try:
            result = run_pipeline(self.config, until=self.until, log=_log)
        finally:
            if env:
                shutdown()
        return {
            "run_dir": str(result.run_dir),
            "rows": result.rows,
            "stages": [{"name": s.name, "hash": s.hash, "skipped": s.skipped} for s in result.stages],
        }

    def checkpoint(self, *args: Any, **kwargs: Any) -> DelayedSubmission:
        """Called by submitit on preemption or time-out: the same call again. Everything the
        resumed job needs is in the run folder (stage records, training checkpoints)."""
        return DelayedSubmission(self, *args, **kwargs)


def _export(env: Mapping[str, str]) -> None:
    """Set ``env`` in this process's environment; a variable set to another value already (a job
    started under torchrun, or by hand) is refused rather than silently replaced."""
    clash = {k: os.environ[k] for k, v in env.items() if os.environ.get(k, v) != v}
    if clash:
        raise InputError(f"the job's environment already sets {clash}, unlike submitit's tasks: {dict(env)}")
    os.environ.update(env)


def _log(line: str) -> None:
    print(line, flush=True)  # the job's stdout file, line by line (a requeued job appends to it)


def make_executor(executor: Executor, folder: Path, resources: Resources) -> submitit.AutoExecutor:
    """submitit's executor for ``executor``, its logs and pickles in ``folder`` (``%j``: job id)."""
    resources.check()
    if executor not in ("slurm", "local"):
        raise InputError(f"--executor: expected slurm or local, got {executor!r}")
    if executor == "local" and resources.nodes > 1:
        raise InputError(
            f"--executor local: runs on this one machine, expected --nodes 1, got {resources.nodes}"
        )
    try:
        ex = submitit.AutoExecutor(folder=folder, cluster=executor)
    except RuntimeError as err:  # no sbatch/srun on this machine
        raise InputError(f"--executor {executor}: {err}") from None
    try:
        ex.update_parameters(**resources.parameters(executor))
    except ValueError as err:  # e.g. the local executor with --nodes 2
        raise InputError(f"--executor {executor}: {err}") from None
    return ex


def submit(
    config: Config,
    resources: Resources,
    *,
    until: str | None = None,
    executor: Executor = "slurm",
    folder: Path | None = None,
) -> submitit.Job[dict[str, Any]]:
    """Submit ``run`` (or the stages up to ``until``) of ``config``; logs in ``folder`` (default
    ``run.run_dir/submitit``). The job is requeued on preemption and resumes where it stopped."""
    job_fn = PipelineJob(config, until)
    ex = make_executor(executor, folder or Path(config.run.run_dir) / "submitit" / "%j", resources)
    job: submitit.Job[dict[str, Any]] = ex.submit(job_fn)
    return job
