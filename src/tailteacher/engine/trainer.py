"""A small trainer: draw batches, call an injected step function, step the optimizer, run hooks.

The step function ``step_fn(model, batch) -> {name: scalar loss}`` is all that differs between
the teacher and the student: the losses are summed for backward and each is logged apart. Only
``model`` (the one being optimised) is wrapped in DDP, and ``step_fn`` receives that wrapper; a
teacher is closed over by ``step_fn`` and never wrapped. The trainer keeps the unwrapped module in
``trainer.model`` for checkpoints, EMA and evaluation, so nothing reaches through the wrapper.

One optimizer step = ``accumulate`` batches: each batch's summed loss is divided by ``accumulate``
before backward (gradients of all but the last skip DDP's all-reduce), so the gradient is the
mean over the ``batch_size · world_size · accumulate`` images of the global batch when each
loss is a mean over its batch.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

from ..failpoints import kill_point
from .checkpoint import FORMAT_VERSION, Checkpointer, load_checkpoint
from .data_source import BatchSource
from .distributed import DistInfo, all_gather_objects, all_reduce_mean, current_dist_info
from .hooks import HookBase
from .seed import get_rng_state, seed_everything, set_rng_state

StepFn = Callable[[nn.Module, Any], Mapping[str, torch.Tensor]]


class Trainer:
    """Trains ``model`` for ``max_steps`` optimizer steps.

    Args:
        model: the module being optimised, already on its device (the unwrapped module).
        step_fn: ``step_fn(model, batch)`` returns a non-empty dict of scalar losses; it receives
            the DDP wrapper when running distributed, and moves the batch to the device itself.
        optimizer: over ``model``'s parameters.
        data: where batches come from (``LoaderSource`` or anything with ``batches(epoch, start)``).
        max_steps: optimizer steps in all (a resumed run continues up to it).
        scheduler: stepped once per optimizer step (see ``schedule.warmup_cosine_scheduler``).
        hooks: run in this order after each step (see ``hooks``); names must be unique.
        accumulate: batches per optimizer step.
        grad_clip: clip the gradients' global L2 norm to this (None: no clipping; the norm is then
            not computed).
        amp: run ``step_fn`` under bf16 autocast on the model's device.
        dist: rank and world size (default: from the initialised process group, if any).
        ddp_kwargs: passed to ``DistributedDataParallel`` (e.g. ``find_unused_parameters``).
        meta: plain values saved in every checkpoint (e.g. the config hash).

    ``load_checkpoint`` / ``resume`` restore the state (weights, optimizer moments, step, data
    position, hook states, random streams); the hyperparameters stay as this trainer was built.
    """

    def __init__(
        self,
        *,
        model: nn.Module,
        step_fn: StepFn,
        optimizer: Optimizer,
        data: BatchSource,
        max_steps: int,
        scheduler: LRScheduler | None = None,
        hooks: Sequence[HookBase] = (),
        accumulate: int = 1,
        grad_clip: float | None = None,
        amp: bool = False,
        dist: DistInfo | None = None,
        ddp_kwargs: Mapping[str, Any] | None = None,
        meta: Mapping[str, Any] | None = None,
        max_nonfinite_in_a_row: int = 1,
    ) -> None:
        if max_nonfinite_in_a_row < 1:
            raise ValueError(f"max_nonfinite_in_a_row: expected ≥ 1, got {max_nonfinite_in_a_row}")
        if max_steps < 1:
            raise ValueError(f"max_steps: expected ≥ 1, got {max_steps}")
        if accumulate < 1:
            raise ValueError(f"accumulate: expected ≥ 1, got {accumulate}")
        if grad_clip is not None and not grad_clip > 0:
            raise ValueError(f"grad_clip: expected a number > 0 or None, got {grad_clip}")
        names = [h.name for h in hooks]
        if len(set(names)) != len(names):
            raise ValueError(f"hooks: names must be unique, got {names}")
        self.model = model
        self.step_fn = step_fn
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.data = data
        self.max_steps = max_steps
        self.hooks = list(hooks)
        self.accumulate = accumulate
        self.grad_clip = grad_clip
        self.amp = amp
        self.dist = dist or current_dist_info()
        self.meta = dict(meta or {})
        self.device = next(model.parameters()).device
        self._ddp: DistributedDataParallel | None = None
        if self.dist.is_distributed:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self._ddp = DistributedDataParallel(model, device_ids=device_ids, **dict(ddp_kwargs or {}))
        self.train_model: nn.Module = self._ddp if self._ddp is not None else model
        self.step = 0  # optimizer steps done
        self.start_step = 0  # where this process started (> 0 after a resume)
        self.epoch = 0  # data position: epoch, and batches of it consumed
        self.batch_in_epoch = 0
        self.finished = False
        self._batches: Iterator[Any] | None = None
        # A step whose loss is NaN/inf is skipped (no update; the schedule moves on) and counted;
        # this many in a row stop the run (1: the first one does). Not kept across a resume.
        self.max_nonfinite_in_a_row = max_nonfinite_in_a_row
        self.nonfinite_steps = 0
        self._nonfinite_in_a_row = 0

    def get_hook(self, name: str) -> HookBase:
        """The hook called ``name`` (e.g. ``"EMAHook"``, to evaluate its ``ema`` in an ``eval_fn``)."""
        for hook in self.hooks:
            if hook.name == name:
                return hook
        raise KeyError(f"no hook named {name!r}; hooks: {[h.name for h in self.hooks]}")

    # -- the loop ----------------------------------------------------------------------------

    def train(self) -> None:
        """Run from ``self.step`` to ``max_steps``, calling the hooks."""
        self.start_step = self.step
        for hook in self.hooks:
            hook.before_train(self)
        try:
            while self.step < self.max_steps:
                metrics = self.run_step()
                self.step += 1
                for hook in self.hooks:
                    hook.after_step(self, metrics)
                kill_point(f"step/{self.step}")  # fault tests: after the step's checkpoint
            self.finished = True
        finally:
            for hook in self.hooks:
                hook.after_train(self)

    def _next_batch(self) -> Any:
        for attempt in range(2):
            if self._batches is None:
                self._batches = iter(self.data.batches(self.epoch, self.batch_in_epoch))
            try:
                batch = next(self._batches)
            except StopIteration:
                self._batches = None
                self.epoch += 1
                self.batch_in_epoch = 0
                if attempt == 1:
                    break
                continue
            self.batch_in_epoch += 1
            return batch
        raise ValueError(f"data: yielded no batch for epoch {self.epoch - 1}")

    def run_step(self) -> dict[str, float]:
        """One optimizer step; returns the losses (mean over batches and ranks), ``total_loss``,
        ``lr``, ``grad_norm`` (when clipping) and ``data_time`` (this rank's seconds waiting)."""
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        sums: dict[str, torch.Tensor] = {}
        data_time = 0.0
        for k in range(self.accumulate):
            t0 = time.perf_counter()
            batch = self._next_batch()
            data_time += time.perf_counter() - t0
            last = k == self.accumulate - 1
            sync = contextlib.nullcontext() if last or self._ddp is None else self._ddp.no_sync()
            with sync:
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                    losses = self.step_fn(self.train_model, batch)
                total = self._total(losses)
                (total / self.accumulate).backward()
            for name, value in [*losses.items(), ("total_loss", total)]:
                previous = sums.get(name)
                value = value.detach().float().reshape(())
                sums[name] = value if previous is None else previous + value
        reduced = all_reduce_mean({k: v / self.accumulate for k, v in sums.items()})
        metrics = {k: float(v) for k, v in reduced.items()}
        if not math.isfinite(metrics["total_loss"]):
            self._nonfinite_in_a_row += 1
            self.nonfinite_steps += 1
            if self._nonfinite_in_a_row >= self.max_nonfinite_in_a_row:
                raise FloatingPointError(
                    f"loss is not finite at step {self.step} ({self._nonfinite_in_a_row} step(s) in a row, "
                    f"the limit; no update was made from them, the last checkpoint is intact): {metrics}"
                )
            self.optimizer.zero_grad(set_to_none=True)  # skipped: no update from this step
            if self.scheduler is not None:
                self.scheduler.step()
            return {"nonfinite_skipped": 1.0, "lr": float(self.optimizer.param_groups[0]["lr"])}
        self._nonfinite_in_a_row = 0
        metrics["lr"] = float(self.optimizer.param_groups[0]["lr"])
        if self.grad_clip is not None:
            params = [p for p in self.model.parameters() if p.grad is not None]
            metrics["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, self.grad_clip))
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        metrics["data_time"] = data_time
        return metrics

    @staticmethod
    def _total(losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        if not losses:
            raise ValueError("step_fn: returned no loss; expected a dict of scalar tensors")
        for name, value in losses.items():
            if not isinstance(value, torch.Tensor) or value.numel() != 1:
                raise ValueError(f"step_fn: loss {name!r} is not a scalar tensor")
        return torch.stack([v.reshape(()).float() for v in losses.values()]).sum()

    # -- state -------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything a resume needs. A collective: every rank must call it (RNG states are
        gathered from all ranks)."""
        return {
            "format": FORMAT_VERSION,
            "step": self.step,
            "world_size": self.dist.world_size,
            "data": {"epoch": self.epoch, "batch": self.batch_in_epoch},
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "hooks": {h.name: h.state_dict() for h in self.hooks},
            "rng": all_gather_objects(get_rng_state()),
            "meta": self.meta,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self._load_optimization_state(state)
        for hook in self.hooks:
            hook_state = state["hooks"].get(hook.name)
            if hook_state is None:
                if hook.state_dict():
                    raise ValueError(f"checkpoint: has no state for hook {hook.name!r}")
                continue
            hook.load_state_dict(hook_state)
        self.step = int(state["step"])
        self.epoch = int(state["data"]["epoch"])
        self.batch_in_epoch = int(state["data"]["batch"])
        self._batches = None
        rng = state["rng"]
        if len(rng) == self.dist.world_size:
            set_rng_state(rng[self.dist.rank])
        else:
            warnings.warn(
                f"checkpoint: written by {len(rng)} processes, resumed by {self.dist.world_size}: "
                "random streams and data shards restart, so the run will not match an uninterrupted one",
                stacklevel=2,
            )
            seed_everything(self.step, self.dist.rank)

    def _load_optimization_state(self, state: Mapping[str, Any]) -> None:
        """The checkpoint gives the state (moments, step counts, position in the schedule); the
        hyperparameters (weight decay, betas, momentum; the schedule's peak rate and length) stay
        as this trainer was built, so a run can be resumed with a longer ``max_steps``."""
        built = [
            {k: v for k, v in g.items() if k not in ("params", "lr")} for g in self.optimizer.param_groups
        ]
        self.optimizer.load_state_dict(state["optimizer"])
        for group, hyper in zip(self.optimizer.param_groups, built, strict=True):
            group.update(hyper)
        if self.scheduler is None:
            return
        if state["scheduler"] is None:
            raise ValueError("checkpoint: has no scheduler state, but this trainer has a scheduler")
        if not isinstance(self.scheduler, LambdaLR):
            self.scheduler.load_state_dict(state["scheduler"])
            return
        loaded = dict(state["scheduler"])
        loaded["lr_lambdas"] = [None] * len(self.scheduler.lr_lambdas)  # keep this trainer's schedule
        loaded["base_lrs"] = self.scheduler.base_lrs
        self.scheduler.load_state_dict(loaded)
        step = self.scheduler.last_epoch
        lrs = [
            base * fn(step)
            for fn, base in zip(self.scheduler.lr_lambdas, self.scheduler.base_lrs, strict=True)
        ]
        for group, lr in zip(self.optimizer.param_groups, lrs, strict=True):
            group["lr"] = lr
        self.scheduler._last_lr = lrs

    def save_checkpoint(self, checkpointer: Checkpointer) -> Path | None:
        """Save the state at ``self.step`` (a collective; rank 0 writes and gets the path)."""
        state = self.state_dict()
        if not self.dist.is_main:
            return None
        return checkpointer.save(self.step, state)

    def load_checkpoint(self, path: str | Path) -> dict[str, Any]:
        """Restore a checkpoint written by ``save_checkpoint``; returns its ``meta``."""
        state = load_checkpoint(path)
        self.load_state_dict(state)
        meta: dict[str, Any] = state.get("meta", {})
        return meta

    def resume(self, checkpointer: Checkpointer) -> Path | None:
        """Load the latest checkpoint of ``checkpointer`` if there is one; returns its path."""
        path = checkpointer.latest()
        if path is not None:
            self.load_checkpoint(path)
        return path
