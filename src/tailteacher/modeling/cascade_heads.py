"""Cascade R-CNN RoI heads with soft classification targets and a class-agnostic mask head.

Shapes:
    N  images      P_i  proposals of image i      R  RoIs of a stage (all images)
    G  ground-truth instances (all images)      C  foreground classes      L  logits (C+1 or C)
    M  foreground RoIs for the mask head      D  detections of an image

Training, stage k (k = 0 … S-1, IoU thresholds 0.5/0.6/0.7 by default):
    stage 0  RoIs = a sample of (RPN proposals ∪ GT boxes): ``roi_batch_size`` per image, 25 % fg;
    stage k  RoIs = stage k-1's refined boxes of those RoIs (detached) ∪ GT boxes, not re-sampled;
    each stage re-matches its RoIs at its own threshold and takes the matched instance's target
    vector as the classification target. The mask head trains on stage 0's foreground RoIs
    (as detectron2's CascadeROIHeads). Losses: ``loss_cls_stage{k}``, ``loss_box_stage{k}``, ``loss_mask``.
Inference: the stages refine the boxes in turn; every stage's classifier scores the last stage's
RoIs and the probabilities are averaged (Cascade R-CNN's ensemble); the last stage's refined
boxes are the detections' boxes; the mask head runs on the kept detections.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection._utils import BalancedPositiveNegativeSampler, BoxCoder, Matcher
from torchvision.ops import clip_boxes_to_image

from .cascade_targets import ImageTargets, StageTargets, match_proposals, sample_proposals, stage_targets
from .classification import ClassificationHead
from .mask_head import MaskHead, mask_loss, mask_targets
from .postprocess import DetectionSelector, ImageDetections
from .stage_head import CascadeStageHead

ImageSizes = list[tuple[int, int]]
#: ``(deltas [R_fg, 4], targets [R_fg, 4], weights [R_fg]) -> summed loss`` (normalised by the caller).
BoxLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def l1_box_loss(deltas: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Σ of weighted L1 over foreground RoIs (detectron2's cascade uses smooth-L1 with β = 0, i.e. L1)."""
    return (F.l1_loss(deltas, targets, reduction="none").sum(dim=1) * weights).sum()


class _ScaleGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)  # no copy: pooled RoI features are the largest tensors of the heads

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.scale, None


