"""Can a reweighting of the teacher's class rows give the pool's rare objects pseudo-labels? (D124)

    python benchmarks/label_shift.py CONFIG TEACHER.safetensors [--images 600]

A teacher's rows carry the class mix of its labeled images, and a mined pool's mix differs (on
the embedded benchmark 6 % of the labeled objects are rare, 14 % of the pool's). Two standard
reweightings of a posterior p(y | x) by a ratio r_y, both per class and general:

* label shift by EM (Saerens, Latinne & Decaestecker, Neural Computation 14(1), 2002): r = π_u / π_s
  with π_s the mean posterior on the held-out split and π_u EM's estimate of the pool's mix from
  the pool's posteriors alone;
* post-hoc logit adjustment (Menon et al., ICLR 2021): r_y = (n_y + 1)^−α, n_y the labeled
  objects of class y, for α in 0.25 … 1.

Each is applied as the student applies ``student.logit_adjustment`` (``make_pseudo_labels``'s
``class_weights``: every detection's class distribution reweighted, its sum — the foreground mass —
kept), then the student's pseudo-label rules run as in training. CONFIG is a run's student (or
control) config: it names the held-out split and the unlabeled set, whose ``unlabeled_truth.json``
the embedded benchmark ships (scoring only). The teacher predicts once on every held-out image and
on ``--images`` unlabeled images spread evenly over the set (D117). An *object* (for the priors) is
a detection after merging a box's per-class duplicates (IoU ≥ 0.9) with foreground mass ≥ 0.5.

Prints the class mix per frequency group (held-out truth, π_s, pool truth, the pool's mean
posterior, π_u) and, per rule and reweighting, recall / precision / *soft recall* per group and
pseudo-boxes per image. Soft recall: the mass a kept pseudo-box matching a true object (IoU ≥ 0.5,
the best-overlapping one) puts on the object's true class, summed over the group's true objects,
divided by their number — what soft rows teach a class about the pool's objects.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torchvision.ops import box_iou

# -- pure functions (tests/test_label_shift.py) -----------------------------------------------------


def _check_rows(rows: torch.Tensor, name: str) -> None:
    if rows.dim() != 2:
        raise ValueError(f"{name}: expected [N, C], got shape {list(rows.shape)}")
    if rows.numel() and not bool(((rows >= 0) & torch.isfinite(rows)).all()):
        raise ValueError(f"{name}: expected finite values ≥ 0")


def _check_prior(prior: torch.Tensor, c: int, name: str) -> None:
    if prior.dim() != 1 or prior.shape[0] != c:
        raise ValueError(f"{name}: expected [{c}], got shape {list(prior.shape)}")
    if not bool(((prior > 0) & torch.isfinite(prior)).all()):
        raise ValueError(f"{name}: expected finite values > 0")


def class_posteriors(rows: torch.Tensor) -> torch.Tensor:
    """[N, C] class scores → [N', C] rows divided by their sum; rows summing to 0 are dropped."""
    _check_rows(rows, "rows")
    total = rows.sum(dim=1)
    keep = total > 0
    return rows[keep] / total[keep, None]


def mean_prior(posteriors: torch.Tensor, pseudo_count: float = 1.0) -> torch.Tensor:
    """[N, C] posteriors → [C] their mean, ``pseudo_count`` objects spread evenly over the classes
    first so that no share is 0 (a ratio divides by it)."""
    _check_rows(posteriors, "posteriors")
    n, c = posteriors.shape
    if c == 0:
        raise ValueError("posteriors: expected at least one class")
    if pseudo_count < 0 or (pseudo_count == 0 and n == 0):
        raise ValueError(f"pseudo_count: expected > 0 (or ≥ 0 with rows), got {pseudo_count!r}")
    total = posteriors.sum(dim=0, dtype=torch.float64) + pseudo_count / c
    return (total / total.sum()).to(posteriors.dtype)


def em_target_prior(
    posteriors: torch.Tensor,
    source_prior: torch.Tensor,
    *,
    pseudo_count: float = 1.0,
    max_iter: int = 200,
    tol: float = 1e-7,
) -> tuple[torch.Tensor, int]:
    """The class mix of the images ``posteriors`` [N, C] (under ``source_prior`` [C]) come from,
    by EM (Saerens et al. 2002): ([C] summing to 1, the EM steps taken; ``max_iter`` when it did not
    settle within ``tol``)."""
    _check_rows(posteriors, "posteriors")
    _check_prior(source_prior, posteriors.shape[1], "source_prior")
    if max_iter < 1:
        raise ValueError(f"max_iter: expected ≥ 1, got {max_iter!r}")
    p = posteriors.double()
    source = source_prior.double() / source_prior.sum()
    target = source.clone()
    for step in range(1, max_iter + 1):
        adjusted = p * (target / source)
        adjusted = adjusted / adjusted.sum(dim=1, keepdim=True).clamp(min=1e-300)
        new = mean_prior(adjusted, pseudo_count)
        moved = float((new - target).abs().max())
        target = new
        if moved <= tol:
            return target.to(posteriors.dtype), step
    return target.to(posteriors.dtype), max_iter


# -- the measurement -------------------------------------------------------------------------------


def main() -> None:
    from tailteacher.config_io import load_config
    from tailteacher.data.dataset import LvisDataset, Sample
    from tailteacher.data.geometry import Geometry
    from tailteacher.data.lvis_json import load_lvis
    from tailteacher.pipeline.data import images_of, load_train_data
    from tailteacher.pipeline.detector import build_detector, load_detector_weights
    from tailteacher.pipeline.pseudo_label_quality import QualityCounts, evenly_spaced, group_index
    from tailteacher.pipeline.pseudo_labels import (
        PseudoLabelConfig,
        make_pseudo_labels,
        merge_duplicates,
    )
    from tailteacher.pipeline.student import class_weights

    p = argparse.ArgumentParser()
    p.add_argument("config")
    p.add_argument("teacher")
    p.add_argument("--images", type=int, default=600)
    args = p.parse_args()
    cfg = load_config(args.config)
    if cfg.data.heldout_json is None or cfg.data.unlabeled_json is None:
        p.error(f"{args.config}: expected data.heldout_json and data.unlabeled_json (a run's student config)")
    train = load_train_data(cfg)
    model = build_detector(cfg, train)
    load_detector_weights(model, args.teacher)
    model.eval()
    heldout = load_lvis(cfg.data.heldout_json, cfg.data.image_root)
    truth = load_lvis(Path(cfg.data.unlabeled_json).with_name("unlabeled_truth.json"), cfg.data.image_root)
    group_of = group_index([str(c.get("frequency", "f")) for c in train.categories])
    c = len(train.category_ids)
    Pair = tuple[Sample, dict[str, torch.Tensor]]

    def predict(data: LvisDataset) -> list[Pair]:
        out = []
        for k in range(len(data)):
            s = data[k]
            if isinstance(s, Sample):
                with torch.no_grad():
                    d = model.predict(images_of([s], torch.device("cpu")), masks=False)[0]
                out.append((s, {key: v.cpu() for key, v in d.items()}))
        return out

    def objects(d: dict[str, torch.Tensor]) -> torch.Tensor:
        rows = d["class_scores"].float()
        if rows.shape[0] == 0:
            return rows
        mass = rows.sum(dim=1)
        kept = merge_duplicates(d["boxes"].float(), mass, 0.9)
        return rows[kept][mass[kept] >= 0.5]

    def mix(labels: torch.Tensor) -> torch.Tensor:
        counts = torch.bincount(labels, minlength=c).double()
        return counts / counts.sum()

    def shares(prior: torch.Tensor) -> str:
        s = torch.zeros(3, dtype=torch.float64).index_add_(0, group_of, prior.double())
        return " ".join(f"{g} {100 * float(v / s.sum()):5.1f} %" for g, v in zip("rcf", s, strict=True))

    t0 = time.perf_counter()
    held = predict(LvisDataset(heldout, sorted(heldout.images)))
    pool = predict(LvisDataset(truth, evenly_spaced(sorted(truth.images), args.images)))
    print(
        f"teacher {args.teacher}: {len(held)} held-out + {len(pool)} unlabeled images, "
        f"{time.perf_counter() - t0:.0f} s"
    )
    held_post = class_posteriors(torch.cat([objects(d) for _, d in held]))
    pool_post = class_posteriors(torch.cat([objects(d) for _, d in pool]))
    source = mean_prior(held_post)
    plain = mean_prior(pool_post)
    target, steps = em_target_prior(pool_post, source)
    pool_truth = mix(torch.cat([s.labels for s, _ in pool]))
    print(f"objects: held-out {held_post.shape[0]}, unlabeled {pool_post.shape[0]}; EM {steps} steps")
    print(f"  {'held-out truth':<30} {shares(mix(torch.cat([s.labels for s, _ in held])))}")
    print(f"  {'held-out mean posterior (π_s)':<30} {shares(source)}")
    print(f"  {'pool truth (the sample)':<30} {shares(pool_truth)}")
    for name, est in (("pool mean posterior", plain), ("pool EM estimate (π_u)", target)):
        l1 = float((est.double() - pool_truth).abs().sum())
        print(f"  {name:<30} {shares(est)}   L1 to the pool's true mix {l1:.3f}")

    ratios: dict[str, torch.Tensor | None] = {"as is": None, "label shift (EM)": (target / source).float()}
    for alpha in (0.25, 0.5, 1.0):
        ratios[f"logit adjustment α {alpha:g}"] = class_weights(train, alpha)  # the student's own
    rules = {
        "soft, τ 0.5 on the top score": PseudoLabelConfig(
            mode="soft", box_threshold=0.5, ignore_threshold=0.1
        ),
        "soft, τ 0.5 on the foreground": PseudoLabelConfig(
            mode="soft", box_threshold=0.5, ignore_threshold=0.1, threshold_on="foreground"
        ),
        "onehot, τ 0.5": PseudoLabelConfig(mode="onehot", box_threshold=0.5),
    }
    head = " ".join(f"{'rec ' + g:>6} {'prec ' + g:>6} {'soft ' + g:>6}" for g in "rcf")
    for rule_name, rule in rules.items():
        print(f"\n{rule_name:<30} {head}  boxes/image")
        for ratio_name, ratio in ratios.items():
            counts, soft = QualityCounts(), torch.zeros(3, dtype=torch.float64)
            for s, d in pool:
                view = Geometry.identity(tuple(s.image.shape[-2:]))
                pl = make_pseudo_labels(d, rule, None, view, view, ratio)  # the student's reweighting
                kept = (
                    pl["weights"] > 0 if "weights" in pl else torch.ones(len(pl["labels"]), dtype=torch.bool)
                )
                boxes, rows_ = pl["boxes"][kept], pl["class_targets"][kept]
                true_boxes = s.boxes.as_subclass(torch.Tensor)
                counts.add(boxes, pl["labels"][kept], true_boxes, s.labels, group_of)
                if len(boxes) and len(true_boxes):
                    iou = box_iou(boxes, true_boxes)
                    best, hit = iou.argmax(dim=0), iou.max(dim=0).values >= 0.5
                    soft.index_add_(0, group_of[s.labels], (rows_[best, s.labels] * hit).double())
            table = counts.rows()
            fmt: Callable[[float | None], str] = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
            cells = [
                f"{fmt(r['recall']):>6} {fmt(r['precision']):>6} "
                f"{fmt(float(soft[k]) / r['objects'] if r['objects'] else None):>6}"
                for k, r in enumerate(table[:3])
            ]
            print(f"  {ratio_name:<28} {' '.join(cells)}  {table[3]['boxes_per_image']:.2f}")


if __name__ == "__main__":
    main()
