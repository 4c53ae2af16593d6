"""Eq. 2–3: frequency-modulated class-similarity label smoothing, and the uniform baseline.

Shapes:
    N  instances (or proposals)      C  foreground classes      D  prototype width

Reading (docs/decisions.md, D1–D3):
    S_ij  = cosine(p_i, p_j), 0 where either prototype is zero
    S'_ij = exp(S_ij / (T · N_j^γ)) / Σ_k exp(S_ik / (T · N_k^γ)),  N clamped to ≥ 1
    ỹ     = (1 − ε) · onehot(c) + ε · S'[c, :]        (y as a row vector, so ỹ sums to 1)
T = 1 is the paper; T ≠ 1 is our extension (Eq. 2 read literally gives an S' close to uniform).
"""

from __future__ import annotations

import torch

from . import _checks


def cosine_similarity_matrix(prototypes: torch.Tensor) -> torch.Tensor:
    """S [C, C] with S_ij = cos(p_i, p_j); rows and columns of zero prototypes are 0.

    Args:
        prototypes: [C, D] floating.
    """
    p = _checks.float_tensor("prototypes", prototypes, ndim=2).to(torch.float64)
    norms = p.norm(dim=1, keepdim=True)
    unit = torch.where(norms > 0, p / norms.clamp(min=torch.finfo(p.dtype).tiny), torch.zeros_like(p))
    return (unit @ unit.T).clamp(-1.0, 1.0).to(prototypes.dtype)


def similarity_smoothing_matrix(
    prototypes: torch.Tensor,
    counts: torch.Tensor,
    gamma: float,
    *,
    temperature: float = 1.0,
) -> torch.Tensor:
    """S' of Eq. 2: a row-stochastic [C, C] matrix of smoothing distributions.

    Args:
        prototypes: [C, D] class prototypes (Eq. 1); zero rows for classes without instances.
        counts: [C] instances per class N_j (int or float, ≥ 0; clamped to ≥ 1).
        gamma: γ ≥ 0, strength of the class-frequency modulation (0: none; paper: 1.5).
        temperature: T > 0 dividing every logit (ours, not the paper's; 1 is the paper).

    Returns:
        [C, C] in the dtype of ``prototypes``; row i is the smoothing distribution of class i.
    """
    p = _checks.float_tensor("prototypes", prototypes, ndim=2)
    c = _checks.tensor("counts", counts)
    if c.dim() != 1 or c.numel() != p.shape[0]:
        raise ValueError(f"counts: expected shape [{p.shape[0]}] (one per prototype), got {list(c.shape)}")
    if c.is_complex() or c.dtype == torch.bool:
        raise ValueError(f"counts: expected an integer or floating tensor, got {c.dtype}")
    c64 = c.to(device=p.device, dtype=torch.float64)
    if c64.numel() and not bool((torch.isfinite(c64) & (c64 >= 0)).all()):
        raise ValueError("counts: expected finite values ≥ 0")
    g = _checks.real("gamma", gamma, lo=0.0)
    t = _checks.real("temperature", temperature, lo=0.0)
    if t == 0:
        raise ValueError("temperature: expected a number > 0, got 0")

    sim = cosine_similarity_matrix(p.to(torch.float64))
    # Column j is divided by N_j^γ: the frequency of the class that receives the mass.
    logits = sim / (t * c64.clamp(min=1.0).pow(g)).unsqueeze(0)
    return torch.softmax(logits, dim=1).to(p.dtype)


def _check_eps(eps: float) -> float:
    return _checks.real("eps", eps, lo=0.0, hi=1.0)


def smooth_targets(labels: torch.Tensor, smoothing: torch.Tensor, eps: float) -> torch.Tensor:
    """Eq. 3: ``(1 − ε)·onehot(label) + ε·S'[label, :]``.

    Args:
        labels: [N] integer classes in [0, C).
        smoothing: [C, C] row-stochastic S' (from ``similarity_smoothing_matrix``).
        eps: ε in [0, 1] (paper: 0.1).

    Returns:
        [N, C] in the dtype of ``smoothing``; each row sums to 1.
    """
    s = _checks.float_tensor("smoothing", smoothing, ndim=2)
    if s.shape[0] != s.shape[1]:
        raise ValueError(f"smoothing: expected a square [C, C] matrix, got {list(s.shape)}")
    if s.numel():
        rows = s.sum(dim=1, dtype=torch.float64)
        tol = 1e-6 if s.dtype == torch.float64 else 1e-3
        if bool((s < 0).any()) or not bool(((rows - 1).abs() <= tol).all()):
            raise ValueError("smoothing: expected non-negative rows that each sum to 1 (S' of Eq. 2)")
    e = _check_eps(eps)
    lab = _checks.labels("labels", labels, s.shape[0]).to(device=s.device, dtype=torch.long)
    out = s.index_select(0, lab) * e
    out.scatter_add_(1, lab.unsqueeze(1), out.new_full((lab.numel(), 1), 1.0 - e))
    return out


def uniform_smooth_targets(
    labels: torch.Tensor,
    num_classes: int,
    eps: float,
    *,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The uniform baseline: ``(1 − ε)·onehot(label) + ε/C``.

    Args:
        labels: [N] integer classes in [0, C).
        num_classes: C.
        eps: ε in [0, 1].

    Returns:
        [N, C] of ``dtype`` on the device of ``labels``; each row sums to 1.
    """
    c = _checks.positive_int("num_classes", num_classes)
    e = _check_eps(eps)
    lab = _checks.labels("labels", labels, c).to(torch.long)
    out = torch.full((lab.numel(), c), e / c, dtype=dtype, device=lab.device)
    out.scatter_add_(1, lab.unsqueeze(1), out.new_full((lab.numel(), 1), 1.0 - e))
    return out


def row_entropy(smoothing: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of each row of a row-stochastic [C, C] matrix; log C is uniform."""
    s = _checks.float_tensor("smoothing", smoothing, ndim=2)
    return -(s * torch.log(s.clamp(min=torch.finfo(s.dtype).tiny))).sum(dim=1)
