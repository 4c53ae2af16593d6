"""Hooks: what runs around the training step (EMA, evaluation, checkpoints; logging is in ``metrics``).

A hook sees the trainer and the step's metrics, never global storage. A hook with state returns
it from ``state_dict`` (tensors and plain types), and the trainer stores it in every checkpoint
under the hook's ``name``. Hooks run in the order given; put the ``CheckpointHook`` last so that a
checkpoint holds what the other hooks did at that step (``build_hooks`` does).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .checkpoint import Checkpointer
from .seed import preserved_rng

if TYPE_CHECKING:
    from .metrics import MetricsWriter
    from .trainer import Trainer


class HookBase:
    """Does nothing; subclasses override what they need (after detectron2's ``HookBase``)."""

    @property
    def name(self) -> str:
        """The key of this hook's state in a checkpoint; unique among a trainer's hooks."""
        return type(self).__name__

    def before_train(self, trainer: Trainer) -> None:
        """Called once, after a resume (``trainer.start_step`` is set) and before the first step."""

    def after_step(self, trainer: Trainer, metrics: Mapping[str, float]) -> None:
        """Called after each optimizer step; ``trainer.step`` counts the steps done (≥ 1)."""

    def after_train(self, trainer: Trainer) -> None:
        """Called once at the end, also when training stopped on an error
        (``trainer.finished`` says whether it reached ``max_steps``)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""


class EMAHook(HookBase):
    """An exponential moving average of a model's parameters and buffers.

    After every ``every``-th step, for each floating-point tensor of ``model.state_dict()``:
    ``ema ← momentum · ema + (1 − momentum) · value``; non-float tensors (a BatchNorm's
    ``num_batches_tracked``) are copied. Pass the unwrapped model (``trainer.model``), not a DDP
    wrapper. ``target`` is the module that holds the average (default: a copy of ``model``),
    e.g. a teacher that follows its student.
    """

    def __init__(
        self, model: nn.Module, momentum: float, *, target: nn.Module | None = None, every: int = 1
    ) -> None:
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum: expected a number in [0, 1], got {momentum}")
        if every < 1:
            raise ValueError(f"every: expected ≥ 1, got {every}")
        self.source = model
        self.ema = target if target is not None else copy.deepcopy(model)
        self.ema.requires_grad_(False)
        self.momentum = momentum
        self.every = every
        self.updates = 0
        src, dst = self.source.state_dict(), self.ema.state_dict()
        if list(src) != list(dst):
            raise ValueError("target: expected the same parameter and buffer names as model")

    @torch.no_grad()
    def update(self) -> None:
        src, dst = self.source.state_dict(), self.ema.state_dict()
        floats_dst, floats_src = [], []
        for key, value in src.items():
            out = dst[key]
            if out.is_floating_point():
                floats_dst.append(out)
                floats_src.append(value.to(device=out.device, dtype=out.dtype))  # e.g. an EMA kept on the CPU
            else:
                out.copy_(value)
        if floats_dst:
            torch._foreach_mul_(floats_dst, self.momentum)
            torch._foreach_add_(floats_dst, floats_src, alpha=1.0 - self.momentum)
        self.updates += 1

    def after_step(self, trainer: Trainer, metrics: Mapping[str, float]) -> None:
        if trainer.step % self.every == 0:
            self.update()

    def state_dict(self) -> dict[str, Any]:
        return {"ema": self.ema.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.ema.load_state_dict(state["ema"])
        self.updates = int(state["updates"])


class EvalHook(HookBase):
    """Calls ``eval_fn()`` every ``every`` steps and after the last step (``at_end``).

    ``eval_fn`` runs on every rank (a distributed evaluation reduces across ranks itself) and
    returns metrics; they are kept in ``history`` (saved in checkpoints) and written, prefixed
    (``val/AP``), to ``writer`` — ``metrics.jsonl`` (``{"step": s, "val/AP": ...}``) and
    TensorBoard — on rank 0. ``eval_fn`` puts the model it evaluates in eval mode; the trainer's
    model is given back in the mode it was in (train mode), and the random streams are restored,
    so evaluating does not change what training does next. ``every`` None: only at the end.
    """

    def __init__(
        self,
        eval_fn: Callable[[], Mapping[str, float]],
        *,
        every: int | None,
        writer: MetricsWriter | None = None,
        at_end: bool = True,
        prefix: str = "val/",
    ) -> None:
        if every is not None and every < 1:
            raise ValueError(f"every: expected ≥ 1 or None, got {every}")
        self.eval_fn = eval_fn
        self.every = every
        self.writer = writer
        self.at_end = at_end
        self.prefix = prefix
        self.history: list[dict[str, float]] = []

    def before_train(self, trainer: Trainer) -> None:
        if self.writer is not None:
            self.writer.open(trainer.start_step)

    def evaluate(self, trainer: Trainer) -> dict[str, float]:
        was_training = trainer.model.training
        try:
            with preserved_rng():
                results = {k: float(v) for k, v in self.eval_fn().items()}
        finally:
            trainer.model.train(was_training)
        self.history.append({"step": trainer.step, **results})
        if self.writer is not None:
            self.writer.write(trainer.step, {self.prefix + k: v for k, v in results.items()})
        return results

    def after_step(self, trainer: Trainer, metrics: Mapping[str, float]) -> None:
        periodic = self.every is not None and trainer.step % self.every == 0
        if periodic or (self.at_end and trainer.step == trainer.max_steps):
            self.evaluate(trainer)

    def after_train(self, trainer: Trainer) -> None:
        if self.writer is not None:  # shared with LoggingHook; closing twice is harmless
            self.writer.close()

    def state_dict(self) -> dict[str, Any]:
        return {"history": [dict(h) for h in self.history]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.history = [dict(h) for h in state["history"]]


class CheckpointHook(HookBase):
    """Saves a checkpoint every ``every`` steps and after the last step (``at_end``); a collective:
    every rank calls it, rank 0 writes. Not after a step that raised: a crash keeps the last good one."""

    def __init__(self, checkpointer: Checkpointer, *, every: int, at_end: bool = True) -> None:
        if every < 1:
            raise ValueError(f"every: expected ≥ 1, got {every}")
        self.checkpointer = checkpointer
        self.every = every
        self.at_end = at_end

    def before_train(self, trainer: Trainer) -> None:
        if trainer.dist.is_main:
            self.checkpointer.remove_temporary_files()

    def after_step(self, trainer: Trainer, metrics: Mapping[str, float]) -> None:
        if trainer.step % self.every == 0 or (self.at_end and trainer.step == trainer.max_steps):
            trainer.save_checkpoint(self.checkpointer)
