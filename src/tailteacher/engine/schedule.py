"""Learning-rate schedule: linear warm-up, then cosine decay (the paper: cosine from 4e-5).

Step ``s`` is the index of the optimizer step (0-based) that uses the rate; with gradient
accumulation one optimizer step spans several batches. For peak rate ``lr``, warm-up ``W``,
total ``T``, start factor ``f0`` and final factor ``m``:

    s < W:      lr · (f0 + (1 − f0) · s / W)
    W ≤ s:      lr · (m + (1 − m) · ½ (1 + cos(π · min(1, (s − W) / (T − W)))))

so the rate reaches ``lr`` at ``s = W`` and ``m · lr`` at ``s = T``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


@dataclass
class WarmupCosine:
    """The factor multiplying the peak rate at step ``s`` (a callable object, so that
    ``LambdaLR.state_dict`` stores its fields as plain numbers)."""

    warmup_steps: int
    max_steps: int
    warmup_factor: float = 0.001
    min_factor: float = 0.0

    def __post_init__(self) -> None:
        if self.max_steps < 1:
            raise ValueError(f"max_steps: expected ≥ 1, got {self.max_steps}")
        if not 0 <= self.warmup_steps <= self.max_steps:
            raise ValueError(f"warmup_steps: expected 0 ≤ warmup_steps ≤ max_steps, got {self.warmup_steps}")
        for name in ("warmup_factor", "min_factor"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}: expected a number in [0, 1], got {value}")

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.warmup_factor + (1.0 - self.warmup_factor) * step / self.warmup_steps
        span = max(1, self.max_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.min_factor + (1.0 - self.min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine_scheduler(
    optimizer: Optimizer,
    *,
    warmup_steps: int,
    max_steps: int,
    warmup_factor: float = 0.001,
    min_factor: float = 0.0,
) -> LambdaLR:
    """A ``LambdaLR`` over every parameter group; each group's ``lr`` is its peak rate."""
    return LambdaLR(optimizer, WarmupCosine(warmup_steps, max_steps, warmup_factor, min_factor))