def scale_gradient(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Identity forward; the backward gradient is multiplied by ``scale``."""
    out: torch.Tensor = _ScaleGradient.apply(x, scale)
    return out


class CascadeRoIHeads(nn.Module):
    """The S cascade stages and the mask branch, on pyramid features and RPN proposals."""

    def __init__(
        self,
        *,
        box_roi_pool: nn.Module,
        stage_heads: Sequence[CascadeStageHead],
        box_coders: Sequence[BoxCoder],
        proposal_matchers: Sequence[Matcher],
        fg_bg_sampler: BalancedPositiveNegativeSampler,
        classification: ClassificationHead,
        mask_roi_pool: nn.Module,
        mask_head: MaskHead,
        detection_selector: DetectionSelector,
        box_loss: BoxLoss = l1_box_loss,
    ) -> None:
        """
        Args:
            box_roi_pool: ``MultiScaleRoIAlign`` for the box heads (7×7).
            stage_heads, box_coders, proposal_matchers: one per stage, in order.
            fg_bg_sampler: stage 0's proposal sampler.
            classification: the classifier head (softmax or sigmoid-federated) and its loss.
            mask_roi_pool: ``MultiScaleRoIAlign`` for the mask head (14×14).
            mask_head: class-agnostic mask head.
            detection_selector: score threshold, per-class NMS and top-K of inference.
            box_loss: the regression loss (summed; divided by the stage's RoI count here).
        """
        super().__init__()
        if not (len(stage_heads) == len(box_coders) == len(proposal_matchers)) or not stage_heads:
            raise ValueError(
                f"expected one head, box coder and matcher per stage, got {len(stage_heads)}, "
                f"{len(box_coders)} and {len(proposal_matchers)}"
            )
        self.box_roi_pool = box_roi_pool
        self.stage_heads = nn.ModuleList(stage_heads)
        self.box_coders = list(box_coders)
        self.proposal_matchers = list(proposal_matchers)
        self.fg_bg_sampler = fg_bg_sampler
        self.classification = classification
        self.mask_roi_pool = mask_roi_pool
        self.mask_head = mask_head
        self.detection_selector = detection_selector
        self.box_loss = box_loss

    @property
    def num_stages(self) -> int:
        return len(self.stage_heads)

    def _head(self, k: int) -> CascadeStageHead:
        return cast(CascadeStageHead, self.stage_heads[k])

    def _run_stage(
        self, k: int, features: dict[str, torch.Tensor], rois: list[torch.Tensor], image_sizes: ImageSizes
    ) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.box_roi_pool(features, rois, image_sizes)
        # The S stages all backpropagate into the shared pyramid; 1/S keeps its gradient at the
        # scale of a single-stage detector (Cascade R-CNN; detectron2's _ScaleGradient).
        pooled = scale_gradient(pooled, 1.0 / self.num_stages)
        out: tuple[torch.Tensor, torch.Tensor] = self._head(k)(pooled)
        return out

    def _refine(
        self, k: int, deltas: torch.Tensor, rois: list[torch.Tensor], image_sizes: ImageSizes
    ) -> list[torch.Tensor]:
        counts = [len(r) for r in rois]
        # float32: under bf16 autocast the deltas are bf16, and decode_single casts the boxes to
        # the deltas' dtype (bf16 keeps 8 bits: 8 px steps at x = 1333).
        boxes = self.box_coders[k].decode_single(deltas.detach().float(), torch.cat(rois).float())
        return [clip_boxes_to_image(b, s) for b, s in zip(boxes.split(counts), image_sizes, strict=True)]

    def forward_train(
        self,
        features: dict[str, torch.Tensor],
        proposals: list[torch.Tensor],
        image_sizes: ImageSizes,
        ground_truth: list[ImageTargets],
    ) -> dict[str, torch.Tensor]:
        """Losses of every stage and of the mask head.

        Args:
            features: the pyramid (levels "0"–"3" are pooled).
            proposals: per image [P_i, 4] RPN boxes (no gradient).
            image_sizes: per image (h, w) after the resize.
            ground_truth: per image, in resized coordinates.
        """
        gt_targets = torch.cat([g.targets for g in ground_truth])
        rois: list[torch.Tensor] = []
        for props, gt in zip(proposals, ground_truth, strict=True):
            # float32 RoIs: under bf16 autocast the RPN's proposals are bf16, and GT boxes cast to
            # them (and the targets gathered in the RoIs' dtype) would lose all but 8 bits.
            candidates = torch.cat([props.detach().float(), gt.boxes.float()])
            matched = match_proposals(candidates, gt.boxes, self.proposal_matchers[0])
            rois.append(candidates[sample_proposals(matched, self.fg_bg_sampler)])

        losses: dict[str, torch.Tensor] = {}
        mask_inputs: tuple[list[torch.Tensor], list[StageTargets]] | None = None
        for k in range(self.num_stages):
            targets = [
                stage_targets(
                    r, match_proposals(r, gt.boxes, self.proposal_matchers[k]), gt, self.box_coders[k]
                )
                for r, gt in zip(rois, ground_truth, strict=True)
            ]
            logits, deltas = self._run_stage(k, features, rois, image_sizes)
            class_targets = torch.cat([t.class_targets for t in targets])
            weights = torch.cat([t.weights for t in targets])
            losses[f"loss_cls_stage{k}"] = self.classification.loss(
                logits, class_targets, weights, gt_targets
            )
            fg = torch.cat([t.foreground for t in targets])
            box_targets = torch.cat([t.box_targets for t in targets])
            box_sum = self.box_loss(deltas[fg], box_targets[fg], weights[fg])
            losses[f"loss_box_stage{k}"] = box_sum / max(1, logits.shape[0])
            if k == 0:
                mask_inputs = (rois, targets)
            if k + 1 < self.num_stages:
                refined = self._refine(k, deltas, rois, image_sizes)
                rois = [
                    torch.cat([r, gt.boxes.to(r.dtype)]) for r, gt in zip(refined, ground_truth, strict=True)
                ]
        assert mask_inputs is not None
        losses["loss_mask"] = self._mask_loss(features, *mask_inputs, image_sizes, ground_truth)
        return losses

    def _mask_loss(
        self,
        features: dict[str, torch.Tensor],
        rois: list[torch.Tensor],
        targets: list[StageTargets],
        image_sizes: ImageSizes,
        ground_truth: list[ImageTargets],
    ) -> torch.Tensor:
        # Foreground RoIs of images that have masks (an image without masks adds no mask loss).
        selected = [
            t.foreground if gt.masks is not None else torch.zeros_like(t.foreground)
            for t, gt in zip(targets, ground_truth, strict=True)
        ]
        fg_rois = [r[fg] for r, fg in zip(rois, selected, strict=True)]
        logits: torch.Tensor = self.mask_head(self.mask_roi_pool(features, fg_rois, image_sizes))
        size = logits.shape[-1]
        mask_target_list = [
            mask_targets(gt.masks, t.matched[fg], r, size)
            for r, t, fg, gt in zip(fg_rois, targets, selected, ground_truth, strict=True)
            if gt.masks is not None
        ]
        if not mask_target_list:
            return logits.sum() * 0.0
        weights = torch.cat([t.weights[fg] for t, fg in zip(targets, selected, strict=True)])
        return mask_loss(logits, torch.cat(mask_target_list), weights)

    @torch.no_grad()
    def forward_eval(
        self,
        features: dict[str, torch.Tensor],
        proposals: list[torch.Tensor],
        image_sizes: ImageSizes,
        *,
        masks: bool = True,
    ) -> list[dict[str, torch.Tensor]]:
        """Per image ``{"boxes", "scores", "labels", "class_scores", "masks" [D,1,2S,2S]}`` (resized);
        without ``masks`` the mask branch is not run and the dicts have no "masks"."""
        rois = [p.detach().float() for p in proposals]
        last = self.num_stages - 1
        for k in range(last):
            _, deltas = self._run_stage(k, features, rois, image_sizes)
            rois = self._refine(k, deltas, rois, image_sizes)
        pooled = self.box_roi_pool(features, rois, image_sizes)
        logits, deltas = self.stage_heads[last](pooled)
        probs = self.classification.probabilities(logits)
        for k in range(last):
            probs = probs + self.classification.probabilities(self._head(k).classify(pooled))
        probs = probs / self.num_stages
        boxes = self._refine(last, deltas, rois, image_sizes)

        detections: list[ImageDetections] = []
        for b, p, size in zip(boxes, probs.split([len(r) for r in rois]), image_sizes, strict=True):
            detections.append(self.detection_selector(b, p, size))
        out = [
            {"boxes": d.boxes, "scores": d.scores, "labels": d.labels, "class_scores": d.class_scores}
            for d in detections
        ]
        if masks:
            boxes = [d.boxes for d in detections]
            logits = self.mask_head(self.mask_roi_pool(features, boxes, image_sizes))
            for o, m in zip(out, torch.sigmoid(logits).split([len(b) for b in boxes]), strict=True):
                o["masks"] = m
        return out
