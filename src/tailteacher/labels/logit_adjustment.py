"""Post-hoc logit adjustment of the teacher's rows by the labeled class counts (not in the paper).

Shapes:
    D  teacher detections (pseudo-boxes)      C  foreground classes

    w_j = (n_j + 1)^(−α)          ỹ_dj = y_dj · w_j · Σ_k y_dk / Σ_k y_dk w_k

Menon et al., *Long-tail learning via logit adjustment* (ICLR 2021), divide a posterior by its
class prior to the power α; here the prior is the count n_j of labeled objects of class j (+1, so a
class without labels gets the largest weight, not a division by zero), and the reweighted row keeps
its own sum: which class a box is changes, how surely it is an object (the row's foreground mass)
does not. Our reason to use it (docs/decisions.md, D124): a teacher trained on a few labeled
objects of a rare class puts little of a rare object's mass on its class, and Eq. 5's Δ, measured
on a held-out split that holds a handful of rare objects, cannot lift it.
"""

from __future__ import annotations

import math

import torch


def labeled_count_weights(counts: torch.Tensor, alpha: float) -> torch.Tensor:
    """The class weights ``(n_j + 1) ** -alpha`` (Menon et al. 2021; ours: the +1, D124).

    Args:
        counts: [C] labeled objects per class (finite, ≥ 0).
        alpha: ≥ 0; 0 gives ones (no adjustment), 1 divides a posterior by its class's frequency.

    Returns:
        [C] float32 weights > 0, for `reweight_rows`.

    Raises:
        ValueError: ``counts`` is not [C] of finite values ≥ 0, or ``alpha`` < 0.
    """
    if counts.dim() != 1 or not bool(((counts >= 0) & torch.isfinite(counts)).all()):
        raise ValueError(f"counts: expected [C] finite values ≥ 0, got shape {list(counts.shape)}")
    if isinstance(alpha, bool) or not (
        isinstance(alpha, int | float) and math.isfinite(alpha) and alpha >= 0
    ):
        raise ValueError(f"alpha: expected a finite number ≥ 0, got {alpha!r}")
    return (counts.double() + 1.0).pow(-float(alpha)).float()


def reweight_rows(rows: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Each row's class distribution multiplied by ``weights`` and renormalised to the row's own
    sum (D124).

    Args:
        rows: [D, C] class scores ≥ 0 (the rest of each row's mass is background).
        weights: [C] > 0, e.g. `labeled_count_weights`.

    Returns:
        [D, C] in the dtype and on the device of ``rows``; a row summing to 0 stays 0.

    Raises:
        ValueError: ``rows`` is not [D, C] of finite values ≥ 0, or ``weights`` is not [C] of
            finite values > 0.
    """
    if rows.dim() != 2 or not bool(((rows >= 0) & torch.isfinite(rows)).all()):
        raise ValueError(f"rows: expected [D, C] finite values ≥ 0, got shape {list(rows.shape)}")
    c = rows.shape[1]
    if weights.shape != (c,) or not bool(((weights > 0) & torch.isfinite(weights)).all()):
        raise ValueError(f"weights: expected [{c}] finite values > 0, got shape {list(weights.shape)}")
    weighted = rows * weights.to(rows.device, rows.dtype)  # the teacher's rows may be on a GPU
    scale = rows.sum(dim=1, keepdim=True) / weighted.sum(dim=1, keepdim=True).clamp(min=1e-30)
    return weighted * scale
