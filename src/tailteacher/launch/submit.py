"""`run` (or the pipeline up to one stage) as a submitit job, requeued on preemption (D88).

The job is ``PipelineJob``: the resolved config and the stage to stop after, nothing else. On
SLURM's preemption or time-limit signal submitit calls its ``checkpoint()``, which resubmits the
same call: the pipeline already resumes from its own files (``stage.started.json`` and a training
stage's last checkpoint, D54), so the job needs no state of its own. Work since a stage's last
checkpoint (``train.checkpoint_every``) is done again. The scheduler is submitit's (the
well-kept one), not ours: ``executor="slurm"`` submits with ``sbatch``, ``executor="local"`` runs
the job in a local process under submitit's controller, which signals and requeues it the same way.

``run`` is one process (D54): a job gets one task on one node. More GPUs per stage need the
pipeline's stages under DDP (issue 14, not built), so ``nodes × gpus_per_node > 1`` is refused
rather than started as N copies of the pipeline racing on the same stage records.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import submitit
from submitit.helpers import Checkpointable, DelayedSubmission

from ..config import Config
from ..errors import InputError
from ..pipeline.run import PIPELINE_STAGES, run_pipeline

Executor = Literal["slurm", "local"]


@dataclass(frozen=True)
class Resources:
    """What a job asks the scheduler for (``tailteacher submit``'s options)."""

    nodes: int = 1
    gpus_per_node: int = 1
    partition: str | None = None
    minutes: int = 60
    cpus_per_task: int = 4
    name: str = "tailteacher"

    def check(self) -> None:
        """Refuse what cannot run: see the module's docstring for why one task only."""
        for field, value in (("--nodes", self.nodes), ("--time", self.minutes)):
            if value < 1:
                raise InputError(f"{field}: expected a positive integer, got {value}")
        if self.gpus_per_node < 0 or self.cpus_per_task < 1:
            raise InputError(
                f"--gpus-per-node / --cpus-per-task: expected ≥ 0 / ≥ 1, got {self.gpus_per_node} / "
                f"{self.cpus_per_task}"
            )
        if self.nodes * max(1, self.gpus_per_node) > 1:
            raise InputError(
                f"--nodes {self.nodes} --gpus-per-node {self.gpus_per_node}: `run` is one process on "
                "one device (D54); the pipeline's stages under DDP are not built yet, so a job takes "
                "--nodes 1 --gpus-per-node 1 (or 0). For a multi-GPU teacher, run `train-teacher` "
                "under torchrun"
            )

    def parameters(self, executor: Executor) -> dict[str, Any]:
        """``AutoExecutor.update_parameters`` keywords: submitit's shared names, plus the SLURM
        partition (ignored by the local executor)."""
        out: dict[str, Any] = {
            "name": self.name,
            "timeout_min": self.minutes,
            "nodes": self.nodes,
            "tasks_per_node": 1,
            "gpus_per_node": self.gpus_per_node,
            "cpus_per_task": self.cpus_per_task,
        }
        if executor == "slurm" and self.partition is not None:
            out["slurm_partition"] = self.partition
        return out


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
        result = run_pipeline(self.config, until=self.until, log=_log)
        return {
            "run_dir": str(result.run_dir),
            "rows": result.rows,
            "stages": [{"name": s.name, "hash": s.hash, "skipped": s.skipped} for s in result.stages],
        }

    def checkpoint(self, *args: Any, **kwargs: Any) -> DelayedSubmission:
        """Called by submitit on preemption or time-out: the same call again. Everything the
        resumed job needs is in the run folder (stage records, training checkpoints)."""
        return DelayedSubmission(self, *args, **kwargs)


def _log(line: str) -> None:
    print(line, flush=True)  # the job's stdout file, line by line (a requeued job appends to it)


def make_executor(executor: Executor, folder: Path, resources: Resources) -> submitit.AutoExecutor:
    """submitit's executor for ``executor``, its logs and pickles in ``folder`` (``%j``: job id)."""
    resources.check()
    if executor not in ("slurm", "local"):
        raise InputError(f"--executor: expected slurm or local, got {executor!r}")
    try:
        ex = submitit.AutoExecutor(folder=folder, cluster=executor)
    except RuntimeError as err:  # no sbatch/srun on this machine
        raise InputError(f"--executor {executor}: {err}") from None
    ex.update_parameters(**resources.parameters(executor))
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
