"""The training engine shared by teacher and student: a small trainer with hooks, config, checkpoints.

    dist, device = init_run(config.train)              # torchrun env → process group, seeds, device
    model = build_my_model().to(device)
    trainer = build_trainer(config.train, config.run, record=config, model=model, step_fn=step_fn,
                            data=LoaderSource(...))
    trainer.train()

``step_fn(model, batch) -> {name: scalar loss}`` is the only thing teacher and student differ in.
Lower level: ``Trainer(model=..., step_fn=..., optimizer=..., data=..., max_steps=..., hooks=[...])``.
"""

from ..settings import StrictModel
from .build import (
    build_hooks,
    build_optimizer,
    build_scheduler,
    build_trainer,
    init_run,
    max_steps_for,
    parameter_groups,
    resolve_device,
)
from .checkpoint import Checkpointer, load_checkpoint, save_checkpoint
from .config import RunConfig, TrainConfig
from .config_files import config_hash, dump_config, save_config
from .data_source import BatchSource, LoaderSource
from .distributed import DistInfo, current_dist_info, dist_info_from_env, init_distributed, shutdown
from .hooks import CheckpointHook, EMAHook, EvalHook, HookBase
from .metrics import LoggingHook, MetricsWriter, read_metrics
from .schedule import WarmupCosine, warmup_cosine_scheduler
from .seed import derive_seed, get_rng_state, preserved_rng, seed_everything, set_deterministic, set_rng_state
from .trainer import StepFn, Trainer

__all__ = [
    "BatchSource",
    "CheckpointHook",
    "Checkpointer",
    "DistInfo",
    "EMAHook",
    "EvalHook",
    "HookBase",
    "LoaderSource",
    "LoggingHook",
    "MetricsWriter",
    "RunConfig",
    "StepFn",
    "StrictModel",
    "TrainConfig",
    "Trainer",
    "WarmupCosine",
    "build_hooks",
    "build_optimizer",
    "build_scheduler",
    "build_trainer",
    "config_hash",
    "current_dist_info",
    "derive_seed",
    "dist_info_from_env",
    "dump_config",
    "get_rng_state",
    "init_distributed",
    "init_run",
    "load_checkpoint",
    "max_steps_for",
    "parameter_groups",
    "preserved_rng",
    "read_metrics",
    "resolve_device",
    "save_checkpoint",
    "save_config",
    "seed_everything",
    "set_deterministic",
    "set_rng_state",
    "shutdown",
    "warmup_cosine_scheduler",
]
