"""Eq. 5: the teacher's soft pseudo-labels corrected by its per-class calibration error.

Shapes:
    M  teacher detections (pseudo-boxes)      C  foreground classes

    ỹ = clamp(y + λ·Δ, 0, 1)

``support="all"`` is Eq. 5 read literally: λΔ_j is added to every class j, also those the
teacher scored 0. ``support="nonzero"`` adds it only where the teacher's score is > 0 and
leaves exact zeros at zero (docs/decisions.md, D5).
"""

from __future__ import annotations

from typing import Literal

import torch

from . import _checks

Support = Literal["all", "nonzero"]


def calibrate_soft_labels(
    scores: torch.Tensor,
    delta: torch.Tensor,
    lam: float,
    support: Support = "all",
) -> torch.Tensor:
    """Calibration-corrected soft pseudo-labels (Eq. 5).

    Args:
        scores: [M, C] the teacher's per-class scores, each in [0, 1].
        delta: [C] CCECE Δ (Eq. 4), each in [−1, 1].
        lam: λ, the strength of the correction (paper: 2).
        support: ``"all"`` (literal Eq. 5) or ``"nonzero"`` (only where ``scores`` > 0).

    Returns:
        [M, C] in the dtype of ``scores``, values in [0, 1]. One new [M, C] tensor is allocated
        (plus an [M, C] bool mask for ``"nonzero"``); call it per batch of detections.
    """
    y = _checks.unit_interval("scores", scores, ndim=2)
    d = _checks.float_tensor("delta", delta, ndim=1)
    if d.numel() != y.shape[1]:
        raise ValueError(
            f"delta: expected shape [{y.shape[1]}] (one per class of scores), got {list(d.shape)}"
        )
    if d.numel() and not bool((d.abs() <= 1).all()):
        raise ValueError("delta: expected values in [-1, 1] (a CCECE is a difference of two fractions)")
    lam_ = _checks.real("lam", lam)
    if support not in ("all", "nonzero"):
        raise ValueError(f"support: expected 'all' or 'nonzero', got {support!r}")
    shift = (d.to(device=y.device, dtype=y.dtype) * lam_).unsqueeze(0)
    out = (y + shift).clamp_(0.0, 1.0)
    if support == "nonzero":
        out.masked_fill_(y <= 0, 0.0)
    return out
