"""Eq. 4 (CCECE, the signed per-class calibration error) and ECE with reliability bins.

Shapes:
    M  detections (samples)      C  classes      B  confidence bins

A sample is a detection: its score is the confidence, ``correct`` says whether it matched a
ground truth of its predicted class, and ``classes`` is that predicted class.

Bins are ((b−1)/B, b/B] for b = 1..B, with a confidence of exactly 0 in the first bin.

    Δ_i = Σ_b (N_ib / N_i) (acc_ib − conf_ib)        signed; 0 for a class with no sample
    ECE = Σ_b (N_b / N) |acc_b − conf_b|

Because Eq. 4 has no absolute value, its bins cancel: Δ_i is the mean of (correct − confidence)
over class i's samples, for any B. We still bin, literally, so that one set of statistics
serves Δ, the ECE and the reliability diagrams, and so a test can hold us to that identity.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

from . import _checks


@dataclass(frozen=True)
class ReliabilityBins:
    """Per-bin statistics for a reliability diagram (tensors of length B, float64).

    ``accuracy`` and ``confidence`` are 0 in a bin with ``count`` 0.
    """

    edges: torch.Tensor  # [B + 1]: 0, 1/B, ..., 1
    count: torch.Tensor  # [B] samples per bin
    accuracy: torch.Tensor  # [B] fraction correct
    confidence: torch.Tensor  # [B] mean confidence


def bin_index(confidences: torch.Tensor, num_bins: int) -> torch.Tensor:
    """Bin of each confidence in [0, 1]: b−1 for ((b−1)/B, b/B], and 0 for exactly 0. [M] int64."""
    # Boundaries b/B computed in float64 then rounded to the input dtype, so a confidence
    # typed as the literal 0.3 lands in the bin that ends at 0.3, as the interval says.
    inner = (torch.arange(1, num_bins, dtype=torch.float64) / num_bins).to(
        device=confidences.device, dtype=confidences.dtype
    )
    return torch.bucketize(confidences, inner, right=False)


def _check_samples(
    confidences: object,
    correct: object,
    classes: object | None,
    num_classes: int | None,
    num_bins: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    _checks.positive_int("num_bins", num_bins)
    conf = _checks.unit_interval("confidences", confidences, ndim=1)
    corr = _checks.binary("correct", correct, length=conf.numel()).to(conf.device)
    cls = None
    if classes is not None:
        assert num_classes is not None
        _checks.positive_int("num_classes", num_classes)
        cls = _checks.labels("classes", classes, num_classes, length=conf.numel())
        cls = cls.to(device=conf.device, dtype=torch.long)
    return conf, corr, cls


def binned_statistics(
    confidences: torch.Tensor,
    correct: torch.Tensor,
    classes: torch.Tensor,
    num_classes: int,
    num_bins: int = 10,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per (class, bin): sample count, sum of confidences, number correct.

    Args:
        confidences: [M] in [0, 1].
        correct: [M] bool or 0/1.
        classes: [M] predicted class in [0, C).

    Returns:
        (count, conf_sum, correct_sum), each [C, B] float64.
    """
    conf, corr, cls = _check_samples(confidences, correct, classes, num_classes, num_bins)
    assert cls is not None
    return _binned(conf, corr, cls, num_classes, num_bins)


