"""`tailteacher labels-demo`: the paper's label machinery, end to end, on synthetic features.

This is not the detector benchmark (that needs the detector and the image benchmark of later
issues). It runs Eq. 1–5 for real on a small long-tailed *classification* problem whose
structure is known, so a reader can see in seconds what each equation does:

1. features: C = families × variants classes; classes of one family share a centroid, so they
   look alike; instance counts follow a power law with the rare classes spread across families;
2. Eq. 1–2: prototypes from the labeled features and S' — how much of each row's smoothing mass
   lands on look-alike classes, and how far the rows are from uniform;
3. Eq. 3: a linear softmax "teacher" trained with one-hot, uniform and similarity targets,
   scored on a class-balanced test set (accuracy per frequency group, ECE);
4. Eq. 4: the CCECE Δ of one teacher on a held-out labeled split, per frequency group;
5. Eq. 5: the teacher's pseudo-labels on an unlabeled pool (richer in rare classes), their ECE
   before and after the correction y + λΔ, for several λ.

Everything printed is measured in this run.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .labels import (
    PrototypeAccumulator,
    calibrate_soft_labels,
    ccece,
    expected_calibration_error,
    row_entropy,
    similarity_smoothing_matrix,
    smooth_targets,
    soft_cross_entropy,
    uniform_smooth_targets,
)

GROUPS = ("rare", "common", "frequent")


@dataclass(frozen=True)
class Problem:
    families: int = 8
    variants: int = 4
    dim: int = 32
    max_count: int = 600
    power: float = 1.4
    family_spread: float = 2.0
    variant_spread: float = 0.7
    noise: float = 1.5
    test_per_class: int = 60
    unlabeled: int = 4000

    @property
    def classes(self) -> int:
        return self.families * self.variants


@dataclass
class Data:
    family: torch.Tensor  # [C] family of each class
    counts: torch.Tensor  # [C] labeled instances per class
    group: torch.Tensor  # [C] 0 rare, 1 common, 2 frequent (LVIS thresholds on instance counts)
    train: tuple[torch.Tensor, torch.Tensor]
    heldout: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    # Two unlabeled pools; their labels are kept only to score pseudo-labels.
    unlabeled: dict[str, tuple[torch.Tensor, torch.Tensor]]


def make_data(p: Problem, seed: int) -> Data:
    g = torch.Generator().manual_seed(seed)
    c = p.classes
    family = torch.arange(c) // p.variants
    centroids = torch.randn(p.families, p.dim, generator=g) * p.family_spread
    means = centroids[family] + torch.randn(c, p.dim, generator=g) * p.variant_spread
    # Power-law counts. Rank = variant·F + a random order of the families within each variant,
    # so every family has one class per frequency tier: a rare class has frequent look-alikes.
    variant = torch.arange(c) % p.variants
    within = torch.stack([torch.randperm(p.families, generator=g) for _ in range(p.variants)])
    ranks = variant * p.families + within[variant, family]
    totals = (p.max_count * (ranks.double() + 1) ** -p.power).round().clamp(min=2).long()
    group = torch.where(totals <= 10, 0, torch.where(totals <= 100, 1, 2))

    def draw(per_class: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.repeat_interleave(torch.arange(c), per_class)
        x = means[labels] + torch.randn(len(labels), p.dim, generator=g) * p.noise
        return x.relu(), labels  # ReLU features, as a backbone's are

    # 85/15 split of the labeled instances, at least one held out per class.
    held = (totals.double() * 0.15).round().clamp(min=1).long()
    train = draw(totals - held)
    heldout = draw(held)
    test = draw(torch.full((c,), p.test_per_class))

    # Pool "mined": richer in rare classes (what nearest-neighbour mining finds), a flatter power
    # law. Pool "same prior": the labeled set's class distribution.
    def pool(weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return draw((weights / weights.sum() * p.unlabeled).round().long())

    unlabeled = {"mined": pool((ranks.double() + 1) ** -(p.power / 3)), "same prior": pool(totals.double())}
    return Data(family, totals - held, group, train, heldout, test, unlabeled)


def train_linear(
    x: torch.Tensor, targets: torch.Tensor, steps: int = 300, lr: float = 0.05, seed: int = 0
) -> torch.nn.Linear:
    torch.manual_seed(seed)
    model = torch.nn.Linear(x.shape[1], targets.shape[1])
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    mean, std = x.mean(0), x.std(0).clamp(min=1e-6)
    xn = (x - mean) / std
    for _ in range(steps):
        opt.zero_grad()
        loss = soft_cross_entropy(model(xn), targets)
        loss.backward()
        opt.step()
    # Fold the normalisation into the layer so the model takes raw features.
    with torch.no_grad():
        model.weight.div_(std)
        model.bias.sub_((model.weight * mean).sum(1))
    return model


def _group_mean(per_class: torch.Tensor, group: torch.Tensor) -> list[float]:
    return [float(per_class[group == k].mean()) if bool((group == k).any()) else math.nan for k in range(3)]


def _per_class_accuracy(pred: torch.Tensor, labels: torch.Tensor, c: int) -> torch.Tensor:
    hits = torch.bincount(labels, weights=(pred == labels).double(), minlength=c)
    return hits / torch.bincount(labels, minlength=c).clamp(min=1)


@dataclass
class TeacherScore:
    accuracy: float  # class-balanced mean accuracy
    by_group: list[float]
    ece: float


def score_teacher(model: torch.nn.Linear, data: Data, c: int) -> TeacherScore:
    x, y = data.test
    with torch.no_grad():
        probs = torch.softmax(model(x), 1)
    conf, pred = probs.max(1)
    acc = _per_class_accuracy(pred, y, c)
    return TeacherScore(
        float(acc.mean()), _group_mean(acc, data.group), expected_calibration_error(conf, pred == y)
    )


@dataclass
class SeedResult:
    groups: list[int]  # classes per group (rare, common, frequent)
    smoothing: dict[str, dict[str, float]]  # S' variant -> family_share, rare_share, entropy_ratio
    teachers: dict[str, TeacherScore]  # target kind -> score
    delta_by_group: list[float]  # mean Δ per group
    pseudo_label_ece: dict[str, dict[float, float]]  # pool -> λ -> ECE


def run_seed(p: Problem, seed: int, eps: float, gamma: float, lams: list[float]) -> SeedResult:
    data = make_data(p, seed)
    c = p.classes
    x, y = data.train
    # Eq. 1, streamed in chunks as it would be over a data set.
    acc = PrototypeAccumulator(c, p.dim)
    for xs, ys in zip(x.split(256), y.split(256), strict=True):
        acc.update(xs, ys)
    prototypes, counts = acc.compute()

    same_family = data.family[:, None] == data.family[None, :]
    off_diag = ~torch.eye(c, dtype=torch.bool)
    smoothing: dict[str, dict[str, float]] = {}
    matrices = {}
    for name, g_, t in (
        ("gamma=0", 0.0, 1.0),
        (f"gamma={gamma}", gamma, 1.0),
        (f"gamma={gamma},T=0.1", gamma, 0.1),
    ):
        s = similarity_smoothing_matrix(prototypes, counts, g_, temperature=t)
        matrices[name] = s
        off = (s * off_diag).sum(1)
        smoothing[name] = {
            "family_share": float(((s * (same_family & off_diag)).sum(1) / off).mean()),
            "rare_share": float(((s * off_diag)[:, data.group == 0].sum(1) / off).mean()),
            "entropy_ratio": float(row_entropy(s).mean() / math.log(c)),
        }

    targets = {
        "one-hot": F.one_hot(y, c).double(),
        f"uniform eps={eps}": uniform_smooth_targets(y, c, eps, dtype=torch.float64),
        f"similarity gamma=0 eps={eps}": smooth_targets(y, matrices["gamma=0"], eps),
        f"similarity gamma={gamma} eps={eps}": smooth_targets(y, matrices[f"gamma={gamma}"], eps),
        f"similarity gamma={gamma} T=0.1 eps={eps}": smooth_targets(y, matrices[f"gamma={gamma},T=0.1"], eps),
    }
    teachers = {name: train_linear(x, t.float(), seed=seed) for name, t in targets.items()}
    scores = {name: score_teacher(m, data, c) for name, m in teachers.items()}

    # Eq. 4 on the held-out split, Eq. 5 on the unlabeled pool, for the similarity teacher.
    teacher = teachers[f"similarity gamma={gamma} eps={eps}"]
    with torch.no_grad():
        hx, hy = data.heldout
        hprobs = torch.softmax(teacher(hx), 1)
        hconf, hpred = hprobs.max(1)
        delta = ccece(hconf, hpred == hy, hpred, c)
    pseudo: dict[str, dict[float, float]] = {}
    for pool_name, (ux, uy) in data.unlabeled.items():
        with torch.no_grad():
            uprobs = torch.softmax(teacher(ux), 1)
        upred = uprobs.argmax(1)
        pseudo[pool_name] = {}
        for lam in lams:
            corrected = calibrate_soft_labels(uprobs, delta, lam)
            conf = corrected.gather(1, upred[:, None]).squeeze(1)
            pseudo[pool_name][lam] = expected_calibration_error(conf, upred == uy)
    return SeedResult(
        groups=[int((data.group == k).sum()) for k in range(3)],
        smoothing=smoothing,
        teachers=scores,
        delta_by_group=_group_mean(delta, data.group),
        pseudo_label_ece=pseudo,
    )


def _fmt(values: list[float], digits: int = 3) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def run(seeds: int = 3, first_seed: int = 0, eps: float = 0.1, gamma: float = 1.5) -> str:
    """Runs the walkthrough over ``seeds`` seeds and returns the report as text."""
    p = Problem()
    lams = [0.0, 1.0, 2.0]
    rs = [run_seed(p, first_seed + s, eps, gamma, lams) for s in range(seeds)]
    chance = (p.variants - 1) / (p.classes - 1)
    lines = [
        f"Label machinery on synthetic long-tailed features: {p.classes} classes "
        f"({p.families} families x {p.variants} look-alike variants), D={p.dim}, groups "
        f"rare/common/frequent = {rs[0].groups} (seed {first_seed}); {seeds} seed(s), mean ± std.",
        "",
        "Eq. 1-2  S' rows: share of off-diagonal mass on same-family classes "
        f"(chance {chance:.3f}), on rare classes, entropy / log C",
    ]
    for name in rs[0].smoothing:
        v = {k: [r.smoothing[name][k] for r in rs] for k in ("family_share", "rare_share", "entropy_ratio")}
        lines.append(
            f"  {name:<22} family {_fmt(v['family_share'])}   rare {_fmt(v['rare_share'])}   "
            f"entropy {_fmt(v['entropy_ratio'], 4)}"
        )
    lines += ["", "Eq. 3  linear softmax teacher, class-balanced test set: accuracy (all, r, c, f), ECE"]
    for name in rs[0].teachers:
        ts = [r.teachers[name] for r in rs]
        by_group = "  ".join(f"{g[0]} {_fmt([t.by_group[k] for t in ts])}" for k, g in enumerate(GROUPS))
        lines.append(
            f"  {name:<38} all {_fmt([t.accuracy for t in ts])}  {by_group}  ECE {_fmt([t.ece for t in ts])}"
        )
    lines += [
        "",
        f"Eq. 4  CCECE of the gamma={gamma} teacher on the held-out 15 %, mean per group (<0: overconfident)",
    ]
    lines.append(
        "  " + "  ".join(f"{g} {_fmt([r.delta_by_group[k] for r in rs])}" for k, g in enumerate(GROUPS))
    )
    lines += [
        "",
        "Eq. 5  pseudo-labels on two unlabeled pools: ECE of the top class's score y + lambda*Delta",
    ]
    for pool in rs[0].pseudo_label_ece:
        eces = "  ".join(
            f"lambda={lam:g}: {_fmt([r.pseudo_label_ece[pool][lam] for r in rs])}" for lam in lams
        )
        lines.append(f"  {pool:<11}{eces}")
    return "\n".join(lines)
