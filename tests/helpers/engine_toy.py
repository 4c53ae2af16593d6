"""Tiny stand-ins for the engine tests: a regression data set, small models, step functions.

Imported by the in-process tests and by the subprocess helpers (torchrun, kill -9 resume), so both
build exactly the same thing.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from tailteacher.config import Config
from tailteacher.engine import (
    Checkpointer,
    CheckpointHook,
    DistInfo,
    HookBase,
    LoaderSource,
    Trainer,
    seed_everything,
)

IN, OUT = 4, 1


def regression_data(n: int = 64, seed: int = 123) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, IN, generator=g)
    w = torch.randn(IN, OUT, generator=g)
    y = torch.tanh(x @ w) + 0.1 * torch.randn(n, OUT, generator=g)
    return TensorDataset(x, y)


class NoisyData(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Adds noise drawn from numpy's global stream, so resume must restore numpy's state too."""

    def __init__(self, base: TensorDataset) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.base[i]
        noise = torch.from_numpy(np.random.normal(0.0, 0.01, size=x.shape).astype(np.float32))  # noqa: NPY002
        return x + noise, y


def mlp(dropout: float = 0.0, batchnorm: bool = False) -> nn.Module:
    layers: list[nn.Module] = [nn.Linear(IN, 16)]
    if batchnorm:
        layers.append(nn.BatchNorm1d(16))
    layers += [nn.Tanh(), nn.Dropout(dropout), nn.Linear(16, OUT)]
    return nn.Sequential(*layers)


def mse_step(model: nn.Module, batch: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    x, y = batch
    return {"loss_mse": nn.functional.mse_loss(model(x), y)}


def two_loss_step(model: nn.Module, batch: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Two losses (logged apart), and python's ``random`` used in the step."""
    x, y = batch
    pred = model(x)
    jitter = 1.0 + 0.01 * random.random()
    return {"loss_mse": jitter * nn.functional.mse_loss(pred, y), "loss_l1": 0.1 * (pred - y).abs().mean()}


class Recorder(HookBase):
    """Keeps each step's metrics (no state: not saved)."""

    def __init__(self) -> None:
        self.metrics: list[dict[str, float]] = []

    def after_step(self, trainer: Trainer, metrics: Mapping[str, float]) -> None:
        self.metrics.append(dict(metrics))


class Sleep(HookBase):
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def after_step(self, trainer: Trainer, metrics: Mapping[str, float]) -> None:
        time.sleep(self.seconds)


def sgd_trainer(
    *,
    batch_size: int,
    accumulate: int = 1,
    steps: int = 12,
    seed: int = 0,
    dist: DistInfo | None = None,
    hooks: list[HookBase] | None = None,
    checkpoint_dir: Path | None = None,
    checkpoint_every: int = 3,
    n: int = 64,
    **trainer_kwargs: Any,
) -> tuple[Trainer, Recorder]:
    """An MLP regression trained with SGD + momentum on ``regression_data`` (no dropout)."""
    dist = dist or DistInfo()
    seed_everything(seed, dist.rank)
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    source = LoaderSource(regression_data(n), batch_size=batch_size, seed=seed, dist=dist)
    recorder = Recorder()
    all_hooks: list[HookBase] = [*(hooks or []), recorder]
    if checkpoint_dir is not None:
        all_hooks.append(CheckpointHook(Checkpointer(checkpoint_dir), every=checkpoint_every))
    trainer = Trainer(
        model=model,
        step_fn=mse_step,
        optimizer=optimizer,
        data=source,
        max_steps=steps,
        hooks=all_hooks,
        accumulate=accumulate,
        dist=dist,
        **trainer_kwargs,
    )
    return trainer, recorder


def toy_config(run_dir: Path, **train: object) -> Config:
    """A full config for the toy problem (the data paths are not read)."""
    train_section = {
        "optimizer": "adamw",
        "lr": 0.01,
        "weight_decay": 0.01,
        "warmup_steps": 4,
        "max_steps": 25,
        "grad_clip": 1.0,
        "seed": 3,
        "deterministic": True,
        "device": "cpu",
        "checkpoint_every": 3,
        "keep_checkpoints": 2,
        "eval_every": 5,
        "log_every": 1,
        "ema_momentum": 0.9,
        **train,
    }
    return Config.model_validate(
        {
            "data": {
                "train_json": "unused.json",
                "val_json": "unused.json",
                "image_root": ".",
                "batch_size": 4,
            },
            "train": train_section,
            "run": {"run_dir": str(run_dir)},
        }
    )


def val_loss_fn(model: nn.Module) -> dict[str, float]:
    x, y = regression_data(16, seed=999).tensors
    was_training = model.training
    model.eval()
    with torch.no_grad():
        loss = nn.functional.mse_loss(model(x), y)
    model.train(was_training)
    return {"val_mse": float(loss), "draw": float(torch.rand(()))}  # the draw must not move training's RNG