def _binned(
    conf: torch.Tensor, corr: torch.Tensor, cls: torch.Tensor, num_classes: int, num_bins: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    cell = bin_index(conf, num_bins).add_(cls, alpha=num_bins)
    size = num_classes * num_bins
    count = torch.bincount(cell, minlength=size).to(torch.float64)
    conf_sum = torch.bincount(cell, weights=conf.to(torch.float64), minlength=size)
    correct_sum = torch.bincount(cell, weights=corr.to(torch.float64), minlength=size)
    shape = (num_classes, num_bins)
    return count.view(shape), conf_sum.view(shape), correct_sum.view(shape)


def ccece_from_statistics(
    count: torch.Tensor, conf_sum: torch.Tensor, correct_sum: torch.Tensor
) -> torch.Tensor:
    """Eq. 4 from [C, B] binned statistics. Returns Δ [C] float64, 0 for classes without samples."""
    n_cb = count.clamp(min=1)
    acc = correct_sum / n_cb
    conf = conf_sum / n_cb
    n_c = count.sum(dim=1, keepdim=True).clamp(min=1)
    return (count / n_c * (acc - conf)).sum(dim=1)


def shrink_ccece(
    delta: torch.Tensor, count: torch.Tensor, groups: torch.Tensor, strength: float
) -> torch.Tensor:
    """Eq. 4's Δ shrunk toward its group's pooled Δ where a class has few samples (our reading, D100).

        Δ̃_c = (n_c Δ_c + κ Δ_g(c)) / (n_c + κ),    Δ_g = Σ_{c∈g} n_c Δ_c / Σ_{c∈g} n_c

    Δ_c is a mean of (correct − confidence) over class c's n_c samples, so from a few samples it is
    noise of about ±0.5/√n_c; κ is how many samples the group's Δ counts as. Δ_g is the group's
    Δ over all its samples pooled (0 for a group without samples). κ = 0 returns ``delta``.

    Args:
        delta: [C] Δ per class (Eq. 4).
        count: [C] samples (held-out detections) behind each Δ_c, ≥ 0.
        groups: [C] integer group of each class (e.g. 0/1/2 for the LVIS frequency groups r/c/f).
        strength: κ ≥ 0, in samples.

    Returns:
        [C] in the dtype of ``delta``.

    Raises:
        ValueError: shapes differ, a count is negative, κ < 0.
    """
    d = _checks.float_tensor("delta", delta, ndim=1)
    n = _checks.tensor("count", count).to(torch.float64)
    g = _checks.tensor("groups", groups)
    _checks.same_shape("count", n, "delta", d)
    _checks.same_shape("groups", g, "delta", d)
    if g.dtype.is_floating_point or g.dtype == torch.bool:
        raise ValueError(f"groups: expected an integer tensor, got {g.dtype}")
    if n.numel() and float(n.min()) < 0:
        raise ValueError("count: expected counts ≥ 0")
    kappa = _checks.real("strength", strength, lo=0.0)
    if kappa == 0 or d.numel() == 0:
        return d.clone()
    d64 = d.to(torch.float64)
    _, index = torch.unique(g, return_inverse=True)
    size = int(index.max()) + 1
    mass = torch.zeros(size, dtype=torch.float64).index_add_(0, index, n * d64)
    total = torch.zeros(size, dtype=torch.float64).index_add_(0, index, n)
    pooled = torch.where(total > 0, mass / total.clamp(min=1e-12), torch.zeros_like(total))
    return ((n * d64 + kappa * pooled[index]) / (n + kappa)).to(d.dtype)


def _reliability(count: torch.Tensor, conf_sum: torch.Tensor, correct_sum: torch.Tensor) -> ReliabilityBins:
    num_bins = count.shape[-1]
    n = count.clamp(min=1)
    return ReliabilityBins(
        edges=torch.arange(num_bins + 1, dtype=torch.float64) / num_bins,
        count=count.cpu(),
        accuracy=(correct_sum / n).cpu(),
        confidence=(conf_sum / n).cpu(),
    )


def _ece(count: torch.Tensor, conf_sum: torch.Tensor, correct_sum: torch.Tensor) -> float:
    total = float(count.sum())
    if total == 0:
        return 0.0
    return float((correct_sum - conf_sum).abs().sum()) / total


def ccece(
    confidences: torch.Tensor,
    correct: torch.Tensor,
    classes: torch.Tensor,
    num_classes: int,
    num_bins: int = 10,
) -> torch.Tensor:
    """Class-conditional expected calibration error, Eq. 4 (signed).

    Args:
        confidences: [M] detection scores in [0, 1].
        correct: [M] bool or 0/1, whether each detection matched a ground truth of its class.
        classes: [M] predicted class of each detection, in [0, C).
        num_classes: C.
        num_bins: B.

    Returns:
        Δ [C] in the dtype of ``confidences``: negative where the model is overconfident,
        positive where underconfident, 0 for a class with no sample.
    """
    conf, corr, cls = _check_samples(confidences, correct, classes, num_classes, num_bins)
    assert cls is not None
    return ccece_from_statistics(*_binned(conf, corr, cls, num_classes, num_bins)).to(conf.dtype)


def _pooled(conf: torch.Tensor, corr: torch.Tensor, num_bins: int) -> tuple[torch.Tensor, ...]:
    one_class = torch.zeros_like(conf, dtype=torch.long)
    return tuple(s[0] for s in _binned(conf, corr, one_class, 1, num_bins))


def reliability_bins(confidences: torch.Tensor, correct: torch.Tensor, num_bins: int = 10) -> ReliabilityBins:
    """Per-bin count, accuracy and mean confidence of all samples, for a reliability diagram.

    Args:
        confidences: [M] in [0, 1].
        correct: [M] bool or 0/1.
    """
    conf, corr, _ = _check_samples(confidences, correct, None, None, num_bins)
    count, conf_sum, correct_sum = _pooled(conf, corr, num_bins)
    return _reliability(count, conf_sum, correct_sum)


def expected_calibration_error(confidences: torch.Tensor, correct: torch.Tensor, num_bins: int = 10) -> float:
    """ECE = Σ_b (N_b/N)|acc_b − conf_b| over equal-width bins; 0.0 for no sample.

    Args:
        confidences: [M] in [0, 1].
        correct: [M] bool or 0/1.
    """
    conf, corr, _ = _check_samples(confidences, correct, None, None, num_bins)
    count, conf_sum, correct_sum = _pooled(conf, corr, num_bins)
    return _ece(count, conf_sum, correct_sum)


class CalibrationAccumulator:
    """Streaming binned statistics per (class, bin), summed across DDP ranks.

    Feed detections batch by batch with ``update``; then ``all_reduce`` (once) and read
    ``ccece()``, ``ece()``, ``reliability()`` (all classes, or a subset such as the rare group).
    Memory is O(C·B) whatever the number of detections.
    """

    def __init__(
        self, num_classes: int, num_bins: int = 10, device: torch.device | str | None = None
    ) -> None:
        self.num_classes = _checks.positive_int("num_classes", num_classes)
        self.num_bins = _checks.positive_int("num_bins", num_bins)
        # One [3, C, B] tensor so that a reduction is a single collective.
        self.stats = torch.zeros(3, num_classes, num_bins, dtype=torch.float64, device=device)
        self._reduced = False

    def update(self, confidences: torch.Tensor, correct: torch.Tensor, classes: torch.Tensor) -> None:
        """Add detections: ``confidences`` [m], ``correct`` [m], ``classes`` [m]."""
        if self._reduced:
            raise RuntimeError(
                "CalibrationAccumulator: already all-reduced; create a new one to accumulate more"
            )
        conf, corr, cls = _check_samples(confidences, correct, classes, self.num_classes, self.num_bins)
        assert cls is not None
        binned = _binned(conf, corr, cls, self.num_classes, self.num_bins)
        self.stats += torch.stack(binned).to(self.stats.device)

    def all_reduce(self) -> CalibrationAccumulator:
        """Sum over all ranks of the default process group, in place (once); no-op without one."""
        if self._reduced:
            raise RuntimeError("CalibrationAccumulator: already all-reduced")
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.stats, op=dist.ReduceOp.SUM)
            self._reduced = True
        return self

    def _select(self, classes: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        stats = self.stats
        if classes is not None:
            idx = _checks.labels("classes", classes, self.num_classes).to(stats.device, torch.long)
            stats = stats.index_select(1, idx)
        return stats[0], stats[1], stats[2]

    def ccece(self) -> torch.Tensor:
        """Δ [C] float64 (Eq. 4)."""
        return ccece_from_statistics(*self._select(None))

    def reliability(self, classes: torch.Tensor | None = None) -> ReliabilityBins:
        """Reliability bins over all classes, or over the detections of ``classes`` only."""
        count, conf_sum, correct_sum = (s.sum(dim=0) for s in self._select(classes))
        return _reliability(count, conf_sum, correct_sum)

    def ece(self, classes: torch.Tensor | None = None) -> float:
        """ECE over all detections, or over those predicted as one of ``classes``."""
        return _ece(*(s.sum(dim=0) for s in self._select(classes)))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"stats": self.stats.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        stats = state["stats"]
        if stats.shape != self.stats.shape:
            raise ValueError(f"state: expected stats {list(self.stats.shape)}, got {list(stats.shape)}")
        self.stats = stats.to(self.stats.device, torch.float64).clone()
