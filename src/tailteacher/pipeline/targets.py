"""The teacher's and the student's supervised targets: one-hot, uniform or similarity-smoothed
(Eq. 3) class vectors, and the model's training targets for a batch of augmented samples.

Shapes (one image):  N  instances    C  classes    H, W  image size
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..config import Config
from ..data.dataset import Sample
from ..errors import InputError
from ..labels import similarity_smoothing_matrix, smooth_targets, uniform_smooth_targets


@dataclass(frozen=True)
class TargetBuilder:
    """Per-instance target vectors [N, C] from labels [N]: one-hot, uniform or similarity (Eq. 3)."""

    kind: str
    num_classes: int
    eps: float
    smoothing: torch.Tensor | None = None  # S' [C, C] for kind == "similarity"

    def __call__(self, labels: torch.Tensor) -> torch.Tensor:
        """[N] int64 → [N, C] float32 on the device of ``labels`` (S' stays where it was built)."""
        if self.kind == "onehot":
            return torch.nn.functional.one_hot(labels, self.num_classes).float()
        if self.kind == "uniform":
            return uniform_smooth_targets(labels, self.num_classes, self.eps)
        assert self.smoothing is not None
        return smooth_targets(labels, self.smoothing, self.eps).to(device=labels.device, dtype=torch.float32)


def target_builder(
    config: Config, num_classes: int, prototypes: dict[str, torch.Tensor] | None
) -> TargetBuilder:
    """The ``targets`` section's builder; ``prototypes`` (prototypes [C, D], counts [C]) are
    required by ``kind=similarity``."""
    t = config.targets
    if t.kind != "similarity":
        return TargetBuilder(t.kind, num_classes, t.eps)
    if prototypes is None:
        raise InputError(
            "targets.kind=similarity needs prototypes (targets.prototypes or the prototypes stage)"
        )
    if prototypes["prototypes"].shape[0] != num_classes:
        raise InputError(
            f"targets.prototypes: has {prototypes['prototypes'].shape[0]} classes, the data has {num_classes}"
        )
    smoothing = similarity_smoothing_matrix(
        prototypes["prototypes"].double(), prototypes["counts"], t.gamma, temperature=t.temperature
    )
    return TargetBuilder(t.kind, num_classes, t.eps, smoothing)


def training_targets(
    samples: Sequence[Sample], targets: TargetBuilder, device: torch.device
) -> list[dict[str, Any]]:
    """The model's training targets for a batch of augmented samples: boxes [N, 4] float,
    labels [N], masks [N, H, W] uint8 and class_targets [N, C], on ``device``."""
    out = []
    for s in samples:
        out.append(
            {
                "boxes": s.boxes.as_subclass(torch.Tensor).float().to(device),
                "labels": s.labels.to(device),
                "masks": s.masks.as_subclass(torch.Tensor).to(torch.uint8).to(device),
                # Built from the loader's CPU labels (S' is on the CPU), then moved: no device sync.
                "class_targets": targets(s.labels).to(device),
            }
        )
    return out
