"""One cascade stage's box head: pooled RoI features → class logits and class-agnostic box deltas.

Shapes:
    R  RoIs      F  pyramid channels      S  RoIAlign output size (7)      L  logits (C+1 or C)
"""

from __future__ import annotations

import torch
from torch import nn


class CascadeStageHead(nn.Module):
    """``features`` (e.g. torchvision's ``TwoMLPHead``) then a linear classifier and box regressor.

    Box regression is class-agnostic (4 deltas per RoI), as in Cascade R-CNN: each stage refines
    the box whatever its class, and the next stage's proposals are those refined boxes.
    """

    def __init__(
        self, *, features: nn.Module, representation_size: int, num_logits: int, cls_bias: float = 0.0
    ) -> None:
        """
        Args:
            features: [R, F, S, S] → [R, representation_size].
            representation_size: width of ``features``' output.
            num_logits: L.
            cls_bias: initial bias of every logit (a prior for sigmoid classifiers).
        """
        super().__init__()
        self.features = features
        self.cls_score = nn.Linear(representation_size, num_logits)
        self.bbox_pred = nn.Linear(representation_size, 4)
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.constant_(self.cls_score.bias, cls_bias)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.zeros_(self.bbox_pred.bias)

    def forward(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[R, F, S, S] → (logits [R, L], deltas [R, 4])."""
        x = self.features(pooled)
        return self.cls_score(x), self.bbox_pred(x)

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        """[R, F, S, S] → logits [R, L] (the inference ensemble scores other stages' boxes)."""
        out: torch.Tensor = self.cls_score(self.features(pooled))
        return out
