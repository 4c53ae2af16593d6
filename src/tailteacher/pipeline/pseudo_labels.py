"""The student's pseudo-labels: the teacher's weak-view detections → strong-view training targets.

Shapes (one image; pseudo-labels are made online per image and never stored densely):
    D  teacher detections, one per (box, class) pair after per-class NMS
    N  pseudo-labels kept      C  foreground classes
    H, W  the weak view (the teacher's input)      h, w  the strong view (the student's input)

Steps, all under ``torch.no_grad``:
    1. a target row [C] per detection, by ``mode``:
       ``onehot``      one-hot of the detection's class (the semi-supervised baseline);
       ``soft``        the teacher's ``class_scores`` row, top-k;
       ``calibrated``  Eq. 5, ``clamp(y + λΔ, 0, 1)`` on the row, then top-k.
    2. its score s: onehot and soft, the detection's score; calibrated, the teacher's score
       (``threshold_on="teacher"``, the default) or the corrected row's max
       (``threshold_on="corrected"``); soft and calibrated with ``threshold_on="foreground"``,
       the sum of the teacher's top-k row: how surely the box is an object, whatever its class
       (ours, D63). Keep s ≥ τ (``box_threshold``).
    3. merge duplicates: the same box comes once per class it scored for, so detections whose
       boxes overlap with IoU ≥ 0.9 are one object. Greedily, highest s first, the first keeps its
       box, mask and row; the others are dropped. Then the ``max_boxes`` highest s.
       With ``ignore_threshold``, detections scoring in [ignore_threshold, τ) also enter, as
       ignored boxes (weight 0), merged with the others.
    4. boxes and masks weak → strong (``map_between``), drop what it drops (boxes under
       ``min_size`` strong pixels), threshold the resampled mask probabilities; drop empty masks.

Decisions:
    * No renormalisation after Eq. 5 or top-k. Eq. 5 lowers an overconfident class's score on
      purpose; dividing by the row's sum would restore the confidence the correction took away
      (a row [0.9, 0, …] corrected to [0.7, 0, …] would be 1.0 again). Below a sum of 1 the rest
      is background in the softmax head, i.e. "this box is less surely class k"; above 1 that
      head divides by the sum itself (``softmax_targets``), and the sigmoid head wants the
      per-class values as they are. The mass top-k cuts off also goes to background.
    * No ``weights``: the soft modes already carry the teacher's confidence in the target's
      background mass; a per-box weight would count it twice and also scale the box and mask
      losses, which the paper does not do. The model then uses unit weights.
    * τ defaults (``box_threshold=None``): 0.5 in every mode (D59, D121). 0.3 for the soft modes
      (a low-scoring box's soft row is itself mostly background) was measured: it admitted 7.4
      boxes per image for ~4.5 objects and taught more wrong rows than found objects. Tune it: it
      is the knob that balances recall against noise.
    * Which boxes become pseudo-labels is decided on the teacher's own score by default
      (``threshold_on="teacher"``), so that Eq. 5 changes what a box teaches, not how many boxes
      there are. Thresholding the corrected score (``"corrected"``) was measured on ``demo``:
      with ``support="all"`` every class with λΔ_j ≥ τ lifts every one of the ~100 detections of
      an image over τ, 47.5 pseudo-boxes per image against ~4.6 real objects (docs/decisions.md).
    * ``support="nonzero"`` corrects only the top-k classes the teacher proposed (top-k is taken
      on the teacher's row first); ``"all"`` corrects the whole row, then keeps its top k.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torchvision.ops import box_iou

from ..data.geometry import Geometry, map_between
from ..labels.correction import Support, calibrate_soft_labels
from ..labels.logit_adjustment import reweight_rows
from ..modeling.classification import softmax_targets

Mode = Literal["onehot", "soft", "calibrated"]

MODES: tuple[Mode, ...] = ("onehot", "soft", "calibrated")
#: τ when ``box_threshold`` is None, every mode (see the module docstring).
DEFAULT_BOX_THRESHOLD = 0.5


@dataclass(frozen=True)
class PseudoLabelConfig:
    """How teacher detections become student targets.

    Attributes:
        mode: ``"onehot"``, ``"soft"`` or ``"calibrated"`` (Eq. 5).
        box_threshold: τ; a detection is kept when its score (onehot), the max of its top-k
            teacher row (soft; calibrated with ``threshold_on="teacher"``) or of its corrected row
            (``threshold_on="corrected"``) is ≥ τ. None = ``DEFAULT_BOX_THRESHOLD``.
        top_k: classes kept per target row, the others set to 0 (soft, calibrated); None = all.
        lam: λ of Eq. 5 (paper: 2).
        support: ``"nonzero"`` (default: top-k of the teacher's row first, then Eq. 5 on those
            classes only; D51, D121) or ``"all"`` (Eq. 5 literally on the whole row, then top-k).
        threshold_on: τ applies to the teacher's top class score (``"teacher"``), to the
            corrected row's max (``"corrected"``, calibrated mode), or to the teacher's top-k
            row sum (``"foreground"``, soft and calibrated modes).
        mask_threshold: a resampled mask probability ≥ this is foreground.
        max_boxes: most pseudo-labels per image (the highest scores).
        min_size: smallest kept box side, in strong-view pixels.
        dedupe_iou: boxes overlapping with IoU ≥ this are one object.
        ignore_threshold: None, or a score below τ: detections scoring in [this, τ) become
            ignored boxes (weight 0): the RoIs matched to them add no loss, instead of being taught
            as certain background (ours, D59; the role SoftTeacher gives its background weights).
        renormalize: divide each kept row by its sum, so a box that passed τ is taught as surely
            an object whose class is soft (ours, D61; measured without effect). False: the row's
            missing mass is background (the module docstring's decision).
    """

    mode: Mode = "calibrated"
    box_threshold: float | None = None
    top_k: int | None = 5
    lam: float = 2.0
    support: Support = "nonzero"
    threshold_on: Literal["teacher", "corrected", "foreground"] = "teacher"
    mask_threshold: float = 0.5
    max_boxes: int = 100
    min_size: float = 1.0
    dedupe_iou: float = 0.9
    ignore_threshold: float | None = None
    renormalize: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode: expected 'onehot', 'soft' or 'calibrated', got {self.mode!r}")
        if self.box_threshold is not None and not 0.0 < self.box_threshold <= 1.0:
            raise ValueError(f"box_threshold: expected None or a value in (0, 1], got {self.box_threshold!r}")
        for name, value in (("top_k", self.top_k), ("max_boxes", self.max_boxes)):
            if name == "top_k" and value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: expected an integer ≥ 1, got {value!r}")
        if not isinstance(self.lam, int | float) or not math.isfinite(self.lam):
            raise ValueError(f"lam: expected a finite number, got {self.lam!r}")
        if self.threshold_on not in ("teacher", "corrected", "foreground"):
            raise ValueError(
                f"threshold_on: expected 'teacher', 'corrected' or 'foreground', got {self.threshold_on!r}"
            )
        if self.support not in ("all", "nonzero"):
            raise ValueError(f"support: expected 'all' or 'nonzero', got {self.support!r}")
        for name in ("mask_threshold", "dedupe_iou"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"{name}: expected a value in (0, 1], got {getattr(self, name)!r}")
        if self.ignore_threshold is not None and not 0.0 < self.ignore_threshold < self.threshold:
            raise ValueError(
                f"ignore_threshold: expected None or a value in (0, τ = {self.threshold}), "
                f"got {self.ignore_threshold!r}"
            )
        if not self.min_size >= 0:
            raise ValueError(f"min_size: expected a value ≥ 0, got {self.min_size!r}")

    @property
    def threshold(self) -> float:
        """τ in use: ``box_threshold``, or ``DEFAULT_BOX_THRESHOLD``."""
        return DEFAULT_BOX_THRESHOLD if self.box_threshold is None else self.box_threshold

    @property
    def lowest_threshold(self) -> float:
        """The lowest score a detection needs to enter the targets at all (ignored or not)."""
        return self.threshold if self.ignore_threshold is None else self.ignore_threshold


def keep_top_k(rows: torch.Tensor, k: int | None) -> torch.Tensor:
    """[M, C] → [M, C] with all but the k largest entries of each row set to 0 (ties: any k)."""
    if k is None or k >= rows.shape[1]:
        return rows
    kept = torch.zeros_like(rows, dtype=torch.bool).scatter_(1, rows.topk(k, dim=1).indices, True)
    return rows.where(kept, rows.new_zeros(()))


def merge_duplicates(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices of the detections that survive greedy merging, highest score first.

    Args:
        boxes: [M, 4] XYXY.
        scores: [M]; ties rank the earlier index first.
        iou_threshold: a box with IoU ≥ this with a kept, higher-ranked box is merged into it.

    Returns:
        [K] int64 indices into the inputs, in decreasing score.
    """
    order = torch.sort(scores, descending=True, stable=True).indices
    # M is small here (after the score threshold); the greedy pass runs on the CPU.
    duplicate = (box_iou(boxes[order], boxes[order]) >= iou_threshold).triu(1).cpu()
    alive = torch.ones(order.numel(), dtype=torch.bool)
    for i in range(order.numel()):
        if alive[i]:
            alive &= ~duplicate[i]
    return order[alive.to(order.device)]


def target_rows(
    detections: Mapping[str, torch.Tensor], cfg: PseudoLabelConfig, delta: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The target row and the score of each detection (steps 1–2 of the module docstring).

    Returns:
        rows: [D, C] in [0, 1], not renormalised.
        scores: [D], compared with τ; they also rank the detections for the merge.
    """
    class_scores = detections["class_scores"]
    if cfg.mode == "onehot":
        rows = F.one_hot(detections["labels"].long(), class_scores.shape[1]).to(class_scores.dtype)
        return rows, detections["scores"]
    teacher_rows = keep_top_k(class_scores, cfg.top_k)
    # "foreground": how surely the box is an object, whatever its class (the row's top-k mass).
    foreground = teacher_rows.sum(dim=1) if cfg.threshold_on == "foreground" else None
    if cfg.mode == "soft":
        return teacher_rows, teacher_rows.max(dim=1).values if foreground is None else foreground
    if delta is None:
        raise ValueError("delta: required by mode 'calibrated' (the teacher's CCECE, Eq. 4)")
    if cfg.support == "nonzero":
        rows = calibrate_soft_labels(teacher_rows, delta, cfg.lam, "nonzero")
    else:
        rows = keep_top_k(calibrate_soft_labels(class_scores, delta, cfg.lam, "all"), cfg.top_k)
    if foreground is not None:
        return rows, foreground
    source = teacher_rows if cfg.threshold_on == "teacher" else rows
    return rows, source.max(dim=1).values


def _check_detections(detections: Mapping[str, torch.Tensor], weak: Geometry) -> None:
    missing = {"boxes", "scores", "labels", "class_scores"} - set(detections)
    if missing:
        raise ValueError(f"detections: missing key(s) {sorted(missing)}")
    d = detections["boxes"].shape[0]
    cs = detections["class_scores"]
    if cs.dim() != 2 or cs.shape[0] != d:
        raise ValueError(f"detections['class_scores']: expected [{d}, C], got {list(cs.shape)}")
    masks = detections.get("masks")
    if masks is not None and tuple(masks.shape) != (d, 1, *weak.out_size):
        raise ValueError(
            f"detections['masks']: expected [{d}, 1, {weak.out_size[0]}, {weak.out_size[1]}] "
            f"(the weak view's size), got {list(masks.shape)}"
        )


@torch.no_grad()
def make_pseudo_labels(
    detections: Mapping[str, torch.Tensor],
    cfg: PseudoLabelConfig,
    delta: torch.Tensor | None,
    weak: Geometry,
    strong: Geometry,
    class_weights: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """One unlabeled image's student targets from the teacher's detections on its weak view.

    Args:
        detections: the teacher's eval output for the weak view: ``boxes`` [D, 4] XYXY,
            ``scores`` [D], ``labels`` [D], ``class_scores`` [D, C], optional ``masks``
            [D, 1, H, W] probabilities with (H, W) = ``weak.out_size``.
        cfg: the pseudo-label settings.
        delta: [C] CCECE Δ (Eq. 4); required by mode ``"calibrated"``, ignored otherwise.
        weak, strong: the geometries of the teacher's and the student's views of the image.
        class_weights: [C] or None; first each detection's ``class_scores`` row is reweighted
            (`labels.reweight_rows`) and its score becomes the new row's value at its class (ours, D124).

    Returns:
        In strong-view pixels, ordered by decreasing score: ``boxes`` [N, 4] float32,
        ``labels`` [N] int64 (argmax of the row), ``class_targets`` [N, C] float32 in [0, 1]
        (rows summing to 1 with ``renormalize``, else as Eq. 5 and top-k left them),
        ``masks`` [N, h, w] uint8 when the detections had masks, and
        with ``ignore_threshold`` set, ``weights`` [N] float32: 1 for a pseudo-label (s ≥ τ), 0
        for an ignored box (``ignore_threshold`` ≤ s < τ).
    """
    _check_detections(detections, weak)
    if class_weights is not None:
        reweighted = reweight_rows(detections["class_scores"].float(), class_weights)
        at_label = reweighted.gather(1, detections["labels"].long()[:, None]).squeeze(1)
        detections = {**detections, "class_scores": reweighted, "scores": at_label}
    rows, scores = target_rows(detections, cfg, delta)
    kept = torch.nonzero(scores >= cfg.lowest_threshold).squeeze(1)
    boxes = detections["boxes"].float()
    kept = kept[merge_duplicates(boxes[kept], scores[kept], cfg.dedupe_iou)][: cfg.max_boxes]
    # 1 for a pseudo-label, 0 for an ignored box (ignore_threshold ≤ s < τ): no loss on its RoIs.
    weights = (scores[kept] >= cfg.threshold).float()
    masks = detections.get("masks")
    soft_masks = None if masks is None else masks[kept, 0].float()
    mapped = map_between(weak, strong, boxes=boxes[kept], masks=soft_masks, min_size=cfg.min_size)
    assert mapped.boxes is not None  # boxes were given
    keep, out_boxes = mapped.keep.clone(), mapped.boxes
    out: dict[str, torch.Tensor] = {}
    if mapped.masks is not None:
        # map_between drops masks empty at 0.5; another mask_threshold can empty more of them.
        binary = mapped.masks >= cfg.mask_threshold
        filled = binary.flatten(1).any(dim=1)
        keep[mapped.keep] = filled
        out_boxes = out_boxes[filled]
        out["masks"] = binary[filled].to(torch.uint8)
    rows = rows[kept][keep].float()
    if cfg.renormalize:
        rows = rows / rows.sum(dim=1, keepdim=True).clamp(min=1e-12)
    out.update(boxes=out_boxes, labels=rows.argmax(dim=1), class_targets=rows)
    if cfg.ignore_threshold is not None:
        out["weights"] = weights[keep]
    return out


def pseudo_label_stats(
    targets_list: Sequence[Mapping[str, torch.Tensor]], class_groups: Sequence[str] | None = None
) -> dict[str, float | dict[str, int]]:
    """Summary of a batch of pseudo-labels, for logging.

    Args:
        targets_list: `make_pseudo_labels` outputs, one per image.
        class_groups: [C] a group name per class (e.g. LVIS "r"/"c"/"f"); None = no histogram.

    Returns:
        ``images``, ``boxes`` (total), ``boxes_per_image``; over boxes (NaN when there are none):
        ``mean_entropy`` (nats, of the softmax head's target over C + 1, background included),
        ``top_class_fraction`` (the top class's share of the row's foreground mass),
        ``foreground_mass`` (the row's sum, capped at 1); with ``class_groups``,
        ``labels_by_group`` {group: count}, every group present.
    """
    boxes, entropy, top, mass = 0, 0.0, 0.0, 0.0
    groups: dict[str, int] = dict.fromkeys(class_groups or (), 0)
    for targets in targets_list:
        rows = targets["class_targets"].detach().float()
        if rows.shape[0] == 0:
            continue
        total = rows.sum(dim=1)
        boxes += rows.shape[0]
        entropy += float(torch.special.entr(softmax_targets(rows)).sum())
        top += float((rows.max(dim=1).values / total.clamp(min=1e-12)).sum())
        mass += float(total.clamp(max=1).sum())
        if class_groups is not None:
            for label in targets["labels"].tolist():
                if not 0 <= label < len(class_groups):
                    raise ValueError(f"labels: class {label} outside class_groups (C={len(class_groups)})")
                groups[class_groups[label]] += 1
    n = len(targets_list)
    per_box = 1.0 / boxes if boxes else float("nan")
    stats: dict[str, float | dict[str, int]] = {
        "images": float(n),
        "boxes": float(boxes),
        "boxes_per_image": boxes / n if n else float("nan"),
        "mean_entropy": entropy * per_box,
        "top_class_fraction": top * per_box,
        "foreground_mass": mass * per_box,
    }
    if class_groups is not None:
        stats["labels_by_group"] = groups
    return stats
