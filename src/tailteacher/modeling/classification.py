"""The box classifier's two heads: softmax over C+1, and sigmoid with the LVIS federated loss.

Shapes:
    R  sampled proposals (all images of the batch)      C  foreground classes
    G  ground-truth instances of the batch              L  logits per proposal (C+1 or C)

A head turns a proposal's *foreground target vector* t ∈ [0,1]^C (the matched ground truth's
target: one-hot, smoothed, or a teacher's soft pseudo-label; all zeros for background) into
its loss, and logits into per-class probabilities [R, C]. The loss itself is injected: any
``(logits, targets, weights) -> scalar`` pure function of tensors.

Softmax head: background is the *last* logit (index C), so foreground class k is logit k and
0-based labels need no shift (torchvision puts background at 0; detectron2 at C, as here).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch

from tailteacher.labels.losses import soft_binary_cross_entropy, soft_cross_entropy

#: ``(logits [R, L], targets [R, L], weights [R]) -> scalar``.
SoftTargetLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
#: ``(logits [R, C], targets [R, C], class_mask bool [C], weights [R]) -> scalar``.
MaskedSoftTargetLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class ClassificationHead(Protocol):
    """What a cascade stage needs from its classifier."""

    def num_logits(self, num_classes: int) -> int:
        """L for C foreground classes."""
        ...

    def initial_bias(self) -> float:
        """The classifier's initial bias (a prior for the sigmoid head)."""
        ...

    def loss(
        self, logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, gt_targets: torch.Tensor
    ) -> torch.Tensor:
        """Scalar loss of logits [R, L] against foreground targets [R, C] (zero rows: background),
        per-proposal weights [R], given the batch's ground-truth target vectors [G, C]."""
        ...

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """[R, L] logits → [R, C] foreground class probabilities."""
        ...


def softmax_targets(targets: torch.Tensor) -> torch.Tensor:
    """[R, C] foreground targets → [R, C+1] distributions with background last.

    The mass a row does not give to foreground goes to background (a background proposal's zero
    row becomes pure background; a teacher's soft label 0.7 on one class keeps 0.3 of background).
    A row whose foreground mass exceeds 1 (e.g. sigmoid teacher scores) is divided by its sum.
    """
    mass = targets.sum(dim=1, keepdim=True)
    fg = torch.where(mass > 1, targets / mass.clamp(min=1), targets)
    bg = (1 - fg.sum(dim=1, keepdim=True)).clamp(min=0)
    return torch.cat([fg, bg], dim=1)


def _soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return soft_cross_entropy(logits, targets, weights)


@dataclass(frozen=True)
class SoftmaxClassification:
    """Softmax over C+1 with background last; the loss defaults to ``soft_cross_entropy`` (mean over R)."""

    loss_fn: SoftTargetLoss = _soft_cross_entropy

    def num_logits(self, num_classes: int) -> int:
        return num_classes + 1

    def initial_bias(self) -> float:
        return 0.0

    def loss(
        self, logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, gt_targets: torch.Tensor
    ) -> torch.Tensor:
        return self.loss_fn(logits, softmax_targets(targets), weights)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        # The foreground part, not renormalised: a detection keeps its background probability out.
        return torch.softmax(logits, dim=1)[:, :-1]


class FederatedClassSampler:
    """The LVIS federated loss's classes of one iteration (Zhou et al. 2021, detectron2's default).

    Positives: every class that a ground truth of the batch puts at least ``min_positive_mass`` of
    target on (its own label, and with soft targets the classes it was smoothed toward or the
    teacher found). Negatives: drawn without replacement with probability ∝ frequency^``power``
    among the other classes, until ``num_sampled`` classes are chosen (none when the positives
    already reach it). Classes of frequency 0 are never drawn as negatives.
    """

    def __init__(
        self,
        class_frequencies: torch.Tensor,
        *,
        num_sampled: int = 50,
        power: float = 0.5,
        min_positive_mass: float = 0.01,
        generator: torch.Generator | None = None,
    ) -> None:
        """
        Args:
            class_frequencies: [C] ≥ 0, e.g. LVIS ``image_count`` per category.
            num_sampled: classes per iteration (LVIS: 50).
            power: exponent of the frequency (LVIS: 0.5).
            min_positive_mass: target mass that makes a class a positive of the batch.
            generator: a CPU generator for the negatives (None: torch's default one).
        """
        freqs = torch.as_tensor(class_frequencies, dtype=torch.float64).flatten()
        if freqs.numel() == 0 or not bool(torch.isfinite(freqs).all()) or bool((freqs < 0).any()):
            raise ValueError("class_frequencies: expected a non-empty [C] tensor of finite values ≥ 0")
        if num_sampled <= 0:
            raise ValueError(f"num_sampled: expected an integer > 0, got {num_sampled}")
        if not math.isfinite(power) or power < 0:
            raise ValueError(f"power: expected a number ≥ 0, got {power}")
        self.weights = freqs.pow(power) * (freqs > 0)
        self.num_sampled = num_sampled
        self.min_positive_mass = min_positive_mass
        self.generator = generator

    @property
    def num_classes(self) -> int:
        return int(self.weights.numel())

    def __call__(self, gt_targets: torch.Tensor) -> torch.Tensor:
        """[G, C] ground-truth target vectors of the batch → bool [C] classes that count."""
        if gt_targets.dim() != 2 or gt_targets.shape[1] != self.num_classes:
            raise ValueError(
                f"gt_targets: expected shape [G, {self.num_classes}], got {list(gt_targets.shape)}"
            )
        with torch.no_grad():
            positive = (gt_targets.detach().cpu() >= self.min_positive_mass).any(dim=0)
            chosen = positive.clone()
            missing = self.num_sampled - int(positive.sum())
            weights = self.weights * ~positive
            available = int((weights > 0).sum())
            if missing > 0 and available > 0:
                drawn = torch.multinomial(
                    weights, min(missing, available), replacement=False, generator=self.generator
                )
                chosen[drawn] = True
        return chosen.to(gt_targets.device)


def federated_sigmoid_loss(
    logits: torch.Tensor, targets: torch.Tensor, class_mask: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """Σ over proposals and chosen classes of weighted BCE, divided by R (detectron2's normalisation).

    Args:
        logits, targets: [R, C]; targets are zero rows for background proposals.
        class_mask: bool [C], the classes of this iteration.
        weights: [R] per-proposal weights.
    """
    per_entry = soft_binary_cross_entropy(logits, targets, class_mask=class_mask, reduction="none")
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    return (per_entry * weights.detach().to(per_entry.dtype)[:, None]).sum() / logits.shape[0]


@dataclass(frozen=True)
class SigmoidFederatedClassification:
    """One sigmoid per class (no background logit: background is all-zero targets), federated loss."""

    sampler: FederatedClassSampler
    loss_fn: MaskedSoftTargetLoss = federated_sigmoid_loss
    #: The prior probability the classifier bias starts at (focal-loss style; avoids a huge first loss).
    prior_probability: float = field(default=0.01)

    def num_logits(self, num_classes: int) -> int:
        return num_classes

    def initial_bias(self) -> float:
        return -math.log((1 - self.prior_probability) / self.prior_probability)

    def loss(
        self, logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, gt_targets: torch.Tensor
    ) -> torch.Tensor:
        return self.loss_fn(logits, targets, self.sampler(gt_targets), weights)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits)
