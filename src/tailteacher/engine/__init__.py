"""The training engine shared by teacher and student: a small trainer with hooks, config, checkpoints.

    dist, device = init_run(config)                    # torchrun env → process group, seeds, device
    model = build_my_model().to(device)
    trainer = build_trainer(config, model=model, step_fn=step_fn, data=LoaderSource(...))
    trainer.train()

``step_fn(model, batch) -> {name: scalar loss}`` is the only thing teacher and student differ in.
Lower level: ``Trainer(model=..., step_fn=..., optimizer=..., data=..., max_steps=..., hooks=[...])``.
"""

from ..modeling.config import ModelConfig
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
from .config import Config, DataConfig, RunConfig, TargetsConfig, TrainConfig
from .config_io import (
    add_config_arguments,
    apply_overrides,
    config_from_args,
    config_hash,
    config_reference,
    dump_config,
    load_config,
    save_config,
    validate_config,
)
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
    "Config",
    "DataConfig",
    "DistInfo",
    "EMAHook",
    "EvalHook",
    "HookBase",
    "LoaderSource",
    "LoggingHook",
    "MetricsWriter",
    "ModelConfig",
    "RunConfig",
    "StepFn",
    "StrictModel",
    "TargetsConfig",
    "TrainConfig",
    "Trainer",
    "WarmupCosine",
    "add_config_arguments",
    "apply_overrides",
    "build_hooks",
    "build_optimizer",
    "build_scheduler",
    "build_trainer",
    "config_from_args",
    "config_hash",
    "config_reference",
    "current_dist_info",
    "derive_seed",
    "dist_info_from_env",
    "dump_config",
    "get_rng_state",
    "init_distributed",
    "init_run",
    "load_checkpoint",
    "load_config",
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
    "validate_config",
    "warmup_cosine_scheduler",
]
