"""The one layer that turns the engine's settings (``train``, ``run``) into training objects:
optimizer, schedule, hooks, trainer.

Everything below it (``Trainer``, the hooks) takes built parts, never settings. The whole run
config reaches the engine only as ``record``: what ``build_trainer`` saves beside the run and hashes
into its checkpoints.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from pydantic import BaseModel
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from ..errors import InputError
from .checkpoint import Checkpointer
from .config import RunConfig, TrainConfig
from .config_files import config_hash, save_config
from .data_source import BatchSource
from .distributed import DistInfo, current_dist_info, default_device, init_distributed
from .hooks import CheckpointHook, EMAHook, EvalHook, HookBase
from .metrics import LoggingHook, MetricsWriter
from .schedule import warmup_cosine_scheduler
from .seed import seed_everything, set_deterministic
from .trainer import StepFn, Trainer


def resolve_device(train: TrainConfig, dist: DistInfo) -> torch.device:
    """``train.device`` as a device: auto → ``cuda:LOCAL_RANK`` where CUDA is available, else CPU."""
    if train.device == "cpu":
        return torch.device("cpu")
    if train.device == "cuda":
        if not torch.cuda.is_available():
            raise InputError("train.device: 'cuda' asked for, but CUDA is not available")
        return torch.device("cuda", dist.local_rank)
    return default_device(dist)


def init_run(train: TrainConfig) -> tuple[DistInfo, torch.device]:
    """Before building the model: join the process group torchrun described (if any), seed python,
    numpy and torch from (``train.seed``, rank), ask for deterministic kernels if configured, and
    return this process's rank info and device."""
    dist = init_distributed()
    seed_everything(train.seed, dist.rank)
    set_deterministic(train.deterministic)
    return dist, resolve_device(train, dist)


def max_steps_for(train: TrainConfig, batches_per_epoch: int | None = None) -> int:
    """``train.max_steps``, or ``train.epochs`` turned into optimizer steps."""
    if train.max_steps is not None:
        return train.max_steps
    if batches_per_epoch is None or batches_per_epoch < 1:
        raise ValueError("train.epochs: needs the number of batches per epoch (the data source's length)")
    assert train.epochs is not None
    return max(1, math.ceil(train.epochs * batches_per_epoch / train.accumulate))


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on weight matrices and kernels only: parameters with one dimension or fewer
    (biases, norm scales and shifts, scalar gates) get none, as timm and detectron2 do."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, train: TrainConfig) -> Optimizer:
    groups = parameter_groups(model, train.weight_decay)
    if train.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=train.lr, momentum=train.momentum)
    beta1, beta2 = train.betas
    return torch.optim.AdamW(groups, lr=train.lr, betas=(beta1, beta2))


def build_scheduler(optimizer: Optimizer, train: TrainConfig, max_steps: int) -> LambdaLR:
    return warmup_cosine_scheduler(
        optimizer,
        warmup_steps=min(train.warmup_steps, max_steps),
        max_steps=max_steps,
        warmup_factor=train.warmup_factor,
        min_factor=train.min_lr_factor,
    )


def build_hooks(
    train: TrainConfig,
    run_dir: str,
    *,
    model: nn.Module,
    dist: DistInfo,
    eval_fn: Callable[[], Mapping[str, float]] | None = None,
    extra_hooks: Sequence[HookBase] = (),
    progress: bool = True,
) -> list[HookBase]:
    """EMA (if ``train.ema_momentum``), ``extra_hooks``, logging, evaluation (if ``eval_fn``:
    every ``train.eval_every`` steps and after the last, logged as ``val/<name>``), and the
    checkpoint hook last, so that a checkpoint holds what the others did at its step."""
    writer = MetricsWriter(run_dir, enabled=dist.is_main)
    hooks: list[HookBase] = []
    if train.ema_momentum is not None:
        hooks.append(EMAHook(model, train.ema_momentum))
    hooks += list(extra_hooks)
    hooks.append(LoggingHook(writer, every=train.log_every, progress=progress))
    if eval_fn is not None:
        hooks.append(EvalHook(eval_fn, every=train.eval_every, writer=writer, prefix="val/"))
    checkpointer = Checkpointer(f"{run_dir}/checkpoints", keep=train.keep_checkpoints)
    hooks.append(CheckpointHook(checkpointer, every=train.checkpoint_every))
    return hooks


def build_trainer(
    train: TrainConfig,
    run: RunConfig,
    *,
    record: BaseModel,
    model: nn.Module,
    step_fn: StepFn,
    data: BatchSource,
    eval_fn: Callable[[], Mapping[str, float]] | None = None,
    extra_hooks: Sequence[HookBase] = (),
    dist: DistInfo | None = None,
    batches_per_epoch: int | None = None,
    progress: bool = True,
    ddp_kwargs: Mapping[str, Any] | None = None,
) -> Trainer:
    """A trainer as ``train`` says, in ``run.run_dir``: ``record`` (the whole run config) saved as
    ``run.run_dir/config.yaml`` (rank 0) and its hash kept in every checkpoint; resumed from the
    run folder's latest checkpoint when ``run.resume`` is set.

    ``model`` must already be on its device (``resolve_device``); the seed must have been set before
    the model was built (``seed.seed_everything(train.seed, rank)``).
    """
    dist = dist or current_dist_info()
    max_steps = max_steps_for(train, batches_per_epoch)
    optimizer = build_optimizer(model, train)
    hooks = build_hooks(
        train,
        run.run_dir,
        model=model,
        dist=dist,
        eval_fn=eval_fn,
        extra_hooks=extra_hooks,
        progress=progress,
    )
    chash = config_hash(record)
    trainer = Trainer(
        model=model,
        step_fn=step_fn,
        optimizer=optimizer,
        data=data,
        max_steps=max_steps,
        scheduler=build_scheduler(optimizer, train, max_steps),
        hooks=hooks,
        accumulate=train.accumulate,
        grad_clip=train.grad_clip,
        amp=train.amp,
        dist=dist,
        ddp_kwargs=ddp_kwargs,
        meta={"config_hash": chash},
        max_nonfinite_in_a_row=train.max_nonfinite_steps,
    )
    if dist.is_main:
        save_config(record, run.run_dir)
    if run.resume:
        checkpoint_hook = hooks[-1]
        assert isinstance(checkpoint_hook, CheckpointHook)
        path = checkpoint_hook.checkpointer.latest()
        if path is not None:
            meta = trainer.load_checkpoint(path)
            if meta.get("config_hash") != chash:
                warnings.warn(
                    f"{path}: written with another config (hash {meta.get('config_hash')}, now {chash}); "
                    "the resumed run will not match an uninterrupted run of either",
                    stacklevel=2,
                )
    return trainer
