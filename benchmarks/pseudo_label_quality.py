"""How good are a teacher's pseudo-labels? Precision and recall against the unlabeled pool's truth.

    python benchmarks/pseudo_label_quality.py CONFIG TEACHER.safetensors [DELTA.safetensors] \
        [--images 200] [--shrinkage 10] [--raw 0.05,0.1,0.2,0.3,0.5] [--truth JSON]

The embedded benchmark ships ``unlabeled_truth.json`` (the pool's annotations, never used for
training). The teacher runs on each unlabeled image as the student's teacher does (no
augmentation here: weak = strong = identity) on ``--images`` images spread evenly over the set
(D117), pseudo-labels are made per mode, and each kept box
counts as correct when it overlaps a true object of its argmax class at IoU ≥ 0.5. Prints, per
mode and frequency group (recall: of the true class's group; precision: of the kept box's class's
group) and overall: recall, precision, pseudo-boxes per image (`pipeline.pseudo_label_quality`,
which `tailteacher run` also writes for its student's rule).

``--raw``: instead of the pseudo-label rules, the teacher's raw detections at each listed score
threshold (`pipeline.pseudo_label_quality.measure_detections`): (box, class) pairs as the detector
outputs them, so one box may count under several classes, with no merging or ``max_boxes`` — an
upper bound on what a per-class threshold could reach. ``--truth``: measure on another annotated
json with the training json's categories (e.g. the val split, whose class mix differs from the
pool's) instead of the pool's ``unlabeled_truth.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from tailteacher.config import Config
from tailteacher.config_io import load_config
from tailteacher.data.dataset import LvisDataset, Sample
from tailteacher.data.lvis_json import load_lvis
from tailteacher.pipeline.data import load_train_data
from tailteacher.pipeline.delta import load_delta
from tailteacher.pipeline.detector import build_detector, load_detector_weights
from tailteacher.pipeline.pseudo_label_quality import (
    QualityCounts,
    evenly_spaced,
    group_index,
    measure_detections,
    measure_pseudo_labels,
)
from tailteacher.pipeline.pseudo_labels import PseudoLabelConfig


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("config")
    p.add_argument("teacher")
    p.add_argument("delta", nargs="?")
    p.add_argument("--images", type=int, default=200)
    p.add_argument(
        "--shrinkage", type=float, default=10.0, help="κ of student.delta_shrinkage (D100); 0: Eq. 4 as is"
    )
    p.add_argument("--raw", help="comma-separated score thresholds: count raw detections instead")
    p.add_argument("--truth", help="annotated json to measure on (default: the pool's truth)")
    args = p.parse_args()
    if args.raw and args.delta:
        p.error("--raw counts the teacher's raw detections; it takes no DELTA")
    thresholds: list[float] = []
    if args.raw:
        try:
            thresholds = [float(t) for t in args.raw.split(",") if t.strip()]
        except ValueError:
            p.error(f"--raw: expected comma-separated numbers, got {args.raw!r}")
    cfg: Config = load_config(args.config)
    train = load_train_data(cfg)
    model = build_detector(cfg, train)
    load_detector_weights(model, args.teacher)
    model.eval()
    if args.truth:
        truth_path = Path(args.truth)
    else:
        assert cfg.data.unlabeled_json is not None, "the config names no data.unlabeled_json"
        truth_path = Path(cfg.data.unlabeled_json).with_name("unlabeled_truth.json")
    truth = load_lvis(truth_path, cfg.data.image_root)
    if truth.category_ids != train.category_ids:
        p.error(f"{truth_path}: its categories differ from the training json's (the model's classes)")
    data = LvisDataset(truth, evenly_spaced(sorted(truth.images), args.images))
    delta = None
    if args.delta:
        delta = load_delta(args.delta, train, args.shrinkage)
    modes = {
        "onehot tau 0.5": PseudoLabelConfig(mode="onehot", box_threshold=0.5),
        "soft tau 0.3": PseudoLabelConfig(mode="soft", box_threshold=0.3),
        "soft tau 0.5": PseudoLabelConfig(mode="soft", box_threshold=0.5),
    }
    if delta is not None:
        modes["calibrated, support all"] = PseudoLabelConfig(
            mode="calibrated", support="all", box_threshold=0.3
        )
        for tau in (0.3, 0.5, 0.7):
            modes[f"calibrated, nonzero, tau {tau}"] = PseudoLabelConfig(
                mode="calibrated", support="nonzero", box_threshold=tau
            )
        # τ on the corrected row's top score: Eq. 5 deciding which boxes are kept (the paper's
        # argument that a miscalibrated threshold starves rare classes of pseudo-labels).
        modes["calibrated, nonzero, corr 0.5"] = PseudoLabelConfig(
            mode="calibrated", support="nonzero", box_threshold=0.5, threshold_on="corrected"
        )
        for tau in (0.5, 0.7, 0.8):
            modes[f"calibrated, nonzero, fg {tau}"] = PseudoLabelConfig(
                mode="calibrated", support="nonzero", box_threshold=tau, threshold_on="foreground"
            )
    # Masks only where the student trains on them (its teacher predicts none otherwise, D114).
    masks = cfg.student is not None and cfg.student.unsup_mask_loss
    groups = group_index([str(c.get("frequency", "f")) for c in train.categories])
    samples = [s for s in (data[k] for k in range(len(data))) if isinstance(s, Sample)]
    print(f"{len(samples)} images of {truth_path}; teacher {args.teacher}")
    print(
        f"{'mode':<30} "
        + " ".join(f"{'recall ' + g:>9} {'prec ' + g:>7} {'boxes ' + g:>8}" for g in "rcf")
        + "   all: recall prec boxes"
    )
    counts: dict[str, QualityCounts] = {}
    if args.raw:
        raw = measure_detections(model, samples, thresholds, groups, torch.device("cpu"))
        counts = {f"raw detections, tau {t}": c for t, c in raw.items()}
    else:
        for name, mode in modes.items():
            counts[name] = measure_pseudo_labels(
                model, samples, mode, delta, groups, torch.device("cpu"), masks=masks
            )

    def fmt(v: float | None) -> str:
        return "–" if v is None else f"{v:.3f}"

    for name, c in counts.items():
        rows = c.rows()
        cells = [f"{fmt(r['recall']):>9} {fmt(r['precision']):>7} {r['boxes_per_image']:>8.2f}" for r in rows]
        print(f"{name:<30} " + " ".join(cells))


if __name__ == "__main__":
    main()
