"""Training targets of one cascade stage: match proposals to ground truth, sample, gather targets.

Shapes (one image):
    P  proposals      G  ground-truth instances      C  foreground classes

Match codes (torchvision ``Matcher`` built with equal high and low thresholds t):
    ``matched[p] = g ≥ 0``   proposal p is foreground, its best ground truth g has IoU ≥ t;
    ``matched[p] = BACKGROUND (-1)``   IoU < t with every ground truth (or there is none).
Low-quality matches are off: a stage's foreground is exactly IoU ≥ its threshold (Cascade R-CNN).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.models.detection._utils import BalancedPositiveNegativeSampler, BoxCoder, Matcher
from torchvision.ops import box_iou

BACKGROUND = -1


@dataclass(frozen=True)
class ImageTargets:
    """One image's ground truth, after the model's resize.

    Attributes:
        boxes: [G, 4] XYXY.
        targets: [G, C] the target vector of each instance (one-hot by default).
        weights: [G] per-instance loss weights (1 by default).
        masks: [G, H, W] uint8 instance masks, or None when the image has none (no mask loss).
    """

    boxes: torch.Tensor
    targets: torch.Tensor
    weights: torch.Tensor
    masks: torch.Tensor | None


@dataclass(frozen=True)
class StageTargets:
    """A stage's targets for one image's P proposals.

    Attributes:
        matched: [P] int64 matched ground-truth index, or ``BACKGROUND``.
        class_targets: [P, C] the matched instance's target vector; zeros for background.
        weights: [P] the matched instance's weight; 1 for background.
        box_targets: [P, 4] encoded regression targets (rows of background proposals are 0).
    """

    matched: torch.Tensor
    class_targets: torch.Tensor
    weights: torch.Tensor
    box_targets: torch.Tensor

    @property
    def foreground(self) -> torch.Tensor:
        """bool [P]."""
        return self.matched >= 0


def match_proposals(proposals: torch.Tensor, gt_boxes: torch.Tensor, matcher: Matcher) -> torch.Tensor:
    """[P, 4] proposals, [G, 4] ground truth → [P] match codes (see the module docstring)."""
    if gt_boxes.shape[0] == 0:
        return torch.full((proposals.shape[0],), BACKGROUND, dtype=torch.int64, device=proposals.device)
    matched: torch.Tensor = matcher(box_iou(gt_boxes, proposals))
    # Equal thresholds leave no "between" code; map every negative code to background anyway.
    return matched.clamp(min=BACKGROUND)


def sample_proposals(matched: torch.Tensor, sampler: BalancedPositiveNegativeSampler) -> torch.Tensor:
    """[P] match codes → int64 indices of the sampled proposals (a positive fraction of foreground)."""
    positive, negative = sampler([(matched >= 0).to(torch.int64)])
    return torch.where((positive[0] | negative[0]).bool())[0]


@torch.no_grad()
def stage_targets(
    proposals: torch.Tensor, matched: torch.Tensor, gt: ImageTargets, box_coder: BoxCoder
) -> StageTargets:
    """Gather the targets of P proposals with match codes ``matched`` from one image's ground truth."""
    fg = matched >= 0
    idx = matched.clamp(min=0)
    num_classes = gt.targets.shape[1]
    if gt.boxes.shape[0] == 0:
        class_targets = proposals.new_zeros((proposals.shape[0], num_classes))
        weights = proposals.new_ones(proposals.shape[0])
        box_targets = proposals.new_zeros(proposals.shape)
    else:
        class_targets = gt.targets[idx].to(proposals.dtype) * fg[:, None]
        weights = torch.where(fg, gt.weights[idx].to(proposals.dtype), proposals.new_ones(()))
        box_targets = proposals.new_zeros(proposals.shape)
        if bool(fg.any()):
            box_targets[fg] = box_coder.encode_single(gt.boxes[idx[fg]], proposals[fg])
    return StageTargets(
        matched=matched, class_targets=class_targets, weights=weights, box_targets=box_targets
    )
