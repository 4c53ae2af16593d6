"""How good are a teacher's pseudo-labels? Precision and recall against the unlabeled pool's truth.

    python benchmarks/pseudo_label_quality.py CONFIG TEACHER.safetensors [DELTA.safetensors] [--images 200]

The embedded benchmark ships ``unlabeled_truth.json`` (the pool's annotations, never used for
training). The teacher runs on each unlabeled image as the student's teacher does (no
augmentation here: weak = strong = identity), pseudo-labels are made per mode, and each kept box
counts as correct when it overlaps a true object of its argmax class at IoU ≥ 0.5. Prints, per
mode: pseudo-boxes per image, precision, recall of the true objects, and the class accuracy of the
boxes that found an object (any class); then, per frequency group of the true class (r / c / f),
the recall of its objects, and per group of the kept box's class its precision.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torchvision.ops import box_iou

from tailteacher.data.dataset import LvisDataset, Sample
from tailteacher.data.geometry import Geometry
from tailteacher.data.lvis_json import load_lvis
from tailteacher.engine.config_io import load_config
from tailteacher.pipeline.data import images_of, load_train_data
from tailteacher.pipeline.detector import build_detector, load_detector_weights
from tailteacher.pipeline.pseudo_labels import PseudoLabelConfig, make_pseudo_labels


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("config")
    p.add_argument("teacher")
    p.add_argument("delta", nargs="?")
    p.add_argument("--images", type=int, default=200)
    args = p.parse_args()
    cfg = load_config(args.config)
    train = load_train_data(cfg)
    model = build_detector(cfg, train)
    load_detector_weights(model, args.teacher)
    model.eval()
    truth_path = Path(cfg.data.unlabeled_json).with_name("unlabeled_truth.json")
    truth = load_lvis(truth_path, cfg.data.image_root)
    data = LvisDataset(truth, sorted(truth.images)[: args.images])
    delta = None
    if args.delta:
        from safetensors.torch import load_file

        delta = load_file(args.delta)["delta"]
    modes = {
        "onehot tau 0.5": PseudoLabelConfig(mode="onehot"),
        "soft tau 0.3": PseudoLabelConfig(mode="soft"),
    }
    if delta is not None:
        modes["calibrated, support all"] = PseudoLabelConfig(mode="calibrated", support="all")
        for tau in (0.3, 0.5, 0.7):
            modes[f"calibrated, nonzero, tau {tau}"] = PseudoLabelConfig(
                mode="calibrated", support="nonzero", box_threshold=tau
            )
        for tau in (0.5, 0.7, 0.8):
            modes[f"calibrated, nonzero, fg {tau}"] = PseudoLabelConfig(
                mode="calibrated", support="nonzero", box_threshold=tau, threshold_on="foreground"
            )
    stats = {m: [0, 0, 0, 0] for m in modes}  # boxes, correct, found objects (any class), class right
    groups = "rcf"
    group_of = torch.tensor([groups.index(str(c.get("frequency", "f"))) for c in truth.categories])
    # per mode and group: [true objects found with the right class, true objects, correct boxes, boxes]
    by_group = {m: torch.zeros(3, 4, dtype=torch.long) for m in modes}
    objects = 0
    with torch.no_grad():
        for k in range(len(data)):
            s = data[k]
            assert isinstance(s, Sample)
            det = model(images_of([s], torch.device("cpu")))[0]
            geo = Geometry.identity(tuple(s.image.shape[-2:]))
            gt_boxes, gt_labels = s.boxes.as_subclass(torch.Tensor), s.labels
            objects += len(gt_labels)
            for name, mode in modes.items():
                pl = make_pseudo_labels(det, mode, delta, geo, geo)
                st = stats[name]
                st[0] += len(pl["labels"])
                g = by_group[name]
                g[:, 1] += torch.bincount(group_of[gt_labels], minlength=3)
                g[:, 3] += torch.bincount(group_of[pl["labels"]], minlength=3)
                if len(pl["labels"]) == 0 or len(gt_labels) == 0:
                    continue
                iou = box_iou(pl["boxes"], gt_boxes)
                same = pl["labels"][:, None] == gt_labels[None, :]
                matched = (iou >= 0.5) & same
                g[:, 0] += torch.bincount(group_of[gt_labels[matched.any(dim=0)]], minlength=3)
                g[:, 2] += torch.bincount(group_of[pl["labels"][matched.any(dim=1)]], minlength=3)
                st[1] += int(((iou >= 0.5) & same).any(dim=1).sum())
                hit = (iou >= 0.5).any(dim=1)
                st[2] += int(hit.sum())
                best = iou.argmax(dim=1)
                st[3] += int((hit & (pl["labels"] == gt_labels[best])).sum())
    n = len(data)
    print(
        f"{n} unlabeled images, {objects} true objects ({objects / n:.2f} per image); teacher {args.teacher}"
    )
    print(f"{'mode':<30} {'boxes/img':>9} {'precision':>9} {'recall':>7} {'class acc':>9}")
    for name, (boxes, correct, hits, right) in stats.items():
        print(
            f"{name:<30} {boxes / n:>9.2f} {correct / max(boxes, 1):>9.3f} {correct / max(objects, 1):>7.3f} "
            f"{right / max(hits, 1):>9.3f}"
        )
    print(
        f"\n{'mode':<30} "
        + " ".join(f"{'recall ' + g:>9} {'prec ' + g:>7} {'boxes ' + g:>8}" for g in groups)
    )
    for name, g in by_group.items():
        cells = [
            f"{int(g[k, 0]) / max(int(g[k, 1]), 1):>9.3f} {int(g[k, 2]) / max(int(g[k, 3]), 1):>7.3f} "
            f"{int(g[k, 3]) / n:>8.2f}"
            for k in range(3)
        ]
        print(f"{name:<30} " + " ".join(cells))


if __name__ == "__main__":
    main()
