"""Soft-target classification losses, pure functions of tensors.

Shapes:
    R  proposals (RoIs)      K  foreground classes      K + 1  with background

One-hot labels, uniform or similarity smoothing, and (calibrated) pseudo-labels differ only in
the target tensor passed here; the detector's head never assumes hard labels. Targets are data,
not parameters: no gradient flows into them (they are detached).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from . import _checks

Reduction = Literal["mean", "sum", "none"]


def _check_reduction(reduction: str) -> None:
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction: expected 'mean', 'sum' or 'none', got {reduction!r}")


def _check_logits_targets(logits: object, targets: object) -> tuple[torch.Tensor, torch.Tensor]:
    x = _checks.float_tensor("logits", logits, ndim=2, finite=False)
    t = _checks.unit_interval("targets", targets, ndim=2)
    _checks.same_shape("targets", t, "logits", x)
    return x, t.detach().to(x.dtype)


def soft_cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor | None = None,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Cross-entropy of a softmax head against soft targets: ``−Σ_k t_k log softmax(x)_k``.

    Args:
        logits: [R, K+1] scores of a softmax head that includes background.
        targets: [R, K+1] target distributions (values in [0, 1]; a row usually sums to 1).
        weights: optional [R] non-negative weight per proposal.
        reduction: ``"mean"`` divides the (weighted) sum by R, as ``F.cross_entropy`` does
            without class weights; ``"sum"``; ``"none"`` returns [R].

    Returns:
        A scalar (or [R]). With one-hot targets it equals ``F.cross_entropy(logits, labels)``;
        with R = 0 it is 0 and still connected to ``logits`` in the autograd graph.
    """
    x, t = _check_logits_targets(logits, targets)
    _check_reduction(reduction)
    per_row = -(t * F.log_softmax(x, dim=1)).sum(dim=1)
    return _weighted_reduce(per_row, weights, reduction, x)


def _weighted_reduce(
    per_row: torch.Tensor, weights: torch.Tensor | None, reduction: str, logits: torch.Tensor
) -> torch.Tensor:
    if weights is not None:
        w = _checks.float_tensor("weights", weights, ndim=1)
        if w.numel() != per_row.numel():
            raise ValueError(
                f"weights: expected shape [{per_row.numel()}] (one per row of logits), got {list(w.shape)}"
            )
        if w.numel() and bool((w < 0).any()):
            raise ValueError("weights: expected values ≥ 0")
        per_row = per_row * w.detach().to(per_row.dtype)
    if reduction == "none":
        return per_row
    if per_row.numel() == 0:
        # Empty batch: 0, but still a function of logits so backward() works in every rank.
        return logits.sum() * 0.0
    total = per_row.sum()
    return total / per_row.numel() if reduction == "mean" else total


def soft_binary_cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    class_mask: torch.Tensor | None = None,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Binary cross-entropy of a sigmoid head against soft per-class targets.

    Args:
        logits: [R, K] per-class logits (no background column: background is all-zero targets).
        targets: [R, K] per-class targets in [0, 1].
        class_mask: optional bool [K] or [R, K]: the entries that count. The LVIS federated loss
            passes the classes sampled for this batch (positives plus frequency^0.5 negatives).
        reduction: ``"mean"`` averages over the counted entries (R·K without a mask, so one-hot
            targets give exactly ``F.binary_cross_entropy_with_logits``); ``"sum"``; ``"none"``
            returns [R, K] with uncounted entries 0. (detectron2's federated loss is ``"sum"``/R.)

    Returns:
        A scalar (or [R, K]); 0 with gradients that still flow when nothing counts.
    """
    x, t = _check_logits_targets(logits, targets)
    _check_reduction(reduction)
    elementwise = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    if class_mask is None:
        mask = None
        counted = elementwise.numel()
    else:
        m = _checks.tensor("class_mask", class_mask)
        if m.dtype != torch.bool:
            raise ValueError(f"class_mask: expected a bool tensor, got {m.dtype}")
        if m.shape not in (x.shape[1:], x.shape):
            raise ValueError(
                f"class_mask: expected shape [{x.shape[1]}] or [{x.shape[0]}, {x.shape[1]}], "
                f"got {list(m.shape)}"
            )
        mask = m.to(x.device).expand_as(x)
        elementwise = elementwise * mask
        counted = int(mask.sum())
    if reduction == "none":
        return elementwise
    if counted == 0:
        return x.sum() * 0.0
    total = elementwise.sum()
    return total / counted if reduction == "mean" else total
